"""Concept extraction: matching, fuzzy correction, text-defined abbreviations, assertions, bad input."""

from __future__ import annotations

import threading

import pytest

from clinsum.concepts import assertion_of, extract
from clinsum.concepts.extract import CHUNK_CHARS, MAX_CHARS
from clinsum.errors import InputError
from clinsum.records import Mention


def found(text: str) -> list[tuple[str, str, str]]:
    return [(m.text, m.concept_id, m.group) for m in extract(text)]


def by_text(text: str) -> dict[str, Mention]:
    return {m.text: m for m in extract(text)}


def test_mentions_carry_exact_spans_ids_names_and_groups() -> None:
    text = "Started metformin for type 2 diabetes; colonoscopy next year."
    mentions = extract(text)
    assert [(m.text, m.concept_id, m.group) for m in mentions] == [
        ("metformin", "drugbank:DB00331", "drug"),
        ("type 2 diabetes", "clinsum:t2dm", "disorder"),
        ("colonoscopy", "clinsum:colonoscopy", "procedure"),
    ]
    for m in mentions:
        assert text[m.start:m.end] == m.text
    assert mentions[1].name == "type 2 diabetes mellitus"


def test_longest_match_wins_over_its_parts() -> None:
    assert found("History of congestive heart failure.") == [
        ("congestive heart failure", "clinsum:chf", "disorder")]
    assert found("Iron deficiency anemia on labs.")[0][0] == "Iron deficiency anemia"


def test_abbreviations_and_shorthand_map_to_the_long_form_concept() -> None:
    mentions = by_text("PMH: HTN, T2DM, CAD s/p CABG, COPD. SOB with DOE.")
    assert mentions["HTN"].concept_id == by_text("hypertension")["hypertension"].concept_id
    assert mentions["T2DM"].concept_id == "clinsum:t2dm"
    assert {mentions[k].group for k in ("CABG",)} == {"procedure"}
    assert mentions["SOB"].concept_id == "clinsum:sob" and mentions["DOE"].concept_id == "clinsum:doe"


def test_short_abbreviations_need_capitals() -> None:
    assert "MI" in by_text("Prior MI in 2019.")
    assert found("mi casa. all of them. pe class.") == []


def test_abbreviation_defined_in_the_text_takes_the_long_form_concept() -> None:
    text = ("Patients with hepatic encephalopathy (HE) were enrolled. "
            "HE resolved after lactulose.")
    mentions = [m for m in extract(text) if m.text == "HE"]
    long_form = by_text(text)["hepatic encephalopathy"]
    assert len(mentions) == 2
    assert {m.concept_id for m in mentions} == {long_form.concept_id}


def test_abbreviation_whose_long_form_ends_in_a_disorder_takes_its_head() -> None:
    text = "Levodopa-induced dyskinesia (LID) is common. LID was scored."
    lid = [m for m in extract(text) if m.text == "LID"]
    assert len(lid) == 2 and {m.group for m in lid} == {"disorder"}
    assert {m.concept_id for m in lid} == {by_text("dyskinesia")["dyskinesia"].concept_id}


def test_abbreviation_defined_as_something_else_is_not_matched_by_its_usual_sense() -> None:
    # PE usually means pulmonary embolism; here the text defines it as physical examination.
    text = "A physical examination (PE) was normal. PE was repeated."
    assert [m for m in extract(text) if m.text == "PE"] == []
    assert "PE" in by_text("CT angiogram showed a PE.")


def test_acronym_in_parentheses_after_a_concept_names_that_concept() -> None:
    # Schwartz & Hearst reject "AZT" for "zidovudine" (no Z-at-word-start); the position decides.
    text = "Patients on zidovudine (AZT) did well. AZT was stopped. BP (mmHg) was 120/80."
    mentions = extract(text)
    azt = [m for m in mentions if m.text == "AZT"]
    assert [m.concept_id for m in azt] == ["drugbank:DB00495"] * 2
    assert "mmHg" not in {m.text for m in mentions}


def test_misspellings_are_corrected_conservatively() -> None:
    assert found("Long history of diabetis.")[0][1] == "clinsum:dm"
    assert found("Admitted with pnuemonia.")[0][1] == "clinsum:pneumonia"
    # ordinary words of medical English are never "corrected" into a concept
    assert found("In conclusion, the combined protection was important.") == []
    # nor names inside a sentence, nor a prefix into its opposite (macro- is not a misspelt micro-)
    assert found("She is Filipino.") == []
    assert all(m.name != "Hypoplasia of breast" for m in extract("Symptomatic macromastia."))


def test_non_prefixed_single_word_is_not_a_mention_but_names_with_non_are() -> None:
    mentions = by_text("Abdomen soft, non-tender. Non-Hodgkin lymphoma. Tender over the knee.")
    assert "tender" not in mentions  # the one in "non-tender"
    assert mentions["Tender"].concept_id == "clinsum:tenderness"
    assert mentions["Non-Hodgkin lymphoma"].group == "disorder"


def test_plurals_and_inflections_match() -> None:
    assert found("kidney stones")[0][1] == found("kidney stone")[0][1]
    assert found("Hypertensive patients")[0][1] == "clinsum:htn"


def test_assertions_are_attached_to_every_mention() -> None:
    mentions = by_text("Denies chest pain. Mother had breast cancer. Hx of MI.")
    assert mentions["chest pain"].assertion == "negated"
    assert mentions["breast cancer"].assertion == "family"
    assert mentions["MI"].assertion == "historical"
    text = "No fever today."
    assert assertion_of(text, 3, 8) == "negated"


@pytest.mark.parametrize("text", ["", "   \n\t "])
def test_empty_text_has_no_mentions(text: str) -> None:
    assert extract(text) == []


def test_binary_junk_and_other_languages_do_not_crash() -> None:
    junk = bytes(range(256)).decode("latin-1") * 20 + "\x00\ufffd\ud7ff"
    assert isinstance(extract(junk), list)
    chinese = "患者否认胸痛。血压正常。" * 50
    assert extract(chinese) == []
    assert len(extract("Le patient se plaint de douleurs abdominales depuis deux jours.")) <= 2


def test_long_text_is_chunked_with_correct_offsets() -> None:
    paragraph = "Denies chest pain.\n" + "Routine visit for a check. " * 40 + "\n"
    text = paragraph * (2 * CHUNK_CHARS // len(paragraph) + 3)
    mentions = extract(text)
    pains = [m for m in mentions if m.concept_id == "clinsum:chest_pain"]
    assert len(pains) == text.count("chest pain")
    assert all(text[m.start:m.end] == m.text and m.assertion == "negated" for m in pains)


def test_text_over_the_cap_is_a_clear_error() -> None:
    with pytest.raises(InputError, match="at most"):
        extract("a" * (MAX_CHARS + 1))


def test_extract_is_thread_safe() -> None:
    texts = [f"Patient {i}: COPD (chronic obstructive pulmonary disease), denies fever." for i in range(8)]
    expected = [extract(t) for t in texts]
    results: dict[int, list[Mention]] = {}

    def work(i: int) -> None:
        for _ in range(5):
            results[i] = extract(texts[i])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [results[i] for i in range(8)] == expected
