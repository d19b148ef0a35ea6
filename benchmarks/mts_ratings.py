"""Validation 3: coverage metrics against the MTS-Dialog human fact ratings (200 summaries).

    .venv/bin/python benchmarks/mts_ratings.py

Per-summary Spearman correlations with the human ``FactualRecall`` and
``HallucinationRate`` (fixtures/mts_dialog_ratings.jsonl: four systems' section
summaries of 50 role-played dialogues). The human scores count facts of the
reference section that the summary states (recall) and facts of the summary that
are wrong or unsupported (hallucination), so each coverage metric is computed
twice: with the dialogue as the source (what ``clinsum run`` does for a
dialogue note) and with the reference section as the source. ROUGE-1 F of the
summary against the reference is printed for scale.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path

from clinsum.evaluators.coverage import CoverageOptions, compare, concepts_of, reference_f1, statements

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "mts_dialog_ratings.jsonl"


def main(argv: Sequence[str] | None = None) -> None:
    from rouge_score import rouge_scorer
    from scipy.stats import spearmanr

    from clinsum.concepts.extract import extract

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.parse_args(argv)
    rows = [json.loads(line) for line in FIXTURE.read_text("utf-8").splitlines() if line.strip()]
    options = CoverageOptions()
    scorer = rouge_scorer.RougeScorer(["rouge1"])
    started = time.perf_counter()
    metrics: dict[str, list[float]] = {}

    def add(name: str, value: float | None) -> None:
        metrics.setdefault(name, []).append(float("nan") if value is None else value)

    for row in rows:
        dialogue, reference, summary = row["dialogue"], row["reference"], row["summary"]
        s = concepts_of(summary, extract(summary))
        d = concepts_of(dialogue, extract(dialogue))
        r = concepts_of(reference, extract(reference))
        as_run = compare(dialogue, d, summary, s, options, reference=(reference, r))
        vs_dialogue = compare(dialogue, d, summary, s, options)
        vs_reference = compare(reference, r, summary, s, options)
        f_ref, detail = reference_f1(r, concepts_of(summary, statements(summary, extract(summary))), options)
        add("concept_recall (source = dialogue) [evaluator]", as_run.recall)
        add("concept_recall (source = reference)", vs_reference.recall)
        add("concept_recall_ref [evaluator]", detail["recall"])
        add("concept_recall_ref, only where the reference has concepts", detail["recall"] if r else None)
        add("concept_recall (source = dialogue), only where it has concepts", as_run.recall if d else None)
        add("concept_f1_ref [evaluator]", f_ref)
        add("unsupported_concepts (dialogue + reference) [evaluator]", len(as_run.unsupported))
        add("1 - concept_support (dialogue + reference) [evaluator]", 1 - as_run.support)
        add("assertion_flips (dialogue + reference) [evaluator]", len(as_run.flips))
        add("unsupported + flips (dialogue + reference)", len(as_run.unsupported) + len(as_run.flips))
        add("unsupported_concepts (source = dialogue only)", len(vs_dialogue.unsupported))
        add("unsupported_concepts (source = reference only)", len(vs_reference.unsupported))
        add("ROUGE-1 F vs reference", scorer.score(reference, summary)["rouge1"].fmeasure)
    elapsed = time.perf_counter() - started

    recall = [row["ratings"]["FactualRecall"] for row in rows]
    hallucination = [row["ratings"]["HallucinationRate"] for row in rows]
    print(f"MTS-Dialog ratings: {len(rows)} summaries ({elapsed:.0f} s)\n")
    print("| metric | Spearman vs FactualRecall | Spearman vs HallucinationRate | n |")
    print("|---|---:|---:|---:|")
    for name, values in metrics.items():
        pairs = [(v, a, b) for v, a, b in zip(values, recall, hallucination, strict=True) if v == v]
        rho_recall = spearmanr([p[0] for p in pairs], [p[1] for p in pairs])[0]
        rho_hallucination = spearmanr([p[0] for p in pairs], [p[2] for p in pairs])[0]
        print(f"| {name} | {rho_recall:.3f} | {rho_hallucination:.3f} | {len(pairs)} |")


if __name__ == "__main__":
    main()
