"""Run the validation benchmarks and print the README's validation table, every figure old and new.

    .venv/bin/python benchmarks/validation_table.py            # all of them, about 10 minutes
    .venv/bin/python benchmarks/validation_table.py --skip speed --skip medcon
    .venv/bin/python benchmarks/validation_table.py --json run.json   # keep the figures
    .venv/bin/python benchmarks/validation_table.py --measured run.json   # print them again, no run
    .venv/bin/python benchmarks/validation_table.py --save      # also write the figures as the new baseline

Every run (not ``--measured``) also writes the figures it measured into
``clinsum/reporting/validity.json``, each with the date, the commit and the command that
measured it (figures of skipped benchmarks keep their earlier entry): the periodic
production report (``clinsum report --since``) embeds that file as the evaluator's own
validity figures. ``--no-validity`` leaves it alone.

Each benchmark runs in its own process, one after another (the slow ones take minutes; the
speed benchmark is noisy on a shared machine, so its ratio is taken from one run, clinsum and
medspaCy side by side). Figures are read from each script's output. "before" comes from
``benchmarks/validation_baseline.json``: the figures measured on main before the status and flip
work (same commands, same machine); ``--save`` replaces it with this run's figures.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BASELINE = Path(__file__).resolve().parent / "validation_baseline.json"
VALIDITY = ROOT / "clinsum" / "reporting" / "validity.json"


@dataclass(frozen=True)
class Figure:
    key: str
    label: str
    goal: str
    parse: Callable[[str], float | None]
    digits: int = 3
    part: str = ""
    """Figures with the same label share a row, each shown as "part value"."""


@dataclass(frozen=True)
class Benchmark:
    name: str
    command: tuple[str, ...]
    figures: tuple[Figure, ...]


def _number(pattern: str, group: int = 1) -> Callable[[str], float | None]:
    expression = re.compile(pattern, re.MULTILINE)

    def parse(output: str) -> float | None:
        match = expression.search(output)
        return float(match.group(group)) if match else None
    return parse


def _class_f1(split: str, system: str, label: str) -> Callable[[str], float | None]:
    """F1 of one class in one split's table of benchmarks/assertion.py."""
    def parse(output: str) -> float | None:
        for block in output.split("\n## ")[1:]:
            if block.startswith(f"{split} split") and system in block.splitlines()[1]:
                match = re.search(rf"^\| {label} \| \d+ \| [\d.]+ \| [\d.]+ \| ([\d.]+) \|$", block, re.MULTILINE)
                return float(match.group(1)) if match else None
        return None
    return parse


def _accuracy(split: str, system: str) -> Callable[[str], float | None]:
    def parse(output: str) -> float | None:
        for block in output.split("\n## ")[1:]:
            if block.startswith(f"{split} split") and system in block.splitlines()[1]:
                match = re.search(r"accuracy ([\d.]+)", block)
                return float(match.group(1)) if match else None
        return None
    return parse


PYTHON = sys.executable


def _section_auc(split: str, score: str) -> Callable[[str], float | None]:
    """The mean AUC of one score in one split's section table of benchmarks/facts_fit.py --fit-confidence."""
    def parse(output: str) -> float | None:
        for block in output.split("\n\n"):
            if block.startswith(f"{split}, packaged coefficients"):
                match = re.search(rf"^\| {re.escape(score)} \|.* \| ([\d.]+) \|$", block, re.MULTILINE)
                return float(match.group(1)) if match else None
        return None
    return parse


CLASSES = ("negated", "historical", "family", "hypothetical", "possible", "present")
ABBREVIATIONS = {"accuracy": "acc", "negated": "neg", "historical": "hist", "family": "fam", "hypothetical": "hyp",
                 "possible": "poss", "present": "pres"}


def _assertion_figures(prefix: str, set_name: str) -> tuple[Figure, ...]:
    """One figure per split, system and class; the table shows one row per split and system."""
    figures = []
    for split in ("dev", "test"):
        for system in ("clinsum", "medspaCy"):
            group = f"{set_name}, {split}, {system}: accuracy / F1 per class"
            goal = "neg ≥ 0.95" + (", hist ≥ 0.75" if prefix == "aci" else "") if system == "clinsum" else ""
            figures.append(Figure(f"{prefix}.{split}.{system}.accuracy", group, goal, _accuracy(split, system),
                                  3, "acc"))
            figures.extend(Figure(f"{prefix}.{split}.{system}.{label}", group, goal, _class_f1(split, system, label),
                                  2, ABBREVIATIONS[label]) for label in CLASSES)
    return tuple(figures)


BENCHMARKS: tuple[Benchmark, ...] = (
    Benchmark("flips", (PYTHON, "benchmarks/planted_flips.py"), (
        Figure("flips.caught", "planted negation removals caught (critical_flips rose), all plants", "≥ 0.90",
               _number(r"caught \(critical_flips rose\): \d+/\d+ = ([\d.]+)")),
        Figure("flips.untouched", "critical flips per untouched clinician note", "≤ 0.10",
               _number(r"untouched notes: \d+ critical flips = ([\d.]+) per note")),
        Figure("flips.untouched_rate", "has_critical_flip, untouched clinician notes", "",
               _number(r"has_critical_flip \d+/\d+ = ([\d.]+)")),
    )),
    Benchmark("flips-issue", (PYTHON, "benchmarks/planted_flips.py", "--issue-plants"), (
        Figure("flips.issue_caught", "planted removals caught, the issue's three substitutions only", "",
               _number(r"caught \(critical_flips rose\): \d+/\d+ = ([\d.]+)")),
    )),
    Benchmark("assertion-aci", (PYTHON, "benchmarks/assertion.py", "--set", "aci"),
              _assertion_figures("aci", "ACI-Bench findings")),
    Benchmark("assertion-sentences", (PYTHON, "benchmarks/assertion.py"),
              _assertion_figures("sentences", "sentence set")),
    Benchmark("medcon", (PYTHON, "benchmarks/aci_medcon.py", "--per-system"), (
        Figure("medcon.spearman", "MEDCON rank agreement (Spearman, 20 systems)", "≥ 0.95; not below 0.947",
               _number(r"Spearman concept_f1_ref \(assertion-aware\) vs MEDCON: ([\d.-]+)")),
    )),
    Benchmark("bc5cdr", (PYTHON, "benchmarks/bc5cdr.py"), (
        Figure("bc5cdr.disease", "BC5CDR Disease F1 (overlap)", "≥ 0.85",
               _number(r"^Disease\s+\d+\s+\d+\s+[\d.]+\s+[\d.]+\s+([\d.]+)")),
        Figure("bc5cdr.chemical", "BC5CDR Chemical F1 (overlap)", "≥ 0.80",
               _number(r"^Chemical\s+\d+\s+\d+\s+[\d.]+\s+[\d.]+\s+([\d.]+)")),
    )),
    Benchmark("mts", (PYTHON, "benchmarks/mts_ratings.py"), (
        Figure("mts.recall", "MTS-Dialog: concept_recall vs FactualRecall (Spearman)", "",
               _number(r"^\| concept_recall \(source = dialogue\) \[evaluator\] \| ([\d.-]+)")),
        Figure("mts.recall_ref", "MTS-Dialog: concept_recall_ref vs FactualRecall", "≥ 0.55",
               _number(r"^\| concept_recall_ref \[evaluator\] \| ([\d.-]+)")),
        Figure("mts.support", "MTS-Dialog: 1 − concept_support vs HallucinationRate", "",
               _number(r"^\| 1 - concept_support \(dialogue \+ reference\) \[evaluator\] \| [\d.-]+ \| ([\d.-]+)")),
    )),
    Benchmark("facts", (PYTHON, "benchmarks/facts_ratings.py"), (
        Figure("facts.recommended", "MTS-Dialog: recommended unsupported-content metric vs HallucinationRate "
               "(before: unsupported_claim_rate; now: unsupported_likelihood)", "≥ 0.45",
               _number(r"^\| unsupported_likelihood \[recommended\] \| ([\d.-]+)")),
        Figure("facts.claim_rate", "MTS-Dialog: unsupported_claim_rate vs HallucinationRate", "",
               _number(r"^\| unsupported_claim_rate \[recommended before unsupported_likelihood\] \| ([\d.-]+)")),
        Figure("facts.fact_rate", "MTS-Dialog: unsupported_fact_rate vs HallucinationRate", "",
               _number(r"^\| unsupported_fact_rate \[recommended before\] \| ([\d.-]+)")),
    )),
    Benchmark("facts-sections", (PYTHON, "benchmarks/facts_fit.py", "--fit-confidence"), (
        Figure("facts.sections_valid", "ACI-Bench valid sections, planted vs faithful: mean AUC over 9 plants "
               "(before: unsupported_claim_rate; now: unsupported_likelihood)", "",
               _section_auc("valid", "unsupported_likelihood")),
        Figure("facts.sections_valid_claim", "ACI-Bench valid sections: the same for unsupported_claim_rate", "",
               _section_auc("valid", "unsupported_claim_rate")),
    )),
    Benchmark("speed", (PYTHON, "benchmarks/concepts_speed.py"), (
        Figure("speed.ratio", "extraction speed, clinsum / medspaCy (one run, side by side)", "≥ 3×",
               _number(r"speed ratio clinsum / medspacy: ([\d.]+)x"), 1),
        Figure("speed.clinsum", "clinsum extract, notes per second", "", _number(r"^clinsum extract\s+([\d.]+)"), 1),
        Figure("speed.lexicon_cpu_s", "lexicon load, CPU seconds (fresh process, median of 5)", "< 2",
               _number(r"lexicon load \(fresh process, median of \d+\): ([\d.]+) s CPU"), 2),
        Figure("speed.lexicon_s", "lexicon load, wall seconds (same runs; noisy under load)", "",
               _number(r"lexicon load \(fresh process, median of \d+\): [\d.]+ s CPU, ([\d.]+) s wall"), 2),
        Figure("speed.lexicon_mb", "lexicon load, MB max RSS", "< 500",
               _number(r"lexicon load \(fresh process, median of \d+\): .* ([\d]+) MB max RSS"), 0),
    )),
)


def run(benchmark: Benchmark) -> tuple[dict[str, float | None], float]:
    started = time.perf_counter()
    done = subprocess.run(benchmark.command, cwd=ROOT, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.stderr.write(f"{' '.join(benchmark.command[1:])} failed ({done.returncode}):\n{done.stderr[-2000:]}\n")
    output = done.stdout
    return {f.key: f.parse(output) for f in benchmark.figures}, time.perf_counter() - started


def _cell(value: float | None, digits: int) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def table(benchmarks: Sequence[Benchmark], before: dict[str, float | None], now: dict[str, float | None]) -> str:
    rows = ["| validation | command | goal | before | now |", "|---|---|---|---|---|"]
    for benchmark in benchmarks:
        command = "`" + " ".join(("python", *benchmark.command[1:])) + "`"
        labels: dict[str, list[Figure]] = {}
        for figure in benchmark.figures:
            labels.setdefault(figure.label, []).append(figure)
        for label, figures in labels.items():
            def cells(values: dict[str, float | None], figures: list[Figure] = figures) -> str:
                return " · ".join(f"{f.part} {_cell(values.get(f.key), f.digits)}".strip() for f in figures)
            rows.append(f"| {label} | {command} | {figures[0].goal} | {cells(before)} | {cells(now)} |")
    return "\n".join(rows)


def commit() -> str:
    """The checked-out commit, ``+modified`` when tracked files differ from it (the figures are then not its)."""
    def git(*args: str) -> str:
        done = subprocess.run(("git", *args), cwd=ROOT, capture_output=True, text=True, check=False)
        return done.stdout.strip() if done.returncode == 0 else ""
    head = git("rev-parse", "--short=12", "HEAD") or "unknown"
    changed = [line for line in git("status", "--porcelain", "--untracked-files=no").splitlines()
               if not line.endswith((VALIDITY.name, BASELINE.name))]
    return head + ("+modified" if changed else "")


def validity(benchmarks: Sequence[Benchmark], measured: dict[str, float | None], path: Path = VALIDITY) -> None:
    """Merge this run's figures, with their provenance, into the packaged file the periodic report embeds."""
    old = json.loads(path.read_text("utf-8")) if path.exists() else {"figures": []}
    figures = {f["key"]: f for f in old.get("figures", [])}
    when, version = time.strftime("%Y-%m-%d", time.gmtime()), commit()
    for benchmark in benchmarks:
        command = " ".join(("python", *benchmark.command[1:]))
        for figure in benchmark.figures:
            value = measured.get(figure.key)
            if value is None:
                continue
            figures[figure.key] = {"key": figure.key, "label": figure.label, "part": figure.part,
                                   "goal": figure.goal, "value": value, "digits": figure.digits,
                                   "measured": when, "commit": version, "command": command}
    order = [f.key for b in BENCHMARKS for f in b.figures]  # a figure the table no longer has is dropped
    ranked = sorted((f for f in figures.values() if f["key"] in order), key=lambda f: order.index(f["key"]))
    document = {"source": "benchmarks/validation_table.py", "figures": ranked}
    temporary = path.with_suffix(".json.tmp")
    temporary.write_text(json.dumps(document, indent=1, ensure_ascii=False) + "\n", "utf-8")
    temporary.replace(path)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--skip", action="append", default=[], choices=[b.name for b in BENCHMARKS])
    parser.add_argument("--save", action="store_true", help="write this run's figures as the baseline")
    parser.add_argument("--json", type=Path, help="also write this run's figures to this file")
    parser.add_argument("--measured", type=Path,
                        help="print the table from figures a run wrote with --json, without running anything")
    parser.add_argument("--no-validity", action="store_true",
                        help=f"do not write the measured figures into {VALIDITY.relative_to(ROOT)}")
    args = parser.parse_args(argv)
    baseline: dict[str, float | None] = json.loads(BASELINE.read_text("utf-8")) if BASELINE.exists() else {}
    chosen = [b for b in BENCHMARKS if b.name not in args.skip]
    measured: dict[str, float | None] = {}
    if args.measured:
        measured = json.loads(args.measured.read_text("utf-8"))
    else:
        for benchmark in chosen:
            values, seconds = run(benchmark)
            sys.stderr.write(f"{benchmark.name}: {seconds:.0f} s\n")
            measured.update(values)
    print(table(chosen, baseline, measured))
    if args.json:
        args.json.write_text(json.dumps(measured, indent=1, sort_keys=True) + "\n", "utf-8")
    if not args.measured and not args.no_validity:
        validity(chosen, measured)
    if args.save:
        BASELINE.write_text(json.dumps({**baseline, **measured}, indent=1, sort_keys=True) + "\n", "utf-8")
    missing = [key for key, value in measured.items() if value is None]
    if missing:
        sys.stderr.write(f"figures not found in the output: {', '.join(missing)}\n")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
