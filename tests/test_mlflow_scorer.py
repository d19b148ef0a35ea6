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


def test_the_judge_scorer_rates_with_the_rubric_and_reports_errors_with_quotes() -> None:
    from judge_fakes import ScriptedJudge, error, verdict

    from clinsum.reporting.scorers import judge

    answer = verdict(4, errors=[error("negation_or_status", "critical", summary_quote="Chest pain",
                                      source_quote="denies chest pain")], accurate=2)
    rate = judge([ScriptedJudge("scripted:judge", [answer])])
    feedback = {f.name: f for f in rate(inputs={"note": NOTE}, outputs="Chest pain. Hypertension.")}
    assert feedback["judge_accurate"].value == 2 and feedback["judge_thorough"].value == 4
    assert feedback["judge_errors_critical"].value == 1  # both quotes are in the texts: verified
    assert "critical negation_or_status" in feedback["judge_overall"].rationale
    assert "accurate is rated 2" in feedback["judge_accurate"].rationale


def test_a_failed_judge_gives_an_error_not_a_score() -> None:
    from judge_fakes import ScriptedJudge

    from clinsum.reporting.scorers import judge

    rate = judge([ScriptedJudge("scripted:judge", ["not json", "still not json", "nope"])])
    overall = next(f for f in rate(inputs={"note": NOTE}, outputs="Chest pain.") if f.name == "judge_overall")
    assert overall.value is None and overall.error is not None
