"""clinsum's concept coverage as an MLflow GenAI scorer (called as mlflow.genai.evaluate calls it)."""

from __future__ import annotations

import pytest

from clinsum.errors import ClinsumError
from clinsum.reporting.scorers import concept_coverage

NOTE = "Patient denies chest pain. History of hypertension, on lisinopril 10 mg daily."


def test_the_scorer_returns_clinsums_coverage_metrics_with_the_flip_as_rationale() -> None:
    feedback = {f.name: f for f in concept_coverage()(inputs={"note": NOTE},
                                                       outputs="Chest pain. Hypertension on lisinopril.")}
    assert feedback["critical_flips"].value == 1
    assert "chest pain" in feedback["critical_flips"].rationale.lower()
    assert feedback["concept_recall"].value < 1 and feedback["concept_support"].value < 1
    clean = {f.name: f.value for f in concept_coverage()(
        inputs={"note": NOTE}, outputs={"summary": "No chest pain. Hypertension on lisinopril 10 mg daily."})}
    assert clean["critical_flips"] == 0 and clean["concept_recall"] > feedback["concept_recall"].value


def test_the_scorer_says_what_it_could_not_find() -> None:
    with pytest.raises(ClinsumError, match="cannot find the summary"):
        concept_coverage()(inputs={"note": NOTE}, outputs={"a": 1})
