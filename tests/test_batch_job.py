"""``BatchJob``: the submit, poll, collect and resume steps every provider's batch shares.

A provider's batch fills in six small hooks; this one keeps its job in memory (the
Anthropic and Vertex AI batches are tested against HTTP-level fakes of their APIs in
test_provider_anthropic.py and test_provider_vertex_batch.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from clinsum.errors import ConfigError, FatalError, TransientError
from clinsum.providers.base import Generation, Request
from clinsum.providers.batch_job import BatchJob, Outcome, Requests


@dataclass(frozen=True)
class Status:
    batch_id: str
    polls: int
    ended: bool


class MemoryBatch(BatchJob[str, Status]):
    """A job held in memory: it ends after ``polls_to_end`` polls and answers ``answers``."""

    max_requests = 3
    api_name = "Memory Batches"

    def __init__(self, answers: list[tuple[str, Any]], *, polls_to_end: int = 2) -> None:
        super().__init__("memory:model", poll_interval_s=1.0, max_wait_s=10.0, sleep=self._no_wait)
        self.answers = answers
        self.polls_to_end = polls_to_end
        self.created: list[list[str]] = []
        self.polled = 0

    async def _no_wait(self, seconds: float) -> None:
        return None

    def request_id(self, key: str) -> str:
        return f"id-{key}"

    async def _create(self, requests: Requests) -> str:
        self.created.append(list(requests))
        return "job-1"

    async def status(self, batch_id: str) -> Status:
        self.polled += 1
        return Status(batch_id, self.polled, self.polled >= self.polls_to_end)

    def _still(self, status: Status) -> str:
        return f"job {status.batch_id} still running"

    async def _answers(self, job: Status) -> AsyncIterator[tuple[str | None, Any, str]]:
        for request_id, answer in self.answers:
            yield request_id, answer, "memory"

    def _outcome(self, answer: Any, request: Request, where: str) -> Outcome:
        if answer is None:
            return FatalError("refused")
        return self.at_batch_price(Generation(text=f"{answer}: {request.prompt}", cost_usd=1.0))


ITEMS = [("a", Request(prompt="note a")), ("b", Request(prompt="note b")), ("c", Request(prompt="note c"))]


async def test_run_submits_polls_until_ended_and_matches_answers_to_keys() -> None:
    batch = MemoryBatch([("id-c", "third"), ("id-a", None), ("id-a", "first"), ("id-x", "not ours")])
    submitted: list[str] = []
    polls: list[int] = []
    outcomes = await batch.run(ITEMS, on_submitted=submitted.append, on_poll=lambda s: polls.append(s.polls))
    assert batch.created == [["id-a", "id-b", "id-c"]] and submitted == ["job-1"]
    assert polls == [1, 2]
    first, third = outcomes["a"], outcomes["c"]
    assert isinstance(first, Generation) and first.text == "first: note a"  # a good answer wins over a failure
    assert isinstance(third, Generation) and third.cost_usd == 0.5  # at the batch price
    missing = outcomes["b"]
    assert isinstance(missing, TransientError) and str(missing) == "batch job-1 returned no result for 'b'"
    assert set(outcomes) == {"a", "b", "c"}  # the answer for a request not sent is left out


async def test_a_batch_id_resumes_without_submitting_again() -> None:
    batch = MemoryBatch([("id-a", "resumed")], polls_to_end=1)
    outcomes = await batch.run(ITEMS[:1], batch_id="job-0", on_submitted=lambda _: pytest.fail("resubmitted"))
    assert batch.created == [] and isinstance(outcomes["a"], Generation)


async def test_waiting_longer_than_max_wait_is_a_transient_error_naming_the_job() -> None:
    batch = MemoryBatch([], polls_to_end=100)
    with pytest.raises(TransientError, match=r"job job-1 still running after 10s; resume later"):
        await batch.run(ITEMS)
    assert batch.created == [["id-a", "id-b", "id-c"]]


async def test_empty_duplicate_and_oversize_batches_are_refused_before_any_call() -> None:
    batch = MemoryBatch([])
    with pytest.raises(ConfigError, match="an empty batch"):
        await batch.submit([])
    with pytest.raises(ConfigError, match="duplicate key 'a'"):
        await batch.submit([ITEMS[0], ITEMS[0]])
    with pytest.raises(ConfigError, match="4 requests exceed the Memory Batches limit of 3"):
        await batch.submit([*ITEMS, ("d", Request(prompt="note d"))])
    assert batch.created == []


async def test_resuming_a_batch_whose_answers_are_all_cached_asks_nothing(tmp_path) -> None:
    """A run that stopped after the batch's answers reached the cache, before its summaries were stored:
    on resume every answer is a cache hit, and the stored batch id must not turn into 'an empty batch'."""
    from pydantic import BaseModel

    from clinsum.dispatch import cache_key
    from clinsum.providers.batch_job import prefill_cache
    from clinsum.store import Store

    class Options(BaseModel):
        pass

    class Provider:
        spec, endpoint, options = "memory:model", None, Options()

    batch = MemoryBatch([])
    batch.provider = Provider()  # type: ignore[assignment]
    store = Store.open(tmp_path / "s.db")
    for _, request in ITEMS:
        store.cache_response(cache_key(batch.provider, request), "memory:model",  # type: ignore[arg-type]
                             Generation(text="cached").model_dump_json())
    outcomes = await prefill_cache(batch, store, [r for _, r in ITEMS], batch_id="job-0")  # type: ignore[arg-type]
    assert outcomes == {} and batch.polled == 0 and batch.created == []
