"""The engine: summaries in, their CPU-bound scores out, in batches grouped by note.

The runner awaits ``Engine.evaluate`` once per summary, from as many tasks as it has
summaries in flight. The engine collects the requests made in one turn of the event
loop, groups them by note (every summary of a note in the same batch, so the note is
sent once and its concepts are extracted once, whatever the order of the input), cuts
them into batches of about ``batch_size`` summaries, and runs at most ``in_flight``
batches at a time where the subclass runs them (``_run``): a thread, a process pool,
Ray. Batches that come back unscored (a worker died, Ray lost the task) are recorded
as failed evaluations of their summaries, never dropped.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType

from clinsum.engines.batch import Batch, Scores, failed_batch
from clinsum.evaluators.base import Evaluator
from clinsum.records import Note, Summary

log = logging.getLogger(__name__)

BATCH_SIZE = 8
"""Summaries per batch: enough to pay for sending a batch (~10 ms of work per summary), few
enough that a batch lost with its worker costs little and the workers stay evenly busy."""


def runs_in_engine(evaluator: Evaluator) -> bool:
    """Evaluators that compute (concepts, facts, ROUGE, length), as against those that ask a model
    (the judge: it stays in the main process, with the dispatcher and the response cache)."""
    return not getattr(evaluator, "providers", None)


@dataclass
class _Request:
    note: Note
    summary: Summary
    evaluators: tuple[str, ...]
    future: asyncio.Future[Scores]


class Engine:
    """Runs evaluators on batches of summaries; this base class runs them in one thread of this process."""

    kind = "in process"

    def __init__(self, evaluators: Sequence[Evaluator], *, workers: int = 1, batch_size: int = BATCH_SIZE) -> None:
        self.evaluators: Mapping[str, Evaluator] = {e.name: e for e in evaluators}
        self.workers = workers
        self.batch_size = batch_size
        self._pending: list[_Request] = []
        self._scheduled = False
        self._slots: asyncio.Semaphore | None = None
        self._sending: set[asyncio.Task[None]] = set()

    @property
    def names(self) -> frozenset[str]:
        """The evaluators this engine runs."""
        return frozenset(self.evaluators)

    @property
    def in_flight(self) -> int:
        """Batches sent at once: two per worker, so each has the next one waiting."""
        return 2 * self.workers

    async def evaluate(self, note: Note, summary: Summary, evaluators: Sequence[str]) -> Scores:
        """The scores of ``summary`` by each named evaluator."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Scores] = loop.create_future()
        self._pending.append(_Request(note, summary, tuple(evaluators), future))
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._dispatch)
        return await future

    def _dispatch(self) -> None:
        """Group what was asked in this turn of the loop by note, and send it in batches."""
        self._scheduled = False
        by_note: dict[str, list[_Request]] = {}
        for request in self._pending:
            if not request.future.done():
                by_note.setdefault(request.note.id, []).append(request)
        self._pending = []
        batch: list[_Request] = []
        for requests in by_note.values():
            batch.extend(requests)
            if len(batch) >= self.batch_size:
                self._send(batch)
                batch = []
        if batch:
            self._send(batch)

    def _send(self, requests: list[_Request]) -> None:
        task = asyncio.ensure_future(self._run_batch(requests))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _run_batch(self, requests: list[_Request]) -> None:
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.in_flight)
        try:
            async with self._slots:
                requests = [r for r in requests if not r.future.done()]  # a stopped run cancels its waits
                if not requests:
                    return
                batch = Batch.of((r.note, r.summary, r.evaluators) for r in requests)
                try:
                    results = await self._run(batch)
                except Exception as exc:  # the batch never came back: its evaluations failed, counted
                    log.error("%s: a batch of %d summaries was lost: %s", self.kind, len(requests), exc)
                    results = failed_batch(self.evaluators, batch, f"{self.kind}: {type(exc).__name__}: {exc}")
        except BaseException:
            for request in requests:
                request.future.cancel()
            raise
        for request, scores in zip(requests, results, strict=True):
            if not request.future.done():
                request.future.set_result(scores)

    async def _run(self, batch: Batch) -> list[Scores]:
        from clinsum.engines.batch import score_batch

        return await asyncio.to_thread(score_batch, self.evaluators, batch)

    def close(self) -> None:
        """Stop whatever the engine started; batches still running are abandoned (their summaries were
        not recorded, and ``--resume`` scores them)."""
        for task in list(self._sending):
            task.cancel()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()
