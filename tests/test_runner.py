from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import signal
import sqlite3
import time
from pathlib import Path

import pytest
from fakes import ScriptedProvider

from clinsum import evaluation
from clinsum.config import RunConfig
from clinsum.dispatch import Dispatcher
from clinsum.errors import FatalError, TransientError
from clinsum.prompts import load_template
from clinsum.providers import registry
from clinsum.records import Note
from clinsum.runner import Runner, System
from clinsum.store import Store

NOTES = [Note(id=f"n{i:02d}", text=f"Patient {i} has hypertension and denies chest pain.") for i in range(20)]


def make_runner(store: Store, **dispatcher_options) -> Runner:
    return Runner(store, Dispatcher(store, base_delay_s=0, **dispatcher_options), [], load_template())


async def test_every_note_gets_a_summary_from_every_system(tmp_path):
    store = Store.open(tmp_path / "s.db")
    store.create_run("r", {}, kind="run", version="0", notes=NOTES[:3])
    a, b = ScriptedProvider("fake:a"), ScriptedProvider("fake:b")
    await make_runner(store).generate_and_score("r", NOTES[:3], [System("a", a), System("b", b)])
    summaries = store.summaries("r")
    assert {(s.system, s.note_id) for s in summaries} == {(x, n.id) for x in "ab" for n in NOTES[:3]}
    assert all(s.prompt_version == "summarize_v2" for s in summaries)
    assert "Patient 0 has hypertension" in a.calls[0].prompt  # the note went into the prompt
    failed = {s.value for s in store.scores("r") if s.metric == "failed"}
    assert failed == {0.0}


async def test_one_failing_note_never_stops_the_others(tmp_path):
    store = Store.open(tmp_path / "s.db")
    store.create_run("r", {}, kind="run", version="0", notes=NOTES[:4])

    def answer(request):
        return FatalError("context too long") if request.note.id == "n01" else "fine"

    provider = ScriptedProvider(default=answer)
    await make_runner(store).generate_and_score("r", NOTES[:4], [System("x", provider)])
    by_note = {s.note_id: s for s in store.summaries("r")}
    assert by_note["n01"].error == "FatalError: context too long"
    assert all(by_note[n].ok for n in ("n00", "n02", "n03"))
    assert {s.note_id for s in store.scores("r") if s.metric == "failed" and s.value == 1.0} == {"n01"}


async def test_transient_errors_retry_then_succeed_and_exhaustion_is_recorded(tmp_path):
    store = Store.open(tmp_path / "s.db")
    store.create_run("r", {}, kind="run", version="0", notes=NOTES[:2])
    flaky = ScriptedProvider(answers=[TransientError("502"), "recovered"])
    down = ScriptedProvider("fake:down", default=lambda r: (_ for _ in ()).throw(TransientError("503")))
    runner = make_runner(store, max_attempts=3)
    await runner.generate_and_score("r", NOTES[:1], [System("flaky", flaky), System("down", down)])
    by_system = {s.system: s for s in store.summaries("r")}
    assert by_system["flaky"].text == "recovered" and len(flaky.calls) == 2
    assert by_system["down"].error == "TransientError: 503" and len(down.calls) == 3


async def test_resume_retries_failures_and_replaces_their_scores(tmp_path):
    store = Store.open(tmp_path / "s.db")
    store.create_run("r", {}, kind="run", version="0", notes=NOTES[:2])
    first = ScriptedProvider(default=lambda r: FatalError("down") if r.note.id == "n01" else "ok")
    await make_runner(store).generate_and_score("r", NOTES[:2], [System("x", first)])
    second = ScriptedProvider()
    await make_runner(store).generate_and_score("r", NOTES[:2], [System("x", second)])
    assert [c.note.id for c in second.calls] == ["n01"]  # the stored success is not asked again
    assert all(s.ok for s in store.summaries("r"))
    assert {s.value for s in store.scores("r") if s.metric == "failed"} == {0.0}


async def test_an_evaluator_that_crashes_spares_the_others(tmp_path):
    class Broken:
        name, version = "broken", "1"

        async def evaluate(self, note, summary):
            raise ZeroDivisionError("bug")

    store = Store.open(tmp_path / "s.db")
    store.create_run("r", {}, kind="run", version="0", notes=NOTES[:1])
    runner = Runner(store, Dispatcher(store), [Broken()], load_template())
    await runner.generate_and_score("r", NOTES[:1], [System("x", ScriptedProvider())])
    metrics = {s.metric: s for s in store.scores("r")}
    assert "failed" in metrics
    broken = metrics["broken_error"]
    assert broken.value is None and "ZeroDivisionError" in broken.detail["error"]


# -- a run killed with SIGKILL resumes without repeating a stored call ------------------------------

CALL_LOG = "calls.log"


def _slow_logging_provider(log_path: Path, delay_s: float):
    def create(spec, options):
        provider = ScriptedProvider(spec, options, delay_s=delay_s)
        original = provider.generate

        async def generate(request):
            with open(log_path, "a") as log:  # logged when the call is made, before it answers
                log.write(request.note.id + "\n")
            return await original(request)

        provider.generate = generate  # type: ignore[method-assign]
        return provider
    return create


def _run_in_child(db: str, notes: str) -> None:
    config = RunConfig(notes=notes, providers=[{"spec": "slowfake:m", "options": {"concurrency": 2}}],  # type: ignore[list-item]
                       metrics=[])
    store = Store.open(db)
    asyncio.run(evaluation.run(config, store))


def _stored_summaries(db: Path) -> int:
    try:
        with sqlite3.connect(db) as conn:
            return conn.execute("SELECT COUNT(*) FROM summaries WHERE ok = 1").fetchone()[0]
    except sqlite3.Error:
        return 0


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_killed_run_resumes_and_never_repeats_a_stored_call(tmp_path):
    notes_path = tmp_path / "notes.jsonl"
    notes_path.write_text("".join(json.dumps({"id": n.id, "text": n.text}) + "\n" for n in NOTES))
    db, log = tmp_path / "s.db", tmp_path / CALL_LOG
    registry.register("slowfake", _slow_logging_provider(log, delay_s=0.05))

    child = multiprocessing.get_context("fork").Process(target=_run_in_child, args=(str(db), str(notes_path)))
    child.start()
    deadline = time.monotonic() + 20
    while _stored_summaries(db) < 6 and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(child.pid, signal.SIGKILL)
    child.join()
    assert child.exitcode == -signal.SIGKILL

    store = Store.open(db)
    [run] = store.runs()
    stored_before = {s.note_id for s in store.summaries(run["id"]) if s.ok}
    assert 6 <= len(stored_before) < len(NOTES), "the kill must land mid-run"
    assert run["status"] == "interrupted"  # killed before it could say so: its process is gone

    log.write_text("")
    config = RunConfig.model_validate(run["config"])
    asyncio.run(evaluation.run(config, store, run_id=run["id"]))
    called_on_resume = set(log.read_text().split())
    assert not (called_on_resume & stored_before), "a stored summary was paid for twice"
    assert called_on_resume == {n.id for n in NOTES} - stored_before
    assert {s.note_id for s in store.summaries(run["id"])} == {n.id for n in NOTES}
    assert store.run(run["id"])["status"] == "finished"


def test_offline_refuses_a_remote_judge_before_any_call(tmp_path, monkeypatch):
    from clinsum.errors import ConfigError

    monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key")
    config = RunConfig(offline=True, providers=["extractive:lead"], metrics=["judge"],  # type: ignore[list-item]
                       judge={"judges": ["anthropic:claude-sonnet-5-5"]})  # type: ignore[arg-type]
    store = Store.open(tmp_path / "s.db")
    with pytest.raises(ConfigError, match="anthropic:claude-sonnet-5-5"):
        asyncio.run(evaluation.run(config, store, notes=NOTES[:1]))
    assert store.runs() == []  # refused before the run was even recorded


class _Flaky:
    """An evaluator that fails (``failed: true`` in its detail) until ``healed``."""

    name, version = "flaky", "1"

    def __init__(self) -> None:
        self.healed = False
        self.calls = 0

    async def evaluate(self, note, summary):
        from clinsum.records import Score

        self.calls += 1
        detail = {} if self.healed else {"failed": True, "error": "invalid answer"}
        return [Score(note_id=note.id, system=summary.system, metric="flaky_score",
                      value=1.0 if self.healed else None, evaluator=self.name, version=self.version,
                      detail=detail)]


async def test_failed_evaluations_are_counted_and_run_again_on_resume_and_good_ones_are_not(tmp_path):
    from clinsum.runner import Progress

    store = Store.open(tmp_path / "s.db")
    store.create_run("r", {}, kind="run", version="0", notes=NOTES[:3])
    flaky, provider = _Flaky(), ScriptedProvider()
    progress = Progress()
    runner = Runner(store, Dispatcher(store), [flaky], load_template())
    await runner.generate_and_score("r", NOTES[:3], [System("x", provider)], progress)
    assert progress.failed == 0 and progress.failed_evaluations == 3
    assert store.run("r")["failed_evaluations"] == 3

    flaky.healed, flaky.calls = True, 0
    progress = Progress()
    await runner.generate_and_score("r", NOTES[:3], [System("x", provider)], progress)
    assert flaky.calls == 3 and progress.failed_evaluations == 0 and len(provider.calls) == 3
    assert store.run("r")["failed_evaluations"] == 0
    assert {s.value for s in store.scores("r") if s.metric == "flaky_score"} == {1.0}

    flaky.calls = 0  # everything is whole now: nothing is evaluated again
    await runner.generate_and_score("r", NOTES[:3], [System("x", provider)])
    assert flaky.calls == 0


async def test_an_empty_answer_is_a_scored_flagged_summary_not_a_failure(tmp_path):
    from clinsum.evaluators.overlap import LengthEvaluator

    store = Store.open(tmp_path / "s.db")
    store.create_run("r", {}, kind="run", version="0", notes=NOTES[:2])
    provider = ScriptedProvider(default=lambda r: " \n" if r.note.id == "n00" else "Hypertension.")
    runner = Runner(store, Dispatcher(store), [LengthEvaluator()], load_template())
    await runner.generate_and_score("r", NOTES[:2], [System("x", provider)])
    assert all(s.ok for s in store.summaries("r"))
    values = {(s.note_id, s.metric): s.value for s in store.scores("r")}
    assert values[("n00", "empty_summary")] == 1.0 and values[("n01", "empty_summary")] == 0.0
    assert values[("n00", "summary_words")] == 0.0 and values[("n00", "failed")] == 0.0
    assert store.run("r")["empty"] == 1


def test_a_run_stopped_by_any_error_is_never_left_running(tmp_path, monkeypatch):
    async def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(Runner, "generate_and_score", broken)
    store = Store.open(tmp_path / "s.db")
    config = RunConfig(providers=["extractive:lead"], metrics=[])  # type: ignore[list-item]
    with pytest.raises(RuntimeError):
        asyncio.run(evaluation.run(config, store, notes=NOTES[:2]))
    assert [r["status"] for r in store.runs()] == ["interrupted"]


def test_a_score_run_resumes_with_its_stored_summaries(tmp_path):
    from clinsum.records import Summary

    store = Store.open(tmp_path / "s.db")
    config = RunConfig(metrics=["length"])
    summaries = [Summary(note_id=n.id, system="production", text="Hypertension.") for n in NOTES[:3]]
    run_id = asyncio.run(evaluation.score(config, store, NOTES[:3], summaries))
    store.db.execute("DELETE FROM scores WHERE note_id = 'n01' AND evaluator = 'length'")
    store.set_status(run_id, "interrupted")
    kind, stored = evaluation.resume_config(store, run_id)
    assert kind == "score"
    asyncio.run(evaluation.resume(store, run_id, stored, kind))
    assert store.run(run_id)["status"] == "finished"
    assert {s.note_id for s in store.scores(run_id) if s.metric == "summary_words"} == {"n00", "n01", "n02"}


async def test_a_judge_that_lost_one_sample_is_a_failed_evaluation_and_resume_asks_only_that_one(tmp_path):
    from judge_fakes import ScriptedJudge, verdict

    from clinsum.evaluators.judge import JudgeEvaluator
    from clinsum.runner import Progress

    class CachedJudge(ScriptedJudge):
        cacheable = True

    store = Store.open(tmp_path / "s.db")
    store.create_run("r", {}, kind="run", version="0", notes=NOTES[:1])
    judge = CachedJudge("fake:judge", [verdict(4), "no", "no", "no"])
    dispatcher = Dispatcher(store)
    evaluator = JudgeEvaluator([judge], dispatcher, samples=2, temperature=0.7)
    runner = Runner(store, dispatcher, [evaluator], load_template())
    progress = Progress()
    await runner.generate_and_score("r", NOTES[:1], [System("x", ScriptedProvider())], progress)
    assert progress.failed_evaluations == 1 and store.run("r")["failed_evaluations"] == 1

    judge.answers, judge.requests = [verdict(2)], []
    await runner.generate_and_score("r", NOTES[:1], [System("x", ScriptedProvider())])
    assert len(judge.requests) == 1 and judge.requests[0].sample == 1  # the good sample came from the cache
    assert store.run("r")["failed_evaluations"] == 0
    [overall] = [s for s in store.scores("r") if s.metric == "judge_overall"]
    assert overall.detail["spread"]["n"] == 2 and "failures" not in overall.detail["judges"]["fake:judge"]


async def test_a_failed_scheduled_flush_stops_the_run_and_leaves_nothing_half_written(tmp_path):
    """The flush that the event loop runs used to fail in silence; now the run stops with the error."""
    from clinsum.errors import StoreWriteError

    class FullDisk:
        def __init__(self, db):
            self.db = db

        def executemany(self, sql, rows):
            if "INTO score_rows" in sql:
                raise sqlite3.OperationalError("database or disk is full")
            return self.db.executemany(sql, rows)

        def __getattr__(self, name):
            return getattr(self.db, name)

    store = Store.open(tmp_path / "s.db")
    store.create_run("r", {}, kind="run", version="0", notes=NOTES[:4])
    real = store.db
    store.db = FullDisk(real)  # type: ignore[assignment]
    provider = ScriptedProvider(delay_s=0.01)
    runner = Runner(store, Dispatcher(store, use_cache=False), [], load_template())
    with pytest.raises(StoreWriteError, match="database or disk is full"):
        await runner.generate_and_score("r", NOTES[:4], [System("x", provider)])
    store.db = real
    assert store.summaries("r") == []  # each summary shares its transaction with its scores: none half-stored
    assert len(provider.calls) <= 4
