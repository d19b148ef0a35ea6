"""A scripted judge provider for tests: queued answers, every request recorded.

``ScriptedJudge(spec, answers)`` answers each request with the next queued item:
a string (the raw text), a callable ``request -> str`` (for answers that depend
on the prompt, such as pairwise order), or an exception to raise. Running out of
answers fails the test loudly rather than inventing one.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from clinsum.providers.base import BaseProvider, Generation, Request

Scripted = str | Callable[[Request], str] | Exception


class ScriptedJudge(BaseProvider):
    local = True
    cacheable = False

    def __init__(self, spec: str, answers: Iterable[Scripted] = (), *, cost_usd: float | None = 0.001,
                 repeat_last: bool = False) -> None:
        super().__init__(spec)
        self.answers = list(answers)
        self.requests: list[Request] = []
        self.cost_usd = cost_usd
        self.repeat_last = repeat_last

    async def generate(self, request: Request) -> Generation:
        self.requests.append(request)
        if not self.answers:
            raise AssertionError(f"{self.spec}: no scripted answer left for request #{len(self.requests)}")
        item = self.answers[0] if (self.repeat_last and len(self.answers) == 1) else self.answers.pop(0)
        if isinstance(item, Exception):
            raise item
        text = item(request) if callable(item) else item
        return Generation(text=text, input_tokens=100, output_tokens=20, cost_usd=self.cost_usd,
                          latency_s=0.5, model=self.model, request_id=f"req-{len(self.requests)}")


ATTRIBUTES = ("accurate", "thorough", "useful", "organized", "comprehensible", "succinct",
              "synthesized", "stigmatizing", "cited")


def verdict(scores: int | dict[str, int] = 4, errors: list[dict[str, Any]] | None = None,
            **overrides: int) -> str:
    """A verdict answer as a judge would send it: every attribute, then the errors."""
    base = dict.fromkeys(ATTRIBUTES, scores) if isinstance(scores, int) else dict(scores)
    base.update(overrides)
    return json.dumps({
        "errors": errors or [],
        "attributes": {name: {"rationale": f"{name} is rated {score}.", "score": score}
                       for name, score in base.items()},
    })


def error(type_: str = "fabrication", severity: str = "critical", summary_quote: str = "",
          source_quote: str = "", explanation: str = "") -> dict[str, Any]:
    return {"type": type_, "severity": severity, "summary_quote": summary_quote,
            "source_quote": source_quote, "explanation": explanation}


def pairwise(winner: str, rationale: str = "because") -> str:
    return json.dumps({"rationale": rationale, "winner": winner})


def prefers(text: str, rationale: str = "prefers it") -> Callable[[Request], str]:
    """A pairwise answer naming whichever position (A or B) shows the summary containing ``text``."""
    def answer(request: Request) -> str:
        a_part = request.prompt.split("Summary A is between", 1)[1].split("Summary B is between", 1)[0]
        return pairwise("A" if text in a_part else "B", rationale)
    return answer


def always(position: str) -> Callable[[Request], str]:
    """A position-biased judge: names the same position whatever is shown there."""
    return lambda request: pairwise(position, "always the same position")
