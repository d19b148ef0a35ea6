"""Every metric an evaluator emits is declared (direction, kind, scale) and documented in the README."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from judge_fakes import ScriptedJudge, verdict

from clinsum.dispatch import Dispatcher
from clinsum.evaluators import metrics
from clinsum.evaluators.coverage import create as create_coverage
from clinsum.evaluators.facts import create as create_facts
from clinsum.evaluators.generation import GenerationEvaluator
from clinsum.evaluators.judge import JudgeEvaluator
from clinsum.evaluators.overlap import create_length, create_overlap
from clinsum.records import Note, Summary, Usage

README = Path(__file__).resolve().parents[1] / "README.md"
NOTE = Note(id="n1", text="Denies chest pain. Takes metformin 500 mg daily for type 2 diabetes.",
            reference="No chest pain. Metformin for diabetes.")
SUMMARY = Summary(note_id="n1", system="x:y", text="Reports chest pain. On metformin.",
                  usage=Usage(input_tokens=10, output_tokens=5, cost_usd=0.01), latency_s=0.2)


async def emitted_metrics() -> set[str]:
    pytest.importorskip("spacy")
    jury = [ScriptedJudge("fake:a", [verdict(4)], repeat_last=True),
            ScriptedJudge("fake:b", [verdict(3)], repeat_last=True)]
    evaluators = [GenerationEvaluator(), create_overlap({}, None), create_length({}, None), create_coverage({}),
                  create_facts({}),
                  JudgeEvaluator(jury, Dispatcher(None, base_delay_s=0), samples=2, temperature=0.7)]
    names: set[str] = set()
    for evaluator in evaluators:
        names |= {s.metric for s in await evaluator.evaluate(NOTE, SUMMARY)}
    return names


async def test_every_emitted_metric_is_declared_with_a_direction() -> None:
    names = await emitted_metrics()
    assert {"failed", "rouge1", "concept_recall", "critical_flips", "unsupported_fact_rate", "unsupported_claim_rate",
            "unsupported_statement_rate", "unsupported_likelihood", "judge_overall_sd",
            "judge_cost_usd", "judge_accurate@fake:a"} <= names
    undeclared = sorted(n for n in names if metrics.describe(n) is None)
    assert undeclared == []


def test_directions_follow_clinical_sense() -> None:
    assert metrics.direction("concept_recall") == "higher"
    assert metrics.direction("critical_flips") == "lower"
    assert metrics.direction("judge_errors_critical@fake:a") == "lower"
    assert metrics.direction("summary_words") == "neutral"
    assert metrics.direction("no_such_metric") == "neutral"
    flips = metrics.describe("critical_flips")
    assert flips is not None and flips.is_worse(+1) and not flips.is_worse(-1)
    recall = metrics.describe("concept_recall")
    assert recall is not None and recall.is_worse(-0.1) and not recall.is_worse(0.1)


def test_readme_metric_table_documents_every_declared_metric_with_direction_and_scale() -> None:
    text = README.read_text("utf-8")
    section = text[text.index("## Metrics"):]
    section = section[: section.index("\n## ", 5)]
    rows = {m.group(1): m.group(0) for m in re.finditer(r"^\| `([^`]+)` \|.*$", section, re.M)}
    for metric in metrics.catalog().values():
        assert metric.name in rows, f"README's metric table lacks {metric.name}"
        row = rows[metric.name]
        assert metric.scale in row, f"README row of {metric.name} lacks its scale {metric.scale}"
        word = {"higher": "higher", "lower": "lower", "neutral": "—"}[metric.direction]
        assert word in row, f"README row of {metric.name} lacks its direction"
