"""--engine ray: the same scores as the local engine, computed by Ray tasks on a local Ray.

One Ray instance for the module (starting Ray takes seconds), on the loopback address,
without dashboard or usage statistics: nothing leaves the machine.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from engine_fakes import DOOMED, Raising, Words
from test_engines import fixture_runs, records

from clinsum import evaluation
from clinsum.config import RunConfig
from clinsum.dispatch import Dispatcher
from clinsum.engines import create
from clinsum.engines.ray import RayEngine
from clinsum.inputs import load_notes, load_summaries
from clinsum.runner import Progress, Runner
from clinsum.store import Store

ray = pytest.importorskip("ray", reason="--engine ray needs clinsum[ray] (in the dev extra)")


@pytest.fixture(scope="module")
def local_ray() -> Iterator[Any]:
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    tests = Path(__file__).resolve().parent  # Ray's workers import the fake evaluators from here
    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join([str(tests), str(tests.parent)])}})
    try:
        yield ray
    finally:
        ray.shutdown()


def scores_of(store: Store, run_id: str) -> list[tuple[Any, ...]]:
    return sorted((s.note_id, s.system, s.metric, s.value, s.evaluator, s.version,
                   json.dumps(s.detail, sort_keys=True)) for s in store.scores(run_id))


async def test_ray_scores_are_the_local_engines_scores(local_ray, tmp_path):
    notes_path, summaries_path = fixture_runs(tmp_path, systems=2)
    notes = list(load_notes(notes_path).records)
    summaries = list(load_summaries(summaries_path).records)
    metrics = ["overlap", "length", "coverage", "facts"]
    results = {}
    for engine in ("local", "ray"):
        store = Store.open(tmp_path / f"{engine}.db")
        config = RunConfig(metrics=metrics, engine=engine, workers=1)
        run_id = await evaluation.score(config, store, notes, summaries)
        results[engine] = scores_of(store, run_id)
        assert store.run(run_id)["failed_evaluations"] == 0
        store.close()
    assert len(results["local"]) > 24 * 10
    assert results["ray"] == results["local"]
    assert local_ray.is_initialized(), "a Ray the caller started is left running"


async def test_ray_tasks_run_in_ray_workers_and_errors_are_counted(local_ray, tmp_path):
    notes, summaries = records()
    store = Store.open(tmp_path / "s.db")
    store.create_run("r", {}, kind="score", version="0", notes=notes, summaries=summaries)
    progress = Progress()
    engine = create("ray", [Words(), Raising()], 2)
    assert isinstance(engine, RayEngine)
    with engine:
        runner = Runner(store, Dispatcher(store), [Words(), Raising()], engine=engine)
        await runner.score_summaries("r", notes, summaries, progress)
    scores = store.scores("r")
    assert {s.detail["pid"] for s in scores if s.metric == "words"} - {os.getpid()}, "scored in Ray workers"
    assert len([s for s in scores if s.metric == "words"]) == len(summaries)
    assert {s.note_id for s in scores if s.metric == "raising_error"} == {DOOMED}
    assert progress.failed_evaluations == 2


def test_engine_ray_without_ray_installed_says_how_to_install(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_ray(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "ray":
            raise ImportError("No module named 'ray'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    from clinsum.errors import ConfigError

    with pytest.raises(ConfigError, match=r"pip install 'clinsum\[ray\]'"):
        RayEngine([Words()], workers=1)

