"""``clinsum compare-judge`` stopped by a signal: exit 130, the paid judge calls stop, the store stays whole.

Real processes: ``python -m clinsum compare-judge`` asks an Ollama-protocol fake judge on 127.0.0.1
(tests/ollama_fake.py) that answers slowly, and is sent SIGTERM or SIGINT once a few comparisons
are stored; the test then reads the SQLite store the child left behind. Where a signal lands in the
event loop is chance; one test makes it land inside a loop callback, where asyncio dropped it.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from judge_fakes import pairwise
from ollama_fake import OllamaFake
from provider_fakes import local_server
from pytest_httpserver import HTTPServer

from clinsum.cli.common import EXIT_INTERRUPTED
from clinsum.records import Note, Summary
from clinsum.store import Store

REPO = Path(__file__).resolve().parents[1]
NOTES = 40
NOTE_ID = re.compile(r"NOTE-(n\d+)")


class SlowJudge:
    """A pairwise judge that prefers summary A after ``delay_s``; counts the calls it answered."""

    def __init__(self, server: HTTPServer, delay_s: float) -> None:
        self.delay_s = delay_s
        self.answered = 0
        self.lock = threading.Lock()
        self.fake = OllamaFake(server, self.answer)

    def answer(self, payload: dict[str, Any]) -> str:
        time.sleep(self.delay_s)
        with self.lock:
            self.answered += 1
        return pairwise("A")


@pytest.fixture
def judge_server() -> Iterator[HTTPServer]:
    with local_server() as server:
        yield server


def stored_run(db: Path) -> str:
    store = Store.open(db)
    try:
        notes = [Note(id=f"n{i:02d}", text=f"NOTE-n{i:02d}. Patient denies chest pain. Left ankle sprain.")
                 for i in range(NOTES)]
        store.create_run("run-1", {}, kind="run", version="test", notes=notes)
        for note in notes:
            store.add_summary("run-1", Summary(note_id=note.id, system="sys:a", text="Left ankle sprain."))
            store.add_summary("run-1", Summary(note_id=note.id, system="sys:b", text="No chest pain."))
    finally:
        store.close()
    return "run-1"


def pairwise_scores(db: Path) -> list[tuple[str, str, float | None]]:
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)) as conn:
            return conn.execute("SELECT note_id, system, value FROM scores WHERE evaluator = 'pairwise'"
                                ).fetchall()
    except sqlite3.Error:
        return []


def start(db: Path, judge: SlowJudge, run_id: str, *, prelude: str = "") -> subprocess.Popen[str]:
    """``clinsum compare-judge`` in a child process, after ``prelude`` (Python run first, in the child)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OLLAMA", "ANTHROPIC", "GOOGLE"))}
    env.update(PYTHONPATH=str(REPO), NO_COLOR="1", COLUMNS="200")
    args = ["compare-judge", "--judge", "ollama:llama3.1:8b", "--judge-option", f"host={judge.fake.host}",
            "--run", run_id, "--db", str(db)]
    code = f"import sys\n{prelude}\nfrom clinsum.cli import main\nsys.argv[0] = 'clinsum'\nmain()\n"
    return subprocess.Popen([sys.executable, "-c", code, *args], cwd=db.parent, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def assert_stopped_whole(db: Path, judge: SlowJudge, returncode: int, stderr: str) -> None:
    assert returncode == EXIT_INTERRUPTED, stderr
    assert "Traceback" not in stderr and "Exception in callback" not in stderr, stderr
    assert "interrupted" in stderr and "run the command again" in stderr
    by_note: dict[str, set[str]] = {}
    for note, system, _ in pairwise_scores(db):
        by_note.setdefault(note, set()).add(system)
    assert all(systems == {"sys:a", "sys:b"} for systems in by_note.values()), by_note  # whole comparisons
    assert 2 <= len(by_note) < NOTES, "the signal must stop the comparisons mid-way"
    assert judge.answered < 2 * NOTES, "the judge calls went on after the signal"


RING_IN_A_CALLBACK = """
import asyncio, signal
from clinsum.evaluators.judge import pairwise
compare = pairwise.PairwiseJudge.compare
finished = []
async def compare_then_ring(self, *args, **kwargs):
    outcome = await compare(self, *args, **kwargs)
    finished.append(outcome)
    if len(finished) == 3:  # SIGTERM raised in a plain callback of the event loop, not in a task
        asyncio.get_running_loop().call_soon(signal.raise_signal, signal.SIGTERM)
    return outcome
pairwise.PairwiseJudge.compare = compare_then_ring
"""


def test_sigterm_landing_in_an_event_loop_callback_stops_compare_judge(tmp_path, judge_server):
    """asyncio's Handle._run logs any BaseException but KeyboardInterrupt and SystemExit raised in a
    callback and carries on: ``Interrupted`` raised there by the SIGTERM handler was dropped, and
    every remaining paid judge call was made (exit 0)."""
    db = tmp_path / "c.db"
    run_id = stored_run(db)
    judge = SlowJudge(judge_server, delay_s=0.1)
    child = start(db, judge, run_id, prelude=RING_IN_A_CALLBACK)
    try:
        _, stderr = child.communicate(timeout=120)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert_stopped_whole(db, judge, child.returncode, stderr)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_stops_compare_judge_with_exit_130_and_whole_comparisons(tmp_path, judge_server, signum):
    """SIGTERM raised ``Interrupted`` wherever the event loop was; inside one of its callbacks asyncio
    logs the exception and carries on, so the paid judge calls went on to the end (exit 0)."""
    db = tmp_path / "c.db"
    run_id = stored_run(db)
    judge = SlowJudge(judge_server, delay_s=0.3)
    child = start(db, judge, run_id)
    try:
        deadline = time.monotonic() + 60
        while len(pairwise_scores(db)) < 4:  # two comparisons stored: the signal lands mid-way
            assert child.poll() is None, child.communicate()
            assert time.monotonic() < deadline, "no comparison was stored"
            time.sleep(0.05)
        child.send_signal(signum)
        _, stderr = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert_stopped_whole(db, judge, child.returncode, stderr)
