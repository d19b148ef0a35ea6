"""The periodic performance report (`clinsum report --since --until`) on six weeks of stored production.

The store (``periodic_fixture``) is made with the real CLI: `clinsum score` on fixture-derived
production summaries, a model_version change on Monday of the fourth week with negations flipped
from then on, and physician reviews imported with `clinsum feedback import`.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path

import pytest
from periodic_fixture import SINCE, UNTIL, invoke, production

from clinsum.cli.common import EXIT_ERROR, EXIT_STORE
from clinsum.monitoring.feedback import window_feedback
from clinsum.reporting import charts, periodic
from clinsum.store import Store

ROOT = Path(__file__).resolve().parents[1]


class Tables(HTMLParser):
    """Every table of a page by its class, as rows of cell texts; and the items of every list by class."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.items: dict[str, list[str]] = {}
        self._table: list[list[str]] | None = None
        self._list: list[str] | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        classes = (dict(attrs).get("class") or "").split()
        if tag == "table" and classes:
            self._table = self.tables.setdefault(classes[-1], [])
        elif tag == "ul" and classes:
            self._list = self.items.setdefault(classes[-1], [])
        elif tag == "tr" and self._table is not None:
            self._table.append([])
        elif tag in ("td", "th", "li"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._table is not None and self._cell is not None:
            self._table[-1].append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "li" and self._list is not None and self._cell is not None:
            self._list.append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "table":
            self._table = None
        elif tag == "ul":
            self._list = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def parse(path: Path) -> Tables:
    parser = Tables()
    parser.feed(path.read_text("utf-8"))
    return parser


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> tuple[Path, Path, Tables]:
    folder = tmp_path_factory.mktemp("periodic")
    html, md = folder / "period.html", folder / "period.md"
    result = invoke("report", "--since", SINCE, "--until", UNTIL, "--html", html, "--md", md,
                    "--db", production().db)
    assert result.exit_code == 0, result.output
    assert "6 windows" in result.output
    return html, md, parse(html)


def _week(moment: datetime) -> str:
    year, week, _ = moment.isocalendar()
    return f"{year}-W{week:02d}"


def test_the_version_change_is_named_with_its_date(report) -> None:
    _, md, page = report
    assert page.items["changes"] == ["2025-03-24T09:00:00+00:00: production model_version changed from v1 to v2"]
    versions = {(row[1], row[2]): row for row in page.tables["versions"][1:]}
    assert versions[("model_version", "v1")][3:] == ["2025-03-03T00:00:00+00:00", "2025-03-21T04:00:00+00:00", "51"]
    assert versions[("model_version", "v2")][3] == "2025-03-24T09:00:00+00:00"
    assert versions[("prompt_version", "p3")][5] == "102"  # unchanged all period: no change listed for it
    assert "2025-03-24T09:00:00+00:00: production `model_version` v1 → v2" in md.read_text("utf-8")


def test_the_planted_degradation_alerts_from_the_week_of_the_change_and_not_before(report) -> None:
    _, _, page = report
    alerts = page.tables["alerts"][1:]
    flagged = {row[0] for row in alerts}
    assert {"critical_flips", "has_critical_flip"} <= flagged
    assert "concept_recall" not in flagged and "words" not in flagged
    assert min(row[2] for row in alerts) == "2025-W13"  # the change's week: no alert before it
    flip_rows = [row for row in page.tables["windows"] if row and row[0] == "2025-W13" and row[-1] == "ALERT"]
    assert flip_rows, "the alerting window is marked in its metric's table"
    reference = [row for row in page.tables["windows"] if row and row[-1] == "reference"]
    assert {row[0] for row in reference} == {"2025-W10", "2025-W11", "2025-W12"}


def test_feedback_counts_and_agreement_equal_window_feedback_on_the_same_data(report) -> None:
    _, _, page = report
    store = Store.open(production().db)
    try:
        keys: dict[str, set[tuple[str, str, str]]] = {}
        runs = [production().runs["v1"], production().runs["v2"]]
        for run_id in runs:
            for s in store.summaries(run_id):
                assert s.created_at is not None
                keys.setdefault(_week(s.created_at), set()).add((run_id, s.note_id, s.system))
        ratings = store.ratings()
        scores = [item for run_id in runs for item in store.scores_by_run(run_id)]
    finally:
        store.close()
    expected = {week: window_feedback(ratings, scores, summaries=k) for week, k in keys.items()}
    expected["period"] = window_feedback(ratings, scores, summaries=set().union(*keys.values()))
    volume = {row[0]: row for row in page.tables["feedback-volume"][1:]}
    agreement = {row[0]: row for row in page.tables["agreement"][1:]}
    assert set(agreement) == set(expected) == {f"2025-W{w}" for w in range(10, 16)} | {"period"}
    for label, result in expected.items():
        flags = result["flags"]
        cells = agreement[label]
        assert cells[1:6] == [str(flags[k]) for k in ("n", "tp", "fp", "fn", "tn")]
        for column, name in zip(cells[6:10], ("precision", "recall", "f1", "accuracy"), strict=True):
            estimate = flags["statistics"][name]
            shown = charts.fmt(estimate["value"]) if estimate["value"] is not None else "–"
            assert column.split(" ")[0] == shown
            if estimate["ci"][0] is not None:
                assert f"[{charts.fmt(estimate['ci'][0])}, {charts.fmt(estimate['ci'][1])}]" in column
        assert volume[label][2] == str(result["n_reviewed"])
    for week in (f"2025-W{w}" for w in range(10, 16)):  # four summaries a week, each by both reviewers
        assert volume[week][2:4] == ["4", "2"]
    named = expected["period"]["error_categories"]["negation"]
    assert named == len({k for k in set().union(*keys.values()) if k[1] in production().flipped
                         and k[0] == production().runs["v2"]} & _reviewed(ratings))
    assert volume["period"][-1] == f"negation {named}"
    period = expected["period"]["flags"]
    assert period["tp"] > 0 and period["fp"] + period["fn"] > 0  # neither trivial nor perfect


def _reviewed(ratings) -> set[tuple[str, str, str]]:
    return {(r.run_id, r.note_id, r.system) for r in ratings}


def test_versions_name_the_provider_a_run_configured_and_every_version_key() -> None:
    from clinsum.records import Summary

    summary = Summary(note_id="n", system="fast", text="x", prompt_version="p1",
                      metadata={"model_version": "2025-03", "Deployment": "eu-1", "site": "a", "judge_version": None})
    fields = periodic.version_fields(summary, {"fast": "anthropic:claude-haiku-4-5"})
    assert fields == {"model_version": "2025-03", "Deployment": "eu-1", "prompt_version": "p1",
                      "provider:model": "anthropic:claude-haiku-4-5"}
    assert periodic.version_fields(summary.model_copy(update={"metadata": {"prompt_version": "p2"}}), {}) == {
        "prompt_version": "p2"}  # the metadata's own prompt version wins over the record's


def test_the_period_filter_excludes_summaries_outside_it(report, tmp_path) -> None:
    html, _, page = report
    text = html.read_text("utf-8")
    assert "102 summaries" in text and production().runs["outside"] not in text
    assert all(row[2] != "v0" for row in page.tables["versions"][1:])
    wider = tmp_path / "wider.html"
    result = invoke("report", "--since", "2025-02-01", "--until", "2025-05-01", "--html", wider,
                    "--db", production().db, "--reference-windows", "4")
    assert result.exit_code == 0, result.output
    assert f"{102 + production().outside} summaries" in wider.read_text("utf-8")
    assert any(row[2] == "v0" for row in parse(wider).tables["versions"][1:])
    # the runs named beside a period narrow it to them
    only = tmp_path / "v1.html"
    result = invoke("report", production().runs["v1"], "--since", SINCE, "--until", UNTIL, "--html", only,
                    "--db", production().db, "--window", "day")
    assert result.exit_code == 0, result.output
    assert "51 summaries" in only.read_text("utf-8")


def test_usage_errors_exit_2_with_a_clear_line(tmp_path) -> None:
    db = production().db
    out = tmp_path / "r.html"
    nothing = invoke("report", "--html", out, "--db", db)
    assert nothing.exit_code == EXIT_ERROR and "--since DATE --until DATE" in nothing.output
    empty = invoke("report", "--since", "2020-01-01", "--until", "2020-02-01", "--html", out, "--db", db)
    assert empty.exit_code == EXIT_ERROR and "no scored production summary" in empty.output
    nobody = invoke("report", "--since", SINCE, "--until", UNTIL, "--system", "nobody", "--html", out, "--db", db)
    assert nobody.exit_code == EXIT_ERROR and "for system nobody" in nobody.output
    half = invoke("report", "--since", SINCE, "--html", out, "--db", db)
    assert half.exit_code == EXIT_ERROR and "both --since DATE and --until DATE" in half.output
    short = invoke("report", "--since", SINCE, "--until", "2025-03-20", "--html", out, "--db", db)
    assert short.exit_code == EXIT_ERROR and "reference" in short.output
    bad_date = invoke("report", "--since", "March", "--until", UNTIL, "--html", out, "--db", db)
    assert bad_date.exit_code == EXIT_ERROR and "invalid time 'March'" in bad_date.output
    missing = invoke("report", "--since", SINCE, "--until", UNTIL, "--html", out, "--db", tmp_path / "none.db")
    assert missing.exit_code == EXIT_ERROR and not (tmp_path / "none.db").exists()
    window_alone = invoke("report", "some-run", "--window", "day", "--html", out, "--db", db)
    assert window_alone.exit_code == EXIT_ERROR and "periodic report" in window_alone.output
    assert not out.exists()


def test_html_and_md_in_two_folders_are_put_in_place_together_or_not_at_all(tmp_path) -> None:
    """The Markdown's path is a folder: its rename fails after the HTML's was done, which is undone."""
    html, md = tmp_path / "pages" / "q1.html", tmp_path / "minutes" / "q1.md"
    html.parent.mkdir()
    html.write_text("the earlier report\n")
    md.mkdir(parents=True)
    result = invoke("report", "--since", SINCE, "--until", UNTIL, "--html", html, "--md", md, "--db", production().db)
    assert result.exit_code == EXIT_STORE
    assert "cannot put the report in place" in result.output and "the earlier files are unchanged" in result.output
    assert [p.name for p in html.parent.iterdir()] == ["q1.html"]  # no temporary, no backup
    assert html.read_text() == "the earlier report\n" and list(md.iterdir()) == []

    md.rmdir()
    result = invoke("report", "--since", SINCE, "--until", UNTIL, "--html", html, "--md", md, "--db", production().db)
    assert result.exit_code == 0, result.output
    assert html.read_text("utf-8").startswith("<!DOCTYPE html>") and md.read_text("utf-8").startswith("#")


def test_the_config_file_sets_the_flag_rules_and_the_reference_period(tmp_path) -> None:
    config = tmp_path / "report.toml"
    config.write_text('[report]\nreference_windows = 2\nsummary_flag = ["critical_flips>=1"]\n'
                      'physician_flag = ["accepted<1"]\n')
    out = tmp_path / "r.html"
    result = invoke("report", "--since", SINCE, "--until", UNTIL, "--html", out, "--db", production().db,
                    "--config", config)
    assert result.exit_code == 0, result.output
    page = parse(out)
    settings = {row[0]: row[1] for row in page.tables["settings"] if len(row) == 2}
    assert settings["clinsum flag"] == "critical_flips>=1" and settings["physician flag"] == "accepted<1"
    assert settings["reference period"] == "first 2 windows (2025-W10, 2025-W11)"
    store = Store.open(production().db)
    try:
        runs = [production().runs["v1"], production().runs["v2"]]
        scores = [item for run_id in runs for item in store.scores_by_run(run_id)]
        keys = {(r, s.note_id, s.system) for r in runs for s in store.summaries(r)}
        expected = window_feedback(store.ratings(), scores, summaries=keys, summary_flag=["critical_flips>=1"],
                                   physician_flag=["accepted<1"])["flags"]
    finally:
        store.close()
    period = next(row for row in page.tables["agreement"] if row[0] == "period")
    assert period[1:6] == [str(expected[k]) for k in ("n", "tp", "fp", "fn", "tn")]
    config.write_text("[report]\nwindow = \"fortnight\"\n")
    bad = invoke("report", "--since", SINCE, "--until", UNTIL, "--html", out, "--db", production().db,
                 "--config", config)
    assert bad.exit_code == EXIT_ERROR and "window" in bad.output


def test_validity_figures_are_embedded_with_their_provenance(report) -> None:
    _, _, page = report
    packaged = periodic.validity_figures()["figures"]
    assert packaged, "clinsum/reporting/validity.json holds the validation table's figures"
    rows = {row[0]: row for row in page.tables["validity"][1:]}
    assert len(rows) == len({f["label"] for f in packaged})  # one row per label, as in the README
    for figure in packaged:
        row = rows[figure["label"]]
        assert f"{figure['part']} {figure['value']:.{figure['digits']}f}".strip() in row[1].split(" · ")
        assert row[3:] == [figure["measured"], figure["commit"], figure["command"]]
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", figure["measured"]) and figure["command"].startswith("python ")
    negation = rows["ACI-Bench findings, test, clinsum: accuracy / F1 per class"][1]
    assert negation.startswith("acc ") and " · neg " in negation


def test_validation_table_writes_each_figure_with_date_commit_and_command(tmp_path, monkeypatch) -> None:
    spec = importlib.util.spec_from_file_location("validation_table", ROOT / "benchmarks" / "validation_table.py")
    assert spec is not None and spec.loader is not None
    table = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "validation_table", table)  # dataclasses look their module up
    spec.loader.exec_module(table)
    path = tmp_path / "validity.json"
    flips, bc5cdr = (next(b for b in table.BENCHMARKS if b.name == name) for name in ("flips", "bc5cdr"))
    table.validity([flips, bc5cdr], {"flips.caught": 0.9, "flips.untouched": None, "bc5cdr.disease": 0.86}, path)
    first = {f["key"]: f for f in json.loads(path.read_text())["figures"]}
    assert set(first) == {"flips.caught", "bc5cdr.disease"}  # a figure not found is not written
    assert first["flips.caught"]["command"] == "python benchmarks/planted_flips.py"
    assert first["flips.caught"]["measured"] == datetime.now(UTC).date().isoformat()
    assert re.fullmatch(r"[0-9a-f]{12}(\+modified)?", first["flips.caught"]["commit"])
    table.validity([bc5cdr], {"bc5cdr.disease": 0.87}, path)  # a later run of one benchmark keeps the others
    second = {f["key"]: f for f in json.loads(path.read_text())["figures"]}
    assert second["bc5cdr.disease"]["value"] == 0.87 and second["flips.caught"] == first["flips.caught"]
    assert [f["key"] for f in json.loads(path.read_text())["figures"]] == ["flips.caught", "bc5cdr.disease"]
    stale = json.loads(path.read_text())
    stale["figures"].append({**first["flips.caught"], "key": "flips.retired"})
    path.write_text(json.dumps(stale))
    table.validity([bc5cdr], {"bc5cdr.disease": 0.87}, path)  # a figure the table no longer has is dropped
    assert [f["key"] for f in json.loads(path.read_text())["figures"]] == ["flips.caught", "bc5cdr.disease"]


def test_hostile_version_text_is_escaped_everywhere(tmp_path) -> None:
    notes = tmp_path / "notes.jsonl"
    notes.write_text("".join(json.dumps({"id": f"n{i}", "text": f"Patient denies fever. Takes aspirin {i} mg."})
                             + "\n" for i in range(12)))
    hostile = '</style></script><script>alert(1)</script>"; background: url(http://198.51.100.7/x)'
    rows = [{"note_id": f"n{i}", "system": "production", "text": f"No fever. Aspirin {i} mg.",
             "created_at": f"2025-03-{1 + i:02d}T10:00:00Z", "metadata": {"model_version": hostile}}
            for i in range(12)]
    summaries = tmp_path / "s.jsonl"
    summaries.write_text("".join(json.dumps(r) + "\n" for r in rows))
    db = tmp_path / "h.db"
    assert invoke("score", summaries, "--notes", notes, "-e", "length", "--db", db).exit_code == 0
    out, md = tmp_path / "h.html", tmp_path / "h.md"
    result = invoke("report", "--since", "2025-03-01", "--until", "2025-03-13", "--window", "day",
                    "--html", out, "--md", md, "--db", db)
    assert result.exit_code == 0, result.output
    text = out.read_text("utf-8")
    assert "<script>alert(1)</script>" not in text and "&lt;/script&gt;&lt;script&gt;" in text
    assert text.count("<script") == 1  # the page's own script only
    assert "<script>" not in md.read_text("utf-8")


def test_css_string_keeps_text_inside_its_quotes() -> None:
    assert periodic.css_string('a"b\\c}\n') == '"a\\22 b\\5c c\\7d \\a "'


def test_anchor_judgings_made_in_the_period_show_the_judges_shift(tmp_path) -> None:
    import shutil

    from clinsum.records import AnchorJudging

    db = tmp_path / "anchors.db"
    shutil.copy(production().db, db)
    store = Store.open(db)
    try:
        common = {"anchors_hash": "h", "n_anchors": 2, "judge_version": "j1", "judges": ["ollama:llama3.1:8b"],
                  "rubric": "pdsqi-9"}
        reference = store.add_anchor_judging(AnchorJudging(
            judged_at="2025-03-04T06:00:00+00:00",
            values={"a1": {"judge_accurate": 4.0, "judge_cost_usd": 0.1}, "a2": {"judge_accurate": 5.0}}, **common))
        store.add_anchor_judging(AnchorJudging(
            judged_at="2025-03-25T06:00:00+00:00", reference_id=reference, drifted=True,
            values={"a1": {"judge_accurate": 3.0, "judge_cost_usd": 0.1}, "a2": {"judge_accurate": 3.5}}, **common))
        store.add_anchor_judging(AnchorJudging(judged_at="2025-05-01T06:00:00+00:00", reference_id=reference,
                                               drifted=False, values={"a1": {"judge_accurate": 4.0}}, **common))
    finally:
        store.close()
    out = tmp_path / "a.html"
    assert invoke("report", "--since", SINCE, "--until", UNTIL, "--html", out, "--db", db).exit_code == 0
    rows = parse(out).tables["anchors"][1:]
    assert [row[0] for row in rows] == ["2025-03-04T06:00:00+00:00", "2025-03-25T06:00:00+00:00"]  # May is outside
    assert rows[0][3] == "– (this is a reference)" and rows[0][5] == "–"
    assert rows[1][3] == "2025-03-04T06:00:00+00:00" and rows[1][4] == "judge_accurate -1.25" and rows[1][5] == "yes"


def test_a_rating_tied_to_no_run_counts_only_where_the_whole_store_holds_one_such_summary(tmp_path) -> None:
    """A rating from before ratings named their run is joined as the monitor joins it: when one run of the
    whole store holds its note and system. Here run v1 (the report's) and v2 and the run outside the
    period hold that note: the rating may be of any of them, so it counts for none."""
    import shutil

    from clinsum.records import Rating

    db = tmp_path / "copy.db"
    shutil.copy(production().db, db)
    store = Store.open(db)
    try:
        [first] = [s for s in store.summaries(production().runs["outside"])][:1]
        store.add_ratings([Rating(note_id=first.note_id, system=first.system, rater="dr-untied",
                                  dimension="accepted", value=0.0)], "test")
    finally:
        store.close()
    html = tmp_path / "v1.html"
    result = invoke("report", production().runs["v1"], "--since", SINCE, "--until", UNTIL, "--html", html,
                    "--db", db, "--window", "day")
    assert result.exit_code == 0, result.output
    volume = {row[0]: row for row in parse(html).tables["feedback-volume"][1:]}
    assert volume["period"][3] == "2", volume["period"]  # dr-a and dr-b; not dr-untied
