"""Validation 2: clinsum's concept_f1_ref against ACI-Bench's published MEDCON, per system.

    .venv/bin/python benchmarks/aci_medcon.py [--per-system]

ACI-Bench test set 1 (40 encounters; fixtures/aci_test1/): for each of the 20
baseline systems with predictions, the mean over encounters of ``concept_f1_ref``
(F1 of the concepts the prediction states against the human note's) is ranked against the
MEDCON column of the paper's Table 6 (section ALL) with Spearman's rho. Two
variants are printed: assertion-aware (clinsum's default: a concept matches only
with a compatible status) and concept-only (as MEDCON, which ignores negation).
ROUGE-2 against the same column is printed for scale (the published figures).

``--variants`` also ranks the other ways of scoring a summary against its reference that
were tried to explain the MEDCON figure (docs/concepts.md, Validation 2): MEDCON's semantic
groups only, a dialogue "summary"'s open questions dropped, other status compatibility rules.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from clinsum.evaluators.coverage import (
    AFFIRMED,
    DOSING,
    NOT_ASSERTABLE,
    Concept,
    CoverageOptions,
    compatible,
    concepts_of,
    f1,
    reference_f1,
    statements,
)
from clinsum.records import Mention

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "aci_test1"


def load_table() -> dict[str, dict[str, float]]:
    """table model -> {"MEDCON": ..., "ROUGE-2": ...} for section ALL."""
    out = {}
    with (FIXTURES / "published_table.csv").open(encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            if row["section"] == "ALL":
                out[row["model"]] = {"MEDCON": float(row["MEDCON(Fact)"]), "ROUGE-2": float(row["ROUGE-2"])}
    return out


def load_predictions(file_name: str) -> dict[str, str]:
    path = FIXTURES / "predictions" / (file_name + ".gz")
    if not path.exists():
        path = FIXTURES / "predictions" / file_name
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as handle:
        return {row["id"]: row["prediction"] for row in map(json.loads, handle)}


Match = Callable[[Concept, Concept], bool]


def _any_compatible(reference: Concept, summary: Concept) -> bool:
    return any(compatible(x, y) for x in reference.assertions for y in summary.assertions)


def _all_compatible(reference: Concept, summary: Concept) -> bool:
    """Every status the summary gives the concept is one the reference gives it."""
    return all(any(compatible(x, y) for x in reference.assertions) for y in summary.assertions)


def _majority(concept: Concept) -> str:
    return Counter(m.assertion for m in concept.mentions).most_common(1)[0][0]


def _loose(pair: set[str]) -> Match:
    return lambda r, s: any(compatible(x, y) or {x, y} == pair for x in r.assertions for y in s.assertions)


STATED = lambda m, asked: not asked  # noqa: E731  (the evaluator: open questions state nothing)
VARIANTS: tuple[tuple[str, Callable[[Mention, bool], bool], Match], ...] = (
    ("default: any compatible pair of statuses, open questions state nothing", STATED, _any_compatible),
    ("open questions counted as statements (before)", lambda m, asked: True, _any_compatible),
    ("status-blind (as MEDCON)", STATED, lambda r, s: True),
    ("historical and present incompatible (strict_history)", STATED,
     lambda r, s: any(x == y for x in r.assertions for y in s.assertions)),
    ("MEDCON's semantic groups only (no procedures, tests)",
     lambda m, asked: m.group not in ("procedure", "test") and not asked, _any_compatible),
    ("every summary status compatible with a reference status", STATED, _all_compatible),
    ("majority status of each side", STATED, lambda r, s: compatible(_majority(r), _majority(s))),
    ("status ignored for body parts, tests, dosing", STATED,
     lambda r, s: r.group in NOT_ASSERTABLE or r.concept_id in DOSING or _any_compatible(r, s)),
    ("possible ~ present compatible", STATED, _loose({"possible", "present"})),
    ("hypothetical ~ present compatible", STATED, _loose({"hypothetical", "present"})),
)
"""(name, which mentions count, when a reference concept and a summary concept match)."""


def variant_f1(reference: Mapping[str, Concept], summary: Mapping[str, Concept], match: Match) -> float:
    matched = [key for key, concept in summary.items() if key in reference and match(reference[key], concept)]
    precision = len(matched) / len(summary) if summary else 1.0
    recall = len(matched) / len(reference) if reference else 1.0
    return f1(precision, recall) or 0.0


def print_variants(references: dict[str, tuple[str, list[Mention]]],
                   predictions: dict[str, dict[str, tuple[str, list[Mention]]]], medcon: dict[str, float]) -> None:
    from scipy.stats import spearmanr

    from clinsum.concepts.assertion import in_open_question

    print()
    print("| scoring variant | Spearman with MEDCON | transcript | GPT-4 |")
    print("|---|---:|---:|---:|")
    for name, keep, match in VARIANTS:
        def concepts(text: str, mentions: list[Mention],
                     keep: Callable[[Mention, bool], bool] = keep) -> dict[str, Concept]:
            return concepts_of(text, [m for m in mentions
                                      if keep(m, m.assertion in AFFIRMED and in_open_question(text, m.start))])

        refs = {key: concepts(text, mentions) for key, (text, mentions) in references.items()}
        means = {}
        for model, texts in predictions.items():
            values = [variant_f1(refs[key], concepts(*texts[key]) if texts[key][0].strip() else {}, match)
                      for key in refs]
            means[model] = sum(values) / len(values)
        rho = spearmanr([means[m] for m in medcon], [medcon[m] for m in medcon])[0]
        print(f"| {name} | {rho:.3f} | {100 * means['transcript']:.1f} | {100 * means['GPT-4']:.1f} |")


def main(argv: Sequence[str] | None = None) -> None:
    from scipy.stats import spearmanr

    from clinsum.concepts.extract import extract

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-system", action="store_true")
    parser.add_argument("--variants", action="store_true", help="also rank the scoring variants tried")
    args = parser.parse_args(argv)

    table = load_table()
    with (FIXTURES / "references.jsonl").open(encoding="utf-8") as handle:
        references = {row["id"]: row["reference"] for row in map(json.loads, handle)}
    with (FIXTURES / "systems.csv").open(encoding="utf-8") as handle:
        systems = [(row["prediction_file"], row["table_model"]) for row in csv.DictReader(handle)]

    started = time.perf_counter()
    reference_mentions = {key: (text, extract(text)) for key, text in references.items()}
    reference_concepts = {key: concepts_of(*reference_mentions[key]) for key in references}
    aware, plain = CoverageOptions(), CoverageOptions(reference_assertions=False)
    rows = []
    extracted: dict[str, dict[str, tuple[str, list[Mention]]]] = {}
    for file_name, model in systems:
        predictions = load_predictions(file_name)
        f_aware, f_plain = [], []
        extracted[model] = {}
        for key, reference in reference_concepts.items():
            text = predictions.get(key, "")
            mentions = extract(text) if text.strip() else []
            extracted[model][key] = (text, mentions)
            summary = concepts_of(text, statements(text, mentions)) if text.strip() else {}
            f_aware.append(reference_f1(reference, summary, aware)[0])
            f_plain.append(reference_f1(reference, summary, plain)[0])
        rows.append((model, sum(f_aware) / len(f_aware), sum(f_plain) / len(f_plain),
                     table[model]["MEDCON"], table[model]["ROUGE-2"]))
    elapsed = time.perf_counter() - started

    if args.per_system:
        print("| system | concept_f1_ref | concept-only F1 | MEDCON | ROUGE-2 |")
        print("|---|---:|---:|---:|---:|")
        for model, a, p, published, rouge in sorted(rows, key=lambda r: -r[3]):
            print(f"| {model} | {100 * a:.2f} | {100 * p:.2f} | {published:.2f} | {rouge:.2f} |")
    medcon = [r[3] for r in rows]
    print(f"\nACI-Bench test1, {len(rows)} systems x {len(references)} encounters ({elapsed:.0f} s)")
    print(f"Spearman concept_f1_ref (assertion-aware) vs MEDCON: {spearmanr([r[1] for r in rows], medcon)[0]:.3f}")
    print(f"Spearman concept-only F1 vs MEDCON:                 {spearmanr([r[2] for r in rows], medcon)[0]:.3f}")
    print(f"Spearman ROUGE-2 (published) vs MEDCON, same systems: {spearmanr([r[4] for r in rows], medcon)[0]:.3f}")
    if args.variants:
        print_variants(reference_mentions, extracted, {r[0]: r[3] for r in rows})


if __name__ == "__main__":
    main()
