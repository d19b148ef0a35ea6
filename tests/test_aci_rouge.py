"""ROUGE as clinsum computes it reproduces the published ACI-Bench table.

fixtures/aci_test1 holds the predictions of the 20 ACI-Bench baseline systems
that have a prediction file, the 40 references of test set 1 and the paper's
table (Yim et al. 2023, CC BY 4.0; see fixtures/README.md). Every ROUGE-1,
ROUGE-2 and ROUGE-L (= rougeLsum) cell of the full-note section (``ALL``) is
recomputed through the overlap evaluator and the aggregator's mean.

Agreement criterion: our mean x 100, rounded to two decimals, equals the
published two-decimal value exactly (so |ours x 100 - published| <= 0.005).
"""

from __future__ import annotations

import asyncio
import csv
import gzip
import json
import random
from pathlib import Path

import pytest
from rouge_score import rouge_scorer

from clinsum.errors import ConfigError
from clinsum.evaluators.aggregate import aggregate
from clinsum.evaluators.overlap import (
    LengthEvaluator,
    OverlapEvaluator,
    create_length,
    create_overlap,
    rouge,
    summary_level_lcs,
)
from clinsum.records import Note, Summary

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "aci_test1"
COLUMNS = {"rouge1": "ROUGE-1", "rouge2": "ROUGE-2", "rougeLsum": "ROUGE-L(=rougeLsum)"}


def _notes() -> dict[str, Note]:
    notes = {}
    with (FIXTURE / "references.jsonl").open(encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            # The dialogue is not kept in the fixture; ROUGE reads only the reference.
            notes[row["id"]] = Note(id=row["id"], text="(dialogue not kept in this fixture)",
                                    reference=row["reference"], meta={"subset": row["subset"]})
    return notes


def _systems() -> dict[str, str]:
    """Prediction file -> the system's name in the published table."""
    with (FIXTURE / "systems.csv").open(encoding="utf-8") as f:
        return {row["prediction_file"]: row["table_model"] for row in csv.DictReader(f)}


def _summaries(file: str, system: str) -> list[Summary]:
    with gzip.open(FIXTURE / "predictions" / f"{file}.gz", "rt", encoding="utf-8") as f:
        return [Summary(note_id=row["id"], system=system, text=row["prediction"])
                for row in map(json.loads, f)]


def _published() -> dict[str, dict[str, float]]:
    with (FIXTURE / "published_table.csv").open(encoding="utf-8") as f:
        return {row["model"]: {metric: float(row[column]) for metric, column in COLUMNS.items()}
                for row in csv.DictReader(f) if row["section"] == "ALL"}


async def test_every_rouge_cell_of_the_published_all_section_is_reproduced() -> None:
    notes, systems, published = _notes(), _systems(), _published()
    assert len(notes) == 40 and len(systems) == 20
    evaluator = create_overlap({}, None)
    summaries = [s for file, system in systems.items() for s in _summaries(file, system)]
    assert len(summaries) == 20 * 40
    results = await asyncio.gather(*(evaluator.evaluate(notes[s.note_id], s) for s in summaries))
    rows = aggregate([score for scores in results for score in scores], n_resamples=200)

    cells = {(row.system, row.metric): row for row in rows}
    compared, mismatches = 0, []
    for system in systems.values():
        for metric in COLUMNS:
            row = cells[(system, metric)]
            assert row.n == 40 and row.n_not_applicable == 0
            assert row.mean is not None
            ours = round(100 * row.mean, 2)
            compared += 1
            if ours != published[system][metric]:
                mismatches.append(f"{system} {metric}: ours {100 * row.mean:.4f}, "
                                  f"published {published[system][metric]:.2f}")
    assert compared == 60
    assert not mismatches, "\n".join(mismatches)


def test_the_table_row_without_a_prediction_file_is_the_only_one_not_compared() -> None:
    assert set(_published()) - set(_systems().values()) == {"BART (Division)"}


def test_fast_rougelsum_equals_the_package_on_aci_predictions() -> None:
    """Two notes of every system, long transcripts included, against rouge-score itself."""
    notes = _notes()
    package = rouge_scorer.RougeScorer(["rougeLsum"], use_stemmer=False)
    for file, system in _systems().items():
        for summary in _summaries(file, system)[:2]:
            reference = notes[summary.note_id].reference
            assert reference is not None
            expected = package.score(reference, summary.text)["rougeLsum"]
            ours = rouge(reference, summary.text)["rougeLsum"]
            assert (ours.precision, ours.recall, ours.fmeasure) == (
                expected.precision, expected.recall, expected.fmeasure), system


@pytest.mark.parametrize("seed", range(3))
def test_fast_rougelsum_equals_the_package_on_adversarial_texts(seed: int) -> None:
    """Small vocabularies force repeated tokens, ties in back-tracking and empty lines."""
    rng = random.Random(seed)
    vocabulary = ["pain", "no", "fever", "the", "Dr.", "b.i.d.", "---", "5", "mg", "a"]
    package = rouge_scorer.RougeScorer(["rougeLsum"], use_stemmer=False)

    def text() -> str:
        lines = [" ".join(rng.choices(vocabulary, k=rng.randint(0, 9))) for _ in range(rng.randint(1, 6))]
        return "\n".join(lines)

    for _ in range(150):
        reference, candidate = text(), text()
        expected = package.score(reference, candidate)["rougeLsum"]
        assert rouge(reference, candidate)["rougeLsum"].fmeasure == expected.fmeasure, (reference, candidate)


def test_summary_level_lcs_by_hand() -> None:
    # Reference sentence "a b c d"; candidates "a b" and "c e": union LCS covers a, b, c.
    value = summary_level_lcs([["a", "b", "c", "d"]], [["a", "b"], ["c", "e"]])
    assert value.recall == pytest.approx(3 / 4)
    assert value.precision == pytest.approx(3 / 4)
    assert summary_level_lcs([], [["a"]]).fmeasure == 0.0
    assert summary_level_lcs([["a"]], [[]]).fmeasure == 0.0


async def test_overlap_scores_are_f_measures_on_a_zero_to_one_scale_with_evidence() -> None:
    note = Note(id="n1", text="source", reference="Patient denies chest pain.\nStart aspirin.")
    summary = Summary(note_id="n1", system="s", text="Patient denies chest pain.")
    scores = await OverlapEvaluator().evaluate(note, summary)
    by_metric = {s.metric: s for s in scores}
    assert set(by_metric) == {"rouge1", "rouge2", "rougeLsum"}
    assert by_metric["rouge1"].detail["precision"] == 1.0
    assert by_metric["rouge1"].detail["recall"] == pytest.approx(4 / 6)
    assert by_metric["rouge1"].value == pytest.approx(2 * (4 / 6) / (1 + 4 / 6))
    assert all(s.evaluator == "overlap" and s.version.startswith("rouge-score-0.") for s in scores)


async def test_no_reference_or_failed_summary_gives_no_rouge_scores() -> None:
    evaluator = OverlapEvaluator()
    summary = Summary(note_id="n1", system="s", text="anything")
    assert await evaluator.evaluate(Note(id="n1", text="source"), summary) == []
    assert await evaluator.evaluate(Note(id="n1", text="source", reference="  \n"), summary) == []
    failed = Summary(note_id="n1", system="s", error="timeout")
    assert await evaluator.evaluate(Note(id="n1", text="source", reference="ref"), failed) == []


async def test_length_counts_words_and_compression_against_the_source() -> None:
    note = Note(id="n1", text="one two three four five six seven eight nine ten")
    summary = Summary(note_id="n1", system="s", text="one  two\nthree")
    scores = {s.metric: s.value for s in await LengthEvaluator().evaluate(note, summary)}
    assert scores == {"summary_words": 3.0, "compression_ratio": pytest.approx(0.3)}
    assert await LengthEvaluator().evaluate(note, Summary(note_id="n1", system="s", error="timeout")) == []


def test_factories_build_evaluators_and_refuse_unknown_options() -> None:
    assert create_overlap({}, None).name == "overlap"
    assert create_length({}, None).name == "length"
    with pytest.raises(ConfigError, match="stemmer"):
        create_overlap({"stemmer": True}, None)


def test_the_reproduction_depends_on_the_defaults_it_claims() -> None:
    """Stemming, or joining a summary's lines, moves GPT-4's cells well off the published ones."""
    notes, published = _notes(), _published()["GPT-4"]
    summaries = _summaries("GPT-4.jsonl", "GPT-4")
    stemmed = rouge_scorer.RougeScorer(["rouge1"], use_stemmer=True)
    with_stemming = [stemmed.score(notes[s.note_id].reference or "", s.text)["rouge1"].fmeasure
                     for s in summaries]
    one_line = [rouge(notes[s.note_id].reference or "", " ".join(s.text.split()))["rougeLsum"].fmeasure
                for s in summaries]
    assert abs(100 * sum(with_stemming) / 40 - published["rouge1"]) > 1
    assert abs(100 * sum(one_line) / 40 - published["rougeLsum"]) > 1
