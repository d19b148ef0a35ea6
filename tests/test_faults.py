"""Fault injection against real processes: each failure ends loud, stored state stays whole,
and ``--resume`` finishes the run without paying twice for a stored answer.

Every test runs ``python -m clinsum`` in a child process against a real HTTP fake of
Ollama on 127.0.0.1 (``ollama_fake.OllamaFake``, threaded, with a delay where the
fault must land mid-run), then reads the SQLite store the child left behind. The
faults are real: SIGTERM and SIGINT, a full disk and a read-only file system
(a small tmpfs, mounted by the test: needs root, as in CI), concurrent processes
creating one store, a judge answering invalid JSON, a dead host.
"""

from __future__ import annotations

import contextlib
import json
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
from judge_fakes import verdict
from ollama_fake import OllamaFake, closed_port
from provider_fakes import local_server
from pytest_httpserver import HTTPServer

from clinsum.cli.common import EXIT_ERROR, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_READER_GONE, EXIT_STORE
from clinsum.store import Store
from clinsum.store_codec import unpack_detail

MODEL = "ollama:llama3.1:8b"
NOTE_ID = re.compile(r"NOTE-(n\d+)")
REPO = Path(__file__).resolve().parents[1]


def write_notes(path: Path, count: int, *, words: int = 20) -> list[str]:
    ids = [f"n{i:02d}" for i in range(count)]
    filler = " ".join(["Blood pressure stable, denies chest pain."] * max(1, words // 6))
    path.write_text("".join(json.dumps({"id": i, "text": f"NOTE-{i}. Patient has hypertension. {filler}",
                                        "reference": "Hypertension, no chest pain."}) + "\n" for i in ids))
    return ids


class SlowOllama:
    """An Ollama fake that answers after ``delay_s`` and logs which note each summary call was for."""

    def __init__(self, server: HTTPServer, *, delay_s: float = 0.0, text: str = "Hypertension, no chest pain.",
                 judge: str | None = None) -> None:
        self.delay_s = delay_s
        self.text = text
        self.judge = judge
        self.asked: list[str] = []
        self.judge_asked: list[str] = []
        self.lock = threading.Lock()
        self.fake = OllamaFake(server, self.answer)

    @property
    def host(self) -> str:
        return self.fake.host

    def answer(self, payload: dict[str, Any]) -> str:
        prompt = " ".join(m["content"] for m in payload["messages"])
        found = NOTE_ID.search(prompt)
        note = found.group(1) if found else "?"
        if payload.get("format"):  # a judge call
            with self.lock:
                self.judge_asked.append(note)
            return self.judge or verdict(4)
        with self.lock:
            self.asked.append(note)
        time.sleep(self.delay_s)
        return self.text


@pytest.fixture
def ollama() -> Iterator[HTTPServer]:
    with local_server() as server:
        yield server


def clinsum_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OLLAMA", "ANTHROPIC", "GOOGLE"))}
    env.update(PYTHONPATH=str(REPO), NO_COLOR="1", COLUMNS="200", **extra)
    return env


def clinsum(*args: str, cwd: Path, timeout: float = 120, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "clinsum", *args], cwd=cwd, env=clinsum_env(**env),
                          capture_output=True, text=True, timeout=timeout)


def start(*args: str, cwd: Path, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "clinsum", *args], cwd=cwd, env=clinsum_env(**env),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def query(db: Path, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)) as conn:
            return conn.execute(sql, args).fetchall()
    except sqlite3.Error:
        return []


def stored_ok(db: Path) -> set[str]:
    return {n for (n,) in query(db, "SELECT note_id FROM summaries WHERE ok = 1")}


def wait_for(condition: Any, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("the condition never held")
        time.sleep(0.02)


def runs(db: Path) -> list[tuple[str, str]]:
    return query(db, "SELECT id, status FROM runs ORDER BY rowid")


def assert_whole(db: Path) -> None:
    """Every stored summary has its generation scores, and every score belongs to a stored summary."""
    summaries = set(query(db, "SELECT note_id, system FROM summaries"))
    scored = set(query(db, "SELECT note_id, system FROM scores WHERE evaluator = 'generation'"))
    assert summaries == scored
    assert query(db, "PRAGMA integrity_check") == [("ok",)]


def no_traceback(result: subprocess.CompletedProcess[str] | tuple[str, str]) -> None:
    stderr = result[1] if isinstance(result, tuple) else result.stderr
    assert "Traceback" not in stderr, stderr


# -- signals ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_mid_run_cancels_flushes_marks_interrupted_and_resume_completes(tmp_path, ollama, signum):
    ids = write_notes(tmp_path / "notes.jsonl", 12)
    slow = SlowOllama(ollama, delay_s=0.4)
    db = tmp_path / "c.db"
    child = start("run", "--notes", "notes.jsonl", "-p", MODEL, "-o", f"host={slow.host}", "-m", "length",
                  "--concurrency", "2", "--db", str(db), cwd=tmp_path)
    wait_for(lambda: len(stored_ok(db)) >= 3)
    child.send_signal(signum)
    out, err = child.communicate(timeout=60)
    assert child.returncode == EXIT_INTERRUPTED, err
    no_traceback((out, err))
    assert "interrupted" in err and "clinsum run --resume" in err

    [(run_id, status)] = runs(db)
    assert status == "interrupted"
    before = stored_ok(db)
    assert 3 <= len(before) < len(ids), "the signal must land mid-run"
    assert_whole(db)  # what finished was flushed with its scores; nothing half-written

    slow.asked.clear()
    resumed = clinsum("run", "--resume", run_id, "--db", str(db), cwd=tmp_path)
    assert resumed.returncode == EXIT_OK, resumed.stderr
    assert runs(db) == [(run_id, "finished")]
    assert stored_ok(db) == set(ids)
    assert not set(slow.asked) & before, "a stored summary was paid for twice"
    assert set(slow.asked) == set(ids) - before
    assert_whole(db)



def test_a_run_still_running_is_not_resumed_by_a_second_process(tmp_path, ollama):
    """`clinsum run --resume` of a run another live process is running would pay for its calls again and
    race its writes: refused with exit 2 before anything is marked; `show` says to wait, not to resume."""
    write_notes(tmp_path / "notes.jsonl", 8)
    slow = SlowOllama(ollama, delay_s=0.4)
    db = tmp_path / "c.db"
    child = start("run", "--notes", "notes.jsonl", "-p", MODEL, "-o", f"host={slow.host}", "-m", "length",
                  "--concurrency", "1", "--db", str(db), cwd=tmp_path)
    try:
        wait_for(lambda: len(stored_ok(db)) >= 1)
        [(run_id, status)] = runs(db)
        assert status == "running"
        second = clinsum("run", "--resume", run_id, "--db", str(db), cwd=tmp_path)
        assert second.returncode == EXIT_ERROR, second.stderr
        assert "is still running (process" in second.stderr
        assert "stopped before the end" not in second.stderr  # it never claimed the run: no resume hint
        shown = clinsum("show", run_id, "--db", str(db), cwd=tmp_path)
        assert "it is still running: wait for it to finish" in shown.stderr and "--resume" not in shown.stderr
        assert runs(db) == [(run_id, "running")]  # the refused resume marked nothing
    finally:
        _, err = child.communicate(timeout=120)
    assert child.returncode == EXIT_OK, err
    assert runs(db) == [(run_id, "finished")]
    assert sorted(slow.asked) == sorted(set(slow.asked)), "a note was paid for twice"

# -- a full disk and a read-only file system --------------------------------------------------------

@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    path.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root and CAP_SYS_ADMIN): {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(disk: Path) -> Path:
    """Write until the file system is full (ENOSPC); returns the filler to delete later."""
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as handle:
        for block in (65536, 512):
            with contextlib.suppress(OSError):
                while True:
                    handle.write(b"\0" * block)
    return filler


def remount(disk: Path, mode: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{mode}", str(disk)], check=True)


def test_a_full_disk_mid_run_stops_it_with_exit_3_and_resume_completes(tmp_path, ollama):
    """(A read-only remount cannot be made mid-run: the kernel refuses it while the store is open
    for writing; the read-only store is the next test.)"""
    ids = write_notes(tmp_path / "notes.jsonl", 12)
    # long answers: each summary and its cache entry need new pages, so a write soon hits the fault
    slow = SlowOllama(ollama, delay_s=0.3, text="Hypertension on treatment. " * 2000)
    with tmpfs(tmp_path / "disk", "16m") as disk:
        db = disk / "c.db"
        child = start("run", "--notes", "notes.jsonl", "-p", MODEL, "-o", f"host={slow.host}", "-m", "length",
                      "--concurrency", "2", "--db", str(db), cwd=tmp_path)
        wait_for(lambda: len(stored_ok(db)) >= 2)
        filler = fill(disk)
        out, err = child.communicate(timeout=60)
        assert child.returncode == EXIT_STORE, err
        no_traceback((out, err))
        assert f"{db}: cannot write to the store" in err and "--resume" in err
        assert "finished" not in err

        filler.unlink()
        [(run_id, written)] = runs(db)
        assert written in ("running", "interrupted")  # the full disk may have refused the status too...
        with contextlib.closing(Store.open(db, must_exist=True)) as store:
            assert store.run(run_id)["status"] == "interrupted"  # ...but its process is gone
        before = stored_ok(db)
        assert len(before) < len(ids)
        assert_whole(db)

        slow.asked.clear()
        resumed = clinsum("run", "--resume", run_id, "--db", str(db), cwd=tmp_path)
        assert resumed.returncode == EXIT_OK, resumed.stderr
        assert runs(db) == [(run_id, "finished")]
        assert stored_ok(db) == set(ids)
        assert not set(slow.asked) & before, "a stored summary was paid for twice"
        assert_whole(db)


def test_a_read_only_store_is_refused_before_any_call(tmp_path, ollama):
    write_notes(tmp_path / "notes.jsonl", 3)
    slow = SlowOllama(ollama)
    args = ["run", "--notes", "notes.jsonl", "-p", MODEL, "-o", f"host={slow.host}", "-m", "length"]
    with tmpfs(tmp_path / "disk", "4m") as disk:
        db = disk / "c.db"
        assert clinsum(*args, "--db", str(db), cwd=tmp_path).returncode == EXIT_OK
        remount(disk, "ro")
        slow.asked.clear()
        refused = clinsum(*args, "--db", str(db), cwd=tmp_path)
        assert refused.returncode == EXIT_ERROR, refused.stderr  # nothing was run
        no_traceback(refused)
        assert f"{db}: cannot open the store" in refused.stderr and "is read-only" in refused.stderr
        assert slow.asked == []  # refused before any provider call
        remount(disk, "rw")
        assert [status for _, status in runs(db)] == ["finished"]


# -- --out -------------------------------------------------------------------------------------------

def test_out_problems_are_found_before_any_call_and_a_late_failure_leaves_no_half_file(tmp_path, ollama):
    write_notes(tmp_path / "notes.jsonl", 6)
    slow = SlowOllama(ollama, text="Hypertension on treatment. " * 1000)
    args = ["run", "--notes", "notes.jsonl", "-p", MODEL, "-o", f"host={slow.host}", "-m", "length"]

    (tmp_path / "taken").write_text("not a folder")
    taken = clinsum(*args, "--db", "c.db", "--out", "taken", cwd=tmp_path)
    assert taken.returncode == EXIT_ERROR and "taken: exists and is not a folder" in taken.stderr
    no_traceback(taken)

    with tmpfs(tmp_path / "full", "1m") as full:
        fill(full)
        refused = clinsum(*args, "--db", "c.db", "--out", str(full / "out"), cwd=tmp_path)
        assert refused.returncode == EXIT_ERROR and "cannot write there" in refused.stderr
        no_traceback(refused)
    with tmpfs(tmp_path / "ro", "1m") as ro:
        remount(ro, "ro")
        refused = clinsum(*args, "--db", "c.db", "--out", str(ro), cwd=tmp_path)
        assert refused.returncode == EXIT_ERROR and "cannot write there" in refused.stderr
    assert slow.asked == [] and runs(tmp_path / "c.db") == []  # nothing was run

    with tmpfs(tmp_path / "small", "64k") as small:  # room for the probe, not for the outputs
        late = clinsum(*args, "--db", "c.db", "--out", str(small), cwd=tmp_path)
        assert late.returncode == EXIT_STORE and "cannot write the outputs" in late.stderr
        no_traceback(late)
        assert [p.name for p in small.iterdir()] == []  # no half file, no temporary left behind
    assert [status for _, status in runs(tmp_path / "c.db")] == ["finished"]  # the run itself is stored


def test_a_disk_that_fills_while_the_outputs_are_written_leaves_the_previous_set_whole(tmp_path, ollama):
    """The disk fills after the first output was written whole: one file at a time, the first would
    be new and the others previous. The previous three files must all stay as they were."""
    write_notes(tmp_path / "notes.jsonl", 6)
    slow = SlowOllama(ollama, text="Hypertension on treatment. " * 600)
    args = ["-p", MODEL, "-o", f"host={slow.host}", "-m", "length", "--db", "c.db"]
    measured = tmp_path / "measured"
    first = clinsum("run", "--notes", "notes.jsonl", *args, "--out", str(measured), cwd=tmp_path)
    assert first.returncode == EXIT_OK, first.stderr
    [(run_id, _)] = runs(tmp_path / "c.db")
    page = 4096
    pages = {p.name: -(-p.stat().st_size // page) for p in measured.iterdir()}

    with tmpfs(tmp_path / "disk", "2m") as disk:
        out = disk / "out"
        write_notes(tmp_path / "other.jsonl", 6, words=30)  # other notes: no cached answer of the first run
        slow.text = "Hypertension."
        previous = clinsum("run", "--notes", "other.jsonl", *args, "--out", str(out), cwd=tmp_path)
        assert previous.returncode == EXIT_OK, previous.stderr
        before = {p.name: p.read_bytes() for p in out.iterdir()}
        assert sorted(before) == ["leaderboard.csv", "scores.jsonl", "summaries.jsonl"]

        filler = fill(disk)
        assert pages["scores.jsonl"] >= 2, "the second file must not fit in the page the first one frees"
        room = pages["summaries.jsonl"]  # the first file fits, the second does not
        with open(filler, "r+b") as handle:
            handle.truncate(filler.stat().st_size - room * page)
        failed = clinsum("run", "--resume", run_id, *args[-2:], "--out", str(out), cwd=tmp_path)
        assert failed.returncode == EXIT_STORE, failed.stderr
        no_traceback(failed)
        assert "cannot write the outputs" in failed.stderr and "No space left" in failed.stderr
        after = {p.name: p.read_bytes() for p in out.iterdir()}  # hidden temporaries would show here
        assert after == before, "a previous output was replaced, or a temporary was left behind"

        filler.unlink()
        resumed = clinsum("run", "--resume", run_id, *args[-2:], "--out", str(out), cwd=tmp_path)
        assert resumed.returncode == EXIT_OK, resumed.stderr
        assert {p.name: p.read_bytes() for p in out.iterdir()} == {p.name: p.read_bytes() for p in measured.iterdir()}



def lead_run(tmp_path: Path, notes: int) -> str:
    """A finished run of ``notes`` notes by ``extractive:lead`` in ``tmp_path/c.db``; its id."""
    write_notes(tmp_path / "notes.jsonl", notes)
    made = clinsum("run", "--notes", "notes.jsonl", "-p", "extractive:lead", "-m", "length", "--db", "c.db",
                   cwd=tmp_path)
    assert made.returncode == EXIT_OK, made.stderr
    [(run_id, _)] = runs(tmp_path / "c.db")
    return str(run_id)


def test_export_to_a_full_disk_exits_3_with_a_clear_error(tmp_path):
    run_id = lead_run(tmp_path, notes=3)
    with tmpfs(tmp_path / "full", "64k") as full:
        fill(full)
        for format in ("jsonl", "csv"):
            failed = clinsum("export", run_id, "--db", "c.db", "--out", str(full / "out"), "-f", format,
                             cwd=tmp_path)
            assert failed.returncode == EXIT_STORE, failed.stderr
            no_traceback(failed)
            assert "cannot write the export" in failed.stderr and "No space left" in failed.stderr
            assert [p.name for p in (full / "out").iterdir()] == []  # no half file, no temporary


def test_a_report_to_a_full_disk_exits_3_and_leaves_the_earlier_report_whole(tmp_path):
    run_id = lead_run(tmp_path, notes=3)
    with tmpfs(tmp_path / "full", "256k") as full:
        (full / "report.md").write_text("the earlier report\n")
        fill(full)
        for option, name in (("--html", "report.html"), ("--md", "report.md")):
            failed = clinsum("report", run_id, "--db", "c.db", option, str(full / name), cwd=tmp_path)
            assert failed.returncode == EXIT_STORE, failed.stderr
            no_traceback(failed)
            assert f"{name}: cannot write the" in failed.stderr and "No space left" in failed.stderr
        assert (full / "report.md").read_text() == "the earlier report\n"
        assert sorted(p.name for p in full.iterdir() if p.name != "filler") == ["report.md"]  # no temporary


def entries(*folders: Path) -> dict[str, bytes]:
    """Every file of the folders, hidden ones included (a temporary or backup left behind shows here)."""
    return {str(p): p.read_bytes() for folder in folders for p in sorted(folder.iterdir())}


@pytest.mark.parametrize("full_one", ["--md", "--html"], ids=["md-folder-full", "html-folder-full"])
def test_html_and_md_in_two_folders_are_one_set_when_one_folder_is_full(tmp_path, full_one):
    """The first file fits in its folder, or the first write fails: either way neither file changes."""
    run_id = lead_run(tmp_path, notes=3)
    roomy = tmp_path / "roomy"
    roomy.mkdir()
    with tmpfs(tmp_path / "full", "256k") as full:
        paths = {option: (full if option == full_one else roomy) / name
                 for option, name in (("--html", "report.html"), ("--md", "summary.md"))}
        for path in paths.values():
            path.write_text(f"the earlier {path.name}\n")
        filler = fill(full)
        before = entries(roomy, full)
        args = ["report", run_id, "--db", "c.db", "--html", str(paths["--html"]), "--md", str(paths["--md"])]
        failed = clinsum(*args, cwd=tmp_path)
        assert failed.returncode == EXIT_STORE, failed.stderr
        no_traceback(failed)
        assert entries(roomy, full) == before, "a previous report was replaced, or a temporary was left behind"
        what = "HTML report" if full_one == "--html" else "Markdown summary"
        assert f"{paths[full_one].name}: cannot write the {what}" in failed.stderr
        assert "No space left" in failed.stderr and "the earlier files are unchanged" in failed.stderr

        filler.unlink()  # room again: the same command writes both, each what it alone would write
        written = clinsum(*args, cwd=tmp_path)
        assert written.returncode == EXIT_OK, written.stderr
        alone = {option: tmp_path / "alone" / path.name for option, path in paths.items()}
        for option, path in alone.items():
            single = clinsum("report", run_id, "--db", "c.db", option, str(path), cwd=tmp_path)
            assert single.returncode == EXIT_OK, single.stderr
        assert paths["--html"].read_bytes() == alone["--html"].read_bytes()
        assert paths["--md"].read_bytes() == alone["--md"].read_bytes()
        assert paths["--html"].read_text("utf-8").startswith("<!DOCTYPE html>")
        assert "## clinsum report" in paths["--md"].read_text("utf-8")
        assert sorted(p.name for p in (*roomy.iterdir(), *full.iterdir())) == sorted(p.name for p in paths.values())


def test_an_md_folder_that_is_read_only_leaves_the_html_of_another_folder_whole(tmp_path):
    run_id = lead_run(tmp_path, notes=3)
    roomy = tmp_path / "roomy"
    roomy.mkdir()
    (roomy / "report.html").write_text("the earlier report\n")
    with tmpfs(tmp_path / "ro", "1m") as ro:
        (ro / "summary.md").write_text("the earlier summary\n")
        remount(ro, "ro")
        before = entries(roomy, ro)
        failed = clinsum("report", run_id, "--db", "c.db", "--html", str(roomy / "report.html"),
                         "--md", str(ro / "summary.md"), cwd=tmp_path)
        assert failed.returncode == EXIT_STORE, failed.stderr
        no_traceback(failed)
        assert entries(roomy, ro) == before, "the HTML was replaced, or a temporary was left behind"
        assert "summary.md: cannot write the Markdown summary (Read-only file system)" in failed.stderr


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (a device that is always full)")
@pytest.mark.parametrize("command", [["runs", "-f", "json"], ["runs"], ["show", "RUN", "-f", "csv"],
                                     ["run", "--notes", "notes.jsonl", "-p", "extractive:lead", "-m", "length"]],
                         ids=["runs-json", "runs-table", "show-csv", "run"])
def test_results_that_cannot_reach_standard_output_exit_3_not_0(tmp_path, command):
    """``clinsum show RUN -f csv > leaderboard.csv`` on a full disk: exit 0 would say the file is there."""
    run_id = lead_run(tmp_path, notes=2)
    args = [run_id if arg == "RUN" else arg for arg in command]
    with open("/dev/full", "w") as full:
        child = subprocess.run([sys.executable, "-m", "clinsum", *args, "--db", "c.db"], cwd=tmp_path,
                               env=clinsum_env(), stdout=full, stderr=subprocess.PIPE, text=True, timeout=120)
    assert child.returncode == EXIT_STORE, child.stderr
    no_traceback(("", child.stderr))
    assert "standard output: cannot write the results (No space left on device)" in child.stderr


# -- concurrent processes ----------------------------------------------------------------------------

def test_processes_creating_the_same_new_store_at_once_all_succeed(tmp_path):
    write_notes(tmp_path / "notes.jsonl", 2)
    children = [start("run", "--notes", "notes.jsonl", "-p", "extractive:lead", "-m", "length",
                      "--db", "shared.db", cwd=tmp_path) for _ in range(8)]
    results = [(c.wait(timeout=120), c.stderr.read() if c.stderr else "") for c in children]
    for child in children:
        for stream in (child.stdout, child.stderr):
            if stream:
                stream.close()
    assert [code for code, _ in results] == [EXIT_OK] * 8, [err for code, err in results if code]
    statuses = runs(tmp_path / "shared.db")
    assert len(statuses) == 8 and {s for _, s in statuses} == {"finished"}


# -- the judge answers invalid JSON ------------------------------------------------------------------

def test_a_judge_that_answers_invalid_json_fails_the_evaluation_and_resume_asks_again(tmp_path, ollama):
    ids = write_notes(tmp_path / "notes.jsonl", 3)
    slow = SlowOllama(ollama, judge="I think the summary is fine.")
    config = tmp_path / "eval.toml"
    config.write_text(f'notes = "notes.jsonl"\nmetrics = ["length"]\n[[providers]]\nspec = "{MODEL}"\n'
                      f'options = {{ host = "{slow.host}" }}\n[judge]\njudges = ["{MODEL}"]\n'
                      f'provider_options = {{ "{MODEL}" = {{ host = "{slow.host}" }} }}\n')
    db = tmp_path / "c.db"
    first = clinsum("run", str(config), "-m", "length", "-m", "judge", "--db", str(db), cwd=tmp_path)
    assert first.returncode == EXIT_FAILED, first.stderr
    no_traceback(first)
    assert "0 failed summaries, 3 failed evaluations" in first.stderr
    [(run_id, status)] = runs(db)
    assert status == "finished"
    store = Store.open(db, must_exist=True)
    details = [s for s in store.scores(run_id) if s.metric == "judge_overall"]
    store.close()
    assert len(details) == 3 and all(d.value is None and d.detail["failed"] for d in details)
    attempts = details[0].detail["judges"][MODEL]["failures"][0]["attempts"]
    assert attempts and all(a["raw"] == "I think the summary is fine." for a in attempts)  # raw answers kept
    assert sorted(set(slow.judge_asked)) == ids
    # the rejected answers are not in the response cache: only the 3 summaries are
    assert query(db, "SELECT COUNT(*) FROM response_cache") == [(3,)]

    slow.judge = verdict(4)  # the judge is fixed
    slow.asked.clear()
    slow.judge_asked.clear()
    resumed = clinsum("run", "--resume", run_id, "--db", str(db), cwd=tmp_path)
    assert resumed.returncode == EXIT_OK, resumed.stderr
    assert "0 failed summaries, 0 failed evaluations" in resumed.stderr
    assert slow.asked == []  # stored summaries are not asked again
    assert sorted(slow.judge_asked) == ids  # each failed judgement asked again, once
    values = [v for (v,) in query(db, "SELECT value FROM scores WHERE metric = 'judge_overall'")]
    assert len(values) == 3 and all(v is not None for v in values)


# -- the cache and the endpoint ----------------------------------------------------------------------

def test_an_answer_cached_from_one_host_is_never_served_for_another(tmp_path, ollama):
    ids = write_notes(tmp_path / "notes.jsonl", 3)
    slow = SlowOllama(ollama)
    args = ["run", "--notes", "notes.jsonl", "-p", MODEL, "-m", "length", "--db", "c.db"]
    assert clinsum(*args, cwd=tmp_path, OLLAMA_HOST=slow.host).returncode == EXIT_OK
    dead = clinsum(*args, "--provider-option", "max_output_tokens=1024", cwd=tmp_path,
                   OLLAMA_HOST=f"http://127.0.0.1:{closed_port()}")
    assert dead.returncode == EXIT_FAILED, dead.stderr
    assert "3 failed summaries" in dead.stderr and "Ollama is not running" in dead.stderr
    again = clinsum(*args, cwd=tmp_path, OLLAMA_HOST=slow.host)  # the same host again: from the cache
    assert again.returncode == EXIT_OK and sorted(slow.asked) == ids


# -- empty summaries ---------------------------------------------------------------------------------

def test_an_empty_summary_is_scored_flagged_and_not_judged(tmp_path, ollama):
    write_notes(tmp_path / "notes.jsonl", 2)
    slow = SlowOllama(ollama, text="   ")
    result = clinsum("run", "--notes", "notes.jsonl", "-p", MODEL, "-o", f"host={slow.host}", "-m", "overlap",
                     "--judge", MODEL, "--db", "c.db", cwd=tmp_path, OLLAMA_HOST=slow.host)
    assert result.returncode == EXIT_OK, result.stderr
    assert "0 failed summaries, 0 failed evaluations, 2 empty summaries" in result.stderr
    db = tmp_path / "c.db"
    metrics = {(m, v) for m, v in query(db, "SELECT metric, value FROM scores")}
    assert {("empty_summary", 1.0), ("failed", 0.0), ("rouge1", 0.0)} <= metrics
    assert not any(m.startswith("judge") for m, _ in metrics) and slow.judge_asked == []
    [(detail,)] = query(db, "SELECT detail FROM scores WHERE metric = 'empty_summary' AND note_id = 'n00'")
    assert unpack_detail(detail) == {"not_evaluated": ["judge"], "reason": "empty summary"}


def test_a_reader_that_closes_standard_output_stops_the_printing_quietly_with_141(tmp_path):
    """``clinsum runs | head -1``: the reader has what it wanted; no traceback, no error, not 0 or 3."""
    write_notes(tmp_path / "notes.jsonl", 2)
    for _ in range(3):
        made = clinsum("run", "--notes", "notes.jsonl", "-p", "extractive:lead", "-m", "length", "--db", "c.db",
                       cwd=tmp_path)
        assert made.returncode == EXIT_OK, made.stderr
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the first line
    try:
        child = subprocess.run([sys.executable, "-m", "clinsum", "runs", "-f", "json", "--db", "c.db"], cwd=tmp_path,
                               env=clinsum_env(), stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(write_end)
    assert child.returncode == EXIT_READER_GONE, child.stderr
    assert child.stderr.strip() == ""
