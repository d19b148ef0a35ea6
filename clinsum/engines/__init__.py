"""Where scoring runs: in process, in a process pool, on Ray — the same evaluators, the same results.

The runner gives each summary's CPU-bound evaluators (concepts, facts, ROUGE, length:
every evaluator that asks no model) to an engine, and keeps the judge in its own event
loop (it waits on providers, through the dispatcher and the response cache). An engine
never holds evaluator logic: it moves records to the evaluators and scores back.

- ``Engine`` (``--workers 1``): batches run in a thread of this process.
- ``PoolEngine`` (``--workers N``, N > 1): a pool of N worker processes on this machine.
- ``RayEngine`` (``--engine ray``): Ray tasks, on the cluster named by ``RAY_ADDRESS``
  or on a local Ray started for the run.

Every engine scores with ``engines.batch.score_batch``, so a summary's scores do not
depend on where they were computed (tests compare them exactly).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from clinsum.engines.base import BATCH_SIZE, Engine, runs_in_engine
from clinsum.errors import ConfigError
from clinsum.evaluators.base import Evaluator

ENGINES = ("local", "ray")

__all__ = ["BATCH_SIZE", "ENGINES", "Engine", "cores", "create", "runs_in_engine"]


def cores() -> int:
    """The CPUs this process may run on (the default ``--workers``)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def create(kind: str, evaluators: Sequence[Evaluator], workers: int | None = None) -> Engine:
    """The engine that runs ``evaluators``: ``local`` with ``workers`` processes, or ``ray``."""
    workers = workers or cores()
    if kind == "ray":
        from clinsum.engines.ray import RayEngine

        return RayEngine(evaluators, workers=workers)
    if kind != "local":
        raise ConfigError(f"unknown engine '{kind}'; engines: {', '.join(ENGINES)}")
    if workers == 1:
        return Engine(evaluators)
    from clinsum.engines.pool import PoolEngine

    return PoolEngine(evaluators, workers=workers)
