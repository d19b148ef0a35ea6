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
    assert run["status"] == "running"  # killed: it never got to say otherwise

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
