"""``clinsum report``: what the HTML and Markdown contain, how evidence is placed, and the command."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import pytest
from report_fixture import FLIPPED_NOTE, fixture_store
from typer.testing import CliRunner

from clinsum import evaluation
from clinsum.cli import app
from clinsum.cli.common import EXIT_ERROR
from clinsum.config import RunConfig
from clinsum.evaluators.aggregate import PairedDifference, Row
from clinsum.records import Mention, Note, Score, Summary
from clinsum.reporting import content, evidence, html, markdown, tables
from clinsum.reporting.content import ReportError
from clinsum.store import Store


def _data(page: str) -> dict:
    raw = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', page, re.S)
    assert raw is not None
    return json.loads(raw.group(1))


def _score_run(db: Path, notes: list[Note], summaries: list[Summary]) -> str:
    store = Store.open(db)
    try:
        return asyncio.run(evaluation.score(RunConfig(metrics=["length"]), store, notes, summaries))
    finally:
        store.close()


def _load(db: Path, run_ids: list[str]) -> content.Content:
    store = Store.open(db)
    try:
        return content.load(store, run_ids)
    finally:
        store.close()


# -- content -------------------------------------------------------------------------------------

def test_a_system_in_two_runs_gets_two_labels_and_a_note_with_two_texts_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    note = Note(id="n1", text="Denies chest pain.")
    first = _score_run(db, [note], [Summary(note_id="n1", system="prod", text="No chest pain.")])
    second = _score_run(db, [note], [Summary(note_id="n1", system="prod", text="Chest pain.")])
    loaded = _load(db, [first, second])
    assert loaded.systems == [f"prod ({first})", f"prod ({second})"]
    assert {s.system for s in loaded.scores} == set(loaded.systems)

    other = _score_run(db, [Note(id="n1", text="Another text.")], [Summary(note_id="n1", system="x", text="t")])
    with pytest.raises(ReportError, match="note 'n1' has a different text"):
        _load(db, [first, other])


# -- tables --------------------------------------------------------------------------------------

def _row(system: str, metric: str, mean: float) -> Row:
    return Row(system, metric, 10, mean, mean - 0.1, mean + 0.1)


def test_best_follows_each_metric_declared_direction() -> None:
    assert tables.best_systems("concept_recall", {"a": _row("a", "concept_recall", 0.8),
                                                  "b": _row("b", "concept_recall", 0.6)}) == {"a"}
    assert tables.best_systems("critical_flips", {"a": _row("a", "critical_flips", 0.8),
                                                  "b": _row("b", "critical_flips", 0.6)}) == {"b"}
    assert tables.best_systems("summary_words", {"a": _row("a", "summary_words", 80),
                                                 "b": _row("b", "summary_words", 60)}) == frozenset()


def test_a_verdict_is_given_only_when_the_paired_interval_excludes_zero() -> None:
    lower_better = PairedDifference("critical_flips", "a", "b", 20, 0.3, 0.1, 0.5)
    assert tables.verdict(lower_better, "lower") == ("b better", "b")
    higher_better = PairedDifference("concept_recall", "a", "b", 20, 0.3, 0.1, 0.5)
    assert tables.verdict(higher_better, "higher") == ("a better", "a")
    straddles = PairedDifference("concept_recall", "a", "b", 20, 0.1, -0.1, 0.3)
    assert tables.verdict(straddles, "higher") == ("no certain difference", None)
    few = PairedDifference("concept_recall", "a", "b", 2, 0.3, 0.1, 0.5)
    assert tables.verdict(few, "higher") == ("too few notes in common (2) for a verdict", None)


# -- evidence ------------------------------------------------------------------------------------

def test_quotes_are_found_across_case_punctuation_and_ellipses() -> None:
    text = "Patient DENIES chest-pain.\nTakes  Metformin 500 mg daily."
    assert [text[s:e] for s, e in evidence.locate_quote("denies chest pain", text)] == ["DENIES chest-pain"]
    spans = evidence.locate_quote("chest pain ... metformin 500", text)
    assert [text[s:e] for s, e in spans] == ["chest-pain", "Metformin 500"]
    assert evidence.locate_quote("aspirin", text) == []


def _mention(text: str, word: str, name: str, assertion: str = "present") -> Mention:
    start = text.index(word)
    return Mention(start=start, end=start + len(word), text=word, concept_id=f"x:{name}", name=name,
                   group="finding", assertion=assertion)  # type: ignore[arg-type]


def test_a_span_that_is_missing_or_does_not_fit_is_recomputed_with_the_extractor() -> None:
    source_text = "No fever. Cough for three days."
    summary_text = "Fever and cough."
    calls: list[str] = []

    def extract(text: str) -> list[Mention]:
        calls.append(text)
        if text == source_text:
            return [_mention(text, "fever", "fever", "negated"), _mention(text, "Cough", "cough")]
        return [_mention(text, "Fever", "fever"), _mention(text, "cough", "cough")]

    scores = {
        "concept_recall": Score(note_id="n", system="s", metric="concept_recall", value=0.5, evaluator="coverage",
                                version="2", detail={"recalled": [{"name": "cough"}],  # no span: recomputed
                                                     "missed": []}),
        "concept_support": Score(note_id="n", system="s", metric="concept_support", value=0.5,
                                 evaluator="coverage", version="2",
                                 detail={"supported": [{"name": "cough", "span": [0, 5], "text": "cough"}],
                                         "unsupported": []}),  # span does not fit the text: recomputed
        "assertion_flips": Score(note_id="n", system="s", metric="assertion_flips", value=1, evaluator="coverage",
                                 version="2", detail={"flips": [{
                                     "name": "fever", "severity": "critical",
                                     # the second span points into another text (the reference): dropped
                                     "source": {"assertions": ["negated"], "spans": [[3, 8, "negated"], [20, 25, "x"]]},
                                     "summary": {"assertion": "present", "span": [0, 5], "text": "Fever"}}]}),
    }
    found = evidence.Evidence()
    evidence.concept_evidence(evidence.Placer(source_text, extract), evidence.Placer(summary_text, extract),
                              scores, found)
    assert [(source_text[s:e], k) for s, e, k, _ in found.source] == [("Cough", "captured"), ("fever", "flipped")]
    assert [(summary_text[s:e], k) for s, e, k, _ in found.summary] == [("cough", "captured"), ("Fever", "flipped")]
    assert found.unplaced == 0
    assert calls.count(source_text) == 1  # extracted once per text

    without = evidence.Evidence()
    evidence.concept_evidence(evidence.Placer(source_text, None), evidence.Placer(summary_text, None), scores, without)
    assert without.unplaced == 3  # no extractor: nothing guessed, each unplaced concept counted
    assert [k for *_, k, _ in without.summary] == ["flipped"]


# -- the HTML and Markdown of the fixtures run -------------------------------------------------------

@pytest.fixture(scope="module")
def fixtures_content() -> content.Content:
    db, run_ids = fixture_store()
    return _load(db, run_ids)


def test_html_embeds_every_note_and_the_evidence_of_the_flip(fixtures_content: content.Content) -> None:
    page = html.render(fixtures_content)
    data = _data(page)
    assert [n["id"] for n in data["notes"]] == [n.id for n in fixtures_content.notes]
    assert sorted(data["systems"]) == ["extractive:centroid", "extractive:lead", "production"]
    flipped = next(n for n in data["notes"] if n["id"] == FLIPPED_NOTE)["sys"]["production"]
    note = next(n for n in fixtures_content.notes if n.id == FLIPPED_NOTE)
    assert [flipped["text"][s:e] for s, e, k, _ in flipped["hm"] if k == "flipped"] == ["shortness of breath"]
    assert {note.text[s:e].lower() for s, e, k, _ in flipped["hs"] if k == "flipped"} == {"shortness of breath"}
    assert flipped["m"]["critical_flips"] == 1
    assert flipped["r"][0][:3] == ["dr-a", "accurate", 1.0]
    lead = next(n for n in data["notes"] if n["id"] == FLIPPED_NOTE)["sys"]["extractive:lead"]
    assert lead["je"][0]["severity"] == "critical" and lead["je"][0]["located"]["summary"]
    # the failed production summary and its error are listed
    assert "provider timed out after 3 attempts" in page
    # directions come from the metric declarations
    header = {m["name"]: m["direction"] for m in data["metrics"]}
    assert header["critical_flips"] == "lower" and header["concept_recall"] == "higher"
    assert header["summary_words"] == "neutral"


def test_html_is_self_contained_and_its_csp_admits_only_its_own_script(fixtures_content: content.Content) -> None:
    page = html.render(fixtures_content)
    assert not re.search(r'(src|href)="(https?:)?//', page)
    policy = re.search(r'Content-Security-Policy" content="([^"]+)"', page)
    assert policy is not None and "default-src 'none'" in policy.group(1)
    script = re.findall(r"<script>(.*?)</script>", page, re.S)
    assert len(script) == 1 and html.csp_hash(script[0]) in policy.group(1)


def test_note_text_is_escaped_in_the_page(tmp_path: Path) -> None:
    hostile = '</script><img src=x onerror=alert(1)>'
    db = tmp_path / "h.db"
    run_id = _score_run(db, [Note(id="<b>id</b>", text=f"Denies fever. {hostile}")],
                        [Summary(note_id="<b>id</b>", system="<i>s</i>", text=hostile)])
    page = html.render(_load(db, [run_id]), use_extractor=False)
    assert hostile not in page and "<i>s</i>" not in page and "<b>id</b>" not in page
    assert _data(page)["notes"][0]["text"].endswith(hostile)  # the data survives, as data


def test_markdown_has_the_leaderboard_and_the_certain_verdicts(fixtures_content: content.Content) -> None:
    text = markdown.render(fixtures_content)
    assert "| concept_recall | ↑ |" in text and "| critical_flips | ↓ |" in text
    assert "extractive:centroid better" in text  # centroid keeps more concepts than lead on these notes
    assert "production / acibench-valid-D2N069: provider timed out" in text


def test_markdown_cells_cannot_break_the_table() -> None:
    assert str(markdown.cell("a|b\nc <x>")) == "a\\|b c &lt;x&gt;"


# -- the command ----------------------------------------------------------------------------------

def test_report_command_writes_both_files_and_refuses_an_unknown_run(tmp_path: Path) -> None:
    db, run_ids = fixture_store()
    runner = CliRunner()
    result = runner.invoke(app, ["report", *run_ids, "--db", str(db), "--html", str(tmp_path / "r.html"),
                                 "--md", str(tmp_path / "r.md")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "r.html").read_text().startswith("<!DOCTYPE html>")
    assert "## clinsum report" in (tmp_path / "r.md").read_text()
    unknown = runner.invoke(app, ["report", "nope", "--db", str(db), "--html", str(tmp_path / "x.html")])
    assert unknown.exit_code == EXIT_ERROR and "no run 'nope'" in unknown.output
    assert not (tmp_path / "x.html").exists()
    nothing = runner.invoke(app, ["report", run_ids[0], "--db", str(db)])
    assert nothing.exit_code == EXIT_ERROR
    unknown_metric = runner.invoke(app, ["report", run_ids[0], "--db", str(db), "--md", str(tmp_path / "m.md"),
                                         "--sort-by", "concept_recal"])
    assert unknown_metric.exit_code == EXIT_ERROR and "no such metric" in unknown_metric.output


def test_a_markdown_that_fails_to_render_leaves_the_earlier_html_and_md_whole(tmp_path: Path, monkeypatch) -> None:
    db, run_ids = fixture_store()
    html_path, md_path = tmp_path / "pages" / "r.html", tmp_path / "notes" / "r.md"
    for path in (html_path, md_path):
        path.parent.mkdir()
        path.write_text(f"earlier {path.name}\n")

    def broken(*args: object, **kwargs: object) -> str:
        raise RuntimeError("a template error")

    monkeypatch.setattr(markdown, "render", broken)
    result = CliRunner().invoke(app, ["report", *run_ids, "--db", str(db), "--html", str(html_path),
                                      "--md", str(md_path)])
    assert isinstance(result.exception, RuntimeError)
    assert [p.name for p in html_path.parent.iterdir()] == ["r.html"]  # the HTML, rendered first, not written
    assert html_path.read_text() == "earlier r.html\n" and md_path.read_text() == "earlier r.md\n"


def test_html_and_md_on_one_path_are_refused_before_anything_is_written(tmp_path: Path) -> None:
    db, run_ids = fixture_store()
    (tmp_path / "r").write_text("earlier\n")
    result = CliRunner().invoke(app, ["report", run_ids[0], "--db", str(db), "--html", str(tmp_path / "r"),
                                      "--md", str(tmp_path / "." / "r")])
    assert result.exit_code == EXIT_ERROR and "--html and --md name the same file" in result.output
    assert (tmp_path / "r").read_text() == "earlier\n"


def test_report_and_export_help_import_no_heavy_library() -> None:
    import subprocess
    import sys

    code = ("import sys; from typer.testing import CliRunner; from clinsum.cli import app; "
            "CliRunner().invoke(app, ['report', '--help']); CliRunner().invoke(app, ['export', '--help']); "
            "print([m for m in sys.modules if m.split('.')[0] in "
            "('jinja2', 'mlflow', 'pyarrow', 'numpy', 'spacy', 'playwright')])")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_unsupported_facts_are_highlighted_in_the_summary_where_their_span_fits() -> None:
    summary_text = "Metformin 500 mg twice daily. Left knee."
    facts = Score(note_id="n", system="s", metric="unsupported_facts", value=2, evaluator="facts", version="1",
                  detail={"facts": [
                      {"start": 10, "end": 16, "text": "500 mg", "kind": "dose", "reason": "different dose"},
                      {"start": 30, "end": 34, "text": "Right", "kind": "side", "reason": "stale span"}]})
    found = evidence.Evidence()
    evidence.fact_evidence(evidence.Placer(summary_text, None), {"unsupported_facts": facts}, found)
    assert [(summary_text[s:e], k, t) for s, e, k, t in found.summary] == [
        ("500 mg", "unsupported", "unsupported fact (dose): different dose")]
    assert found.unplaced == 1
