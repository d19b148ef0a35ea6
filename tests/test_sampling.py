"""--sample / --sample-fraction / --stratify-by: sizes, proportions, reproducibility, refusals."""

from __future__ import annotations

import json
import random

import pytest
from fakes import ScriptedProvider
from typer.testing import CliRunner

from clinsum.cli import app
from clinsum.cli.common import EXIT_ERROR
from clinsum.providers import registry
from clinsum.sampling import MISSING, allocate, choose
from clinsum.store import Store

SPECIALTIES = ["cardiology"] * 12 + ["oncology"] * 6 + ["dermatology"] * 2


def pairs(values=SPECIALTIES):
    return [(f"n{i:03d}", value) for i, value in enumerate(values)]


def test_exact_sizes_from_n_and_from_a_fraction():
    assert len(choose(pairs(), size=7).note_ids) == 7
    assert len(choose(pairs(), fraction=0.25).note_ids) == 5
    assert len(choose(pairs(), fraction=0.3).note_ids) == 6
    assert len(choose(pairs(), fraction=0.01).note_ids) == 1  # at least one note
    assert len(choose(pairs(), size=500).note_ids) == 20  # never more than there are
    assert len(choose(pairs(), fraction=1.0).note_ids) == 20


def test_reproducible_given_the_seed_whatever_the_order_of_the_file():
    first = choose(pairs(), size=8, seed=3, stratify_by="specialty")
    shuffled = pairs()
    random.Random(1).shuffle(shuffled)
    assert choose(shuffled, size=8, seed=3, stratify_by="specialty").note_ids == first.note_ids
    others = {choose(pairs(), size=8, seed=seed).note_ids for seed in range(5)}
    assert len(others) > 1  # the seed changes the sample


def test_stratum_proportions_and_one_per_stratum_when_n_allows():
    sample = choose(pairs(), size=10, stratify_by="specialty")
    assert {s.value: s.sampled for s in sample.strata} == {"cardiology": 6, "oncology": 3, "dermatology": 1}
    sample = choose(pairs(["a"] * 97 + ["b"] * 2 + ["c"]), size=10, stratify_by="x")
    assert {s.value: s.sampled for s in sample.strata} == {"a": 8, "b": 1, "c": 1}
    by_id = dict(pairs())
    drawn = choose(pairs(), size=10, stratify_by="specialty")
    assert all(sum(by_id[i] == s.value for i in drawn.note_ids) == s.sampled for s in drawn.strata)


def test_fewer_notes_than_strata_go_to_the_largest_strata():
    assert allocate({"a": 5, "b": 4, "c": 3, "d": 2}, 2) == {"a": 1, "b": 1, "c": 0, "d": 0}


def test_allocation_always_adds_up_and_respects_each_stratum():
    rng = random.Random(7)
    for _ in range(300):
        sizes = {f"s{k}": rng.randint(0, 40) for k in range(rng.randint(1, 8))}
        total = sum(sizes.values())
        if not total:
            continue
        n = rng.randint(1, total)
        given = allocate(sizes, n)
        assert sum(given.values()) == n
        assert all(0 <= given[k] <= sizes[k] for k in given)
        non_empty = [k for k, v in sizes.items() if v]
        if n >= len(non_empty):
            assert all(given[k] >= 1 for k in non_empty)
        quotas = {k: n * sizes[k] / total for k in non_empty}
        if all(q >= 1 for q in quotas.values()) or n < len(non_empty):  # no minimum of one to make room for
            assert all(abs(given[k] - quotas[k]) < 1 for k in non_empty)
        else:  # the minimum of one takes seats only from strata above their quota's floor
            assert all(given[k] >= int(quotas[k]) - len(non_empty) for k in non_empty)


def test_notes_without_the_field_are_a_stratum_of_their_own():
    sample = choose(pairs(["a"] * 6 + [None] * 4), size=5, stratify_by="x")
    assert {s.value: (s.population, s.sampled) for s in sample.strata} == {"a": (6, 3), MISSING: (4, 2)}


# -- the commands -------------------------------------------------------------------


@pytest.fixture(autouse=True)
def echo_provider():
    registry.register("echo", lambda spec, options: ScriptedProvider(spec, options))


@pytest.fixture
def notes_file(tmp_path):
    path = tmp_path / "notes.jsonl"
    path.write_text("".join(json.dumps({"id": note_id, "text": f"Note {note_id}: cough, no fever.",
                                        "meta": {"specialty": value}}) + "\n"
                            for note_id, value in pairs()))
    return path


def invoke(*args: str):
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def stored_notes(db):
    store = Store.open(db)
    try:
        run_id = store.latest_run_id()
        return run_id and {n.id for n in store.notes(run_id)}, run_id and store.run(run_id)["config"]
    finally:
        store.close()


def test_run_takes_the_sample_prints_it_and_records_the_seed(tmp_path, notes_file):
    db = tmp_path / "c.db"
    result = invoke("run", "--notes", str(notes_file), "-p", "echo:m", "-m", "length", "--db", str(db),
                    "--sample", "10", "--stratify-by", "specialty", "--sample-seed", "4")
    assert result.exit_code == 0, result.output
    assert "sample: 10 of 20 notes (seed 4), stratified by specialty" in result.output
    assert "cardiology" in result.output and "6 of 12" in result.output
    ids, config = stored_notes(db)
    assert ids == choose(pairs(), size=10, seed=4, stratify_by="specialty").note_ids
    assert (config["sample"], config["sample_seed"], config["stratify_by"]) == (10, 4, "specialty")
    again = invoke("run", "--notes", str(notes_file), "-p", "echo:m", "-m", "length", "--db", str(db),
                   "--sample", "10", "--stratify-by", "specialty", "--sample-seed", "4")
    assert again.exit_code == 0 and stored_notes(db)[0] == ids


def test_score_keeps_every_summary_of_the_sampled_notes(tmp_path, notes_file):
    summaries = tmp_path / "prod.jsonl"
    summaries.write_text("".join(json.dumps({"note_id": note_id, "system": system, "text": "Cough."}) + "\n"
                                 for note_id, _ in pairs() for system in ("prod-a", "prod-b")))
    db = tmp_path / "c.db"
    result = invoke("score", str(summaries), "--notes", str(notes_file), "-m", "length", "--db", str(db),
                    "--sample-fraction", "0.25")
    assert result.exit_code == 0, result.output
    store = Store.open(db)
    run_id = store.latest_run_id()
    assert run_id is not None
    kept = store.summaries(run_id)
    store.close()
    assert len({s.note_id for s in kept}) == 5
    assert sorted(s.system for s in kept) == ["prod-a"] * 5 + ["prod-b"] * 5


@pytest.mark.parametrize("flags, message", [
    (["--sample", "0"], "sample"),
    (["--sample-fraction", "0"], "sample_fraction"),
    (["--sample-fraction", "1.5"], "sample_fraction"),
    (["--sample", "3", "--sample-fraction", "0.5"], "not both"),
    (["--stratify-by", "specialty"], "--stratify-by needs"),
    (["--sample", "3", "--stratify-by", "site"], "no note has 'site'"),
])
def test_invalid_samples_exit_2_and_run_nothing(tmp_path, notes_file, flags, message):
    db = tmp_path / "c.db"
    result = invoke("run", "--notes", str(notes_file), "-p", "echo:m", "-m", "length", "--db", str(db), *flags)
    assert result.exit_code == EXIT_ERROR, result.output
    assert message in result.output
    assert stored_notes(db) == (None, None)


def test_resume_refuses_a_sample(tmp_path, notes_file):
    result = invoke("run", "--resume", "x", "--sample", "3", "--db", str(tmp_path / "c.db"))
    assert result.exit_code == EXIT_ERROR and "--sample" in result.output
