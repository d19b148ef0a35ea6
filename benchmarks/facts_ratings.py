"""Unsupported facts against the MTS-Dialog human hallucination ratings (200 section summaries).

    .venv/bin/python benchmarks/facts_ratings.py

Per-summary Spearman correlation (95 % percentile bootstrap CI, 2,000 resamples of
the 200 summaries, seed 0) of the ``facts`` metrics, with the packaged options
(fitted on ACI-Bench by benchmarks/facts_fit.py, never on these ratings), and of
the older concept metrics, with the human ``HallucinationRate``
(fixtures/mts_dialog_ratings.jsonl). The source is the dialogue and the
reference section supports a fact too, as ``clinsum run`` does for a note with
a reference; the dialogue-only figures are printed beside them, and (added after the
first report, as a diagnostic) the reference-only ones: the raters counted a summary's
facts against the reference section.

The statement check (``unsupported_statement_rate``) and the combined one
(``unsupported_claim_rate``: a statement's words or a fact in it) were added later, with
options fitted on ACI-Bench train only; which of them is recommended was written down
(docs/facts.md) before this script first scored them. So was ``unsupported_likelihood`` (each
statement's flags weighed by how sure they are, fitted on ACI-Bench train by
``benchmarks/facts_fit.py --fit-confidence``), the recommended metric since.

Then the cost: milliseconds per summary of the ``facts`` evaluator's comparison,
with the source already prepared (a run scores one source for every system) and
cold (source prepared in the same call), beside ``coverage``'s on the same rows.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "mts_dialog_ratings.jsonl"


def spearman_ci(values: Sequence[float], human: Sequence[float], *, resamples: int = 2000,
                seed: int = 0) -> tuple[float, float, float]:
    from scipy.stats import spearmanr

    rho = float(spearmanr(values, human)[0])
    rng = random.Random(seed)
    n = len(values)
    boots = []
    for _ in range(resamples):
        pick = [rng.randrange(n) for _ in range(n)]
        x = [values[i] for i in pick]
        y = [human[i] for i in pick]
        if len(set(x)) > 1 and len(set(y)) > 1:
            boots.append(float(spearmanr(x, y)[0]))
    boots.sort()
    return rho, boots[int(0.025 * len(boots))], boots[int(0.975 * len(boots)) - 1]


def main(argv: Sequence[str] | None = None) -> None:
    from clinsum.evaluators.coverage import CoverageOptions, _extract_cached, compare, concepts_of
    from clinsum.evaluators.facts import FactsOptions
    from clinsum.evaluators.facts import compare as facts_compare
    from clinsum.evaluators.facts.compare import claims, mentions_of, statement_likelihoods, unsupported_facts
    from clinsum.evaluators.facts.confidence import summary_likelihood

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.parse_args(argv)
    rows = [json.loads(line) for line in FIXTURE.read_text("utf-8").splitlines() if line.strip()]
    options = FactsOptions()
    human = [row["ratings"]["HallucinationRate"] for row in rows]
    metrics: dict[str, list[float]] = {}

    def add(name: str, value: float) -> None:
        metrics.setdefault(name, []).append(value)

    for row in rows:
        dialogue, reference, summary = row["dialogue"], row["reference"], row["summary"]
        found = unsupported_facts(dialogue, summary, options, reference=reference)
        alone = unsupported_facts(dialogue, summary, options)
        statements, claimed = claims(dialogue, summary, options, found, reference=reference)
        statements_alone, claimed_alone = claims(dialogue, summary, options, alone)
        per = statements.total
        add("unsupported_likelihood [recommended]",
            summary_likelihood([s["p"] for s in statement_likelihoods(statements, found)]))
        add("unsupported_likelihood (source = dialogue only)",
            summary_likelihood([s["p"] for s in statement_likelihoods(statements_alone, alone)]))
        add("unsupported_claim_rate [recommended before unsupported_likelihood]", claimed / per if per else 0.0)
        add("unsupported_statement_rate", len(statements.flagged) / per if per else 0.0)
        add("unsupported_statements", len(statements.flagged))
        add("unsupported_claim_rate (source = dialogue only)", claimed_alone / per if per else 0.0)
        add("unsupported_statement_rate (source = dialogue only)",
            len(statements_alone.flagged) / per if per else 0.0)
        add("unsupported_fact_rate [recommended before]", len(found.unsupported) / found.total if found.total else 0.0)
        add("unsupported_facts", len(found.unsupported))
        add("unsupported_fact_rate (source = dialogue only)",
            len(alone.unsupported) / alone.total if alone.total else 0.0)
        add("unsupported_facts (source = dialogue only)", len(alone.unsupported))
        against_reference = unsupported_facts(reference, summary, options)
        add("unsupported_fact_rate (source = reference only; post hoc, see README)",
            len(against_reference.unsupported) / against_reference.total if against_reference.total else 0.0)
        s = concepts_of(summary, mentions_of(summary))
        d = concepts_of(dialogue, mentions_of(dialogue))
        r = concepts_of(reference, mentions_of(reference))
        as_run = compare(dialogue, d, summary, s, CoverageOptions(), reference=(reference, r))
        add("1 - concept_support (coverage)", 1 - as_run.support)
        add("unsupported_concepts (coverage)", len(as_run.unsupported))

    flagged = sum(1 for v in metrics["unsupported_facts"] if v > 0)
    stated = sum(1 for v in metrics["unsupported_statements"] if v > 0)
    likely = sum(1 for v in metrics["unsupported_likelihood [recommended]"] if v >= 0.5)
    hallucinated = sum(1 for h in human if h > 0)
    print(f"MTS-Dialog ratings: {len(rows)} summaries, {hallucinated} with any human-rated hallucination; "
          f"{flagged} with any unsupported fact, {stated} with any unsupported statement, "
          f"{likely} with unsupported_likelihood >= 0.5.\nOptions: {options}\n")
    print("| metric | Spearman vs HallucinationRate | 95% CI |\n|---|---:|---|")
    for name, values in metrics.items():
        rho, low, high = spearman_ci(values, human)
        print(f"| {name} | {rho:.3f} | {low:.3f} – {high:.3f} |")

    def per_summary(call: Callable[[dict[str, str]], object]) -> float:
        started = time.perf_counter()
        for row in rows:
            call(row)
        return (time.perf_counter() - started) / len(rows) * 1000

    from clinsum.evaluators.coverage import CoverageEvaluator
    from clinsum.records import Note, Summary

    coverage = CoverageEvaluator()

    def coverage_scores(row: dict[str, str]) -> object:
        return coverage.scores(Note(id=row["id"], text=row["dialogue"], reference=row["reference"]),
                               Summary(note_id=row["id"], system=row["system"], text=row["summary"]))

    def facts_and_statements(row: dict[str, str]) -> object:
        found = unsupported_facts(row["dialogue"], row["summary"], options, reference=row["reference"])
        return claims(row["dialogue"], row["summary"], options, found, reference=row["reference"])

    warm = [per_summary(lambda row: unsupported_facts(row["dialogue"], row["summary"], options,
                                                      reference=row["reference"])) for _ in range(3)]
    warm_both = [per_summary(facts_and_statements) for _ in range(3)]
    coverage_warm = [per_summary(coverage_scores) for _ in range(3)]
    cold = []
    cold_both = []
    for _ in range(3):
        _extract_cached.cache_clear()  # shared by facts and coverage
        facts_compare.evidence_of.cache_clear()
        cold.append(per_summary(lambda row: unsupported_facts(row["dialogue"], row["summary"], options,
                                                              reference=row["reference"])))
    for _ in range(3):
        _extract_cached.cache_clear()  # mentions_of reads this cache
        facts_compare.evidence_of.cache_clear()
        facts_compare.statement_evidence_of.cache_clear()
        cold_both.append(per_summary(facts_and_statements))
    print(f"\nCost per summary (median of 3 passes over the {len(rows)} rows): facts {statistics.median(warm):.1f} ms "
          f"with the source prepared, {statistics.median(cold):.1f} ms cold (source and reference extracted "
          f"in the call); coverage {statistics.median(coverage_warm):.1f} ms (its own caches warm).\n"
          f"Facts and the statement check together: {statistics.median(warm_both):.1f} ms prepared, "
          f"{statistics.median(cold_both):.1f} ms cold.")


if __name__ == "__main__":
    main()
