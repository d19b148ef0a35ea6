"""``clinsum export``: files of a stored run (JSONL, CSV, Parquet) and a real local MLflow store read back."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import pytest
from report_fixture import fixture_store
from typer.testing import CliRunner

from clinsum.cli import app
from clinsum.cli.common import EXIT_ERROR, EXIT_STORE
from clinsum.evaluators.aggregate import aggregate, failures_by_system
from clinsum.reporting import tracking
from clinsum.store import Store


def invoke(*args: str) -> object:
    return CliRunner().invoke(app, list(args))


def _stored(db: Path, run_id: str) -> tuple[list, list]:
    store = Store.open(db)
    try:
        return store.summaries(run_id), store.scores(run_id)
    finally:
        store.close()


def test_jsonl_and_csv_hold_every_summary_and_score_with_its_detail(tmp_path: Path) -> None:
    db, (run_id, _) = fixture_store()
    summaries, scores = _stored(db, run_id)
    for fmt in ("jsonl", "csv"):
        result = invoke("export", run_id, "--db", str(db), "--format", fmt, "--out", str(tmp_path / fmt))
        assert result.exit_code == 0, result.output
    lines = (tmp_path / "jsonl" / "scores.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == [s.model_dump(mode="json") for s in scores]
    with open(tmp_path / "csv" / "scores.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == len(scores)
    assert [json.loads(r["detail"]) for r in rows] == [s.detail for s in scores]
    with open(tmp_path / "csv" / "summaries.csv", newline="") as handle:
        assert [r["text"] for r in csv.DictReader(handle)] == [s.text for s in summaries]
    for fmt in ("jsonl", "csv"):
        with open(tmp_path / fmt / "leaderboard.csv", newline="") as handle:
            board = {(r["system"], r["metric"]): float(r["mean"]) for r in csv.DictReader(handle) if r["mean"]}
        expected = aggregate(scores, failures=failures_by_system(summaries))
        assert board == {(r.system, r.metric): pytest.approx(r.mean) for r in expected if r.mean is not None}
        run = json.loads((tmp_path / fmt / "run.json").read_text())
        assert run["id"] == run_id and run["config"]["providers"][0]["spec"] == "extractive:lead"


def test_parquet_reads_back_with_pyarrow(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    db, (_, production) = fixture_store()
    summaries, scores = _stored(db, production)
    result = invoke("export", production, "--db", str(db), "--format", "parquet", "--out", str(tmp_path))
    assert result.exit_code == 0, result.output
    table = pq.read_table(tmp_path / "scores.parquet").to_pylist()
    assert [(r["metric"], r["value"], json.loads(r["detail"])) for r in table] == \
        [(s.metric, s.value, s.detail) for s in scores]
    texts = pq.read_table(tmp_path / "summaries.parquet").to_pylist()
    assert [(r["text"], r["error"]) for r in texts] == [(s.text, s.error) for s in summaries]
    assert pq.read_table(tmp_path / "leaderboard.parquet").num_rows > 0


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_an_export_that_fails_on_its_last_file_leaves_the_previous_export_whole(tmp_path: Path, fmt: str) -> None:
    """The tables of an export and its run.json are one set: a failure on the last file (here a folder
    named run.json, which no rename can replace) must not leave new tables beside an old run.json."""
    db, (run_id, production) = fixture_store()
    out = tmp_path / "out"
    first = invoke("export", production, "--db", str(db), "--format", fmt, "--out", str(out))
    assert first.exit_code == 0, first.output
    (out / "run.json").unlink()
    (out / "run.json").mkdir()  # in the way of the last file of the next export
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    failed = invoke("export", run_id, "--db", str(db), "--format", fmt, "--out", str(out))
    assert failed.exit_code == EXIT_STORE, failed.output
    assert "cannot write the export" in failed.output
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before  # no temporary either
    assert (out / "run.json").is_dir()


def test_parquet_without_pyarrow_names_the_install_command_and_writes_nothing(tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    db, (run_id, _) = fixture_store()
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    result = invoke("export", run_id, "--db", str(db), "--format", "parquet", "--out", str(tmp_path / "out"))
    assert result.exit_code == EXIT_ERROR
    assert "pip install 'clinsum[parquet]'" in result.output
    assert not (tmp_path / "out").exists()


def test_export_needs_a_destination_and_a_known_run(tmp_path: Path) -> None:
    db, (run_id, _) = fixture_store()
    assert invoke("export", run_id, "--db", str(db)).exit_code == EXIT_ERROR
    missing = invoke("export", "nope", "--db", str(db), "--out", str(tmp_path))
    assert missing.exit_code == EXIT_ERROR and "no run 'nope'" in missing.output


def test_jury_metric_names_fit_mlflow() -> None:
    assert tracking.metric_name("judge_accurate@ollama:qwen2.5:7b") == "judge_accurate/ollama:qwen2.5:7b"
    assert tracking.metric_name("concept_recall") == "concept_recall"


def test_mlflow_export_to_a_local_sqlite_store_reads_back_with_mlflows_client(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlflow import MlflowClient

    monkeypatch.chdir(tmp_path)  # MLflow puts a SQLite store's artifacts under ./mlruns
    db, (run_id, _) = fixture_store()
    summaries, scores = _stored(db, run_id)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = invoke("export", run_id, "--db", str(db), "--mlflow", uri, "--experiment", "clinsum-test")
    assert result.exit_code == 0, result.output

    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("clinsum-test")
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 1 and parents[0].data.tags["clinsum.run_id"] == run_id
    children = {r.data.tags["clinsum.system"]: r for r in runs
                if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id}
    assert set(children) == {"extractive:lead", "extractive:centroid"}
    assert all(r.info.status == "FINISHED" for r in runs)

    lead = children["extractive:lead"]
    rows = {r.metric: r for r in aggregate(scores, failures=failures_by_system(summaries))
            if r.system == "extractive:lead"}
    for name in ("concept_recall", "rouge1", "judge_overall", "cost_usd", "latency_s"):
        assert lead.data.metrics[name] == pytest.approx(rows[name].mean)
        assert lead.data.metrics[f"{name}.ci_low"] == pytest.approx(rows[name].ci_low)
        assert lead.data.metrics[f"{name}.ci_high"] == pytest.approx(rows[name].ci_high)
        assert lead.data.metrics[f"{name}.n"] == rows[name].n
    assert lead.data.metrics["summaries"] == 12 and lead.data.metrics["failed_summaries"] == 0
    assert lead.data.params["provider"] == "extractive" and lead.data.params["model"] == "lead"
    assert lead.data.params["clinsum_version"] and "coverage" in lead.data.params["metrics"]
    artifacts = {a.path for a in client.list_artifacts(lead.info.run_id)}
    assert artifacts == {"leaderboard.csv", "scores.jsonl", "report.html"}
    local = Path(client.download_artifacts(lead.info.run_id, "scores.jsonl", str(tmp_path)))
    assert {json.loads(line)["system"] for line in local.read_text().splitlines()} == {"extractive:lead"}

    again = invoke("export", run_id, "--db", str(db), "--mlflow", uri, "--experiment", "clinsum-test")
    assert again.exit_code == EXIT_ERROR and "already in MLflow experiment" in again.output
    assert len(client.search_runs([experiment.experiment_id])) == 3


def test_mlflow_export_that_fails_half_way_marks_its_runs_failed_and_exits_as_an_output_failure(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlflow import MlflowClient

    monkeypatch.chdir(tmp_path)
    db, (run_id, _) = fixture_store()
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    logged: list[str] = []

    def full_disk(self: MlflowClient, run: str, local_path: str, artifact_path: str | None = None) -> None:
        logged.append(run)
        if len(logged) > 3:  # the parent's artifacts went through; a system's do not
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(MlflowClient, "log_artifact", full_disk)
    result = invoke("export", run_id, "--db", str(db), "--mlflow", uri)
    assert result.exit_code == EXIT_STORE
    assert f"MLflow export to {uri} failed" in result.output and "No space left" in result.output
    runs = MlflowClient(tracking_uri=uri).search_runs([MlflowClient(tracking_uri=uri).get_experiment_by_name(
        "clinsum").experiment_id])
    assert runs and all(r.info.status == "FAILED" for r in runs)


def test_an_mlflow_export_whose_runs_cannot_be_marked_failed_says_so_and_keeps_its_first_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The call marking the runs FAILED fails too when the server is down: its error used to take the
    place of the one that stopped the export."""
    from mlflow import MlflowClient

    monkeypatch.chdir(tmp_path)
    db, (run_id, _) = fixture_store()
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    real_set_terminated = MlflowClient.set_terminated

    def full_disk(self: MlflowClient, run: str, local_path: str, artifact_path: str | None = None) -> None:
        raise OSError(28, "No space left on device")

    def locked(self: MlflowClient, run: str, status: str | None = None, end_time: int | None = None) -> None:
        if status == "FAILED":
            raise RuntimeError("database is locked")
        real_set_terminated(self, run, status, end_time)

    monkeypatch.setattr(MlflowClient, "log_artifact", full_disk)
    monkeypatch.setattr(MlflowClient, "set_terminated", locked)
    result = invoke("export", run_id, "--db", str(db), "--mlflow", uri)
    assert result.exit_code == EXIT_STORE
    assert "OSError: [Errno 28] No space left on device" in result.output
    assert "could not all be marked FAILED: RuntimeError: database is locked" in result.output
    assert f"clinsum export {run_id} --mlflow {uri}" in result.output


def test_mlflow_export_to_a_dead_server_is_an_output_failure_naming_it(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    with socket.socket() as probe:  # a loopback port with nothing listening
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    db, (run_id, _) = fixture_store()
    result = invoke("export", run_id, "--db", str(db), "--mlflow", f"http://127.0.0.1:{port}")
    assert result.exit_code == EXIT_STORE
    assert f"MLflow export to http://127.0.0.1:{port} failed" in result.output


def _score_files(tmp_path: Path) -> tuple[Path, Path]:
    notes, summaries = tmp_path / "notes.jsonl", tmp_path / "summaries.jsonl"
    notes.write_text(json.dumps({"id": "n1", "text": "Denies chest pain. On lisinopril."}) + "\n")
    summaries.write_text(json.dumps({"note_id": "n1", "system": "prod", "text": "No chest pain."}) + "\n")
    return notes, summaries


def test_score_with_mlflow_logs_the_new_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlflow import MlflowClient

    monkeypatch.chdir(tmp_path)
    notes, summaries = _score_files(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = invoke("score", str(summaries), "--notes", str(notes), "-m", "length", "--db", str(tmp_path / "c.db"),
                    "--mlflow", uri, "--mlflow-experiment", "prod")
    assert result.exit_code == 0, result.output
    client = MlflowClient(tracking_uri=uri)
    runs = client.search_runs([client.get_experiment_by_name("prod").experiment_id])
    prod = next(r for r in runs if r.data.tags.get("clinsum.system") == "prod")
    assert prod.data.metrics["summary_words"] == 3


def test_run_with_mlflow_missing_fails_before_evaluating(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    notes, _ = _score_files(tmp_path)
    monkeypatch.setitem(sys.modules, "mlflow", None)
    db = tmp_path / "c.db"
    result = invoke("run", "--notes", str(notes), "-p", "extractive:lead", "-m", "length", "--db", str(db),
                    "--mlflow", "sqlite:///x.db")
    assert result.exit_code == EXIT_ERROR and "pip install 'clinsum[mlflow]'" in result.output
    store = Store.open(db)
    try:
        assert store.runs() == []
    finally:
        store.close()


def test_run_whose_mlflow_export_fails_says_the_run_is_stored(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    notes, _ = _score_files(tmp_path)
    db = tmp_path / "c.db"
    result = invoke("run", "--notes", str(notes), "-p", "extractive:lead", "-m", "length", "--db", str(db),
                    "--mlflow", f"http://127.0.0.1:{port}")
    assert result.exit_code == EXIT_STORE
    store = Store.open(db)
    try:
        (run,) = store.runs()
    finally:
        store.close()
    assert run["status"] == "finished"
    assert f"run {run['id']} is stored" in result.output and f"clinsum export {run['id']} --mlflow" in result.output


PARENT_ARTIFACTS = 3  # leaderboard.csv, scores.jsonl, report.html; each system logs the same three


@pytest.mark.parametrize("failing_call", [PARENT_ARTIFACTS + 1, 2 * PARENT_ARTIFACTS + 1],
                         ids=["first-system's-first-artifact", "second-system's-first-artifact"])
def test_an_mlflow_export_that_failed_half_way_can_be_retried_as_its_error_says(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing_call: int) -> None:
    """The failed export's error says to retry it; the retry used to be refused ('already in MLflow')
    because of the runs the failed export had left: marked FAILED, or, when the disk filled up at
    the second system, the first system's run, FINISHED and tagged with the clinsum run id."""
    from mlflow import MlflowClient

    monkeypatch.chdir(tmp_path)
    db, (run_id, _) = fixture_store()
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    real_log_artifact = MlflowClient.log_artifact
    calls: list[str] = []

    def full_disk_once(self: MlflowClient, run: str, local_path: str, artifact_path: str | None = None) -> None:
        calls.append(run)
        if len(calls) == failing_call:
            raise OSError(28, "No space left on device")
        real_log_artifact(self, run, local_path, artifact_path)

    monkeypatch.setattr(MlflowClient, "log_artifact", full_disk_once)
    failed = invoke("export", run_id, "--db", str(db), "--mlflow", uri)
    assert failed.exit_code == EXIT_STORE and f"clinsum export {run_id} --mlflow {uri}" in failed.output
    client = MlflowClient(tracking_uri=uri)
    experiment_id = client.get_experiment_by_name("clinsum").experiment_id
    left = client.search_runs([experiment_id])
    assert len(left) == failing_call // PARENT_ARTIFACTS + 1  # the parent and the systems begun
    assert all(r.info.status == "FAILED" for r in left)  # a failed export's systems never look finished

    retried = invoke("export", run_id, "--db", str(db), "--mlflow", uri)
    assert retried.exit_code == 0, retried.output
    finished = [r for r in client.search_runs([experiment_id]) if r.info.status == "FINISHED"]
    (parent,) = [r for r in finished if "mlflow.parentRunId" not in r.data.tags]
    assert parent.data.tags["clinsum.run_id"] == run_id
    children = {r.data.tags["clinsum.system"]: r for r in finished
                if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id}
    assert len(finished) == 1 + len(children) and set(children) == _stored_systems(db, run_id)
    for child in [parent, *children.values()]:
        assert {a.path for a in client.list_artifacts(child.info.run_id)} == {
            "leaderboard.csv", "scores.jsonl", "report.html"}
    summaries, scores = _stored(db, run_id)
    for system, child in children.items():
        assert child.data.metrics["summaries"] == sum(1 for s in summaries if s.system == system)
        local = Path(client.download_artifacts(child.info.run_id, "scores.jsonl", str(tmp_path / system)))
        assert len(local.read_text().splitlines()) == sum(1 for s in scores if s.system == system)

    again = invoke("export", run_id, "--db", str(db), "--mlflow", uri)  # a finished export is never doubled
    assert again.exit_code == EXIT_ERROR and "already in MLflow" in again.output
    assert parent.info.run_id in again.output


def test_a_retry_marks_failed_the_system_runs_a_failed_export_left_finished(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A server that failed mid-export often fails the calls marking its runs FAILED too (or an
    interrupted export gives up on them): the systems it had logged stayed FINISHED, beside the
    retry's complete export, two finished runs of one system of one clinsum run."""
    from mlflow import MlflowClient

    monkeypatch.chdir(tmp_path)
    db, (run_id, _) = fixture_store()
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    real_log_artifact, real_set_terminated = MlflowClient.log_artifact, MlflowClient.set_terminated
    calls: list[str] = []

    def full_disk_at_the_second_system(self: MlflowClient, run: str, local_path: str,
                                       artifact_path: str | None = None) -> None:
        calls.append(run)
        if len(calls) == 2 * PARENT_ARTIFACTS + 1:
            raise OSError(28, "No space left on device")
        real_log_artifact(self, run, local_path, artifact_path)

    def down(self: MlflowClient, run: str, status: str | None = None, end_time: int | None = None) -> None:
        if status == "FAILED":
            raise ConnectionError("tracking server gone")
        real_set_terminated(self, run, status, end_time)

    with monkeypatch.context() as broken:
        broken.setattr(MlflowClient, "log_artifact", full_disk_at_the_second_system)
        broken.setattr(MlflowClient, "set_terminated", down)
        failed = invoke("export", run_id, "--db", str(db), "--mlflow", uri)
    assert failed.exit_code == EXIT_STORE and "could not all be marked FAILED" in failed.output
    client = MlflowClient(tracking_uri=uri)
    experiment_id = client.get_experiment_by_name("clinsum").experiment_id
    left = {r.info.run_id: r.info.status for r in client.search_runs([experiment_id])}
    assert sorted(left.values()) == ["FINISHED", "RUNNING", "RUNNING"]  # the first system, finished

    retried = invoke("export", run_id, "--db", str(db), "--mlflow", uri)
    assert retried.exit_code == 0, retried.output
    runs = client.search_runs([experiment_id])
    (parent,) = [r for r in runs if r.info.run_id not in left and "mlflow.parentRunId" not in r.data.tags]
    for r in runs:
        ours = r.info.run_id == parent.info.run_id or r.data.tags.get("mlflow.parentRunId") == parent.info.run_id
        assert (r.info.status == "FINISHED") == ours, (r.data.tags.get("clinsum.system"), r.info.status)
    assert sorted(r.info.status for r in runs if r.info.run_id in left) == ["FAILED", "RUNNING", "RUNNING"]


def _stored_systems(db: Path, run_id: str) -> set[str]:
    summaries, _ = _stored(db, run_id)
    return {s.system for s in summaries}


def test_an_interrupted_run_is_not_logged_to_mlflow_as_a_finished_one(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """MLflow would show a run SIGTERM stopped half-way as FINISHED, its partial means beside complete
    ones; and once resumed, its complete export would be refused as 'already in MLflow'."""
    import shutil

    from mlflow import MlflowClient

    monkeypatch.chdir(tmp_path)
    shared, (run_id, _) = fixture_store()
    db = shutil.copy(shared, tmp_path / "fixtures.db")  # the session's store stays as other tests expect it
    store = Store.open(db)
    try:
        store.set_status(run_id, "interrupted")
    finally:
        store.close()
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    refused = invoke("export", run_id, "--db", str(db), "--mlflow", uri)
    assert refused.exit_code == EXIT_ERROR, refused.output
    assert "interrupted" in refused.output and f"--resume {run_id}" in refused.output
    experiment = MlflowClient(tracking_uri=uri).get_experiment_by_name("clinsum")
    assert experiment is None or not MlflowClient(tracking_uri=uri).search_runs([experiment.experiment_id])
    files = invoke("export", run_id, "--db", str(db), "--out", str(tmp_path / "files"))
    assert files.exit_code == 0, files.output  # files carry the status in run.json: still exported
    assert json.loads((tmp_path / "files" / "run.json").read_text())["status"] == "interrupted"


@pytest.mark.parametrize("moment", ["after-its-first-system", "as-it-marks-its-parent-finished"])
def test_two_exports_of_one_run_at_once_leave_one_whole_export_and_the_loser_fails(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, moment: str) -> None:
    """A second export (another terminal, a CI retry) started while the first ran marked FAILED the
    first's finished system runs, taking them for a failed export's leftovers; the first then marked
    its parent FINISHED and reported success: two finished exports, one with a FAILED system.

    Export B runs in a real process at the moment named, inside export A, on the same SQLite store:
    after A's first system is FINISHED, or once A checked that no other export finished and just
    before A marks its parent FINISHED (B then passes every check A made)."""
    import os
    import subprocess

    from mlflow import MlflowClient

    monkeypatch.chdir(tmp_path)
    db, (run_id, _) = fixture_store()
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    real_set_terminated = MlflowClient.set_terminated
    second: list[subprocess.CompletedProcess[str]] = []

    def export_b() -> None:
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "NO_COLOR": "1", "COLUMNS": "300"}
        second.append(subprocess.run([sys.executable, "-m", "clinsum", "export", run_id, "--db", str(db),
                                      "--mlflow", uri], env=env, capture_output=True, text=True, timeout=300))

    def b_starts_meanwhile(self: MlflowClient, run: str, status: str | None = None,
                           end_time: int | None = None) -> None:
        is_parent = "mlflow.parentRunId" not in self.get_run(run).data.tags
        if not second and status == "FINISHED" and is_parent and moment == "as-it-marks-its-parent-finished":
            export_b()
        real_set_terminated(self, run, status, end_time)
        if not second and status == "FINISHED" and not is_parent and moment == "after-its-first-system":
            export_b()

    monkeypatch.setattr(MlflowClient, "set_terminated", b_starts_meanwhile)
    first = invoke("export", run_id, "--db", str(db), "--mlflow", uri)
    (b,) = second
    assert b.returncode == 0, b.stderr
    assert first.exit_code == EXIT_STORE, first.output
    assert "another export of clinsum run" in first.output and "marked FAILED" in first.output

    client = MlflowClient(tracking_uri=uri)
    runs = client.search_runs([client.get_experiment_by_name("clinsum").experiment_id])
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags and r.info.status == "FINISHED"]
    assert parent.info.run_id in b.stdout + b.stderr  # B's, whose children are all there and FINISHED
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert {r.data.tags["clinsum.system"] for r in children} == _stored_systems(db, run_id)
    assert all(r.info.status == "FINISHED" for r in children)
    others = [r for r in runs if r.info.run_id != parent.info.run_id and r not in children]
    assert others and all(r.info.status == "FAILED" for r in others), [
        (r.data.tags.get("clinsum.system"), r.info.status) for r in others]  # A's: none looks finished
    again = invoke("export", run_id, "--db", str(db), "--mlflow", uri)
    assert again.exit_code == EXIT_ERROR and parent.info.run_id in again.output


def test_an_abandoned_status_thread_cannot_write_to_stderr_at_shutdown(caplog: pytest.LogCaptureFixture) -> None:
    """After an interruption the export waits 5 s for MLflow to mark its runs FAILED, then abandons the
    thread; MLflow or urllib3 logging from it while the interpreter shuts down can abort CPython
    (``_enter_buffered_busy``: exit 134 instead of 130). Once abandoned, their logs go nowhere."""
    import logging
    import threading

    release, answered = threading.Event(), threading.Event()

    class HungServer:
        def set_terminated(self, run_id: str, status: str | None = None) -> None:
            release.wait()  # the tracking server answers only after the export gave up on it
            logging.getLogger("urllib3.connectionpool").warning("Retrying after connection broken")
            logging.getLogger("mlflow.utils.rest_utils").error("API request failed")
            answered.set()

    saved = {name: logging.getLogger(name).level for name in tracking.CHATTY_LOGGERS}
    try:
        with caplog.at_level(logging.DEBUG):
            problem = tracking._mark_failed(HungServer(), ["run1"], wait_s=0.01)
            assert problem is not None and "did not answer" in problem
            release.set()
            assert answered.wait(30)
        assert not [r for r in caplog.records if r.name.startswith(tracking.CHATTY_LOGGERS)], caplog.records
    finally:
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)
