"""A scripted provider for tests of the runner, dispatcher and evaluators."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from clinsum.providers.base import BaseProvider, Generation, Request

Answer = str | Exception | Callable[[Request], "str | Exception"]


class ScriptedProvider(BaseProvider):
    """Answers from a queue (strings, or exceptions to raise), else by ``default``.

    Every call is recorded in ``calls`` so tests can assert what was asked and how often.
    """

    local = True

    def __init__(self, spec: str = "fake:model", options: dict[str, Any] | None = None, *,
                 answers: list[Answer] | None = None,
                 default: Callable[[Request], str] | None = None, delay_s: float = 0.0) -> None:
        super().__init__(spec, options)
        self.answers = list(answers or [])
        self.default = default or (lambda request: f"summary of {request.note.id if request.note else '?'}")
        self.delay_s = delay_s
        self.calls: list[Request] = []

    async def generate(self, request: Request) -> Generation:
        self.calls.append(request)
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        answer: Any = self.answers.pop(0) if self.answers else self.default
        if callable(answer) and not isinstance(answer, Exception):
            answer = answer(request)
        if isinstance(answer, Exception):
            raise answer
        return Generation(text=answer, input_tokens=10, output_tokens=5, cost_usd=0.001, latency_s=0.01,
                          request_id=f"req-{len(self.calls)}")
