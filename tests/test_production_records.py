"""Production records: summaries with created_at and metadata, runs with a name and tags, and the migration."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from store_schemas import store_at_schema

from clinsum.errors import InputError
from clinsum.inputs import load_summaries
from clinsum.monitoring.windows import load_window, parse_selector
from clinsum.records import Note, Summary
from clinsum.store import Store


def test_a_store_written_before_names_and_tags_migrates_and_keeps_its_runs(tmp_path):
    path = tmp_path / "old.db"
    db = store_at_schema(path, 2)
    db.execute("INSERT INTO runs (id, created_at, status, kind, config, clinsum_version) "
               "VALUES ('r0', '2025-01-01T00:00:00+00:00', 'finished', 'score', '{}', '0')")
    db.close()
    store = Store.open(path)
    [run] = store.runs()
    assert run["id"] == "r0" and run["name"] is None and run["tags"] == {}
    assert store.runs(name="anything") == []


def test_runs_are_selected_by_name_and_every_tag(tmp_path):
    store = Store.open(tmp_path / "s.db")
    note = Note(id="n", text="Denies chest pain.")
    store.create_run("a", {}, kind="score", version="0", notes=[note], name="daily", tags={"env": "prod", "site": "x"})
    store.create_run("b", {}, kind="score", version="0", notes=[note], name="daily", tags={"env": "prod"})
    store.create_run("c", {}, kind="score", version="0", notes=[note], tags={"env": "dev"})
    assert [r["id"] for r in store.runs(name="daily")] == ["b", "a"]
    assert [r["id"] for r in store.runs(tags={"env": "prod", "site": "x"})] == ["a"]
    assert [r["id"] for r in store.runs(name="daily", tags={"env": "dev"})] == []


def test_summaries_carry_created_at_and_metadata_through_file_and_store(tmp_path):
    path = tmp_path / "s.jsonl"
    path.write_text(json.dumps({"note_id": "n", "system": "production", "text": "Denies chest pain.",
                                "created_at": "2025-03-01T09:30:00+01:00",
                                "metadata": {"model_version": "v7", "site": "north"}}) + "\n")
    [summary] = load_summaries(path).records
    assert summary.created_at == datetime(2025, 3, 1, 8, 30, tzinfo=UTC)
    store = Store.open(tmp_path / "c.db")
    store.create_run("r", {}, kind="score", version="0", notes=[Note(id="n", text="Denies chest pain.",
                                                                     meta={"specialty": "cardiology"})])
    store.add_summary("r", summary)
    assert store.summaries("r") == [summary]
    inside = load_window(store, parse_selector(None, since="2025-03-01T08:00:00Z", until="2025-03-01T09:00:00Z"))
    [observation] = inside.observations
    assert observation.fields == {"specialty": "cardiology", "model_version": "v7", "site": "north",
                                  "system": "production"}
    assert observation.created_at is not None and observation.created_at.startswith("2025-03-01T08:30")
    after = load_window(store, parse_selector(None, since="2025-03-01T08:31:00+00:00"))
    assert after.observations == ()


def test_summaries_csv_reads_metadata_as_a_json_object(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text('note_id,system,text,created_at,metadata\nn,production,Fine.,2025-03-01,"{""site"": ""a""}"\n')
    [summary] = load_summaries(path).records
    assert summary.metadata == {"site": "a"} and summary.created_at == datetime(2025, 3, 1)


def test_a_bad_created_at_is_refused_with_file_line_and_field(tmp_path):
    path = tmp_path / "s.jsonl"
    good = {"note_id": "n", "system": "production", "text": "Fine."}
    path.write_text(json.dumps(good) + "\n" + json.dumps({**good, "note_id": "m", "created_at": "yesterday"}) + "\n")
    with pytest.raises(InputError, match=r"s.jsonl:2: .*created_at"):
        load_summaries(path)
    assert [s.note_id for s in load_summaries(path, skip_invalid=True).records] == ["n"]


def test_a_summary_without_created_at_is_outside_every_time_range(tmp_path):
    store = Store.open(tmp_path / "c.db")
    store.create_run("r", {}, kind="score", version="0", notes=[Note(id="n", text="Cough.")])
    store.add_summary("r", Summary(note_id="n", system="production", text="Cough."))
    assert load_window(store, parse_selector("r")).observations[0].created_at is None
    assert load_window(store, parse_selector(None, since="2000-01-01")).observations == ()
