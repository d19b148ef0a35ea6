"""A stored run in MLflow: one parent MLflow run per clinsum run, one nested run per system.

Each system's run is tagged ``clinsum.system`` (and ``mlflow.parentRunId``) and gets:

- params: ``provider``, ``model`` and each provider option (``option.temperature``...)
  when the run's configuration names the system, the prompt versions of its
  summaries, the clinsum version, the metrics and the judge;
- metrics: every clinsum metric under its own name (the mean), with
  ``<metric>.ci_low``, ``<metric>.ci_high`` and ``<metric>.n``, plus
  ``summaries``, ``failed_summaries`` and ``cost_usd.total`` (what is known).
  MLflow allows only letters, digits, ``_ - . / :`` and spaces in a name, so a
  jury member's ``judge_accurate@SPEC`` becomes ``judge_accurate/SPEC``;
- artifacts: ``leaderboard.csv`` (the whole run), its own ``scores.jsonl`` and,
  when given, the HTML report.

A run already exported to the experiment is refused, so an export is never silently
doubled: an export is its parent run (tag ``clinsum.run_id``, no ``mlflow.parentRunId``),
and only a FINISHED parent counts, which the export marks FINISHED after its last
system. If the export fails half-way, every MLflow run it made is marked FAILED, the
systems already logged too, so none is left looking finished beside the retry's
complete export; they are left in MLflow (not deleted) as the record of what failed.
The export can then be made again.

Two exports of one clinsum run at once (two terminals, a CI retry) both pass that check.
A RUNNING parent is not refused: a killed export (SIGKILL, a lost machine) leaves its
parent RUNNING for ever, and it must not block every later export. Instead each export,
its systems logged, checks that no other parent of the run is FINISHED and that its own
runs are intact before it marks its parent FINISHED, and checks again after: if another
parent is FINISHED, it marks its own runs FAILED and fails. At most one export wins, so
at most one parent is FINISHED (both may lose when they finish at the same moment: each
fails, and a retry is safe). The winner then marks FAILED the system runs other exports
of the run left FINISHED (a failed export that could not mark them: the server was down,
it was interrupted or killed), so its systems are the only finished ones.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from clinsum import __version__, reports
from clinsum.errors import ClinsumError
from clinsum.evaluators.aggregate import Row
from clinsum.inputs import write_csv, write_jsonl
from clinsum.records import Score, Summary
from clinsum.reporting.export import ExportError, ExportWriteError, MissingExtra, leaderboard_rows

_INVALID = re.compile(r"[^\w\-./: ]")
DEFAULT_EXPERIMENT = "clinsum"
INTERRUPTED_STATUS_WAIT_S = 5.0
"""How long an interrupted export waits for MLflow to mark its runs FAILED before it stops anyway.

A signal often lands while MLflow hangs; the same server would hold the status call for
``MLFLOW_HTTP_REQUEST_TIMEOUT`` x retries (minutes) after the user asked the command to stop.
A run left RUNNING is not taken for an export either: only a FINISHED parent is."""
CHATTY_LOGGERS = ("mlflow", "urllib3")
"""The loggers silenced once an interrupted export abandons its status thread (see ``_mark_failed``)."""


def metric_name(name: str) -> str:
    """clinsum's metric name as MLflow accepts it (``@`` of a jury member becomes ``/``)."""
    return _INVALID.sub("_", name.replace("@", "/"))


def _client(tracking_uri: str) -> Any:
    # MLflow sends usage telemetry to its authors by default; clinsum sends nothing anywhere it was not
    # asked to. Set MLFLOW_DISABLE_TELEMETRY=false yourself to allow it.
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    # set_terminated would first fetch the run to print its URL on stdout, where clinsum's results go:
    # one more request to a server that may be hung, and a line in the middle of `--format json`.
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    try:
        from mlflow import MlflowClient
    except ImportError as exc:
        raise MissingExtra("MLflow export needs mlflow: pip install 'clinsum[mlflow]'") from exc
    return MlflowClient(tracking_uri=tracking_uri)


def provider_params(config: dict[str, Any], system: str) -> dict[str, str]:
    """provider, model and options of the configured provider shown as ``system``, if any."""
    for provider in config.get("providers") or []:
        if system in (provider.get("name"), provider.get("spec")):
            name, _, model = str(provider["spec"]).partition(":")
            params = {"provider": name, "model": model, "spec": str(provider["spec"])}
            for key, value in sorted((provider.get("options") or {}).items()):
                params[f"option.{key}"] = json.dumps(value) if not isinstance(value, str) else value
            return params
    return {}


def system_metrics(rows: Sequence[Row], summaries: Sequence[Summary]) -> dict[str, float]:
    values: dict[str, float] = {}
    for row in rows:
        if row.mean is None:
            continue
        name = metric_name(row.metric)
        values[name] = row.mean
        values[f"{name}.n"] = float(row.n)
        if row.ci_low is not None and row.ci_high is not None:
            values[f"{name}.ci_low"] = row.ci_low
            values[f"{name}.ci_high"] = row.ci_high
    values["summaries"] = float(len(summaries))
    values["failed_summaries"] = float(sum(1 for s in summaries if not s.ok))
    costs = [s.usage.cost_usd for s in summaries if s.usage.cost_usd is not None]
    if costs:
        values["cost_usd.total"] = float(sum(costs))
    return values


def _log(client: Any, run_id: str, params: dict[str, str], metrics: dict[str, float]) -> None:
    from mlflow.entities import Metric, Param

    items = [Param(k, str(v)[:6000]) for k, v in params.items()]
    for start in range(0, len(items), 100):
        client.log_batch(run_id, params=items[start:start + 100])
    points = [Metric(k, float(v), 0, 0) for k, v in metrics.items()]
    for start in range(0, len(points), 1000):
        client.log_batch(run_id, metrics=points[start:start + 1000])


def export(tracking_uri: str, run: dict[str, Any], summaries: Sequence[Summary], scores: Sequence[Score], *,
           experiment: str = DEFAULT_EXPERIMENT, html_report: Path | None = None) -> dict[str, Any]:
    """Log one clinsum run; returns the MLflow ids (``experiment_id``, ``parent``, ``systems``).

    Any failure of MLflow (a dead server, a full disk, a refused value) is raised as an
    ``ExportWriteError`` (an output that could not be written) naming the tracking URI, after the
    MLflow runs already made are marked FAILED.
    """
    client = _client(tracking_uri)
    try:
        return _export(client, run, summaries, scores, experiment=experiment, html_report=html_report)
    except ClinsumError:
        raise
    except Exception as exc:
        notes = "".join(f" ({note})" for note in getattr(exc, "__notes__", ()))
        raise ExportWriteError(
            f"MLflow export to {tracking_uri} failed: {type(exc).__name__}: {exc}{notes}") from exc


def _export(client: Any, run: dict[str, Any], summaries: Sequence[Summary], scores: Sequence[Score], *,
            experiment: str, html_report: Path | None) -> dict[str, Any]:
    found = client.get_experiment_by_name(experiment)
    experiment_id = found.experiment_id if found is not None else client.create_experiment(experiment)
    clinsum_run = run["id"]
    already = _exported(client, experiment_id, clinsum_run)
    if already is not None:
        raise ExportError(
            f"clinsum run {clinsum_run} is already in MLflow experiment '{experiment}' (MLflow run "
            f"{already}); delete it there or export to another --experiment")
    rows = leaderboard_rows(summaries, scores)
    config = run.get("config") or {}
    shared = {"clinsum_version": run.get("clinsum_version", __version__), "clinsum.run_id": clinsum_run,
              "kind": run.get("kind", ""), "metrics": ",".join(config.get("metrics") or []),
              "judge": json.dumps(config.get("judge")) if config.get("judge") else ""}
    parent = client.create_run(experiment_id, run_name=f"clinsum {clinsum_run}",
                               tags={"clinsum.run_id": clinsum_run, "clinsum.kind": run.get("kind", "")})
    ids: dict[str, Any] = {"experiment_id": experiment_id, "parent": parent.info.run_id, "systems": {}}
    try:
        _log_runs(client, ids, run, summaries, scores, rows, shared, html_report)
        _check_alone(client, ids, clinsum_run, experiment, finished=False)
        client.set_terminated(ids["parent"], status="FINISHED")  # last: a FINISHED parent is a whole export
        runs = _check_alone(client, ids, clinsum_run, experiment, finished=True)
    except Exception as exc:
        problem = _mark_failed(client, [ids["parent"], *ids["systems"].values()], wait_s=None)
        if problem is not None:
            exc.add_note(f"its MLflow runs could not all be marked FAILED: {problem}")
        raise
    except BaseException:  # a signal: one short try, and the interruption goes on whatever MLflow does
        _mark_failed(client, [ids["parent"], *ids["systems"].values()], wait_s=INTERRUPTED_STATUS_WAIT_S)
        raise
    try:
        _fail_leftovers(client, runs, ids["parent"])
    except Exception as exc:
        exc.add_note(f"this export is complete (MLflow run {ids['parent']} is FINISHED); system runs other "
                     "exports of the run left FINISHED could not be marked FAILED")
        raise
    return ids


def _runs_of(client: Any, experiment_id: str, clinsum_run: str) -> list[Any]:
    """Every MLflow run (parents and systems, any status) tagged with ``clinsum_run``."""
    runs: list[Any] = []
    token = None
    while True:
        page = client.search_runs([experiment_id], max_results=1000, page_token=token,
                                  filter_string=f"tags.`clinsum.run_id` = '{clinsum_run}'")
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def _is_parent(found: Any) -> bool:
    # Tested here rather than with ``IS NULL`` in the filter, which older tracking servers refuse.
    return "mlflow.parentRunId" not in found.data.tags


def _exported(client: Any, experiment_id: str, clinsum_run: str) -> str | None:
    """The MLflow id of a finished export of ``clinsum_run`` to the experiment, if there is one.

    Only a parent run counts, and only FINISHED: the system runs carry ``clinsum.run_id`` too, a
    failed export leaves its parent FAILED, and a killed one leaves it RUNNING (as does an export
    still in progress: see the module's docstring).
    """
    for found in _runs_of(client, experiment_id, clinsum_run):
        if _is_parent(found) and found.info.status == "FINISHED":
            return str(found.info.run_id)
    return None


def _check_alone(client: Any, ids: dict[str, Any], clinsum_run: str, experiment: str, *,
                 finished: bool) -> list[Any]:
    """The MLflow runs of ``clinsum_run``; raises ``ExportWriteError`` if another export of it finished
    (before ours, or, with ``finished``, while ours was being marked FINISHED), or if our runs are no
    longer as we left them."""
    parent = ids["parent"]
    ours = {parent, *ids["systems"].values()}
    expected = "FINISHED" if finished else "RUNNING"
    runs = _runs_of(client, ids["experiment_id"], clinsum_run)
    for found in runs:
        run_id = found.info.run_id
        if run_id not in ours and _is_parent(found) and found.info.status == "FINISHED":
            raise ExportWriteError(
                f"another export of clinsum run {clinsum_run} to MLflow experiment '{experiment}' finished "
                f"while this one ran (MLflow run {run_id}); this export's runs (parent {parent}) are marked FAILED")
        if run_id in ours and found.info.status != (expected if run_id == parent else "FINISHED"):
            raise ExportWriteError(
                f"MLflow run {run_id} of this export of clinsum run {clinsum_run} is {found.info.status}, "
                "changed by another export of the same run; this export's runs are marked FAILED")
    return runs


def _fail_leftovers(client: Any, runs: Sequence[Any], parent: str) -> None:
    """Mark FAILED the system runs (of one clinsum run) other exports left FINISHED, now that ``parent``
    is its only finished export: a failed export could not mark them (the server was down, it was
    interrupted or killed), or a concurrent export lost; none may look finished beside ours. A
    concurrent export's runs made after ``runs`` were read are its own to mark: it finds ours and fails."""
    for found in runs:
        if (not _is_parent(found) and found.info.status == "FINISHED"
                and found.data.tags.get("mlflow.parentRunId") != parent):
            client.set_terminated(found.info.run_id, status="FAILED")


def _mark_failed(client: Any, run_ids: Sequence[str], *, wait_s: float | None) -> str | None:
    """Mark the runs FAILED, waiting at most ``wait_s`` seconds (None: as long as MLflow takes);
    returns why they could not all be marked, None when they were.

    The calls run in a daemon thread, so a hung server cannot hold the command past ``wait_s`` (the
    thread is abandoned at exit), and their failure is returned, never raised: it must not take
    the place of the error or the interruption that stopped the export.
    """
    problems: list[str] = []

    def mark() -> None:
        try:
            for run_id in run_ids:
                client.set_terminated(run_id, status="FAILED")
        except Exception as exc:  # returned below, and named in the export's error
            problems.append(f"{type(exc).__name__}: {exc}")

    worker = threading.Thread(target=mark, name="clinsum-mlflow-failed", daemon=True)
    worker.start()
    worker.join(wait_s)
    if worker.is_alive():
        _silence_abandoned()
        return f"MLflow did not answer within {wait_s:g} s"
    return problems[0] if problems else None


def _silence_abandoned() -> None:
    """Keep the abandoned status thread off stderr for the rest of the process.

    Only an interruption abandons it, and the process is ending: the thread may still be inside
    MLflow or urllib3 at interpreter shutdown, and a log line it writes to stderr then (a retry, the
    server's error) can abort CPython (``_enter_buffered_busy``, exit 134 in place of 130). Raising
    the level of the top loggers drops the records of their children, whose level is unset.
    """
    for name in CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.CRITICAL + 1)


def _log_runs(client: Any, ids: dict[str, Any], run: dict[str, Any], summaries: Sequence[Summary],
              scores: Sequence[Score], rows: Sequence[Row], shared: dict[str, str],
              html_report: Path | None) -> None:
    """The parent's params, metrics and artifacts, then one nested run per system, each FINISHED when
    logged; ``ids["systems"]`` names every system run made so far, for ``_mark_failed``."""
    config = run.get("config") or {}
    parent = ids["parent"]
    with tempfile.TemporaryDirectory() as folder:
        files = Path(folder)
        leaderboard = files / "leaderboard.csv"
        write_csv(leaderboard, reports.LEADERBOARD_COLUMNS, reports.as_dicts(rows))
        write_jsonl(files / "scores.jsonl", scores)
        _log(client, parent, {k: v for k, v in shared.items() if v}, {
            "summaries": float(len(summaries)), "failed_summaries": float(sum(1 for s in summaries if not s.ok))})
        client.log_artifact(parent, str(leaderboard))
        client.log_artifact(parent, str(files / "scores.jsonl"))
        if html_report is not None:
            client.log_artifact(parent, str(html_report))
        for number, system in enumerate(dict.fromkeys([s.system for s in summaries] + [r.system for r in rows])):
            own_summaries = [s for s in summaries if s.system == system]
            own_scores = [s for s in scores if s.system == system]
            child = client.create_run(ids["experiment_id"], run_name=system, tags={
                "mlflow.parentRunId": parent, "clinsum.system": system, "clinsum.run_id": run["id"]})
            ids["systems"][system] = child.info.run_id
            prompts = sorted({s.prompt_version for s in own_summaries if s.prompt_version})
            params = {**{k: v for k, v in shared.items() if v}, "system": system, **provider_params(config, system)}
            if prompts:
                params["prompt_version"] = ",".join(prompts)
            _log(client, child.info.run_id, params, system_metrics([r for r in rows if r.system == system],
                                                                   own_summaries))
            own = files / f"system-{number}"
            own.mkdir()
            write_jsonl(own / "scores.jsonl", own_scores)
            client.log_artifact(child.info.run_id, str(leaderboard))
            client.log_artifact(child.info.run_id, str(own / "scores.jsonl"))
            if html_report is not None:
                client.log_artifact(child.info.run_id, str(html_report))
            client.set_terminated(child.info.run_id, status="FINISHED")
