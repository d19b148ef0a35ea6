"""Engines: the same scores wherever they are computed; failures in workers are counted, never lost."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
from engine_fakes import DOOMED, Dying, Raising, Words

from clinsum.cli.common import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_OK
from clinsum.dispatch import Dispatcher
from clinsum.engines import Engine, create
from clinsum.engines.batch import Batch, Scores
from clinsum.engines.pool import PoolEngine
from clinsum.records import Note, Summary
from clinsum.runner import Progress, Runner
from clinsum.store import Store

REPO = Path(__file__).resolve().parents[1]
DIALOGUES = REPO / "fixtures" / "aci_dialogues.jsonl"


def fixture_runs(path: Path, systems: int = 3) -> tuple[Path, Path]:
    """The ACI-Bench fixture dialogues as notes, and per system a summary cut from each reference:
    written system after system, as production files come."""
    notes = [json.loads(line) for line in DIALOGUES.read_text("utf-8").splitlines()]
    summaries = []
    for system in range(systems):
        for note in notes:
            lines = [line for line in note["reference"].split("\n") if line.strip()]
            summaries.append({"note_id": note["id"], "system": f"s{system}",
                              "text": "\n".join(lines[system::systems])})
    (path / "notes.jsonl").write_text("".join(json.dumps(n) + "\n" for n in notes))
    (path / "summaries.jsonl").write_text("".join(json.dumps(s) + "\n" for s in summaries))
    return path / "notes.jsonl", path / "summaries.jsonl"


def clinsum(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "NO_COLOR": "1"}
    return subprocess.run([sys.executable, "-m", "clinsum", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)


def stored_scores(db: Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db) as conn:
        [(run_id,)] = conn.execute("SELECT id FROM runs").fetchall()
    store = Store.open(db)
    try:
        return sorted((s.note_id, s.system, s.metric, s.value, s.evaluator, s.version,
                       json.dumps(s.detail, sort_keys=True)) for s in store.scores(run_id))
    finally:
        store.close()


def test_workers_1_and_2_store_exactly_the_same_scores(tmp_path):
    notes, summaries = fixture_runs(tmp_path)  # 36 summaries: more than the pool leaves to one process
    results = {}
    for workers in ("1", "2"):
        done = clinsum("score", str(summaries), "--notes", str(notes), "--db", f"w{workers}.db", "--workers", workers,
                       "-e", "overlap", "-e", "length", "-e", "coverage", "-e", "facts", cwd=tmp_path)
        assert done.returncode == EXIT_OK, done.stderr
        results[workers] = stored_scores(tmp_path / f"w{workers}.db")
    assert len(results["1"]) > 36 * 10  # every metric of every summary
    assert {r[2] for r in results["1"]} >= {"rouge1", "concept_f1", "unsupported_fact_rate", "summary_words"}
    assert results["1"] == results["2"]


def records(systems: int = 2, notes: int = 6) -> tuple[list[Note], list[Summary]]:
    note_list = [Note(id=f"n{i:02d}", text=f"Patient {i} has hypertension and denies chest pain.",
                      reference="Hypertension; no chest pain.") for i in range(notes)]
    summaries = [Summary(note_id=n.id, system=f"s{s}", text=f"Hypertension {'word ' * (s + int(n.id[1:]))}")
                 for s in range(systems) for n in note_list]
    return note_list, summaries


class Recording(Engine):
    """The in-process engine, keeping every batch it runs."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.batches: list[Batch] = []

    async def _run(self, batch: Batch) -> list[Scores]:
        self.batches.append(batch)
        return await super()._run(batch)


async def test_a_batch_holds_every_summary_of_its_notes_and_each_note_once():
    notes, summaries = records(systems=3, notes=7)  # asked for system after system
    by_id = {n.id: n for n in notes}
    engine = Recording([Words()], batch_size=4)
    scores = await asyncio.gather(*(engine.evaluate(by_id[s.note_id], s, ["words"]) for s in summaries))
    assert [s["words"][0].value for s in scores] == [len(s.text.split()) for s in summaries]
    assert [s["words"][0].system for s in scores] == [s.system for s in summaries]
    batch_of = {}
    for number, batch in enumerate(engine.batches):
        assert sorted(batch.notes) == sorted({item.note_id for item in batch.items})
        for item in batch.items:
            batch_of.setdefault(item.note_id, set()).add(number)
    assert all(len(batches) == 1 for batches in batch_of.values())  # a note's summaries travel together
    assert sum(len(b.items) for b in engine.batches) == len(summaries)
    assert all(len(b.items) <= 4 + 2 for b in engine.batches)


async def score_with(engine: Engine, evaluators: list[Any], tmp_path: Path) -> tuple[Store, Progress]:
    notes, summaries = records()
    tmp_path.mkdir(exist_ok=True)
    store = Store.open(tmp_path / "s.db")
    store.create_run("r", {}, kind="score", version="0", notes=notes, summaries=summaries)
    progress = Progress()
    with engine:
        await Runner(store, Dispatcher(store), evaluators, engine=engine).score_summaries("r", notes, summaries,
                                                                                          progress)
    return store, progress


async def test_the_pool_computes_in_other_processes_what_one_process_computes(tmp_path):
    pool_store, _ = await score_with(PoolEngine([Words()], workers=2, batch_size=2, start_after=0), [Words()],
                                     tmp_path / "pool")
    local_store, _ = await score_with(Engine([Words()]), [Words()], tmp_path / "local")
    pool, local = pool_store.scores("r"), local_store.scores("r")
    assert {s.detail["pid"] for s in pool if s.metric == "words"} - {os.getpid()}, "scored in workers"
    assert {s.detail["pid"] for s in local if s.metric == "words"} == {os.getpid()}
    strip = [(s.note_id, s.system, s.metric, s.value, s.version) for s in pool]
    assert sorted(strip) == sorted((s.note_id, s.system, s.metric, s.value, s.version) for s in local)


async def test_an_evaluator_that_raises_in_a_worker_fails_that_summary_only(tmp_path):
    engine = PoolEngine([Raising()], workers=2, batch_size=2, start_after=0)
    store, progress = await score_with(engine, [Raising()], tmp_path)
    scores = store.scores("r")
    errors = [s for s in scores if s.metric == "raising_error"]
    assert {(s.note_id, s.detail["failed"]) for s in errors} == {(DOOMED, True)}
    assert "ValueError: cannot score n03" in errors[0].detail["error"]
    assert progress.failed_evaluations == 2  # both systems' summaries of the doomed note
    assert len([s for s in scores if s.metric == "chars"]) == 12 - 2
    assert store.evaluations("r")[(DOOMED, "s0", "raising")] is False


async def test_a_worker_that_dies_fails_its_batch_counted_and_the_run_goes_on(tmp_path):
    engine = PoolEngine([Dying()], workers=2, batch_size=2, start_after=0)
    store, progress = await score_with(engine, [Dying()], tmp_path)
    scores = store.scores("r")
    failed = {(s.note_id, s.system) for s in scores if s.metric == "dying_error"}
    scored = {(s.note_id, s.system) for s in scores if s.metric == "chars"}
    assert (DOOMED, "s0") in failed and (DOOMED, "s1") in failed
    assert failed | scored == {(f"n{i:02d}", f"s{j}") for i in range(6) for j in range(2)}  # none lost
    assert not failed & scored
    assert progress.failed_evaluations == len(failed)
    assert all("process pool" in s.detail["error"] for s in scores if s.metric == "dying_error")
    assert scored, "the batches after the crash ran on a new pool"


def test_sigterm_with_workers_stops_the_pool_exits_130_and_resume_completes(tmp_path):
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        from workers import synthetic, write_jsonl
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    notes, summaries = synthetic(100, 2)
    write_jsonl(tmp_path / "notes.jsonl", notes)
    write_jsonl(tmp_path / "summaries.jsonl", summaries)
    db = tmp_path / "c.db"
    env = {**os.environ, "PYTHONPATH": str(REPO), "NO_COLOR": "1"}
    child = subprocess.Popen([sys.executable, "-m", "clinsum", "score", "summaries.jsonl", "--notes", "notes.jsonl",
                              "--db", str(db), "--workers", "2", "-e", "coverage"], cwd=tmp_path, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    process = psutil.Process(child.pid)
    workers: set[psutil.Process] = set()

    def scored() -> int:
        try:
            with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
                return int(conn.execute("SELECT COUNT(DISTINCT note_id || system) FROM scores "
                                        "WHERE evaluator = 'coverage'").fetchone()[0])
        except sqlite3.Error:
            return 0

    deadline = time.monotonic() + 300
    while (scored() < 36 or len(workers) < 2) and child.poll() is None and time.monotonic() < deadline:
        workers.update(process.children(recursive=True))
        time.sleep(0.05)
    workers.update(process.children(recursive=True))
    assert child.poll() is None, child.communicate()
    assert len(workers) >= 2, "the pool's workers were running"
    child.send_signal(signal.SIGTERM)
    _, err = child.communicate(timeout=120)
    assert child.returncode == EXIT_INTERRUPTED, err
    assert "Traceback" not in err, err
    _, alive = psutil.wait_procs(list(workers), timeout=10)
    assert not alive, "no worker outlives the run"
    with sqlite3.connect(db) as conn:
        [(run_id, status)] = conn.execute("SELECT id, status FROM runs").fetchall()
    assert status == "interrupted"
    assert 36 <= scored() < 100
    resumed = clinsum("score", "--resume", run_id, "--db", str(db), "--workers", "2", cwd=tmp_path)
    assert resumed.returncode == EXIT_OK, resumed.stderr
    assert scored() == 100


@pytest.mark.parametrize(("flags", "message"), [(["--workers", "0"], "--workers"),
                                                (["--engine", "spark"], "engine")])
def test_bad_engine_flags_are_refused_before_anything_runs(tmp_path, flags, message):
    notes, summaries = fixture_runs(tmp_path, systems=1)
    done = clinsum("score", str(summaries), "--notes", str(notes), "--db", "c.db", *flags, cwd=tmp_path)
    assert done.returncode == EXIT_ERROR
    assert message in done.stderr
    assert not (tmp_path / "c.db").exists() or not stored_scores_or_none(tmp_path / "c.db")


def stored_scores_or_none(db: Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT * FROM scores").fetchall()


def test_create_picks_the_engine_by_kind_and_workers():
    assert type(create("local", [Words()], 1)) is Engine
    pool = create("local", [Words()], 3)
    assert isinstance(pool, PoolEngine) and pool.workers == 3
    assert create("local", [Words()]).workers >= 1  # one per core
