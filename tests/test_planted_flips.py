"""Planted status changes cannot hide: removing a clinician note's negations raises ``critical_flips``.

ACI-Bench clinician notes (fixtures/aci_trainvalid.jsonl.gz) are scored as summaries of their own
dialogues. The untouched notes must stay almost free of critical flips (they are faithful), and
the same notes with their negations removed by ``benchmarks/planted_flips.py`` ("denies" ->
"reports", "negative for" -> "positive for", "without" -> "with", "no X" -> "X", ...) must show
more. The benchmark measures all 87 encounters (README, validation table); this test takes every
third one, a fixed subset of 29, to keep the suite fast.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCHMARK = Path(__file__).resolve().parents[1] / "benchmarks" / "planted_flips.py"


def _planted_flips() -> ModuleType:
    # "benchmarks" is also the name of an unrelated installed package, so load the script by path
    spec = importlib.util.spec_from_file_location("planted_flips", BENCHMARK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def planted() -> ModuleType:
    pytest.importorskip("spacy")
    return _planted_flips()


def test_planting_removes_negations_and_keeps_the_rest(planted: ModuleType) -> None:
    note = "He denies chest pain. Negative for fever. Walks without a cane. No edema. She does not smoke."
    changed = planted.plant(note)
    assert changed == "He reports chest pain. Positive for fever. Walks with a cane. Edema. She does smoke."
    assert planted.plant("Chest pain on exertion.") == "Chest pain on exertion."


def test_planted_negation_removals_raise_critical_flips_and_faithful_notes_stay_clean(planted: ModuleType) -> None:
    encounters = planted.load_encounters()
    assert len(encounters) == 87
    subset = encounters[::3]
    outcome = planted.measure(subset)
    assert outcome.changed >= 25  # nearly every note has a negation to remove
    assert outcome.catch_rate >= 0.9, outcome.misses
    assert outcome.false_flips_per_note <= 0.1


async def test_has_critical_flip_is_the_binary_companion_of_the_count(planted: ModuleType) -> None:
    from clinsum.evaluators.coverage import create
    from clinsum.records import Note, Summary

    dialogue = ("[doctor] any chest pain or shortness of breath ?\n[patient] no .\n"
                "[doctor] and your cough ?\n[patient] yeah , still coughing at night .")
    evaluator = create({}, None)
    for text, flips in (("Denies chest pain and shortness of breath. Reports cough.", 0),
                        ("Reports chest pain and shortness of breath. Reports cough.", 2)):
        scores = {s.metric: s for s in await evaluator.evaluate(Note(id="n", text=dialogue),
                                                                 Summary(note_id="n", system="s", text=text))}
        assert scores["critical_flips"].value == flips
        assert scores["has_critical_flip"].value == (1.0 if flips else 0.0)
