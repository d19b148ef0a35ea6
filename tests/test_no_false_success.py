"""Paths that used to end with exit 0 although what was asked could not be done.

A failure reported as success is clinsum's worst bug. Each test runs ``python -m clinsum``
in a child process on a case where the work asked for did not happen (nothing to score,
every row skipped, a gate with nothing to check) and asserts a non-zero exit with a line
saying why, and nothing stored as if it had worked.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from clinsum.cli.common import EXIT_ERROR, EXIT_FAILED

REPO = Path(__file__).resolve().parents[1]


def clinsum(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OLLAMA", "ANTHROPIC", "GOOGLE"))}
    env.update(PYTHONPATH=str(REPO), NO_COLOR="1", COLUMNS="200")
    return subprocess.run([sys.executable, "-m", "clinsum", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def query(db: Path, sql: str) -> list[tuple[Any, ...]]:
    if not db.exists():
        return []
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        return conn.execute(sql).fetchall()


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path



def export_stopped_by_sigterm(run_id: str, db: Path, uri: str, reached: Any, env: dict[str, str],
                              cwd: Path) -> tuple[int, str]:
    """``clinsum export RUN --mlflow URI`` in a child process, sent SIGTERM once ``reached`` (an event the
    fake server sets) is set; its exit code and standard error."""
    import signal

    child = subprocess.Popen([sys.executable, "-m", "clinsum", "export", run_id, "--db", str(db), "--mlflow", uri],
                             cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        while not reached.wait(0.2):
            assert child.poll() is None, f"the export ended before the server was reached: {child.communicate()}"
        child.send_signal(signal.SIGTERM)
        _, stderr = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    return child.returncode, stderr

def notes_file(tmp_path: Path) -> Path:
    return write_jsonl(tmp_path / "notes.jsonl", [
        {"id": f"n{i}", "text": f"Patient {i} has hypertension. Denies chest pain.",
         "reference": "Hypertension; no chest pain."} for i in range(4)])


def test_score_with_every_summary_skipped_scores_nothing_and_says_so(tmp_path):
    notes = notes_file(tmp_path)
    summaries = write_jsonl(tmp_path / "summaries.jsonl", [{"note": "n0", "system": "s", "text": "x"}])
    result = clinsum("score", str(summaries), "--notes", str(notes), "-e", "length", "--skip-invalid",
                     "--workers", "1", "--db", "s.db", "--fail-under", "rouge1=0.9", cwd=tmp_path)
    assert result.returncode == EXIT_ERROR, result.stderr
    assert "no summaries to score" in result.stderr
    assert query(tmp_path / "s.db", "SELECT id FROM runs") == []  # no run that reads as finished


def test_score_whose_sample_holds_no_summary_is_an_error_not_an_empty_success(tmp_path):
    notes = notes_file(tmp_path)
    summaries = write_jsonl(tmp_path / "summaries.jsonl", [
        {"note_id": "n0", "system": "s", "text": "Hypertension."}])
    result = clinsum("score", str(summaries), "--notes", str(notes), "-e", "length", "--limit", "1",
                     "--workers", "1", "--db", "s.db", cwd=tmp_path)
    assert result.returncode == 0, result.stderr  # the control: n0 is summarized
    # the last two notes have no summary: a --limit or --sample on them scores nothing
    summaries = write_jsonl(tmp_path / "summaries.jsonl", [
        {"note_id": "n0", "system": "s", "text": "Hypertension."}])
    notes.write_text("".join(reversed(notes.read_text().splitlines(keepends=True))))
    result = clinsum("score", str(summaries), "--notes", str(notes), "-e", "length", "--limit", "2",
                     "--workers", "1", "--db", "s.db", "--fail-under", "rouge1=0.9", cwd=tmp_path)
    assert result.returncode == EXIT_ERROR, result.stderr
    assert "no summaries to score" in result.stderr
    assert len(query(tmp_path / "s.db", "SELECT id FROM runs")) == 1  # only the control's run


def test_a_gate_on_a_run_with_no_system_fails_instead_of_passing(tmp_path):
    """A run stored with no summary at all (as ``score`` stored one before it refused them) clears
    no gate: a gate that cannot be checked fails, with or without a system to name."""
    from clinsum import __version__
    from clinsum.config import RunConfig
    from clinsum.records import Note
    from clinsum.store import Store

    db = tmp_path / "s.db"
    store = Store.open(db)
    try:
        config = RunConfig(notes=str(notes_file(tmp_path)), metrics=["overlap"])
        store.create_run("empty-run", config.model_dump(mode="json"), kind="score", version=__version__,
                         notes=[Note(id="n0", text="Patient has hypertension.")])
        store.set_status("empty-run", "finished")
    finally:
        store.close()
    result = clinsum("score", "--resume", "empty-run", "--fail-under", "rouge1=0.9", "--workers", "1",
                     "--db", str(db), cwd=tmp_path)
    assert result.returncode == EXIT_FAILED, result.stderr
    assert "gate failed" in result.stderr and "rouge1 >= 0.9" in result.stderr


def test_feedback_import_with_every_row_skipped_imports_nothing_and_fails(tmp_path):
    """--skip-invalid skips bad rows among good ones; a file of which no row could be tied (the
    wrong --db, say) imported nothing, which is no success."""
    notes = notes_file(tmp_path)
    summaries = write_jsonl(tmp_path / "summaries.jsonl", [
        {"note_id": "n0", "system": "s", "text": "Hypertension."}])
    scored = clinsum("score", str(summaries), "--notes", str(notes), "-e", "length", "--workers", "1",
                     "--db", "s.db", cwd=tmp_path)
    assert scored.returncode == 0, scored.stderr
    ratings = write_jsonl(tmp_path / "ratings.jsonl", [
        {"note_id": "n0", "system": "s", "rater": "dr-a", "dimension": "accurate", "value": 4}])
    imported = clinsum("feedback", "import", str(ratings), "--db", "s.db", "--skip-invalid", cwd=tmp_path)
    assert imported.returncode == 0 and "imported 1 rating" in imported.stderr, imported.stderr  # the control
    other = clinsum("score", str(summaries), "--notes", str(notes), "-e", "length", "--workers", "1",
                    "--db", "other.db", cwd=tmp_path)
    assert other.returncode == 0, other.stderr
    ghost = write_jsonl(tmp_path / "ghost.jsonl", [
        {"note_id": "n9", "system": "s", "rater": "dr-a", "dimension": "accurate", "value": 4},
        {"note_id": "n0", "system": "nobody", "rater": "dr-a", "dimension": "accurate", "value": 2}])
    refused = clinsum("feedback", "import", str(ghost), "--db", "other.db", "--skip-invalid", cwd=tmp_path)
    assert refused.returncode == EXIT_ERROR, refused.stderr
    assert "2 invalid ratings skipped" in refused.stderr and "no rating to import" in refused.stderr
    assert query(tmp_path / "other.db", "SELECT COUNT(*) FROM ratings") == [(0,)]


def test_a_trend_on_a_metric_with_no_control_limits_is_an_error_not_no_alert(tmp_path):
    """A metric first scored after the reference windows has no control limits, so no window can
    alert on it: asked for by name, 'no trend alerts' with exit 0 would be a check never made."""
    notes = notes_file(tmp_path)
    for d in range(1, 5):
        summaries = write_jsonl(tmp_path / f"day{d}.jsonl", [
            {"note_id": f"n{i}", "system": "prod", "text": "Hypertension." if d < 3 else "Unrelated words.",
             "created_at": f"2025-03-0{d}T0{i}:00:00Z"} for i in range(4)])
        evaluators = ["-e", "length"] + (["-e", "overlap"] if d >= 3 else [])  # ROUGE added on day 3
        scored = clinsum("score", str(summaries), "--notes", str(notes), *evaluators, "--workers", "1",
                         "--db", "t.db", cwd=tmp_path)
        assert scored.returncode == 0, scored.stderr
    control = clinsum("monitor", "--trend", "--reference-windows", "2", "-m", "summary_words", "--db", "t.db",
                      cwd=tmp_path)
    assert control.returncode == 0, control.stderr
    result = clinsum("monitor", "--trend", "--reference-windows", "2", "-m", "rouge1", "--db", "t.db",
                     cwd=tmp_path)
    assert result.returncode == EXIT_ERROR, result.stdout + result.stderr
    assert "rouge1" in result.stderr and "no control limits" in result.stderr
    every = clinsum("monitor", "--trend", "--reference-windows", "2", "--db", "t.db", cwd=tmp_path)
    assert every.returncode == 0, every.stderr  # the default set: charted, and said not to be monitored
    assert "not monitored" in every.stderr and "rouge1" in every.stderr


def test_monitor_with_a_named_metric_that_could_not_be_tested_is_an_error(tmp_path):
    """--metrics names the metrics to test; one of them with too few values was listed as 'not
    tested' while the others passed, and the command ended 'no degradation', exit 0."""
    notes = write_jsonl(tmp_path / "notes.jsonl", [
        {"id": f"n{i}", "text": f"Patient {i} has hypertension. Denies chest pain.",
         **({"reference": "Hypertension; no chest pain."} if i < 2 else {})} for i in range(8)])  # 2 with ROUGE
    for name in ("base", "now"):
        summaries = write_jsonl(tmp_path / f"{name}.jsonl", [
            {"note_id": f"n{i}", "system": "prod", "text": "Hypertension, no chest pain."} for i in range(8)])
        scored = clinsum("score", str(summaries), "--notes", str(notes), "-e", "length", "-e", "overlap",
                         "--workers", "1", "--db", "m.db", "--name", name, cwd=tmp_path)
        assert scored.returncode == 0, scored.stderr
    window = ["monitor", "--baseline", "base", "--current", "now", "--min-summaries", "5", "--db", "m.db"]
    control = clinsum(*window, "--metrics", "empty_summary", cwd=tmp_path)
    assert control.returncode == 0, control.stderr
    result = clinsum(*window, "--metrics", "empty_summary,rouge1", cwd=tmp_path)
    assert result.returncode == EXIT_ERROR, result.stdout + result.stderr
    assert "rouge1" in result.stderr and "2 baseline and 2 current values" in result.stderr
    every = clinsum(*window, cwd=tmp_path)  # the default set: rouge1 is listed as not tested, as documented
    assert every.returncode == 0 and "not tested" in every.stderr and "rouge1" in every.stderr, every.stderr


def test_compare_with_a_named_metric_that_no_two_systems_share_is_an_error(tmp_path):
    """compare -m METRIC: a metric with values for one system only (the other's judging failed, its
    notes had no reference) gave no row, silently, beside the rows of the other metrics."""
    notes = write_jsonl(tmp_path / "notes.jsonl", [
        {"id": f"n{i}", "text": f"Patient {i} has hypertension. Denies chest pain.",
         **({"reference": "Hypertension; no chest pain."} if i < 2 else {})} for i in range(6)])
    summaries = write_jsonl(tmp_path / "summaries.jsonl", [
        *({"note_id": f"n{i}", "system": "a", "text": "Hypertension."} for i in range(6)),
        *({"note_id": f"n{i}", "system": "b", "text": "Hypertension, no chest pain."} for i in range(2, 6))])
    scored = clinsum("score", str(summaries), "--notes", str(notes), "-e", "length", "-e", "overlap",
                     "--workers", "1", "--db", "c.db", "--name", "both", cwd=tmp_path)
    assert scored.returncode == 0, scored.stderr
    (run_id,) = query(tmp_path / "c.db", "SELECT id FROM runs")[0]
    control = clinsum("compare", run_id, "-m", "summary_words", "--format", "json", "--db", "c.db", cwd=tmp_path)
    assert control.returncode == 0, control.stderr
    result = clinsum("compare", run_id, "-m", "summary_words", "-m", "rouge1", "--db", "c.db", cwd=tmp_path)
    assert result.returncode == EXIT_ERROR, result.stdout + result.stderr
    assert "rouge1" in result.stderr and "no note scored for two systems" in result.stderr


def test_agreement_with_a_named_metric_no_rated_summary_has_is_an_error(tmp_path):
    """agreement -m METRIC: a metric that no rated summary has gave no row, silently, beside the
    rows of the other metrics."""
    notes = write_jsonl(tmp_path / "notes.jsonl", [
        {"id": f"n{i}", "text": f"Patient {i} has hypertension. Denies chest pain.",
         **({"reference": "Hypertension; no chest pain."} if i < 2 else {})} for i in range(6)])  # ROUGE: n0, n1
    summaries = write_jsonl(tmp_path / "summaries.jsonl", [
        {"note_id": f"n{i}", "system": "s", "text": "Hypertension" + ", no chest pain." * (i % 3)} for i in range(6)])
    scored = clinsum("score", str(summaries), "--notes", str(notes), "-e", "length", "-e", "overlap",
                     "--workers", "1", "--db", "a.db", cwd=tmp_path)
    assert scored.returncode == 0, scored.stderr
    ratings = write_jsonl(tmp_path / "ratings.jsonl", [
        {"note_id": f"n{i}", "system": "s", "rater": "dr-a", "dimension": "accurate", "value": 1 + i % 5}
        for i in range(2, 6)])  # only notes without ROUGE are rated
    imported = clinsum("feedback", "import", str(ratings), "--db", "a.db", cwd=tmp_path)
    assert imported.returncode == 0, imported.stderr
    control = clinsum("agreement", "-m", "summary_words", "--format", "json", "--db", "a.db", cwd=tmp_path)
    assert control.returncode == 0, control.stderr
    result = clinsum("agreement", "-m", "summary_words", "-m", "rouge1", "--db", "a.db", cwd=tmp_path)
    assert result.returncode == EXIT_ERROR, result.stdout + result.stderr
    assert "rouge1" in result.stderr and "no rated summary" in result.stderr


def test_a_sort_metric_the_run_did_not_produce_still_ends_the_run_properly(tmp_path):
    """--sort-by rouge1 on notes without references: the metric is known, so the run starts and is
    paid for, but has no ROUGE value. It used to stop at the leaderboard with exit 2 ("nothing
    was run"), its --out files never written and its gates never checked."""
    notes = write_jsonl(tmp_path / "notes.jsonl", [
        {"id": f"n{i}", "text": f"Patient {i} has hypertension. Denies chest pain."} for i in range(3)])
    result = clinsum("run", "--notes", str(notes), "-p", "extractive:lead", "-e", "length", "-e", "overlap",
                     "--sort-by", "rouge1", "--fail-under", "empty_summary=0.5", "--out", "out", "--workers", "1",
                     "--db", "r.db", cwd=tmp_path)
    assert result.returncode == EXIT_FAILED, result.stderr
    assert "--sort-by rouge1" in result.stderr and "no value" in result.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["leaderboard.csv", "scores.jsonl",
                                                                   "summaries.jsonl"]
    assert query(tmp_path / "r.db", "SELECT status FROM runs") == [("finished",)]
    gated = clinsum("run", "--notes", str(notes), "-p", "extractive:lead", "-e", "length", "--sort-by", "rouge1",
                    "--fail-under", "rouge1=0.1", "--workers", "1", "--db", "r.db", cwd=tmp_path)
    assert gated.returncode == EXIT_FAILED and "gate failed" in gated.stderr, gated.stderr  # gates still checked


def test_sigterm_during_an_mlflow_export_exits_130_not_as_an_export_failure(tmp_path):
    """SIGTERM outside the event loop raises ``Interrupted`` where the command is; MLflow's
    ``except Exception`` (and clinsum's around it) turned it into 'MLflow export failed', exit 3,
    instead of the interruption it is (exit 130)."""
    import socket
    import threading

    from report_fixture import fixture_store

    from clinsum.cli.common import EXIT_INTERRUPTED

    db, (run_id, _) = fixture_store()
    asked = threading.Event()
    held: list[socket.socket] = []
    with socket.socket() as server:  # an MLflow server that takes the request and never answers
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]

        def accept() -> None:
            connection, _ = server.accept()
            held.append(connection)
            connection.recv(65536)
            asked.set()

        threading.Thread(target=accept, daemon=True).start()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OLLAMA", "ANTHROPIC", "GOOGLE"))}
        env.update(PYTHONPATH=str(REPO), NO_COLOR="1", MLFLOW_HTTP_REQUEST_MAX_RETRIES="0",
                   MLFLOW_HTTP_REQUEST_TIMEOUT="120")
        try:
            returncode, stderr = export_stopped_by_sigterm(run_id, db, f"http://127.0.0.1:{port}", asked, env,
                                                           tmp_path)
        finally:
            for connection in held:
                connection.close()
    assert returncode == EXIT_INTERRUPTED, stderr
    assert "interrupted by SIGTERM" in stderr and "Traceback" not in stderr
    assert "--resume" not in stderr and "run the command again" in stderr  # an export is not a run to resume


class HangingTracking:
    """An MLflow tracking server (REST API 2.0) that finds the experiment, searches no runs, creates
    runs, then never answers its first write (``runs/log-batch``); what follows (``runs/update`` of
    ``set_terminated``) hangs too, or, with ``refuse_update``, is answered 500. Every request is
    kept as (path, JSON body)."""

    def __init__(self, *, refuse_update: bool) -> None:
        import http.server
        import threading

        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.hanging = threading.Event()  # set once a request is held unanswered
        self.release = threading.Event()  # set at the end: held requests are answered and closed
        tracking = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *_: Any) -> None:
                pass

            def do_GET(self) -> None:
                self.do_POST()

            def do_POST(self) -> None:
                size = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(size) or b"{}")
                path = self.path.split("?")[0].removeprefix("/api/2.0/mlflow/")
                tracking.requests.append((path, body))
                if path == "experiments/get-by-name":
                    self.reply(200, {"experiment": {"experiment_id": "1", "name": "clinsum",
                                                    "lifecycle_stage": "active"}})
                elif path == "runs/search":
                    self.reply(200, {})
                elif path == "runs/create":
                    number = sum(1 for p, _ in tracking.requests if p == "runs/create")
                    self.reply(200, {"run": {"info": {"run_id": f"run{number}", "experiment_id": "1",
                                                      "status": "RUNNING", "lifecycle_stage": "active"},
                                             "data": {}}})
                elif tracking.hanging.is_set() and tracking.refuse_update:
                    self.reply(500, {"error_code": "INTERNAL_ERROR", "message": "the store is down"})
                else:  # the server hangs: the request is taken and never answered
                    tracking.hanging.set()
                    tracking.release.wait()
                    self.reply(503, {"error_code": "TEMPORARILY_UNAVAILABLE", "message": "stopped"})

            def reply(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                with contextlib.suppress(OSError):  # the client gave up on a held request: nothing to say
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)

        self.refuse_update = refuse_update
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize("refuse_update", [False, True], ids=["status-update-hangs", "status-update-refused"])
def test_sigterm_after_the_mlflow_run_was_created_exits_130_promptly(tmp_path, refuse_update):
    """After SIGTERM the export marks its MLflow run FAILED; that call went to the same hung server and
    blocked for MLFLOW_HTTP_REQUEST_TIMEOUT x retries (here 120 s: the process outlived the test's
    60 s), or, refused, raised an MLflow error in place of the interruption: 'export failed', exit 3."""

    from report_fixture import fixture_store

    from clinsum.cli.common import EXIT_INTERRUPTED

    db, (run_id, _) = fixture_store()
    tracking = HangingTracking(refuse_update=refuse_update)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OLLAMA", "ANTHROPIC", "GOOGLE", "MLFLOW"))}
    env.update(PYTHONPATH=str(REPO), NO_COLOR="1", MLFLOW_HTTP_REQUEST_MAX_RETRIES="0",
               MLFLOW_HTTP_REQUEST_TIMEOUT="120")
    try:
        returncode, stderr = export_stopped_by_sigterm(run_id, db, tracking.url, tracking.hanging, env, tmp_path)
    finally:
        tracking.close()
    paths = [path for path, _ in tracking.requests]
    assert "runs/create" in paths and paths.index("runs/create") < paths.index("runs/log-batch")
    assert returncode == EXIT_INTERRUPTED, stderr
    assert "interrupted by SIGTERM" in stderr and "Traceback" not in stderr
    assert ("runs/update", {"run_id": "run1", "run_uuid": "run1", "status": "FAILED"}) in [
        (p, {k: v for k, v in body.items() if k in ("run_id", "run_uuid", "status")})
        for p, body in tracking.requests], "the export did not try to mark its MLflow run FAILED"


def test_resume_refuses_a_zero_max_cost_as_it_refuses_any_other(tmp_path):
    """--resume refuses the flags that would change the run; `--max-cost 0` (spend nothing) was taken
    for 'not given' (0 == False) and silently ignored, the resumed run free to call paid providers."""
    notes = notes_file(tmp_path)
    first = clinsum("run", "--notes", str(notes), "-p", "extractive:lead", "-e", "length", "--workers", "1",
                    "--db", "r.db", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    (run_id,) = query(tmp_path / "r.db", "SELECT id FROM runs")[0]
    for flag, value in (("--max-cost", "5"), ("--max-cost", "0"), ("--limit", "0"), ("--sample", "0"),
                        ("--no-store-notes", None)):
        resumed = clinsum("run", "--resume", run_id, flag, *([value] if value else []), "--db", "r.db",
                          cwd=tmp_path)
        assert resumed.returncode == EXIT_ERROR, (flag, value, resumed.stderr)
        assert f"{flag.replace('--no-', '--')} would change it" in resumed.stderr


def test_the_markdown_summary_says_a_run_is_incomplete_and_counts_its_failed_evaluations(tmp_path):
    """The Markdown summary goes into a pull request: a leaderboard of a run SIGTERM stopped, or whose
    judge failed on half the summaries, read as a complete one (only failed summaries were listed)."""
    from clinsum.records import Score
    from clinsum.store import Store

    notes = notes_file(tmp_path)
    summaries = write_jsonl(tmp_path / "summaries.jsonl", [
        {"note_id": f"n{i}", "system": "s", "text": "Hypertension."} for i in range(4)])
    scored = clinsum("score", str(summaries), "--notes", str(notes), "-e", "length", "--workers", "1",
                     "--db", "r.db", cwd=tmp_path)
    assert scored.returncode == 0, scored.stderr
    (run_id,) = query(tmp_path / "r.db", "SELECT id FROM runs")[0]
    complete = clinsum("report", run_id, "--md", "complete.md", "--db", "r.db", cwd=tmp_path)
    assert complete.returncode == 0, complete.stderr
    text = (tmp_path / "complete.md").read_text()
    assert "0 failed evaluations" in text and "incomplete" not in text
    store = Store.open(tmp_path / "r.db")
    try:
        store.add_scores(run_id, [Score(note_id="n1", system="s", metric="judge_overall", value=None,
                                        evaluator="judge", version="1",
                                        detail={"failed": True, "error": "invalid answer after 3 attempt(s)"})])
        store.set_status(run_id, "interrupted")
    finally:
        store.close()
    result = clinsum("report", run_id, "--md", "partial.md", "--db", "r.db", cwd=tmp_path)
    assert result.returncode == 0, result.stderr  # a report of what is stored, which it now says
    text = (tmp_path / "partial.md").read_text()
    assert "1 failed evaluation" in text
    assert f"run {run_id} is interrupted: incomplete" in text and f"--resume {run_id}" in text
    assert "incomplete" in result.stderr


def test_show_warns_that_an_interrupted_run_is_incomplete(tmp_path):
    from clinsum.store import Store

    notes = notes_file(tmp_path)
    first = clinsum("run", "--notes", str(notes), "-p", "extractive:lead", "-e", "length", "--workers", "1",
                    "--db", "r.db", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    (run_id,) = query(tmp_path / "r.db", "SELECT id FROM runs")[0]
    finished = clinsum("show", run_id, "-f", "csv", "--db", "r.db", cwd=tmp_path)
    assert finished.returncode == 0 and "incomplete" not in finished.stderr, finished.stderr
    store = Store.open(tmp_path / "r.db")
    try:
        store.set_status(run_id, "interrupted")
    finally:
        store.close()
    shown = clinsum("show", run_id, "-f", "csv", "--db", "r.db", cwd=tmp_path)
    assert shown.returncode == 0 and shown.stdout == finished.stdout  # the table is the stored one...
    assert f"run {run_id} is interrupted: incomplete" in shown.stderr  # ...and it is said to be partial


def test_monitor_says_when_a_metric_is_in_one_window_only(tmp_path):
    """An evaluator dropped from the daily scoring (ROUGE in the baseline, none now): the metric was
    left out of the comparison without a word, and 'no degradation' covered a check never made."""
    notes = write_jsonl(tmp_path / "notes.jsonl", [
        {"id": f"n{i}", "text": f"Patient {i} has hypertension. Denies chest pain.",
         "reference": "Hypertension; no chest pain."} for i in range(6)])
    for name, evaluators in (("base", ["-e", "length", "-e", "overlap"]), ("now", ["-e", "length"])):
        summaries = write_jsonl(tmp_path / f"{name}.jsonl", [
            {"note_id": f"n{i}", "system": "prod", "text": "Hypertension, no chest pain."} for i in range(6)])
        scored = clinsum("score", str(summaries), "--notes", str(notes), *evaluators, "--workers", "1",
                         "--db", "m.db", "--name", name, cwd=tmp_path)
        assert scored.returncode == 0, scored.stderr
    window = ["monitor", "--baseline", "base", "--current", "now", "--min-summaries", "5", "--db", "m.db"]
    result = clinsum(*window, cwd=tmp_path)
    assert result.returncode == 0, result.stderr  # the default set: listed as not tested, as documented
    assert "not tested: rouge1 in all: only the baseline window has values" in result.stderr
    report = json.loads(clinsum(*window, "--format", "json", cwd=tmp_path).stdout)
    assert {"metric": "rouge1", "segment": "all", "reason": "only the baseline window has values"} in report["skipped"]


def test_a_trend_says_when_a_metric_stopped_having_values(tmp_path):
    """ROUGE scored in the reference days and then dropped: its EWMA stays where it was, so it
    can never alert again; the trend said 'no trend alerts' without a word about it."""
    notes = notes_file(tmp_path)
    for d in range(1, 5):
        summaries = write_jsonl(tmp_path / f"day{d}.jsonl", [
            {"note_id": f"n{i}", "system": "prod", "text": "Hypertension, no chest pain.",
             "created_at": f"2025-03-0{d}T0{i}:00:00Z"} for i in range(4)])
        evaluators = ["-e", "length"] + (["-e", "overlap"] if d <= 2 else [])  # ROUGE dropped on day 3
        scored = clinsum("score", str(summaries), "--notes", str(notes), *evaluators, "--workers", "1",
                         "--db", "t.db", cwd=tmp_path)
        assert scored.returncode == 0, scored.stderr
    result = clinsum("monitor", "--trend", "--reference-windows", "2", "--db", "t.db", cwd=tmp_path)
    assert result.returncode == 0, result.stderr  # a window with no value is not an alert...
    assert "not monitored: rouge1: no value since 2025-03-03" in result.stderr  # ...and it is said
    report = json.loads(clinsum("monitor", "--trend", "--reference-windows", "2", "--format", "json",
                                "--db", "t.db", cwd=tmp_path).stdout)
    assert any(item["metric"] == "rouge1" for item in report["not_monitored"])
    assert not any(item["metric"] == "summary_words" for item in report["not_monitored"])  # no direction
    named = clinsum("monitor", "--trend", "--reference-windows", "2", "-m", "rouge1", "--db", "t.db", cwd=tmp_path)
    assert named.returncode == EXIT_ERROR, named.stderr  # asked for by name, it is a check that cannot be made
    assert "rouge1: no value since 2025-03-03" in named.stderr


def test_an_interruption_names_the_command_that_completes_the_work(capsys):
    """After a signal or a store failure, the hint names what completes the work: `run --resume` for a run,
    `score --resume` for a scoring, and a plain second try for a command that has nothing to resume (it told
    a stopped `report` or `export` to `clinsum run --resume`)."""
    import pytest
    import typer

    from clinsum.cli.common import EXIT_INTERRUPTED, EXIT_STORE, Interrupted, reported_errors
    from clinsum.errors import StoreWriteError

    def stopped(resumable: str | None, error: BaseException) -> tuple[int, str]:
        with pytest.raises(typer.Exit) as ended, reported_errors(resumable):
            raise error
        return ended.value.exit_code, " ".join(capsys.readouterr().err.split())

    code, said = stopped("score", Interrupted("SIGTERM"))
    assert code == EXIT_INTERRUPTED and "`clinsum score --resume RUN_ID` completes the run" in said
    code, said = stopped("run", StoreWriteError("c.db: cannot write to the store: disk I/O error"))
    assert code == EXIT_STORE and "`clinsum run --resume RUN_ID`" in said
    code, said = stopped(None, KeyboardInterrupt())
    assert code == EXIT_INTERRUPTED and "--resume" not in said and "run the command again" in said
    code, said = stopped(None, StoreWriteError("c.db: cannot write to the store: disk I/O error"))
    assert code == EXIT_STORE and "--resume" not in said and "the command stopped" in said


def test_run_and_score_through_the_api_keep_one_shot_streams_whole_when_a_cost_is_estimated(tmp_path):
    """With a cost cap the estimate reads the notes (and a judge's summaries) before the run is stored: a
    generator was used up there, and the run finished with no note or summary in it, exit 0."""
    import asyncio
    import sys

    sys.path.insert(0, str(REPO / "tests"))
    from judge_fakes import ScriptedJudge, verdict

    from clinsum import evaluation
    from clinsum.config import RunConfig
    from clinsum.providers import registry
    from clinsum.records import Note, Summary
    from clinsum.store import Store

    store = Store.open(tmp_path / "s.db")
    notes = (Note(id=f"n{i}", text=f"Patient {i} has hypertension. Denies chest pain.") for i in range(3))
    config = RunConfig(providers=[{"spec": "extractive:lead"}], metrics=["length"], max_cost_usd=1.0)
    run_id = asyncio.run(evaluation.run(config, store, notes=notes))
    assert (store.run(run_id)["status"], store.run(run_id)["notes"], store.run(run_id)["summaries"]) == \
        ("finished", 3, 3)

    registry.register("streamjudge", lambda spec, options: ScriptedJudge(spec, [verdict(4)], repeat_last=True))
    listed = [Note(id=f"n{i}", text=f"Patient {i} has hypertension.") for i in range(3)]
    stream = (Summary(note_id=f"n{i}", system="production", text="Hypertension.") for i in range(3))
    config = RunConfig(metrics=["length", "judge"], judge={"judges": ["streamjudge:m"]},
                       prices={"streamjudge:m": {"input_per_mtok": 3.0, "output_per_mtok": 15.0}}, max_cost_usd=100)
    run_id = asyncio.run(evaluation.score(config, store, listed, stream))
    assert store.run(run_id)["status"] == "finished"
    assert sorted(s.note_id for s in store.summaries(run_id)) == ["n0", "n1", "n2"]


def test_score_through_the_api_keeps_every_summary_of_a_one_shot_stream(tmp_path):
    """``evaluation.score`` takes any iterable of summaries: looking whether there is one must not use
    up the first of a generator (it was lost from a run that finished with exit 0)."""
    import asyncio

    from clinsum import evaluation
    from clinsum.config import RunConfig
    from clinsum.records import Note, Summary
    from clinsum.store import Store

    notes = [Note(id=f"n{i}", text=f"Patient {i} has hypertension.") for i in range(3)]
    stream = (Summary(note_id=f"n{i}", system="production", text="Hypertension.") for i in range(3))
    store = Store.open(tmp_path / "s.db")
    run_id = asyncio.run(evaluation.score(RunConfig(metrics=["length"]), store, notes, stream))
    assert store.run(run_id)["status"] == "finished"
    assert sorted(s.note_id for s in store.summaries(run_id)) == ["n0", "n1", "n2"]
