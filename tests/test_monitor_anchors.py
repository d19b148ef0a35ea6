"""`clinsum monitor --anchors`: judge drift told apart from model drift, end to end.

The judge is an Ollama-protocol fake on 127.0.0.1 (tests/ollama_fake.py) that
rates every summary from its text; `state` plants the changes: a drop of the
judge's 'accurate' score in the current window's summaries (stored when the
window was scored), and a shift of the judge's scores on the anchors (the judge
itself moved). One real-process test judges the anchors through the Anthropic
SDK against its HTTP fake with a fake API key, and greps the store for the key.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from judge_fakes import ATTRIBUTES, verdict
from ollama_fake import OllamaFake, closed_port
from provider_fakes import anthropic_message, local_server
from typer.testing import CliRunner
from werkzeug import Request, Response

from clinsum.cli import app
from clinsum.cli.common import EXIT_ERROR, EXIT_FAILED
from clinsum.monitoring import simulate as sim
from clinsum.monitoring.alerts import Check
from clinsum.monitoring.anchors import EXCUSED, JudgeDrift, MetricDrift, excuse_judge_alerts
from clinsum.store import Store

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "fixtures"
JUDGE = "ollama:llama3.1:8b"
N_ANCHORS = 20
ANCHOR = re.compile(r"Case (\d+): denies")

state: dict[str, Any] = {"window_drop": 0, "anchor_shift": 0}
"""What the fake judge is planted with now: subtracted from 'accurate' on window summaries; added on
anchors 1-3 of every 4 (the judge turned stricter or more lenient)."""


def rate(prompt: str) -> str:
    """The fake judge: anchors by their number, window summaries by a hash of the prompt (3 to 5)."""
    found = ANCHOR.search(prompt)
    if found:
        k = int(found.group(1))
        shift = state["anchor_shift"] if k % 4 else 0
        return verdict(4, accurate=min(5, max(1, 2 + k % 3 + shift)))
    h = zlib.crc32(prompt.encode())
    scores = {name: 3 + (h >> i) % 3 for i, name in enumerate(ATTRIBUTES)}
    scores["accurate"] = max(1, scores["accurate"] - state["window_drop"])
    return verdict(scores)


def is_anchor(payload: dict[str, Any]) -> bool:
    return bool(ANCHOR.search(" ".join(m["content"] for m in payload["messages"])))


@pytest.fixture(scope="module")
def judge_server() -> Iterator[OllamaFake]:
    with local_server() as server:
        yield OllamaFake(server, lambda payload: rate(" ".join(m["content"] for m in payload["messages"])))


@pytest.fixture(autouse=True)
def steady_judge() -> Iterator[None]:
    state.update(window_drop=0, anchor_shift=0)
    yield
    state.update(window_drop=0, anchor_shift=0)


def invoke(fake: OllamaFake, *args: Any) -> Any:
    return CliRunner(env={"OLLAMA_HOST": fake.host, "COLUMNS": "200"}).invoke(
        app, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def windows(judge_server: OllamaFake, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two days of judged production summaries of different visit notes; on day 2 the judge rated
    'accurate' one point lower (the planted judge-score drop of the current window)."""
    folder = tmp_path_factory.mktemp("anchors")
    sources = [s for s in sim.fixture_sources(FIXTURES) if s.fields["note_type"] == "visit_note"]
    notes = folder / "notes.jsonl"
    notes.write_text("".join(json.dumps({"id": s.note.id, "text": s.note.text}) + "\n" for s in sources))
    db = folder / "windows.db"
    for day, items in ((1, sources[0::2]), (2, sources[1::2])):
        state["window_drop"] = 1 if day == 2 else 0
        path = folder / f"day{day}.jsonl"
        path.write_text("".join(json.dumps({"note_id": s.note.id, "system": "production", "text": s.summary,
                                            "created_at": f"2025-03-0{day}T09:00:00Z"}) + "\n" for s in items))
        result = invoke(judge_server, "score", path, "--notes", notes, "-e", "length", "--judge", JUDGE,
                        "--db", db, "--name", f"day{day}")
        assert result.exit_code == 0, result.output
    state["window_drop"] = 0
    return db


@pytest.fixture
def store(windows: Path, tmp_path: Path) -> Path:
    """A private copy of the scored windows (each test starts with no anchor judging)."""
    copy = tmp_path / "c.db"
    shutil.copy(windows, copy)
    return copy


@pytest.fixture
def anchors(tmp_path: Path) -> Path:
    path = tmp_path / "anchors.jsonl"
    path.write_text("".join(json.dumps({"id": f"anchor-{k:02d}", "note": f"Case {k}: denies chest pain, takes "
                                        "lisinopril.", "summary": f"Case {k}: no chest pain; on lisinopril."}) + "\n"
                            for k in range(N_ANCHORS)))
    return path


def monitor(fake: OllamaFake, store: Path, anchors: Path, *extra: Any) -> tuple[int, dict[str, Any]]:
    result = invoke(fake, "monitor", "--db", store, "--baseline", "day1", "--current", "day2",
                    "--anchors", anchors, "--judge", JUDGE, "--format", "json", *extra)
    assert result.exit_code in (0, EXIT_FAILED), result.output
    return result.exit_code, json.loads(result.stdout)


def check(report: dict[str, Any], metric: str) -> dict[str, Any]:
    return next(c for c in report["checks"] if c["metric"] == metric and c["segment"] == "all")


def anchor_requests(fake: OllamaFake) -> int:
    return sum(is_anchor(p) for p in fake.requests)


def test_the_first_run_stores_the_reference_and_tests_no_drift(judge_server: OllamaFake, store: Path,
                                                               anchors: Path) -> None:
    before = anchor_requests(judge_server)
    code, report = monitor(judge_server, store, anchors)
    drift = report["judge_drift"]
    assert drift["first"] and drift["drift"] is None and not drift["drifted"]
    assert "stored as the reference" in drift["message"]
    assert anchor_requests(judge_server) - before == N_ANCHORS
    # no reference, so the window's judge-score drop is the summarizer's: alerted, exit 1
    assert code == EXIT_FAILED and "judge_accurate" in {a["metric"] for a in report["alerts"]}
    assert "judge-drift" not in {a["metric"] for a in report["alerts"]}

    db = Store.open(store)
    try:
        [stored] = db.anchor_judgings()
        judging = db.anchor_judging(stored.id or 0)
    finally:
        db.close()
    assert stored.id == drift["judging"]["id"] and stored.reference_id is None and stored.drifted is None
    assert stored.judges == [JUDGE] and stored.models == {JUDGE: "llama3.1:8b"}
    assert stored.rubric == "pdsqi9-v1" and stored.judge_version.endswith(f"+{JUDGE}")
    assert stored.n_anchors == N_ANCHORS and len(judging.values) == N_ANCHORS
    assert judging.values["anchor-04"]["judge_accurate"] == 3  # 2 + 4 % 3
    assert "judge_cost_usd" not in judging.values["anchor-04"]


def test_an_unchanged_judge_is_not_drift_and_the_judge_score_drop_stays_an_alert(
        judge_server: OllamaFake, store: Path, anchors: Path) -> None:
    monitor(judge_server, store, anchors)
    before = anchor_requests(judge_server)
    code, report = monitor(judge_server, store, anchors)
    assert anchor_requests(judge_server) - before == N_ANCHORS  # judged afresh, never from the cache
    drift = report["judge_drift"]
    assert not drift["first"] and not drift["drifted"] and drift["excused"] == []
    assert drift["reference"]["id"] == 1 and drift["judging"]["reference_id"] == 1
    assert all(m["shift"] == 0 for m in drift["drift"]["metrics"])
    assert code == EXIT_FAILED
    alerted = {a["metric"] for a in report["alerts"]}
    assert "judge_accurate" in alerted and "judge-drift" not in alerted
    assert check(report, "judge_accurate")["verdict"] == "worse"


def test_a_drifted_judge_alerts_exits_1_and_excuses_the_judge_score_drop(
        judge_server: OllamaFake, store: Path, anchors: Path) -> None:
    monitor(judge_server, store, anchors)
    state["anchor_shift"] = -1  # the judge turned stricter: lower scores on the unchanged anchors
    code, report = monitor(judge_server, store, anchors)
    assert code == EXIT_FAILED
    [alert] = [a for a in report["alerts"] if a["metric"] == "judge-drift"]
    assert alert["segment"] == "anchors" and alert["difference"] < 0 and alert["p_adjusted"] < 0.05
    by_metric = {m["metric"]: m for m in alert["judge_metrics"]}
    accurate = by_metric["judge_accurate"]
    assert accurate["drifted"] and accurate["shift"] == pytest.approx(-sum(
        1 for k in range(N_ANCHORS) if k % 4 and 2 + k % 3 > 1) / N_ANCHORS)
    assert accurate["ci"][1] < 0 and accurate["p_value"] < 0.05
    assert not by_metric["judge_thorough"]["drifted"]
    # the window's judge-score drop is the judge's: excused, reported in checks, not an alert
    assert not [a for a in report["alerts"] if a["metric"].startswith("judge_")]
    excused = check(report, "judge_accurate")
    assert excused["verdict"] == "judge drift" and not excused["alert"] and EXCUSED in excused["explanation"]
    assert "judge_accurate (all)" in report["judge_drift"]["excused"]
    db = Store.open(store)
    try:
        first, second = db.anchor_judgings()
    finally:
        db.close()
    assert second.reference_id == first.id and second.drifted is True


def test_the_table_view_shows_the_drift_and_what_it_excused(judge_server: OllamaFake, store: Path,
                                                            anchors: Path) -> None:
    monitor(judge_server, store, anchors)
    state["anchor_shift"] = -1
    result = invoke(judge_server, "monitor", "--db", store, "--baseline", "day1", "--current", "day2",
                    "--anchors", anchors, "--judge", JUDGE)
    assert result.exit_code == EXIT_FAILED
    assert "judge-drift" in result.stdout and "judge drift on 20 anchors" in result.stdout
    assert "excused: judge_accurate (all)" in result.stdout
    assert "judge drift on the anchors" in result.stderr


def test_an_explicit_reference_is_used_and_another_anchor_set_is_refused(
        judge_server: OllamaFake, store: Path, anchors: Path, tmp_path: Path) -> None:
    monitor(judge_server, store, anchors)
    state["anchor_shift"] = -1
    monitor(judge_server, store, anchors)  # judging 2, drifted
    code, report = monitor(judge_server, store, anchors, "--anchor-reference", "2")
    assert report["judge_drift"]["reference"]["id"] == 2 and not report["judge_drift"]["drifted"]
    assert code == EXIT_FAILED and "judge_accurate" in {a["metric"] for a in report["alerts"]}  # not excused
    other = tmp_path / "other.jsonl"
    other.write_text(anchors.read_text().replace("lisinopril.", "metformin.", 1))
    result = invoke(judge_server, "monitor", "--db", store, "--baseline", "day1", "--current", "day2",
                    "--anchors", other, "--judge", JUDGE, "--anchor-reference", "1")
    assert result.exit_code == EXIT_ERROR and "another anchor set" in result.output


def test_invalid_judge_answers_on_the_anchors_are_an_error_and_nothing_is_stored(
        store: Path, anchors: Path) -> None:
    with local_server() as server:
        fake = OllamaFake(server, lambda payload: "I would rather not say." if is_anchor(payload)
                          else rate(payload["messages"][-1]["content"]))
        result = invoke(fake, "monitor", "--db", store, "--baseline", "day1", "--current", "day2",
                        "--anchors", anchors, "--judge", JUDGE, "--format", "json")
    assert result.exit_code == EXIT_ERROR, result.output
    assert "the judge failed on 20 of 20 anchors" in result.output and "nothing was stored" in result.output
    assert result.stdout == ""
    with sqlite3.connect(store) as db:
        assert db.execute("SELECT COUNT(*) FROM anchor_judgings").fetchone() == (0,)
        assert db.execute("SELECT COUNT(*) FROM anchor_scores").fetchone() == (0,)


def test_judge_and_reference_without_anchors_are_usage_errors(judge_server: OllamaFake, store: Path) -> None:
    result = invoke(judge_server, "monitor", "--db", store, "--baseline", "day1", "--current", "day2",
                    "--judge", JUDGE)
    assert result.exit_code == EXIT_ERROR and "give --anchors FILE too" in result.output
    trend = invoke(judge_server, "monitor", "--db", store, "--trend", "--anchors", store, "--judge", JUDGE)
    assert trend.exit_code == EXIT_ERROR and "--anchors, --judge" in trend.output


def test_anchors_and_judge_come_from_the_monitor_table_relative_to_the_config(
        judge_server: OllamaFake, store: Path, anchors: Path, tmp_path: Path) -> None:
    folder = tmp_path / "conf"
    folder.mkdir()
    shutil.copy(anchors, folder / "anchors.jsonl")
    config = folder / "monitor.toml"
    config.write_text(f'[monitor]\nanchors = "anchors.jsonl"\njudge = "{JUDGE}"\n')
    result = invoke(judge_server, "monitor", "--db", store, "--baseline", "day1", "--current", "day2",
                    "--config", config, "--format", "json")
    report = json.loads(result.stdout)
    assert report["judge_drift"]["first"] and report["judge_drift"]["anchors"] == str(folder / "anchors.jsonl")
    assert report["settings"]["judge"] == [JUDGE]


def test_only_judge_alerts_the_drift_explains_are_excused() -> None:
    def alerting(metric: str, difference: float = -0.5) -> Check:
        return Check(metric, "all", "rating", "brunner-munzel", False, 40, 40, 4.0, 4.0 + difference, difference,
                     (difference - 0.3, difference + 0.3), 0.001, p_adjusted=0.004, verdict="worse", alert=True,
                     explanation="significant")

    def drift_of(metric: str, shift: float, drifted: bool = True) -> MetricDrift:
        return MetricDrift(metric, 20, 3.0, 3.0 + shift, shift, (shift - 0.2, shift + 0.2), 0.001, 0.004, drifted)

    stricter = JudgeDrift(True, 20, [drift_of("judge_accurate", -0.75), drift_of("judge_overall", -0.1, False),
                                     drift_of("judge_errors_critical", 0.3), drift_of("judge_thorough", 0.0, False)])
    checks = [alerting("judge_accurate"), alerting("judge_overall"), alerting("judge_errors_critical", 0.2),
              alerting("concept_recall"), alerting("judge_cost_usd", 0.01), alerting("judge_thorough")]
    excused = excuse_judge_alerts(checks, stricter)
    assert [c.metric for c in excused] == ["judge_accurate", "judge_errors_critical"]
    assert all(c.verdict == "judge drift" and EXCUSED in c.explanation for c in excused)
    # not judge metrics, or a judge metric that did not drift on the anchors (judge_overall moved -0.1,
    # not significantly; judge_thorough not at all): the alerts stand, with a note
    assert [c.alert for c in checks] == [False, True, False, True, True, True]
    assert "not on this metric" in checks[1].explanation and "not on this metric" in checks[5].explanation

    # a drop larger than the judge's shift reaches (-0.75, CI down to -0.95) is not the judge's alone
    larger = [alerting("judge_accurate", -1.5)]
    assert excuse_judge_alerts(larger, stricter) == [] and larger[0].alert

    # a judge turned lenient cannot explain lower scores: that drop is the summarizer's
    lenient = JudgeDrift(True, 20, [drift_of("judge_accurate", 0.75)])
    drop = [alerting("judge_accurate"), alerting("judge_accurate@ollama:x")]
    assert excuse_judge_alerts(drop, lenient) == [] and all(c.alert for c in drop)
    jury = JudgeDrift(True, 20, [drift_of("judge_accurate@ollama:x", -0.5)])
    assert [c.metric for c in excuse_judge_alerts([alerting("judge_accurate@ollama:x")], jury)] == [
        "judge_accurate@ollama:x"]
    stable = [alerting("judge_accurate")]
    assert excuse_judge_alerts(stable, JudgeDrift(False, 20, [drift_of("judge_accurate", -0.1, False)])) == []
    assert stable[0].alert and stable[0].explanation == "significant"


# -- a real process, the Anthropic SDK against its HTTP fake -------------------------------------

FAKE_KEY = "sk-ant-fake-anchors-0123456789abcdef"


def clinsum(*args: Any, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "clinsum", *[str(a) for a in args]], cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO), "NO_COLOR": "1", **env},
                          capture_output=True, text=True, timeout=300)


def test_a_real_process_judges_the_anchors_stores_them_and_never_the_key(
        store: Path, anchors: Path, tmp_path: Path) -> None:
    keys_seen: list[str | None] = []

    def answer(request: Request) -> Response:
        keys_seen.append(request.headers.get("x-api-key") or request.headers.get("authorization", "").removeprefix(
            "Bearer "))
        body = json.loads(request.get_data())
        prompt = " ".join(part["text"] for m in body["messages"] for part in
                          (m["content"] if isinstance(m["content"], list) else [{"text": m["content"]}]))
        text = rate(prompt)
        content = ([{"type": "tool_use", "id": "toolu_1", "name": body["tools"][0]["name"], "input": json.loads(text)}]
                   if body.get("tools") else [{"type": "text", "text": text}])
        return Response(json.dumps(anthropic_message(content, model="claude-haiku-4-5-20251001")),
                        content_type="application/json")

    judge = "anthropic:claude-haiku-4-5"
    with local_server() as server:
        server.expect_request("/v1/messages", method="POST").respond_with_handler(answer)
        env = {"ANTHROPIC_API_KEY": FAKE_KEY, "ANTHROPIC_BASE_URL": server.url_for("/").rstrip("/")}
        args = ("monitor", "--db", store, "--baseline", "day1", "--current", "day2", "--anchors", anchors,
                "--judge", judge, "--format", "json")
        first = clinsum(*args, env=env)
        state["anchor_shift"] = 1  # a more lenient judge now
        second = clinsum(*args, env=env)
    assert first.returncode == EXIT_FAILED, first.stderr  # the window's judge drop, nothing to excuse it yet
    assert json.loads(first.stdout)["judge_drift"]["first"]
    assert second.returncode == EXIT_FAILED, second.stderr
    report = json.loads(second.stdout)
    alerted = {a["metric"] for a in report["alerts"]}
    assert report["judge_drift"]["drifted"] and "judge-drift" in alerted
    # the judge turned lenient on the anchors while the window's scores dropped: not excused
    assert "judge_accurate" in alerted and report["judge_drift"]["excused"] == []
    assert "not this way" in check(report, "judge_accurate")["explanation"]
    assert len(keys_seen) == 2 * N_ANCHORS and set(keys_seen) == {FAKE_KEY}
    db = Store.open(store)
    try:
        judgings = db.anchor_judgings()
    finally:
        db.close()
    assert [j.judges for j in judgings] == [[judge], [judge]]
    assert judgings[0].models == {judge: "claude-haiku-4-5-20251001"}
    stored = b"".join(p.read_bytes() for p in store.parent.iterdir() if p.name.startswith(store.name))
    assert b"anchor-19" in stored and FAKE_KEY.encode() not in stored


def test_a_real_process_with_the_judge_unreachable_exits_2_and_stores_nothing(store: Path, anchors: Path,
                                                                             tmp_path: Path) -> None:
    config = tmp_path / "once.toml"
    config.write_text("max_attempts = 1\n")
    result = clinsum("monitor", "--db", store, "--baseline", "day1", "--current", "day2", "--anchors", anchors,
                     "--judge", JUDGE, "--config", config, env={"OLLAMA_HOST": f"http://127.0.0.1:{closed_port()}"})
    assert result.returncode == EXIT_ERROR, result.stderr
    assert "the judge failed on 20 of 20 anchors" in result.stderr and "nothing was stored" in result.stderr
    with sqlite3.connect(store) as db:
        assert db.execute("SELECT COUNT(*) FROM anchor_judgings").fetchone() == (0,)


def test_a_judging_is_stored_whole_or_not_at_all(tmp_path: Path) -> None:
    from clinsum.errors import StoreWriteError
    from clinsum.records import AnchorJudging

    store = Store.open(tmp_path / "s.db")
    try:
        judging = AnchorJudging(judged_at="2026-12-02T03:00:00+00:00", anchors_hash="ab" * 32, n_anchors=2,
                                judge_version=f"pdsqi9-v1+judge-v2+{JUDGE}", judges=[JUDGE],
                                models={JUDGE: "llama3.1:8b"}, rubric="pdsqi9-v1",
                                values={"a1": {"judge_accurate": 4.0}, "a2": {"judge_accurate": 3.0}})
        first = store.add_anchor_judging(judging)
        assert store.anchor_judging(first).values == judging.values
        broken = judging.model_copy(update={"values": {"a1": {"judge_accurate": 4.0},
                                                       "a2": {"judge_accurate": float("nan")}}})
        with pytest.raises(StoreWriteError):  # SQLite stores NaN as NULL: the second value is refused
            store.add_anchor_judging(broken)
        assert [j.id for j in store.anchor_judgings()] == [first]
        assert store.db.execute("SELECT COUNT(*) FROM anchor_scores").fetchone() == (2,)
    finally:
        store.close()
