"""Every core of this machine: the evaluators in a pool of worker processes.

Each worker is started (spawned, never forked from a process that has threads) with
its own copy of the evaluators and warms them once (``_start_worker``: the lexicon,
the tokenizer, ROUGE), so a batch costs only its own work. Workers ignore SIGINT: the
main process decides when the run stops (Ctrl-C reaches the whole process group), and
shuts the pool down.

A worker that dies (killed, out of memory, a crash in native code) breaks the pool:
the batches it was running, and those sent to the broken pool, come back as failed
evaluations of their summaries (counted; ``--resume`` scores them again), and the next
batch starts a new pool.

Starting workers costs seconds (each loads the lexicon); a run with a few summaries
would pay more for them than it saves. So while no more than ``start_after`` summaries
have been asked for, batches are scored in this process (the same function, the same
scores); the pool starts when a run asks for more (at once for ``clinsum score`` of a
large file, after the first summaries for ``clinsum run``, whose summaries trickle in).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import signal
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from clinsum.engines.base import BATCH_SIZE, Engine
from clinsum.engines.batch import Batch, Scores, score_batch, warm_up
from clinsum.evaluators.base import Evaluator
from clinsum.records import Note, Summary

_evaluators: Mapping[str, Evaluator] = {}
"""A worker's evaluators, set once by ``_start_worker``."""


def _start_worker(evaluators: Sequence[Evaluator]) -> None:
    global _evaluators
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _evaluators = {e.name: e for e in evaluators}
    warm_up(_evaluators)


def _score_in_worker(batch: Batch) -> list[Scores]:
    return score_batch(_evaluators, batch)


class PoolEngine(Engine):
    kind = "process pool"

    def __init__(self, evaluators: Sequence[Evaluator], *, workers: int, batch_size: int = BATCH_SIZE,
                 start_after: int | None = None) -> None:
        super().__init__(evaluators, workers=workers, batch_size=batch_size)
        self._pool: ProcessPoolExecutor | None = None
        self.start_after = 2 * batch_size * workers if start_after is None else start_after
        """Summaries scored in this process before the pool starts."""
        self._asked = 0

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=multiprocessing.get_context("spawn"),
                                             initializer=_start_worker, initargs=(list(self.evaluators.values()),))
        return self._pool

    async def evaluate(self, note: Note, summary: Summary, evaluators: Sequence[str]) -> Scores:
        self._asked += 1
        return await super().evaluate(note, summary, evaluators)

    async def _run(self, batch: Batch) -> list[Scores]:
        if self._pool is None and self._asked <= self.start_after:
            return await super()._run(batch)
        pool = self._executor()
        try:
            return await asyncio.get_running_loop().run_in_executor(pool, _score_in_worker, batch)
        except BrokenProcessPool:
            if self._pool is pool:  # the next batch gets a new pool
                self._pool = None
                pool.shutdown(wait=False, cancel_futures=True)
            raise

    def close(self) -> None:
        super().close()
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
