"""Details recomputed on read instead of stored (migration 8): nothing is lost, nothing is passed off."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from store_schemas import store_at_schema

from clinsum.evaluators.coverage import CoverageEvaluator
from clinsum.evaluators.facts import FactsEvaluator
from clinsum.records import Note, Score, Summary
from clinsum.store import MIGRATIONS, Store
from clinsum.store_codec import pack_detail

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def fixture_notes(count: int = 4) -> list[Note]:
    with (FIXTURES / "aci_notes.jsonl").open(encoding="utf-8") as lines:
        rows = [json.loads(line) for line in lines][:count]
    return [Note(id=row["id"], text=row["text"], reference=row["text"][:400] if i % 2 else None)
            for i, row in enumerate(rows)]


def summaries_of(note: Note) -> list[Summary]:
    """Two systems: the first sentences, and a summary that negates what the note states."""
    sentences = [s for s in note.text.split(". ") if len(s.split()) > 3]
    return [Summary(note_id=note.id, system="lead", text=". ".join(sentences[:6]) + "."),
            Summary(note_id=note.id, system="negating", text="The patient denies " + sentences[3].lower() + ".")]


def scored_store(path: Path, *, keep_details: bool, store_notes: bool = True) -> Store:
    """Fixture notes scored by coverage and facts into a store at ``path``."""
    store = Store.open(path)
    store.keep_details = keep_details
    notes = fixture_notes()
    summaries = [s for note in notes for s in summaries_of(note)]
    store.create_run("r", {"metric_options": {}}, kind="score", version="test", notes=notes,
                     summaries=summaries, store_notes=store_notes)
    by_id = {note.id: note for note in notes}
    evaluators = [CoverageEvaluator(), FactsEvaluator()]
    with store.batched_writes():
        for summary in summaries:
            for evaluator in evaluators:
                store.add_scores("r", evaluator.scores(by_id[summary.note_id], summary))
    return store


def by_key(scores: list[Score]) -> dict[tuple[str, str, str], Score]:
    return {(s.note_id, s.system, s.metric): s for s in scores}


def test_recomputed_details_equal_the_stored_ones(tmp_path):
    full = scored_store(tmp_path / "full.db", keep_details=True)
    compact = scored_store(tmp_path / "compact.db", keep_details=False)
    stored, recomputed = by_key(full.scores("r")), by_key(compact.scores("r"))
    written = sum(len(evaluator.scores(note, summary)) for note in fixture_notes() for summary in summaries_of(note)
                  for evaluator in (CoverageEvaluator(), FactsEvaluator()))
    assert len(stored) == written > 4 * 2 * 14  # every metric of coverage and facts, of 4 notes by 2 systems
    assert recomputed == stored  # every value, version and detail, equal
    assert any(s.detail.get("missed") for s in stored.values())  # details worth comparing
    dropped = compact.db.execute("SELECT COUNT(*) FROM score_rows WHERE recompute = 1").fetchone()[0]
    assert dropped == len(stored)
    assert full.db.execute("SELECT COUNT(*) FROM score_rows WHERE recompute = 1").fetchone()[0] == 0
    # values without details are the same values, and the monitor's concept counts agree
    assert {k: s.value for k, s in by_key(compact.scores("r", details=False)).items()} == \
        {k: s.value for k, s in stored.items()}
    assert compact.source_concepts("r") == full.source_concepts("r")
    assert len(compact.source_concepts("r")) == 8


def test_a_different_lexicon_or_version_marks_the_recomputed_details(tmp_path):
    store = scored_store(tmp_path / "s.db", keep_details=False)
    before = by_key(store.scores("r"))
    store.db.execute("UPDATE detail_sources SET lexicon = 'older' WHERE evaluator = 'coverage'")
    after = by_key(store.scores("r"))
    recall = after[("acibench-valid-D2N068", "lead", "concept_recall")]
    assert recall.value == before[("acibench-valid-D2N068", "lead", "concept_recall")].value  # stored value
    assert recall.detail["scored_with"].endswith("(lexicon older)")
    assert "recomputed_with" in recall.detail
    facts = after[("acibench-valid-D2N068", "lead", "unsupported_facts")]
    assert "recomputed_with" not in facts.detail  # facts were made with this lexicon and version
    store.db.execute("DELETE FROM detail_sources")  # a source not recorded: recomputed, never left empty
    unknown = by_key(store.scores("r"))[("acibench-valid-D2N068", "lead", "concept_recall")]
    assert unknown.detail["scored_with"].endswith("(lexicon unknown)") and "recalled" in unknown.detail


def test_without_note_text_details_are_stored(tmp_path):
    store = scored_store(tmp_path / "s.db", keep_details=False, store_notes=False)
    assert store.db.execute("SELECT COUNT(*) FROM score_rows WHERE recompute = 1").fetchone()[0] == 0
    full = scored_store(tmp_path / "full.db", keep_details=True)
    assert by_key(store.scores("r")) == by_key(full.scores("r"))


def test_failures_and_judge_details_are_always_stored(tmp_path):
    store = Store.open(tmp_path / "s.db")
    note = Note(id="n", text="Patient denies chest pain.")
    store.create_run("r", {}, kind="score", version="t", notes=[note],
                     summaries=[Summary(note_id="n", system="x", text="No chest pain.")])
    failed = Score(note_id="n", system="x", metric="coverage_error", value=None, evaluator="coverage",
                   version="1", detail={"failed": True, "error": "boom"})
    judge = Score(note_id="n", system="x", metric="judge_overall", value=4.0, evaluator="judge",
                  version="1", detail={"judges": {"a:b": {"samples": [{"score": 4}]}}})
    store.add_scores("r", [failed])
    store.add_scores("r", [judge])
    assert store.db.execute("SELECT COUNT(*) FROM score_rows WHERE recompute = 1").fetchone()[0] == 0
    assert by_key(store.scores("r")) == by_key([failed, judge])
    assert store.evaluations("r") == {("n", "x", "coverage"): False, ("n", "x", "judge"): True}


def test_a_schema_7_store_migrates_with_its_scores_and_details(tmp_path):
    path = tmp_path / "old.db"
    db = store_at_schema(path, 7)
    db.execute("INSERT INTO runs (id, created_at, status, kind, config, clinsum_version) "
               "VALUES ('r', '2026-01-01', 'finished', 'score', '{}', '0')")
    scores = [Score(note_id=f"n{i}", system="x", metric=metric, value=0.25 * i, evaluator="coverage", version="3",
                    detail={"recalled": [{"name": "chest pain", "span": [i, i + 10]}]} if metric == "concept_recall"
                    else {}) for i in range(3) for metric in ("concept_recall", "concept_f1")]
    scores.append(Score(note_id="n1", system="x", metric="judge_overall", value=None, evaluator="judge",
                        version="1", detail={"failed": True, "error": "invalid answer"}))
    for s in scores:
        db.execute("INSERT INTO scores (run_id, note_id, system, evaluator, metric, value, version, failed, detail) "
                   "VALUES ('r', ?, ?, ?, ?, ?, ?, ?, ?)", (s.note_id, s.system, s.evaluator, s.metric, s.value,
                                                            s.version, int(bool(s.detail.get("failed"))),
                                                            pack_detail(s.detail)))
    db.close()

    store = Store.open(path)
    assert store.db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    assert by_key(store.scores("r")) == by_key(scores)  # details kept as they were stored
    assert store.run("r")["failed_evaluations"] == 1
    assert store.source_concepts("r") == {("n0", "x"): 1, ("n1", "x"): 1, ("n2", "x"): 1}
    store.db.execute("DELETE FROM scores WHERE note_id = 'n0'")  # the view deletes its rows
    assert {s.note_id for s in store.scores("r")} == {"n1", "n2"}


@pytest.mark.parametrize("query", [
    "SELECT n.name FROM score_rows s JOIN names n ON n.id = s.note WHERE s.run = 1 AND s.note > 0",
    "SELECT COUNT(*) FROM scores WHERE run_id = 'r' AND metric = 'empty_summary' AND value = 1",
])
def test_score_queries_use_the_key(tmp_path, query):
    store = scored_store(tmp_path / "s.db", keep_details=False)
    plan = " ".join(str(row[-1]) for row in store.db.execute("EXPLAIN QUERY PLAN " + query))
    assert "SCAN s" not in plan and "SCAN score_rows" not in plan, plan


def test_notes_and_summaries_round_trip_through_their_dictionaries(tmp_path, monkeypatch):
    from clinsum import store_codec
    from clinsum.errors import StoreError

    note = fixture_notes(1)[0].model_dump_json()
    summary = summaries_of(fixture_notes(1)[0])[0].model_dump_json()
    assert store_codec.unpack(store_codec.pack_note(note)) == note
    assert len(store_codec.pack_note(note)) < len(store_codec.pack(note))  # the dictionary pays on a visit note
    packed = store_codec.pack_summary(summary, note)
    assert store_codec.unpack_summary(packed, note) == summary
    assert len(packed) < len(store_codec.pack(summary)) / 2  # its note's words are not stored again
    with pytest.raises(StoreError, match="not in the store"):
        store_codec.unpack_summary(packed, None)
    assert store_codec.unpack_summary(store_codec.pack_summary(summary, None), None) == summary

    edited = tmp_path / "edited.zdict"
    edited.write_bytes(store_codec.NOTES_DICTIONARY.read_bytes() + b" ")
    monkeypatch.setattr(store_codec, "NOTES_DICTIONARY", edited)
    store_codec.notes_dictionary.cache_clear()
    try:
        with pytest.raises(StoreError, match="SHA-256 differs"):
            store_codec.pack_note(note)
    finally:
        store_codec.notes_dictionary.cache_clear()


def test_replace_scores_replaces_an_evaluator_and_its_jury_members_only(tmp_path):
    store = Store.open(tmp_path / "s.db")

    def judged(evaluator: str, value: float) -> Score:
        return Score(note_id="n", system="x", metric=f"{evaluator}_overall", value=value, evaluator=evaluator,
                     version="1", detail={"judges": {"a:b": {"score": value}}})

    for evaluator in ("judge", "judge:a:b", "judge:c", "judgement"):
        store.add_scores("r", [judged(evaluator, 1.0)])
    store.replace_scores("r", "n", "x", "judge", [judged("judge", 2.0)])
    assert sorted((s.evaluator, s.value) for s in store.scores("r")) == [("judge", 2.0), ("judgement", 1.0)]
    plan = " ".join(str(row[-1]) for row in store.db.execute(
        "EXPLAIN QUERY PLAN SELECT id FROM names WHERE name = 'judge' OR (name >= 'judge:' AND name < 'judge;')"))
    assert "SCAN names" not in plan, plan


def test_only_production_summaries_are_indexed_by_when_they_were_made(tmp_path):
    """An evaluation run's summaries have no ``created_at``: indexing their NULLs would cost bytes and
    answer no query; a time range over production summaries still uses the index."""
    store = Store.open(tmp_path / "s.db")
    notes = fixture_notes(2)
    evaluated = summaries_of(notes[0])
    when = datetime(2025, 3, 1, 8, tzinfo=UTC)
    made = [s.model_copy(update={"created_at": when}) for s in summaries_of(notes[1])]
    store.create_run("r", {}, kind="score", version="test", notes=notes, summaries=[*evaluated, *made])
    [(entries,)] = store.db.execute("SELECT count(*) FROM summaries INDEXED BY summaries_by_produced_at "
                                    "WHERE produced_at IS NOT NULL").fetchall()
    assert entries == len(made) > 0
    plan = " ".join(str(row[-1]) for row in store.db.execute(
        "EXPLAIN QUERY PLAN SELECT DISTINCT run_id FROM summaries WHERE produced_at IS NOT NULL "
        "AND produced_at >= '2025-03-01' AND produced_at < '2025-03-02'"))
    assert "summaries_by_produced_at" in plan, plan
    assert store.runs_with_summaries_between("2025-03-01T00:00:00Z", "2025-03-02T00:00:00Z") == ["r"]
    assert store.runs_with_summaries_between("2025-03-02T00:00:00Z", None) == []
    [(sql,)] = store.db.execute("SELECT sql FROM sqlite_schema WHERE name = 'summaries_by_produced_at'").fetchall()
    assert "WHERE produced_at IS NOT NULL" in sql


def test_recall_over_a_notes_given_key_concepts_keeps_no_source_count(tmp_path):
    """The monitor's case mix counts the concepts of the source; a recall over the key concepts a note
    was given has no such count, and the compact store must not turn that into 0 concepts."""
    stores = []
    for keep_details in (True, False):
        store = Store.open(tmp_path / f"{keep_details}.db")
        store.keep_details = keep_details
        [plain, keyed] = [n.model_copy(update={"id": f"n{i}"}) for i, n in enumerate(fixture_notes(2))]
        keyed = keyed.model_copy(update={"key_concepts": ["hypertension", "chest pain"]})
        summaries = [s for note in (plain, keyed) for s in summaries_of(note)[:1]]
        store.create_run("r", {"metric_options": {}}, kind="score", version="test", notes=[plain, keyed],
                         summaries=summaries)
        with store.batched_writes():
            for note, summary in zip((plain, keyed), summaries, strict=True):
                store.add_scores("r", CoverageEvaluator().scores(note, summary))
        stores.append(store)
    full, compact = stores
    assert compact.source_concepts("r") == full.source_concepts("r")
    assert set(compact.source_concepts("r")) == {("n0", "lead")}
