"""More than one machine: the evaluators as Ray tasks, on a Ray cluster or a local Ray.

With ``RAY_ADDRESS`` set, ``ray.init`` connects to that cluster (clinsum must be
installed on its workers, or shipped with a ``runtime_env``); otherwise a local Ray is
started for the run with ``workers`` CPUs, no dashboard, on the loopback address, with
usage statistics off, and stopped at the end. A Ray instance that the caller already
started (``ray.init`` before the run) is used as it is and left running.

Ray does the distribution: each batch is one task, scheduled wherever Ray has a CPU.
The evaluators travel once (``ray.put``); each Ray worker process loads the lexicon
once, on its first batch, and keeps it for the next (it is a process-wide object).
Results come back to the main process, which writes them to its store: the store
stays on the machine that runs clinsum. A task that Ray loses (its node died) is
retried by Ray (``max_retries``); one that still fails is a failed evaluation of the
batch's summaries, counted, never dropped.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from clinsum.engines.base import BATCH_SIZE, Engine
from clinsum.engines.batch import Batch, Scores, score_batch
from clinsum.errors import ConfigError
from clinsum.evaluators.base import Evaluator

MAX_RETRIES = 2
"""Times Ray runs a batch again whose worker or node died before it finished."""


def _score_on_ray(evaluators: Sequence[Evaluator], batch: Batch) -> list[Scores]:
    return score_batch({e.name: e for e in evaluators}, batch)


class RayEngine(Engine):
    kind = "ray"

    def __init__(self, evaluators: Sequence[Evaluator], *, workers: int, batch_size: int = BATCH_SIZE) -> None:
        super().__init__(evaluators, workers=workers, batch_size=batch_size)
        try:
            import ray
        except ImportError as exc:
            raise ConfigError("--engine ray needs Ray: pip install 'clinsum[ray]'") from exc
        self._ray: Any = ray
        self._started = False
        self._task: Any = None
        self._evaluators_ref: Any = None

    def _start(self) -> None:
        ray = self._ray
        if not ray.is_initialized():
            if os.environ.get("RAY_ADDRESS"):
                ray.init(include_dashboard=False, log_to_driver=True)
            else:
                os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # a local run sends nothing anywhere
                ray.init(num_cpus=self.workers, include_dashboard=False, _node_ip_address="127.0.0.1")
            self._started = True
        self._task = ray.remote(num_cpus=1, max_retries=MAX_RETRIES)(_score_on_ray)
        self._evaluators_ref = ray.put(list(self.evaluators.values()))

    @property
    def in_flight(self) -> int:
        """Two batches per CPU of the cluster (or of the local Ray)."""
        if self._task is None:
            self._start()
        cpus = int(self._ray.cluster_resources().get("CPU", self.workers))
        return 2 * max(1, cpus)

    async def _run(self, batch: Batch) -> list[Scores]:
        if self._task is None:
            self._start()
        result: list[Scores] = await self._task.remote(self._evaluators_ref, batch)
        return result

    def close(self) -> None:
        super().close()
        if self._started:
            self._ray.shutdown()
            self._started = False
