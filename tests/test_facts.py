"""Unsupported facts: spoken numbers, units, sides, doses, statuses; the detail a drill-down highlights."""

from __future__ import annotations

from typing import Any

import pytest

from clinsum.errors import ConfigError
from clinsum.evaluators.facts import FactsOptions, create
from clinsum.evaluators.facts.numbers import numbers_in, same_value
from clinsum.evaluators.facts.statements import facts_of
from clinsum.evaluators.registry import create as create_evaluator
from clinsum.records import Note, Score, Summary

pytest.importorskip("spacy")

DIALOGUE = """[doctor] how old are you now ?
[patient] i'm fifty two .
[doctor] and what brings you in ?
[patient] my left knee has been hurting for about two weeks .
[doctor] any chest pain ?
[patient] no .
[doctor] your blood pressure today is one thirty over eighty five and your heart rate is seventy two .
[doctor] let's start you on lisinopril twenty milligrams once a day .
[patient] okay ."""

FAITHFUL = ("52-year-old with left knee pain for 2 weeks. Denies chest pain. BP 130/85, heart rate 72. "
            "Started lisinopril 20 mg once daily.")


def value(text: str) -> list[tuple[float, ...]]:
    return [n.value for n in numbers_in(text)]


@pytest.mark.parametrize(("text", "expected"), [
    ("i'm twenty six", [(26,)]),
    ("since nineteen eighty four", [(1984,)]),
    ("a heart rate of one twenty two", [(122,)]),
    ("on january tenth two thousand nine", [(10,), (2009,)]),
    ("one hundred and five", [(105,)]),
    ("ninety eight point six", [(98.6,)]),
    ("one fifty over ninety", [(150, 90)]),
    ("a murmur three out of six", [(3, 6)]),
    ("seven and a half years", [(7.5,)]),
    ("metformin 1,000 mg", [(1000,)]),
    ("BP 120/80", [(120, 80)]),
    ("a few days ago, several weeks", []),
])
def test_numbers_are_read_as_written_and_as_spoken(text: str, expected: list[tuple[float, ...]]) -> None:
    assert value(text) == expected


def test_units_convert_within_a_dimension_and_never_across() -> None:
    two_weeks, fourteen_days, half_gram, milligrams, kilos = (
        numbers_in(t)[0] for t in ("two weeks", "14 days", "0.5 g", "500 mg", "500 kg"))
    assert two_weeks.unit is not None and two_weeks.unit.name == "week"
    assert same_value(two_weeks, fourteen_days, 0.0)
    assert same_value(half_gram, milligrams, 0.0)
    assert not same_value(milligrams, kilos, 0.0)
    assert not same_value(numbers_in("500 mg")[0], numbers_in("500 days")[0], 0.0)
    assert same_value(numbers_in("one twenty two")[0], numbers_in("122 bpm")[0], 0.0)  # speech drops units


def test_facts_carry_what_they_measure() -> None:
    text = "A 74-year-old. Blood pressure 150/90. Hemoglobin A1c is 8. Aspirin 81 mg daily. Right shoulder pain."
    facts = {(f.kind, f.text): f for f in facts_of(text, [])}
    assert ("age", "74-year") in facts
    assert facts[("measurement", "150/90")].subject == "blood pressure"
    assert facts[("measurement", "8")].subject == "hemoglobin a1c"
    sides = [f for f in facts.values() if f.kind == "laterality"]
    assert [(f.side, f.subject) for f in sides] == [("right", "shoulder")]


def test_list_numbers_and_all_right_are_not_facts() -> None:
    text = "1.  Hypertension.\n2.  Gout.\nAll right, that's right now."
    assert facts_of(text, []) == []


async def scores(summary: str, *, source: str = DIALOGUE, reference: str | None = None,
                 options: dict[str, Any] | None = None) -> dict[str, Score]:
    evaluator = create(options or {})
    result = await evaluator.evaluate(Note(id="n1", text=source, reference=reference),
                                      Summary(note_id="n1", system="sys", text=summary))
    return {s.metric: s for s in result}


def unsupported(result: dict[str, Score]) -> list[dict[str, Any]]:
    facts: list[dict[str, Any]] = result["unsupported_facts"].detail["facts"]
    return facts


async def test_a_faithful_summary_of_a_dialogue_has_no_unsupported_fact() -> None:
    result = await scores(FAITHFUL)
    assert unsupported(result) == []
    assert result["unsupported_facts"].value == 0
    assert result["unsupported_fact_rate"].value == 0
    assert result["summary_facts"].value is not None and result["summary_facts"].value >= 8


@pytest.mark.parametrize(("change", "planted", "kind", "reason", "compared"), [
    (("72", "95"), "95", "measurement", "different number", "seventy two"),
    (("52-year", "64-year"), "64-year", "age", "different number", "fifty two"),
    (("left knee", "right knee"), "right knee", "laterality", "different side", "left"),
    (("20 mg once", "40 mg once"), "40 mg once daily", "dose", "different dose", "twenty milligrams once a day"),
    (("20 mg once daily", "20 mg twice daily"), "20 mg twice daily", "dose", "different frequency",
     "twenty milligrams once a day"),
    (("Denies chest pain", "Reports chest pain"), "chest pain", "concept", "different status", "chest pain"),
    (("BP 130/85", "BP 130/85, temperature 101.5"), "101.5", "measurement", "absent", None),
])
async def test_each_planted_fabrication_is_found_with_its_span_reason_and_source(
        change: tuple[str, str], planted: str, kind: str, reason: str, compared: str | None) -> None:
    summary = FAITHFUL.replace(*change)
    assert summary != FAITHFUL
    options = {"statuses": "critical"} if reason == "different status" else {}
    facts = unsupported(await scores(summary, options=options))
    assert len(facts) == 1, facts
    (fact,) = facts
    assert summary[fact["start"]:fact["end"]] == fact["text"] == planted
    assert (fact["kind"], fact["reason"]) == (kind, reason)
    if compared is None:
        assert fact["source"] is None
    else:
        assert DIALOGUE[fact["source"]["start"]:fact["source"]["end"]] == fact["source"]["text"] == compared
        assert fact["source"]["in"] == "source"


async def test_an_invented_medication_is_absent_and_counts_in_the_rate() -> None:
    summary = FAITHFUL + " Also takes metformin 500 mg twice daily."
    result = await scores(summary)
    facts = unsupported(result)
    assert {(f["kind"], f["reason"], f["text"]) for f in facts} == {
        ("concept", "absent", "metformin"), ("dose", "absent", "500 mg twice daily")}
    total = result["summary_facts"].value
    assert total is not None
    assert result["unsupported_fact_rate"].value == pytest.approx(2 / total)
    assert result["unsupported_facts"].detail["by_reason"] == {"absent": 2}


async def test_the_reference_supports_a_fact_unless_told_not_to() -> None:
    summary = FAITHFUL + " Creatinine 1.4."
    assert len(unsupported(await scores(summary))) == 1
    assert unsupported(await scores(summary, reference="Creatinine 1.4 last week.")) == []
    off = await scores(summary, reference="Creatinine 1.4 last week.", options={"reference_supports": False})
    assert len(unsupported(off)) == 1


async def test_a_span_compared_in_the_reference_says_so() -> None:
    reference = "Creatinine 1.4 last week."
    facts = unsupported(await scores(FAITHFUL + " Creatinine 2.6.", reference=reference))
    assert [(f["reason"], f["source"]) for f in facts] == [
        ("different number", {"start": 11, "end": 14, "text": "1.4", "in": "reference"})]


async def test_tolerance_is_relative() -> None:
    summary = FAITHFUL.replace("72", "75")
    assert len(unsupported(await scores(summary, options={"tolerance": 0.0}))) == 1
    assert len(unsupported(await scores(summary, options={"tolerance": 0.03}))) == 1
    assert unsupported(await scores(summary, options={"tolerance": 0.05})) == []


async def test_status_changes_count_only_when_asked_and_coverage_still_reports_them() -> None:
    summary = FAITHFUL.replace("Denies chest pain", "Reports chest pain")
    assert unsupported(await scores(summary)) == []  # the packaged default, fitted on ACI-Bench
    flagged = unsupported(await scores(summary, options={"statuses": "all"}))
    assert [(f["reason"], f["status"], f["source"]["status"], f["source"]["in"]) for f in flagged] == [
        ("different status", "present", "negated", "source")]
    start, end = flagged[0]["source"]["start"], flagged[0]["source"]["end"]
    assert DIALOGUE[start:end] == "chest pain"


async def test_empty_summary_states_no_fact_and_a_failed_one_gets_no_score() -> None:
    result = await scores("")
    assert result["summary_facts"].value == 0 and result["unsupported_fact_rate"].value == 0
    evaluator = create({})
    failed = Summary(note_id="n1", system="sys", error="timeout")
    assert await evaluator.evaluate(Note(id="n1", text=DIALOGUE), failed) == []


def test_options_are_checked_and_change_the_version() -> None:
    with pytest.raises(ConfigError, match="unknown option"):
        create({"tolerence": 0.1})
    with pytest.raises(ConfigError, match="tolerance"):
        create({"tolerance": 2})
    with pytest.raises(ConfigError, match="concept_groups"):
        create({"concept_groups": ["disease"]})
    with pytest.raises(ConfigError, match="statuses"):
        create({"statuses": "some"})
    assert create({}).version != create({"tolerance": 0.2}).version
    assert create({}).options == FactsOptions()


def test_the_runner_builds_it_by_name() -> None:
    evaluator = create_evaluator("facts", {"tolerance": 0.1}, None)
    assert evaluator.name == "facts"


@pytest.mark.parametrize("summary", [
    "\x00\x01 ü 12/ 4/ /5 1/2/ 99999999999999999999999 mg 0.0.0 1,2,3 left right left", "one two three four five",
    "Metformin mg. Aspirin 81 mg mg daily daily q.d. b.i.d.", "ninety nine point", "over over 120 over", "½ tab",
])
async def test_messy_summaries_are_scored_not_refused(summary: str) -> None:
    result = await scores(summary)
    rate = result["unsupported_fact_rate"].value
    assert rate is not None and 0 <= rate <= 1
    for fact in unsupported(result):
        assert summary[fact["start"]:fact["end"]] == fact["text"]
