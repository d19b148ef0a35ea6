"""The packaged lexicon: artifact present and fast to load, normalisation, ids, groups, curated table."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from clinsum.concepts.terminology import (
    GROUPS,
    LEXICON_PATH,
    Concept,
    Lexicon,
    fold,
    is_acronym,
    load_lexicon,
    stem,
    token_words,
)
from clinsum.errors import ClinsumError

CURATED = Path(__file__).resolve().parents[1] / "clinsum" / "concepts" / "curated.tsv"


@pytest.fixture(scope="module")
def lexicon() -> Lexicon:
    return load_lexicon()


def key(text: str) -> str:
    """The normalised key of a phrase, tokenised exactly as extraction tokenises text."""
    from clinsum.concepts.extract import extractor

    words, _ = extractor().words(text)
    return " ".join(w.norm for w in words if w is not None)


def test_artifact_is_packaged_small_and_complete() -> None:
    # Load time is a benchmark figure (benchmarks/concepts_speed.py), never a timing assertion here.
    assert LEXICON_PATH.exists()
    assert LEXICON_PATH.stat().st_size < 5_000_000
    fresh = Lexicon.read(LEXICON_PATH)
    assert len(fresh.keys) > 80_000 and len(fresh.concepts) > 25_000
    assert fresh.known_words, "the ordinary-word list beside the lexicon was not loaded"


def test_every_concept_has_a_prefixed_id_a_name_and_one_known_group(lexicon: Lexicon) -> None:
    prefixes = {"clinsum", "mesh", "drugbank", "icd10cm", "medlineplus", "hp"}
    for concept in lexicon.concepts:
        assert concept.id.split(":", 1)[0] in prefixes, concept
        assert concept.name and concept.group in GROUPS, concept


@pytest.mark.parametrize(("name", "concept_id", "group"), [
    ("type 2 diabetes mellitus", "clinsum:t2dm", "disorder"),
    ("metformin", "drugbank:DB00331", "drug"),
    ("crohn disease", "mesh:D003424", "disorder"),
    ("tricuspid valve insufficiency", "mesh:D014262", "disorder"),
    ("postnasal drip", "icd10cm:R09.82", "finding"),
    ("difficulty swallowing", "clinsum:dysphagia", "finding"),
    ("hemoglobin a1c", "clinsum:a1c", "test"),
    ("colonoscopy", "clinsum:colonoscopy", "procedure"),
])
def test_known_names_resolve_to_stable_ids_and_groups(lexicon: Lexicon, name: str, concept_id: str,
                                                      group: str) -> None:
    concept = lexicon.concepts[lexicon.keys[key(name)]]
    assert (concept.id, concept.group) == (concept_id, group)


def test_normalisation_folds_case_accents_hyphens_possessives_and_plurals() -> None:
    assert key("Sjögren's Syndrome") == key("sjogren syndrome")
    assert key("Type-2 Diabetes") == key("type 2 diabetes")
    assert key("kidney stones") == key("kidney stone")
    assert key("injuries") == key("injury")
    assert stem("diabetes") == stem("diabetes") and stem("arthritis") == "arthritis"
    assert stem("pus") == "pus" and fold("Ménière") == "meniere"
    assert list(token_words("x-rays", 10)) == [("x", 10, 11), ("ray", 12, 16)]


def test_ordinary_words_and_junk_names_are_not_concepts(lexicon: Lexicon) -> None:
    for word in ("all", "may", "lead", "the", "combined", "mothers", "attention", "disease", "said"):
        assert key(word) not in lexicon.keys, word


def test_short_abbreviations_match_only_in_capitals(lexicon: Lexicon) -> None:
    assert lexicon.concepts[lexicon.acronyms["MI"]].id == "clinsum:mi"
    assert "mi" not in lexicon.keys and "pe" not in lexicon.keys
    assert "AIDS" in lexicon.acronyms and "aids" not in lexicon.keys  # "hearing aids"
    assert is_acronym("COPD") and is_acronym("DM2") and not is_acronym("AFib") and not is_acronym("sob")


def test_curated_table_rows_are_well_formed_and_ids_unique() -> None:
    rows = [r for r in csv.reader(
        (line for line in CURATED.read_text(encoding="utf-8").splitlines()
         if line.strip() and not line.startswith("#")), delimiter="\t")]
    ids = [r[0] for r in rows]
    assert len(rows) > 150 and len(ids) == len(set(ids))
    for row in rows:
        assert len(row) == 4 and row[0].startswith("clinsum:") and row[2] in GROUPS, row


def test_curated_rows_take_priority_over_sources(lexicon: Lexicon) -> None:
    # "hypertension" is also a MeSH heading; the curated concept keeps HTN and the long form together.
    assert lexicon.concepts[lexicon.keys["hypertension"]].id == lexicon.concepts[lexicon.acronyms["HTN"]].id


def test_written_lexicon_reads_back_identically(tmp_path: Path) -> None:
    small = Lexicon()
    small.add(Concept("clinsum:x", "X disease", "disorder"), ["x disease", "xd"], ["XD"])
    small.add(Concept("mesh:D1", "Other", "finding"), ["other thing"])
    small.meta = {"sources": "test"}
    small.finish()
    path = tmp_path / "lex.tsv.gz"
    small.write(path)
    again = Lexicon.read(path)
    assert again.keys == small.keys and again.acronyms == small.acronyms
    assert again.concepts == small.concepts and again.meta == {"sources": "test"}
    assert again.first_word_span == {"x": 2, "xd": 1, "other": 2}


def test_a_corrupt_artifact_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.tsv.gz"
    bad.write_bytes(b"not gzip at all")
    with pytest.raises(ClinsumError, match="build_lexicon"):
        Lexicon.read(bad)
