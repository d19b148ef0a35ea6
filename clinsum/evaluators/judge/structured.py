"""Ask a judge for a structured answer, validate it, and feed validation errors back.

One bounded loop: the first call, then at most ``max_invalid_retries`` calls
whose prompt repeats the task with the rejected answer and the validation error.
Provider failures are not retried here (the dispatcher already did, within its
own bounds); they end the loop at once. What comes out is either a validated
value or a failure that keeps every raw answer and error, never a guess.

A failure is never kept in the response cache: when the loop ends without a
valid answer, every answer of its calls is dropped from the cache, so a resumed run
asks again instead of replaying the failure. A failure replayed from the cache
(answers cached before a kill, or by an older clinsum) is asked again live, once.
A successful loop stays cached whole: replaying it re-validates every answer and
reaches the same accepted one, at no cost.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from clinsum.errors import ClinsumError, ProviderError
from clinsum.evaluators.judge.prompt import feedback_prompt
from clinsum.providers.base import Generation, Provider, Request

T = TypeVar("T")


@dataclass
class CallCost:
    """What the calls behind one answer consumed; a total is None when any call did not report it."""

    calls: int = 0
    cached: int = 0
    input_tokens: int | None = 0
    output_tokens: int | None = 0
    cost_usd: float | None = 0.0
    latency_s: float | None = 0.0

    def add(self, generation: Generation) -> None:
        self.calls += 1
        self.cached += int(generation.cached)
        self.input_tokens = _plus(self.input_tokens, generation.input_tokens)
        self.output_tokens = _plus(self.output_tokens, generation.output_tokens)
        self.cost_usd = _plus(self.cost_usd, generation.cost_usd)
        self.latency_s = _plus(self.latency_s, generation.latency_s)

    def merge(self, other: CallCost) -> None:
        if not other.calls:
            return
        self.calls += other.calls
        self.cached += other.cached
        self.input_tokens = _plus(self.input_tokens, other.input_tokens)
        self.output_tokens = _plus(self.output_tokens, other.output_tokens)
        self.cost_usd = _plus(self.cost_usd, other.cost_usd)
        self.latency_s = _plus(self.latency_s, other.latency_s)

    def as_dict(self) -> dict[str, Any]:
        if self.calls == 0:
            return {"calls": 0, "cached": 0, "input_tokens": None, "output_tokens": None,
                    "cost_usd": None, "latency_s": None}
        return {"calls": self.calls, "cached": self.cached, "input_tokens": self.input_tokens,
                "output_tokens": self.output_tokens,
                "cost_usd": None if self.cost_usd is None else round(self.cost_usd, 8),
                "latency_s": None if self.latency_s is None else round(self.latency_s, 4)}


def _plus(total: Any, value: Any) -> Any:
    return None if total is None or value is None else total + value


@dataclass
class Answer(Generic[T]):
    """A validated value, or the failure with every raw answer kept."""

    value: T | None
    attempts: list[dict[str, Any]] = field(default_factory=list)
    """One entry per call: ``raw`` text and the ``error`` that rejected it (None when accepted)."""
    cost: CallCost = field(default_factory=CallCost)
    error: str | None = None
    model: str | None = None
    """The model that answered, as the provider reported it."""

    @property
    def ok(self) -> bool:
        return self.value is not None


async def ask(dispatcher: Any, provider: Provider, *, system: str, user: str,
              schema: dict[str, Any], parse: Callable[[str], T], sample: int = 0,
              temperature: float | None = None, max_invalid_retries: int = 2) -> Answer[T]:
    """Ask ``provider`` until ``parse`` accepts the answer, at most ``1 + max_invalid_retries`` calls.

    ``parse`` raises a ``ClinsumError`` (or ``ValueError``) whose message says what is
    wrong; that message goes back to the judge with its rejected answer.
    """
    answer, asked, replayed = await _loop(dispatcher, provider, system=system, user=user, schema=schema,
                                          parse=parse, sample=sample, temperature=temperature,
                                          max_invalid_retries=max_invalid_retries)
    if not answer.ok and replayed:
        _forget(dispatcher, provider, asked)
        answer, asked, _ = await _loop(dispatcher, provider, system=system, user=user, schema=schema,
                                       parse=parse, sample=sample, temperature=temperature,
                                       max_invalid_retries=max_invalid_retries)
    if not answer.ok:
        _forget(dispatcher, provider, asked)
    return answer


async def _loop(dispatcher: Any, provider: Provider, *, system: str, user: str, schema: dict[str, Any],
                parse: Callable[[str], T], sample: int, temperature: float | None,
                max_invalid_retries: int) -> tuple[Answer[T], list[Request], bool]:
    """One pass of the bounded loop; also returns the requests it made, and whether an answer
    came from the cache for a request not already made in this pass (a replay of an earlier run)."""
    answer: Answer[T] = Answer(value=None)
    asked: list[Request] = []
    replayed = False
    prompt = user
    for _ in range(1 + max(0, max_invalid_retries)):
        request = Request(prompt=prompt, system=system, json_schema=schema, sample=sample,
                          temperature=temperature)
        repeated = request in asked  # the same rejected answer gives the same feedback prompt
        asked.append(request)
        try:
            generation = await dispatcher.generate(provider, request)
        except ProviderError as exc:
            answer.error = f"provider error ({type(exc).__name__}): {exc}"
            return answer, asked, replayed
        replayed = replayed or (generation.cached and not repeated)
        answer.cost.add(generation)
        answer.model = generation.model or answer.model
        value, error = _parse(parse, generation.text)
        answer.attempts.append({"raw": generation.text, "error": error})
        if error is not None:
            answer.error = f"invalid answer after {len(answer.attempts)} attempt(s): {error}"
            prompt = feedback_prompt(user, generation.text, error)
            continue
        answer.value = value
        answer.error = None
        return answer, asked, replayed
    return answer, asked, replayed


def _forget(dispatcher: Any, provider: Provider, asked: list[Request]) -> None:
    forget = getattr(dispatcher, "forget", None)  # test doubles of the dispatcher may not cache
    for request in asked:
        if forget is not None:
            forget(provider, request)


def _parse(parse: Callable[[str], T], raw: str) -> tuple[T | None, str | None]:
    try:
        return parse(raw), None
    except (ClinsumError, ValueError) as exc:
        return None, str(exc)
