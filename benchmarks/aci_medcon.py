"""Validation 2: clinsum's concept_f1_ref against ACI-Bench's published MEDCON, per system.

    .venv/bin/python benchmarks/aci_medcon.py [--per-system]

ACI-Bench test set 1 (40 encounters; fixtures/aci_test1/): for each of the 20
baseline systems with predictions, the mean over encounters of ``concept_f1_ref``
(F1 of the prediction's concepts against the human note's) is ranked against the
MEDCON column of the paper's Table 6 (section ALL) with Spearman's rho. Two
variants are printed: assertion-aware (clinsum's default: a concept matches only
with a compatible status) and concept-only (as MEDCON, which ignores negation).
ROUGE-2 against the same column is printed for scale (the published figures).
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import time
from collections.abc import Sequence
from pathlib import Path

from clinsum.evaluators.coverage import CoverageOptions, concepts_of, reference_f1

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


def main(argv: Sequence[str] | None = None) -> None:
    from scipy.stats import spearmanr

    from clinsum.concepts.extract import extract

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-system", action="store_true")
    args = parser.parse_args(argv)

    table = load_table()
    with (FIXTURES / "references.jsonl").open(encoding="utf-8") as handle:
        references = {row["id"]: row["reference"] for row in map(json.loads, handle)}
    with (FIXTURES / "systems.csv").open(encoding="utf-8") as handle:
        systems = [(row["prediction_file"], row["table_model"]) for row in csv.DictReader(handle)]

    started = time.perf_counter()
    reference_concepts = {key: concepts_of(text, extract(text)) for key, text in references.items()}
    aware, plain = CoverageOptions(), CoverageOptions(reference_assertions=False)
    rows = []
    for file_name, model in systems:
        predictions = load_predictions(file_name)
        f_aware, f_plain = [], []
        for key, reference in reference_concepts.items():
            text = predictions.get(key, "")
            summary = concepts_of(text, extract(text)) if text.strip() else {}
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


if __name__ == "__main__":
    main()
