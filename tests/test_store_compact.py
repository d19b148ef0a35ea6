"""The compact store: notes once by content, packed details, and the migration from schema 4."""

from __future__ import annotations

import json

import pytest
from store_schemas import store_at_schema

from clinsum.records import Note, Score, Summary
from clinsum.store import MIGRATIONS, NotesNotStored, Store
from clinsum.store_codec import pack, unpack


def note(i: int) -> Note:
    return Note(id=f"n{i}", text=f"Patient {i} denies chest pain. " * 20, meta={"site": "a"})


def old_store(path: str) -> None:
    """A store as schema 4 wrote it: notes per run as JSON, scores with a JSON record."""
    db = store_at_schema(path, 4)
    for run_id in ("r1", "r2"):  # two runs of the same notes: stored twice before, once after
        db.execute("INSERT INTO runs (id, created_at, status, kind, config, clinsum_version) "
                   "VALUES (?, '2026-01-01', 'finished', 'score', '{}', '0')", (run_id,))
        for i in range(3):
            db.execute("INSERT INTO notes (run_id, id, position, record) VALUES (?, ?, ?, ?)",
                       (run_id, f"n{i}", i, note(i).model_dump_json()))
            summary = Summary(note_id=f"n{i}", system="x", text=f"summary {i}")
            db.execute("INSERT INTO summaries (run_id, note_id, system, ok, record, created_at) "
                       "VALUES (?, ?, 'x', 1, ?, '2026-01-01')", (run_id, f"n{i}", summary.model_dump_json()))
            scores = [Score(note_id=f"n{i}", system="x", metric="concept_recall", value=0.5, evaluator="coverage",
                            version="2", detail={"recalled": [{"name": "chest pain", "span": [20, 30]}] * 10}),
                      Score(note_id=f"n{i}", system="x", metric="judge_overall", value=None, evaluator="judge",
                            version="1", detail={"failed": True, "error": "invalid answer"} if i == 1 else {})]
            for s in scores:
                db.execute("INSERT INTO scores (run_id, note_id, system, evaluator, metric, value, version, record) "
                           "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                           (run_id, s.note_id, s.system, s.evaluator, s.metric, s.value, s.version,
                            s.model_dump_json()))
    db.close()


def test_migration_brings_a_schema_3_store_along(tmp_path):
    path = str(tmp_path / "old.db")
    old_store(path)
    store = Store.open(path)
    assert store.db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    for run_id in ("r1", "r2"):
        assert store.notes(run_id) == [note(i) for i in range(3)]
        assert [s.text for s in store.summaries(run_id)] == ["summary 0", "summary 1", "summary 2"]
        scores = store.scores(run_id)
        assert len(scores) == 6
        recall = next(s for s in scores if s.metric == "concept_recall" and s.note_id == "n2")
        assert recall.detail == {"recalled": [{"name": "chest pain", "span": [20, 30]}] * 10}
        assert store.run(run_id)["failed_evaluations"] == 1  # the failed judge of n1, found after migration
        assert store.evaluations(run_id)[("n1", "x", "judge")] is False
    assert store.db.execute("SELECT COUNT(*) FROM note_texts").fetchone()[0] == 3  # shared by both runs
    # packed details are compressed bytes, and the JSON records are gone
    (detail,) = store.db.execute("SELECT detail FROM scores WHERE metric = 'concept_recall' LIMIT 1").fetchone()
    assert isinstance(detail, bytes)
    columns = [row[1] for row in store.db.execute("PRAGMA table_info(scores)")]
    assert "record" not in columns and "failed" in columns


def test_runs_share_notes_stored_once_by_content(tmp_path):
    store = Store.open(tmp_path / "s.db")
    store.create_run("a", {}, kind="run", version="0", notes=[note(1), note(2)])
    store.create_run("b", {}, kind="run", version="0", notes=[note(2), note(3)])
    assert store.db.execute("SELECT COUNT(*) FROM note_texts").fetchone()[0] == 3
    assert store.notes("b") == [note(2), note(3)] and store.note("a", "n2") == note(2)
    changed = Note(id="n2", text="Another text altogether.")  # same id, other text: its own record
    store.create_run("c", {}, kind="run", version="0", notes=[changed])
    assert store.notes("c") == [changed] and store.notes("a")[1] == note(2)


def test_without_store_notes_only_hashes_are_kept(tmp_path):
    store = Store.open(tmp_path / "s.db")
    store.create_run("r", {}, kind="run", version="0", notes=[note(1)], store_notes=False)
    assert store.db.execute("SELECT COUNT(*) FROM note_texts").fetchone()[0] == 0
    assert "denies chest pain" not in (tmp_path / "s.db").read_bytes().decode("latin-1")
    assert not store.notes_stored("r")
    with pytest.raises(NotesNotStored, match="store_notes = false"):
        store.notes("r")
    assert set(store.note_hashes("r")) == {"n1"}


def test_scores_round_trip_packed_and_iterated_in_pages(tmp_path, monkeypatch):
    from clinsum import store_scores, store_texts

    monkeypatch.setattr(store_scores, "PAGE", 2)  # several pages from five records
    monkeypatch.setattr(store_texts, "PAGE", 2)
    store = Store.open(tmp_path / "s.db")
    notes = [note(i) for i in range(5)]
    store.create_run("r", {}, kind="score", version="0", notes=notes,
                     summaries=[Summary(note_id=n.id, system=s, text="t \ud800") for n in notes for s in "ba"])
    scores = [Score(note_id=n.id, system="a", metric="m", value=float(i), evaluator="e", version="1",
                    detail={"words": ["é"] * 40} if i % 2 else {}) for i, n in enumerate(notes)]
    for s in scores:
        store.add_scores("r", [s])
    assert list(store.iter_scores("r")) == scores == store.scores("r")
    assert [n.id for n in store.iter_notes("r")] == [n.id for n in notes]
    # a note's summaries come together, in note order; invalid Unicode is stored replaced
    assert [(s.note_id, s.system) for s in store.iter_summaries("r")] == [(n.id, s) for n in notes for s in "ab"]
    assert store.summary("r", "n3", "b") is not None and store.summary("r", "n3", "b").text == "t \ufffd"
    assert sorted(store.metric_values("r")) == sorted(("a", "m", float(i)) for i in range(5))


def test_pack_keeps_short_text_plain_and_compresses_long():
    assert pack("short") == "short"
    long = json.dumps({"recalled": ["chest pain"] * 50})
    packed = pack(long)
    assert isinstance(packed, bytes) and len(packed) < len(long) and unpack(packed) == long
