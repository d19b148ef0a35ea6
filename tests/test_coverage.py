"""Coverage evaluator: recall, support, flips, key concepts, weights, reference F1, edge cases."""

from __future__ import annotations

from typing import Any

import pytest

from clinsum.errors import ConfigError
from clinsum.evaluators.base import Evaluator
from clinsum.evaluators.coverage import (
    _extract_cached,
    compatible,
    concept_key,
    concepts_of,
    create,
    flip_severity,
)
from clinsum.records import Mention, Note, Score, Summary

SOURCE = ("He denies chest pain. He has a history of hypertension, treated with lisinopril. "
          "His mother has breast cancer. He reports a cough for two weeks. Possible pneumonia.")


def val(result: Score) -> float:
    assert result.value is not None, result.metric
    return result.value


async def scores(text: str, *, source: str = SOURCE, options: dict[str, Any] | None = None,
                 **note: Any) -> dict[str, Score]:
    evaluator = create(options or {}, None)
    result = await evaluator.evaluate(Note(id="n1", text=source, **note),
                                      Summary(note_id="n1", system="sys", text=text))
    return {s.metric: s for s in result}


async def test_denied_finding_stated_as_present_is_a_critical_flip() -> None:
    result = await scores("Patient has chest pain and hypertension on lisinopril.")
    flips = result["assertion_flips"].detail["flips"]
    chest = [f for f in flips if f["name"] == "chest pain"]
    assert chest and chest[0]["severity"] == "critical"
    assert chest[0]["source"]["assertions"] == ["negated"]
    assert chest[0]["summary"]["assertion"] == "present"
    start, end, status, text = chest[0]["source"]["spans"][0]
    assert SOURCE[start:end] == text == "chest pain" and status == "negated"
    assert val(result["critical_flips"]) >= 1
    # a flip is neither support nor recall
    assert "chest pain" in result["concept_support"].detail["flipped"]


async def test_faithful_negation_is_kept_not_flipped() -> None:
    result = await scores("No chest pain. Hypertension on lisinopril.")
    assert val(result["assertion_flips"]) == 0
    assert val(result["concept_support"]) == 1.0


async def test_relative_condition_given_to_patient_is_critical() -> None:
    result = await scores("He has breast cancer.")
    assert [f["severity"] for f in result["assertion_flips"].detail["flips"]] == ["critical"]


async def test_uncertainty_lost_is_a_major_flip() -> None:
    result = await scores("He has pneumonia.")
    assert [f["severity"] for f in result["assertion_flips"].detail["flips"]] == ["major"]


async def test_omission_lowers_recall() -> None:
    full = await scores("No chest pain. History of hypertension on lisinopril. Mother with breast cancer. "
                        "Cough for two weeks. Possible pneumonia.")
    partial = await scores("Cough for two weeks.")
    assert val(full["concept_recall"]) > val(partial["concept_recall"]) > 0
    missed = {c["name"] for c in partial["concept_recall"].detail["missed"]}
    assert "lisinopril" in {m.lower() for m in missed}


async def test_fabrication_lowers_support() -> None:
    faithful = await scores("Cough for two weeks. Hypertension on lisinopril.")
    invented = await scores("Cough for two weeks. Hypertension on lisinopril. Started metformin for diabetes.")
    assert val(faithful["concept_support"]) == 1.0
    assert val(invented["concept_support"]) < 1.0
    assert val(invented["unsupported_concepts"]) >= 2
    names = {c["name"].lower() for c in invented["unsupported_concepts"].detail["concepts"]}
    assert "metformin" in names
    assert val(invented["concept_f1"]) < val(faithful["concept_f1"])


async def test_reference_supports_a_clinical_restatement_of_the_source() -> None:
    dialogue = "Doctor: Any problems with your sugar? \nPatient: Yes, my sugar runs high, I take metformin."
    without = await scores("Diabetes, on metformin.", source=dialogue)
    with_reference = await scores("Diabetes, on metformin.", source=dialogue,
                                  reference="Type 2 diabetes mellitus on metformin.")
    assert val(without["unsupported_concepts"]) >= 1
    assert val(with_reference["unsupported_concepts"]) < val(without["unsupported_concepts"])
    assert "concept_f1_ref" in with_reference and "concept_f1_ref" not in without
    assert "concept_recall_ref" in with_reference and "concept_recall_ref" not in without


async def test_reference_f1_matches_concepts_and_status() -> None:
    reference = "No chest pain. Hypertension on lisinopril. Cough."
    same = await scores("Cough. Hypertension, lisinopril. No chest pain.", reference=reference)
    assert val(same["concept_f1_ref"]) == 1.0 and val(same["concept_recall_ref"]) == 1.0
    flipped = await scores("Cough. Hypertension, lisinopril. Chest pain.", reference=reference)
    assert 0 < val(flipped["concept_f1_ref"]) < 1.0
    assert "chest pain" in flipped["concept_recall_ref"].detail["missed"]
    blind = await scores("Cough. Hypertension, lisinopril. Chest pain.", reference=reference,
                         options={"reference_assertions": False})
    assert val(blind["concept_f1_ref"]) == 1.0


async def test_a_question_in_a_dialogue_summary_states_nothing_against_the_reference() -> None:
    dialogue = ("[doctor] any chest pain , nausea or vomiting ?\n[patient] well , i get headaches .\n"
                "[doctor] do you have a cough ?\n[patient] yes , a cough .")
    reference = "Headaches. Cough."
    result = await scores(dialogue, source=dialogue, reference=reference)
    detail = result["concept_f1_ref"].detail
    # chest pain was only asked about: neither a match nor a concept the summary wrongly adds
    assert "chest pain" in detail["asked_only"] and "chest pain" not in detail["summary_only"]
    assert "cough" in detail["matched"] and "cough" not in detail["asked_only"]
    stated = await scores("[doctor] headaches ?\n[patient] yes .\nCough. Chest pain.", source=dialogue,
                          reference=reference)
    assert "chest pain" in stated["concept_f1_ref"].detail["summary_only"]
    assert val(stated["concept_f1_ref"]) < 1.0


async def test_key_concepts_are_the_recall_target() -> None:
    source = "Knee swelling for a week. Denies fever. Started naproxen. Likes gardening."
    kept = await scores("Knee swelling, started naproxen, afebrile.", source=source,
                        key_concepts=["naproxen", "likes gardening"])
    assert kept["concept_recall"].detail["key_concepts"] == "note"
    assert val(kept["concept_recall"]) == pytest.approx(0.5)  # naproxen kept, gardening not
    both = await scores("Knee swelling, started naproxen; she likes gardening.", source=source,
                        key_concepts=["naproxen", "likes gardening"])
    assert val(both["concept_recall"]) == 1.0


async def test_key_concept_status_comes_from_the_source() -> None:
    source = "Denies fever. Knee swelling."
    flipped = await scores("Fever and knee swelling.", source=source, key_concepts=["fever"])
    assert val(flipped["concept_recall"]) == 0.0
    assert flipped["concept_recall"].detail["flips"][0]["severity"] == "critical"
    kept = await scores("No fever; knee swelling.", source=source, key_concepts=["fever"])
    assert val(kept["concept_recall"]) == 1.0


async def test_key_concept_found_by_synonym_or_not_at_all() -> None:
    source = "He reports shortness of breath at night. No fever."
    result = await scores("Denies dyspnea.", source=source, key_concepts=["dyspnea", "gout"])
    detail = result["concept_recall"].detail
    assert detail["not_in_source"] == ["gout"]  # reported, counted as a present key concept
    # "dyspnea" is absent from the source text, but its concept (shortness of breath) is there, present:
    # the summary's denial is a flip, not a recall
    assert [f["severity"] for f in detail["flips"]] == ["critical"]
    assert val(result["concept_recall"]) == 0.0


async def test_weights_change_recall() -> None:
    summary = "Hypertension. Cough."  # keeps disorders/findings, drops the drug
    default = await scores(summary)
    no_drugs = await scores(summary, options={"weights": {"drug": 0}})
    assert val(no_drugs["concept_recall"]) > val(default["concept_recall"])
    assert no_drugs["concept_recall"].version != default["concept_recall"].version


def test_bad_options_are_refused() -> None:
    with pytest.raises(ConfigError, match="unknown group"):
        create({"weights": {"vitamins": 2}}, None)
    with pytest.raises(ConfigError, match="unknown option"):
        create({"wieghts": {}}, None)
    with pytest.raises(ConfigError, match=">= 0"):
        create({"weights": {"drug": -1}}, None)


async def test_empty_summary() -> None:
    result = await scores("")
    assert val(result["concept_recall"]) == 0.0
    assert val(result["concept_support"]) == 1.0  # nothing claimed, nothing unsupported
    assert val(result["concept_f1"]) == 0.0
    assert val(result["assertion_flips"]) == 0 and val(result["unsupported_concepts"]) == 0


async def test_source_without_concepts_is_vacuously_recalled() -> None:
    result = await scores("Noncontributory.", source="The visit was short and friendly.")
    assert val(result["concept_recall"]) == 1.0
    assert "vacuously" in result["concept_recall"].detail["key_concepts"]


async def test_failed_summary_gets_no_scores() -> None:
    evaluator = create({}, None)
    failed = Summary(note_id="n1", system="sys", error="rate limited")
    assert await evaluator.evaluate(Note(id="n1", text=SOURCE), failed) == []


async def test_source_extraction_is_cached_across_systems() -> None:
    evaluator = create({}, None)
    note = Note(id="n1", text=SOURCE + " Unique sentence for the cache test.")
    await evaluator.evaluate(note, Summary(note_id="n1", system="a", text="Cough."))
    hits = _extract_cached.cache_info().hits
    await evaluator.evaluate(note, Summary(note_id="n1", system="b", text="Hypertension."))
    assert _extract_cached.cache_info().hits > hits


def test_evaluator_identity() -> None:
    evaluator = create({}, None)
    assert isinstance(evaluator, Evaluator)
    assert evaluator.name == "coverage"
    assert "+lex." in evaluator.version and "+ctx." in evaluator.version


def test_compatibility_rules() -> None:
    assert compatible("present", "historical")
    assert not compatible("present", "historical", strict_history=True)
    assert not compatible("negated", "present")
    assert not compatible("possible", "present")
    assert flip_severity({"negated"}, "present") == "critical"
    assert flip_severity({"present"}, "negated") == "critical"
    assert flip_severity({"family"}, "historical") == "critical"
    assert flip_severity({"hypothetical"}, "present") == "major"
    assert flip_severity({"present"}, "possible") == "minor"


def test_same_preferred_name_from_two_sources_is_one_concept() -> None:
    text = "essential hypertension; hypertension"
    a = Mention(start=0, end=22, text=text[0:22], concept_id="icd10cm:I10", name="Hypertension",
                group="disorder")
    b = Mention(start=24, end=36, text=text[24:36], concept_id="mesh:D006973", name="hypertension",
                group="disorder")
    assert concept_key(a) == concept_key(b)
    assert len(concepts_of(text, [a, b])) == 1
