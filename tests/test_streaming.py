"""Flat memory: work is taken from its source as it is needed, never gathered whole; and a run that
keeps only hashes of its notes (``--no-store-notes``) resumes from its notes file, refusing a changed one."""

from __future__ import annotations

import json

from fakes import ScriptedProvider
from typer.testing import CliRunner

import clinsum.runner as runner_module
from clinsum.cli import app
from clinsum.cli.common import EXIT_ERROR
from clinsum.dispatch import Dispatcher
from clinsum.evaluators.aggregate import aggregate, aggregate_values
from clinsum.prompts import load_template
from clinsum.records import Note, Score
from clinsum.runner import Runner, System, through
from clinsum.store import Store


async def test_the_runner_draws_notes_only_as_the_bounded_queue_takes_them(tmp_path, monkeypatch):
    monkeypatch.setattr(runner_module, "WIDTH", 4)
    drawn = 0
    drawn_at_first_call: list[int] = []

    def notes():
        nonlocal drawn
        for i in range(100):
            drawn += 1
            yield Note(id=f"n{i}", text=f"Patient {i} denies chest pain.")

    def answer(request):
        drawn_at_first_call.append(drawn)
        return "No chest pain."

    store = Store.open(tmp_path / "s.db")
    store.create_run("r", {}, kind="run", version="0", notes=notes())
    drawn = 0
    provider = ScriptedProvider("fake:a", {"concurrency": 1}, default=answer)
    runner = Runner(store, Dispatcher(store, base_delay_s=0), [], load_template())
    await runner.generate_and_score("r", store.iter_notes("r"), [System("a", provider)], total=100)
    assert len(store.summaries("r")) == 100  # every note, none lost
    # gathering every task first would have drawn all 100 notes before the first call
    assert drawn_at_first_call[0] <= 2 * 4 + 1


async def test_through_stops_the_others_when_one_fails():
    handled: list[int] = []

    async def handle(item: int) -> None:
        if item == 3:
            raise RuntimeError("the store failed")
        handled.append(item)

    try:
        await through(iter(range(1000)), handle, width=2)
    except RuntimeError:
        pass
    else:
        raise AssertionError("the failure was not raised")
    assert len(handled) < 10  # the rest of the work was never taken


def test_the_leaderboard_from_compact_values_equals_the_one_from_scores():
    scores = [Score(note_id=f"n{i}", system=s, metric=m, value=None if i == 3 else (i * 7 % 5) / 4,
                    evaluator="e", version="1") for i in range(12) for s in ("a", "b") for m in ("x", "y")]
    assert aggregate_values((s.system, s.metric, s.value) for s in scores) == aggregate(scores)


def test_a_run_without_note_text_resumes_from_its_notes_file_and_refuses_a_changed_one(tmp_path):
    notes = tmp_path / "notes.jsonl"
    notes.write_text("".join(json.dumps({"id": f"n{i}", "text": f"Patient {i} denies chest pain."}) + "\n"
                             for i in range(3)))
    summaries = tmp_path / "s.jsonl"
    summaries.write_text("".join(json.dumps({"note_id": f"n{i}", "system": "prod", "text": "No chest pain."}) + "\n"
                                 for i in range(3)))
    db = tmp_path / "c.db"
    first = CliRunner().invoke(app, ["score", str(summaries), "--notes", str(notes), "-m", "length",
                                     "--no-store-notes", "--db", str(db)])
    assert first.exit_code == 0, first.output
    store = Store.open(db)
    run_id = store.latest_run_id()
    assert run_id is not None and not store.notes_stored(run_id)
    assert b"denies chest pain" not in db.read_bytes()
    store.db.execute("DELETE FROM scores WHERE note_id = 'n1'")  # as if stopped before n1 was scored
    store.close()

    resumed = CliRunner().invoke(app, ["score", "--resume", run_id, "--db", str(db)])
    assert resumed.exit_code == 0, resumed.output
    store = Store.open(db)
    assert {s.note_id for s in store.scores(run_id)} == {"n0", "n1", "n2"}
    store.db.execute("DELETE FROM scores WHERE note_id = 'n1'")
    store.close()

    notes.write_text(notes.read_text().replace("Patient 1 denies", "Patient 1 reports"))
    refused = CliRunner().invoke(app, ["score", "--resume", run_id, "--db", str(db)])
    assert refused.exit_code == EXIT_ERROR
    assert "'n1' is not the note the run was started with" in refused.output
