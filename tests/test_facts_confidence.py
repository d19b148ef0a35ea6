"""``unsupported_likelihood``: each statement's flags weighed by how sure they are, then one chance per summary."""

from __future__ import annotations

import pytest

from clinsum.evaluators.facts import FactsEvaluator, FactsOptions
from clinsum.evaluators.facts.confidence import COEFFICIENTS, FEATURES, likelihood, summary_likelihood
from clinsum.records import Note, Score, Summary

pytest.importorskip("spacy")

DIALOGUE = (
    "[doctor] hi , how are you doing today ?\n"
    "[patient] um , okay , i guess . my , uh , my blood pressure has been high for , like , years .\n"
    "[doctor] are you taking anything for it ?\n"
    "[patient] yeah , lisinopril , twenty milligrams every morning .\n"
    "[doctor] and who do you live with ?\n"
    "[patient] i live with my daughter , you know , since my wife passed .\n"
    "[doctor] okay . any trouble sleeping ?\n"
    "[patient] yeah , i wake up at night because my left knee aches .\n"
)


def scores(summary: str, source: str = DIALOGUE) -> dict[str, Score]:
    evaluator = FactsEvaluator(FactsOptions())
    found = evaluator.scores(Note(id="n", text=source), Summary(note_id="n", system="s", text=summary))
    return {s.metric: s for s in found}


def values(**set_: float) -> dict[str, float]:
    return {name: set_.get(name, 0.0) for name in FEATURES}


def test_a_faithful_summary_is_unlikely_to_be_unsupported() -> None:
    summary = ("He has had high blood pressure for years, treated with lisinopril 20 mg every morning. "
               "He lives with his daughter since his wife passed. He wakes at night with left knee pain.")
    found = scores(summary)
    assert found["unsupported_likelihood"].value == 0
    assert found["unsupported_likelihood"].detail["statements"] == []


def test_a_changed_dose_or_side_makes_the_summary_likely_unsupported_with_the_statement_named() -> None:
    changed = "He wakes at night with right knee pain."
    summary = f"He takes lisinopril 40 mg every morning. He lives with his daughter. {changed}"
    found = scores(summary)["unsupported_likelihood"]
    assert found.value is not None and found.value > 0.8
    entries = found.detail["statements"]
    assert isinstance(entries, list) and len(entries) == 2
    assert {(e["start"], e["end"]) for e in entries} == {(0, summary.index(".") + 1),
                                                        (summary.index(changed), len(summary))}
    assert all(0.5 < e["p"] < 1 for e in entries)


def test_a_near_certain_flag_weighs_more_than_a_weak_one() -> None:
    changed_number = likelihood(values(different=1))
    swapped_side = likelihood(values(different_side=1))
    rare_word = likelihood(values(content=1))
    half_found = likelihood(values(statement=1, statement_missing=0.6))
    nothing_found = likelihood(values(statement=1, statement_missing=1.0))
    assert rare_word < 0.5 < changed_number and rare_word < swapped_side
    assert half_found < nothing_found


def test_supported_numbers_and_sides_make_a_word_flag_less_sure() -> None:
    alone = likelihood(values(statement=1, statement_missing=0.7))
    with_supported_facts = likelihood(values(statement=1, statement_missing=0.7, supported_facts=2))
    assert with_supported_facts < alone
    assert likelihood(values(supported_facts=3)) == 0  # supported facts alone are no flag


def test_the_summary_chance_is_that_of_at_least_one_unsupported_statement() -> None:
    assert summary_likelihood([]) == 0
    assert summary_likelihood([0.5, 0.5]) == pytest.approx(0.75)
    assert summary_likelihood([0.9]) > summary_likelihood([0.3, 0.3])


def test_every_feature_has_a_coefficient() -> None:
    assert set(COEFFICIENTS) == {"intercept", *FEATURES}
