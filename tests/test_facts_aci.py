"""Fabrications planted into faithful ACI-Bench notes are found; the untouched notes stay near the floor.

The valid split (20 encounters, never used to choose the options) of
fixtures/aci_bench_train_valid.jsonl.gz, planted by benchmarks/facts_fit.py. Floors sit below the
figures the benchmark measured (README, "Benchmarks and validation"), so a regression fails here.
The statement check has its own plants (a sentence moved from another note, invented social history,
a changed word) and its false-positive ceiling per faithful statement.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from clinsum.evaluators.facts import FactsOptions

pytest.importorskip("spacy")

ROOT = Path(__file__).resolve().parents[1]


def fit_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("facts_fit", ROOT / "benchmarks" / "facts_fit.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("facts_fit", module)  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_planted_fabrications_are_detected_and_faithful_notes_stay_near_the_floor() -> None:
    fit = fit_module()
    rows = fit.load("valid")
    assert len(rows) == 20
    plants = {row["id"]: fit.plants_for(row) for row in rows}
    # every plant really changed the note, and its span is inside the planted text
    for row in rows:
        for plant in plants[row["id"]]:
            assert plant.text != row["note"] and 0 <= plant.start < plant.end <= len(plant.text)
    figures = fit.measure(rows, FactsOptions(), plants)
    rate = {kind: hit / total for kind, (hit, total) in figures.detected.items() if total}
    assert rate["medication"] >= 0.95 and rate["disorder"] >= 0.95 and rate["denial"] >= 0.95
    assert rate["number"] >= 0.7
    assert rate["side"] >= 0.6
    assert figures.false_positive_rate <= 0.13


SOCIAL_FLOOR, MOVED_FLOOR, CHANGED_FLOOR = 0.95, 0.9, 0.35
"""Valid figures measured: social 1.000, moved 1.000, changed (combined check) 0.450."""
STATEMENT_FP_CEILING, CLAIM_FP_CEILING = 0.25, 0.30
"""Valid figures measured: 0.226 statements flagged per faithful statement, 0.269 by the combined check."""


def test_planted_statements_are_found_and_faithful_statements_stay_near_the_floor() -> None:
    fit = fit_module()
    rows = fit.load("valid")
    plants = {row["id"]: fit.statement_plants_for(row, rows) for row in rows}
    for row in rows:
        kinds = [plant.kind for plant in plants[row["id"]]]
        assert "moved" in kinds and "social" in kinds
        for plant in plants[row["id"]]:
            assert plant.text != row["note"] and 0 <= plant.start < plant.end <= len(plant.text)
    figures = fit.measure_statements(rows, FactsOptions(), plants)
    rate = {kind: hit / total for kind, (hit, total) in figures.detected.items() if total}
    combined = {kind: hit / total for kind, (hit, total) in figures.combined.items() if total}
    assert rate["social"] >= SOCIAL_FLOOR and rate["moved"] >= MOVED_FLOOR
    assert combined["changed"] >= CHANGED_FLOOR
    assert figures.false_positive_rate <= STATEMENT_FP_CEILING
    assert figures.claimed / figures.statements <= CLAIM_FP_CEILING


LIKELIHOOD_SECTION_FLOOR = 0.78
"""Valid figure measured (benchmarks/facts_fit.py --fit-confidence): mean AUC 0.831 over the nine plants, against
0.697 for ``unsupported_claim_rate``."""


def test_unsupported_likelihood_ranks_planted_sections_above_faithful_ones_better_than_the_claim_rate() -> None:
    from clinsum.evaluators.facts.confidence import likelihood, summary_likelihood

    fit = fit_module()
    rows = fit.load("valid")
    plants = {row["id"]: fit.plants_for(row) + fit.statement_plants_for(row, rows) for row in rows}
    scored = fit.score_statements(rows, FactsOptions(), plants)
    weighed = fit.section_auc(scored, lambda s: summary_likelihood([likelihood(v) for v, _claimed in s]))
    counted = fit.section_auc(scored, lambda s: sum(claimed for _v, claimed in s) / len(s))
    assert weighed["mean"] >= LIKELIHOOD_SECTION_FLOOR
    assert weighed["mean"] > counted["mean"] + 0.05
    assert all(weighed[kind] > 0.6 for kind in weighed)
