"""The statement check of ``facts``: statements whose words the source does not support, with their spans."""

from __future__ import annotations

import pytest

from clinsum.errors import ConfigError
from clinsum.evaluators.facts import FactsEvaluator, FactsOptions
from clinsum.evaluators.facts.grounding import statements_of, stem, words_of
from clinsum.records import Note, Score, Summary

pytest.importorskip("spacy")

DIALOGUE = (
    "[doctor] hi , how are you doing today ?\n"
    "[patient] um , okay , i guess . my , uh , my blood pressure has been high for , like , years .\n"
    "[doctor] are you taking anything for it ?\n"
    "[patient] yeah , lisinopril , every morning .\n"
    "[doctor] and who do you live with ?\n"
    "[patient] i live with my daughter , you know , since my wife passed .\n"
    "[doctor] okay . any trouble sleeping ?\n"
    "[patient] yeah , i wake up at night because my left knee aches .\n"
)


def scores(summary: str, source: str = DIALOGUE, **options: object) -> dict[str, Score]:
    evaluator = FactsEvaluator(FactsOptions.from_dict(options))
    found = evaluator.scores(Note(id="n", text=source), Summary(note_id="n", system="s", text=summary))
    return {s.metric: s for s in found}


def test_a_faithful_paraphrase_of_a_dialogue_is_not_flagged() -> None:
    summary = ("The patient has had high blood pressure for several years, treated with lisinopril daily. "
               "He lives with his daughter after the death of his wife. "
               "He reports waking at night due to left knee pain.")
    found = scores(summary)
    assert found["summary_statements"].value == 3
    assert found["unsupported_statements"].value == 0, found["unsupported_statements"].detail
    assert found["unsupported_statement_rate"].value == 0
    assert found["unsupported_claim_rate"].value == 0


def test_an_invented_statement_is_flagged_with_its_span_and_the_words_not_found() -> None:
    invented = "He works as a bus driver in Chicago and coaches baseball."
    summary = f"He lives with his daughter. {invented} He takes lisinopril for high blood pressure."
    found = scores(summary)
    entries = found["unsupported_statements"].detail["statements"]
    assert isinstance(entries, list) and len(entries) == 1
    entry = entries[0]
    assert (entry["start"], entry["end"]) == (summary.index(invented), summary.index(invented) + len(invented))
    assert entry["text"] == invented and entry["kind"] == "statement" and entry["reason"] == "not in the source"
    assert {"driver", "Chicago", "baseball"} <= set(entry["unmatched"])
    assert found["unsupported_statements"].value == 1
    assert found["unsupported_statement_rate"].value == pytest.approx(1 / 3)


def test_an_invented_word_inside_a_supported_statement_is_flagged_alone() -> None:
    summary = "He lives with his daughter in Anchorage since his wife passed."
    entries = scores(summary)["unsupported_statements"].detail["statements"]
    assert isinstance(entries, list)
    assert [(e["kind"], e["text"]) for e in entries] == [("content", "Anchorage")]
    start = entries[0]["start"]
    assert summary[start:entries[0]["end"]] == "Anchorage"
    source = entries[0]["source"]
    assert source is not None and source["in"] == "source" and "daughter" in source["text"]
    assert scores(summary, content_weight=None)["unsupported_statements"].value == 0


def test_fillers_speaker_tags_and_note_words_are_not_content() -> None:
    assert words_of("[patient] um , yeah , okay , you know , uh-huh .") == []
    assert words_of("The patient reports that she presents today.") == []
    spoken = words_of("Patient: I'm twenty six, P T helped.")
    assert [w.keys[0] for w in spoken] == ["n:26", "pt", "help"]
    assert stem("lives") == stem("living") == stem("lived") == stem("live")
    # a statement of fillers only is no statement; a section header neither
    found = scores("HISTORY OF PRESENT ILLNESS\nUm, okay, yeah.\nHe lives with his daughter.")
    assert found["summary_statements"].value == 1


def test_the_reference_supports_a_statement_as_the_source_does() -> None:
    summary = "Her brother donated a kidney in Toronto."
    note = Note(id="n", text=DIALOGUE, reference="Her brother donated a kidney in Toronto in 2010.")
    evaluator = FactsEvaluator()
    with_reference = {s.metric: s for s in evaluator.scores(note, Summary(note_id="n", system="s", text=summary))}
    assert with_reference["unsupported_statements"].value == 0
    assert scores(summary)["unsupported_statements"].value == 1


def test_the_claim_rate_counts_a_statement_once_for_its_words_or_a_fact_in_it() -> None:
    # supported words, unsupported number (the facts check) -> a claim, not an unsupported statement
    summary = "He lives with his daughter. His left knee aches at night for 9 years."
    found = scores(summary)
    assert found["unsupported_statements"].value == 0
    assert found["unsupported_facts"].value >= 1
    assert found["unsupported_claim_rate"].value == pytest.approx(1 / 2)


def test_statements_are_sentences_and_list_lines_without_labels_or_headers() -> None:
    text = "PLAN\n\n1. Hypertension: continue lisinopril.\n- Knee pain; ice it.\nMedical Reasoning: He is stable."
    pieces = [text[s:e] for s, e in statements_of(text)]
    assert pieces == ["Hypertension: continue lisinopril.", "Knee pain", "ice it.",
                      "Medical Reasoning: He is stable."]
    # the label's words are not the statement's: "Reasoning" is in no source
    assert scores("Medical Reasoning: He lives with his daughter.")["unsupported_statements"].value == 0


def test_an_empty_or_odd_summary_is_scored_not_rejected() -> None:
    for text in ["", "   ", "\x00\x07", "???", "1."]:
        found = scores(text)
        assert found["summary_statements"].value == 0
        assert found["unsupported_statement_rate"].value == 0


@pytest.mark.parametrize("options", [{"statement_threshold": 1.5}, {"statement_window": -1},
                                     {"statement_window": 1.5}, {"content_weight": "high"},
                                     {"statement_elsewhere": 2}, {"statement_missing": -1}])
def test_bad_statement_options_are_refused_by_name(options: dict[str, object]) -> None:
    with pytest.raises(ConfigError, match=next(iter(options))):
        FactsOptions.from_dict(options)


def test_a_concept_matches_its_other_names_and_the_claim_rate_adds_what_the_facts_see() -> None:
    source = "[doctor] any medical problems ?\n[patient] high blood pressure , and my sugar is high , the diabetes ."
    for summary in ["History of HTN and diabetes mellitus.", "History of hypertension and DM."]:
        found = scores(summary, source)
        assert found["unsupported_statements"].value == 0 and found["unsupported_claim_rate"].value == 0
    # two invented disorders: too little weight for the statement check, unsupported concepts for the facts
    found = scores("History of asthma and gout.", source)
    assert found["unsupported_statements"].value == 0
    assert found["unsupported_facts"].value == 2
    assert found["unsupported_claim_rate"].value == 1
