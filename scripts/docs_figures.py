"""Regenerate the figures the docs print, from the current code, so they cannot go stale.

Every generated figure in README.md and docs/*.md sits between two markers::

    <!-- figures:NAME -->
    ...written by this script, never by hand...
    <!-- /figures:NAME -->

(inline too: ``<!-- figures:NAME -->0.29<!-- /figures:NAME -->``).

    .venv/bin/python scripts/docs_figures.py           # rewrite every block (about 15 s: concept extraction)
    .venv/bin/python scripts/docs_figures.py --check   # exit 1 naming each block that differs

``tests/test_docs_figures.py`` checks the cheap part on every ``make test``: the
figures that need no concept extraction (the ROUGE rows of the MTS-Dialog
tables, the evaluator versions the figures were measured with, the Shrout &
Fleiss ICCs). The versions change whenever the lexicon, the assertion rules or
the coverage logic change, which is exactly when the concept figures may move:
the test then fails until this script is run again.

The figures come from the same code paths as the commands the docs show
(``clinsum score`` -> ``clinsum.evaluation.score``; ``clinsum agreement`` ->
``clinsum.feedback.agreement_report``), in memory.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"<!-- figures:(?P<name>[\w-]+) -->(?P<body>.*?)<!-- /figures:(?P=name) -->", re.S)

MTS_DIMENSIONS = ("FactualPrecision", "FactualRecall", "HallucinationRate")
MTS_METRICS = ("concept_recall", "concept_support", "rouge1", "unsupported_concepts")
MTS_FLAGS = ("unsupported_concepts>=1", "assertion_flips>=1", "critical_flips>=1")
MTS_HUMAN_FLAG = "HallucinationRate>0"
CHEAP_EVALUATORS = ("overlap",)
"""Evaluators cheap enough for every test run (no spaCy, no concept extraction)."""


# -- data -------------------------------------------------------------------------------------------

def _mts_module() -> Any:
    spec = importlib.util.spec_from_file_location("mts_agreement", ROOT / "benchmarks" / "mts_agreement.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@cache
def mts_inputs() -> tuple[list[Any], list[Any], list[Any]]:
    """Notes, summaries and ratings of the MTS-Dialog study, as ``benchmarks/mts_agreement.py`` writes them."""
    import json

    module = _mts_module()
    rows = [json.loads(line) for line in module.FIXTURE.read_text(encoding="utf-8").splitlines() if line]
    notes, summaries, ratings = module.convert(rows)
    return notes, summaries, ratings


@cache
def mts_stored(evaluators: tuple[str, ...]) -> tuple[list[Any], list[Any]]:
    """What ``clinsum score summaries.jsonl --notes notes.jsonl -e ...`` and ``clinsum feedback import
    ratings.jsonl`` store, read back as ``clinsum agreement`` reads it: (ratings, scores).

    Through a store (in memory), not from the lists: the store's order of the ratings is the
    order of the items the bootstrap resamples, so only this gives the intervals the command prints.
    """
    from clinsum import evaluation
    from clinsum.config import RunConfig
    from clinsum.store import Store

    notes, summaries, ratings = mts_inputs()
    store = Store.open(":memory:")
    try:
        asyncio.run(evaluation.score(RunConfig(metrics=list(evaluators)), store, notes, summaries))
        store.add_ratings(ratings, source="ratings.jsonl")
        return store.ratings(), store.scores()
    finally:
        store.close()


@dataclass
class Data:
    """What the figures are computed from; ``evaluators`` limits the work (the cheap check)."""

    evaluators: tuple[str, ...]
    _reports: dict[Any, dict[str, Any]] = field(default_factory=dict)

    def agreement(self, *, metrics: Sequence[str], dimensions: Sequence[str] = (),
                  flags: Sequence[str] = (), human_flag: str | None = None,
                  same_scale: Sequence[tuple[str, str]] = ()) -> dict[str, Any]:
        """``clinsum agreement`` on the MTS data, restricted to the metrics these evaluators emit."""
        from clinsum.feedback import FlagRule, agreement_report

        ratings, scores = mts_stored(self.evaluators)
        present = {s.metric for s in scores}
        metrics = [m for m in metrics if m in present]
        flags = [f for f in flags if FlagRule.parse(f).name in present]
        key = (tuple(metrics), tuple(dimensions), tuple(flags), human_flag, tuple(same_scale))
        if key not in self._reports:
            if not metrics:
                self._reports[key] = {"metric_vs_human": [], "flags": []}
            else:
                self._reports[key] = agreement_report(
                    ratings, scores, metrics=metrics, dimensions=list(dimensions) or None,
                    flags=[FlagRule.parse(f) for f in flags],
                    human_flag=FlagRule.parse(human_flag) if flags and human_flag else None,
                    same_scale=same_scale)
        return self._reports[key]


# -- formatting -------------------------------------------------------------------------------------

def number(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}".replace("-0.00", "0.00")


def estimate(statistic: dict[str, Any]) -> str:
    """``0.42 [0.29, 0.55]``: a value with its 95% CI, ``—`` when it does not apply."""
    value, (low, high) = statistic["value"], statistic["ci"]
    if value is None:
        return "—"
    return number(value) if low is None else f"{number(value)} [{number(low)}, {number(high)}]"


def _rows(report: dict[str, Any], pairs: Iterable[tuple[str, str]] | None = None) -> list[dict[str, Any]]:
    rows = report["metric_vs_human"]
    if pairs is None:
        return sorted(rows, key=lambda r: (r["dimension"], r["metric"]))
    by_pair = {(r["dimension"], r["metric"]): r for r in rows}
    return [by_pair[p] for p in pairs if p in by_pair]


# -- the figures ------------------------------------------------------------------------------------

def coverage_version(data: Data) -> str:
    from clinsum.evaluators.coverage import CoverageOptions
    from clinsum.evaluators.coverage import coverage_version as version

    return f"`{version(CoverageOptions())}`"


def mts_agreement(data: Data) -> str:
    """docs/agreement.md: every rank statistic and every flag of the worked example."""
    report = data.agreement(metrics=MTS_METRICS, dimensions=MTS_DIMENSIONS)
    lines = ["", "| dimension | metric | n | Spearman | Kendall tau-b |", "|---|---|---:|---|---|"]
    for row in _rows(report):
        stats = row["statistics"]
        lines.append(f"| {row['dimension']} | {row['metric']} | {row['n']} | {estimate(stats['spearman'])} "
                     f"| {estimate(stats['kendall_tau_b'])} |")
    flags = data.agreement(metrics=MTS_METRICS, flags=MTS_FLAGS, human_flag=MTS_HUMAN_FLAG)["flags"]
    lines += ["", f"| flag (vs {MTS_HUMAN_FLAG}) | n | TP | FP | FN | TN | accuracy | precision | recall | F1 |",
              "|---|---:|---:|---:|---:|---:|---|---|---|---|"]
    for row in flags:
        stats = row["statistics"]
        lines.append(f"| `{row['flag']}` | {row['n']} | {row['tp']} | {row['fp']} | {row['fn']} | {row['tn']} | "
                     + " | ".join(estimate(stats[k]) for k in ("accuracy", "precision", "recall", "f1")) + " |")
    return "\n".join(lines) + "\n"


def mts_reading(data: Data) -> str:
    """docs/agreement.md: the figures the text under the tables cites."""
    report = data.agreement(metrics=MTS_METRICS, dimensions=MTS_DIMENSIONS)
    rows = {(r["dimension"], r["metric"]): r["statistics"]["spearman"] for r in report["metric_vs_human"]}
    parts = []
    rouge_recall = rows.get(("FactualRecall", "rouge1"))
    concept_recall = rows.get(("FactualRecall", "concept_recall"))
    if rouge_recall and concept_recall:
        parts.append(f"Spearman with FactualRecall: ROUGE-1 {estimate(rouge_recall)}, "
                     f"`concept_recall` {estimate(concept_recall)}.")
    names = {"rouge1": "ROUGE-1", "unsupported_concepts": "`unsupported_concepts`",
             "concept_support": "`concept_support`"}
    hallucination = {m: rows[("HallucinationRate", m)] for m in names if ("HallucinationRate", m) in rows}
    if len(hallucination) == len(names):
        parts.append("With HallucinationRate: " + ", ".join(
            f"{names[m]} {estimate(s)}" for m, s in hallucination.items()) + ".")
    flags = data.agreement(metrics=MTS_METRICS, flags=MTS_FLAGS[:1], human_flag=MTS_HUMAN_FLAG)["flags"]
    if flags:
        row = flags[0]
        stats = row["statistics"]
        parts.append(f"`{row['flag']}` flags {row['tp']} of the {row['tp'] + row['fn']} summaries the annotators "
                     f"found to hallucinate (recall {estimate(stats['recall'])}) at a precision of "
                     f"{estimate(stats['precision'])}.")
    return "\n" + "\n".join(parts) + "\n"


def mts_same_scale(data: Data) -> str:
    """docs/agreement.md: concept F1 against the reference, declared comparable with the human fact F1."""
    report = data.agreement(metrics=("concept_f1_ref",), dimensions=("FactualF1",),
                            same_scale=(("concept_f1_ref", "FactualF1"),))
    rows = _rows(report)
    if not rows:
        return "\n"
    row = rows[0]
    stats = row["statistics"]
    return (f"\nn = {row['n']}: Spearman {estimate(stats['spearman'])}, ICC(2,1) {estimate(stats['icc_2_1'])}, "
            f"ICC(3,1) {estimate(stats['icc_3_1'])}, mean difference {estimate(stats['mean_difference'])} "
            f"with limits of agreement {number(stats['loa_lower']['value'])} to "
            f"{number(stats['loa_upper']['value'])}.\n")


README_PAIRS = (("FactualRecall", "concept_recall"), ("FactualRecall", "rouge1"),
                ("HallucinationRate", "unsupported_concepts"), ("HallucinationRate", "rouge1"))


def readme_mts(data: Data) -> str:
    """README.md: the short version of the worked example."""
    report = data.agreement(metrics=MTS_METRICS, dimensions=MTS_DIMENSIONS)
    lines = ["", "| dimension | metric | n | Spearman [95% CI] | Kendall [95% CI] |", "|---|---|---|---|---|"]
    for row in _rows(report, README_PAIRS):
        stats = row["statistics"]
        lines.append(f"| {row['dimension']} | `{row['metric']}` | {row['n']} | {estimate(stats['spearman'])} | "
                     f"{estimate(stats['kendall_tau_b'])} |")
    flags = data.agreement(metrics=MTS_METRICS, flags=MTS_FLAGS[:2], human_flag=MTS_HUMAN_FLAG)["flags"]
    if flags:
        positives = flags[0]["tp"] + flags[0]["fn"]
        lines += ["", f"| automatic flag vs `{MTS_HUMAN_FLAG}` ({positives} of {flags[0]['n']}) "
                      "| precision | recall | F1 |", "|---|---|---|---|"]
        for row in flags:
            stats = row["statistics"]
            lines.append(f"| `{row['flag']}` | " + " | ".join(estimate(stats[k]) for k in ("precision", "recall", "f1"))
                         + " |")
    return "\n".join(lines) + "\n"


def shrout_fleiss(data: Data) -> str:
    """The ICCs of Shrout & Fleiss (1979) Table 2 (six targets, four judges), as clinsum computes them."""
    from clinsum.evaluators.agreement import icc

    table = [[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]]
    return f"ICC(2,1) = {icc(table, '2,1'):.2f}, ICC(3,1) = {icc(table, '3,1'):.2f}"


@dataclass(frozen=True)
class Figure:
    render: Callable[[Data], str]
    cheap: bool
    """Computed in full by every test run; otherwise the test checks the lines a cheap run can produce."""


FIGURES: dict[str, Figure] = {
    "coverage-version": Figure(coverage_version, cheap=True),
    "mts-agreement": Figure(mts_agreement, cheap=False),
    "mts-reading": Figure(mts_reading, cheap=False),
    "mts-same-scale": Figure(mts_same_scale, cheap=False),
    "readme-mts-agreement": Figure(readme_mts, cheap=False),
    "shrout-fleiss": Figure(shrout_fleiss, cheap=True),
}


# -- the documents ----------------------------------------------------------------------------------

def blocks(text: str) -> dict[str, list[str]]:
    """Figure name -> the committed bodies of its blocks in ``text``."""
    found: dict[str, list[str]] = {}
    for match in BLOCK.finditer(text):
        found.setdefault(match["name"], []).append(match["body"])
    return found


def regenerate(text: str, data: Data) -> str:
    def replace(match: re.Match[str]) -> str:
        name = match["name"]
        if name not in FIGURES:
            raise SystemExit(f"unknown figure block '{name}' (known: {', '.join(FIGURES)})")
        return f"<!-- figures:{name} -->{FIGURES[name].render(data)}<!-- /figures:{name} -->"

    return BLOCK.sub(replace, text)


@cache
def cheap_data() -> Data:
    return Data(evaluators=CHEAP_EVALUATORS)


def cheap_problems(texts: dict[str, str]) -> list[str]:
    """What a cheap run finds wrong in the documents' figure blocks (empty: nothing it can see).

    Cheap figures must equal their committed blocks; of the others, every line a
    cheap run produces (the ROUGE rows, the table headers) must be in the committed block.
    """
    data = cheap_data()
    problems = []
    seen: set[str] = set()
    for document, text in texts.items():
        if text.count("<!-- figures:") != text.count("<!-- /figures:"):
            problems.append(f"{document}: a figure block is not closed")
        for name, bodies in blocks(text).items():
            seen.add(name)
            figure = FIGURES.get(name)
            if figure is None:
                problems.append(f"{document}: unknown figure block '{name}'")
                continue
            expected = figure.render(data)
            for body in bodies:
                if figure.cheap and body != expected:
                    problems.append(f"{document}: figure '{name}' is {body.strip()!r}, the code gives "
                                    f"{expected.strip()!r}")
                elif not figure.cheap:
                    missing = [line for line in expected.splitlines() if line and line not in body.splitlines()]
                    problems += [f"{document}: figure '{name}' lacks the line {line!r}" for line in missing]
    problems += [f"figure '{name}' is in no document" for name in sorted(set(FIGURES) - seen)]
    return problems


def documents() -> dict[str, str]:
    """README.md and every docs/*.md, by path relative to the repository root."""
    paths = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    return {str(p.relative_to(ROOT)): p.read_text(encoding="utf-8") for p in paths}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="Change nothing; exit 1 if a block is stale.")
    args = parser.parse_args(argv)
    data = Data(evaluators=("overlap", "coverage"))
    stale = []
    for name, text in documents().items():
        new = regenerate(text, data)
        if new != text:
            stale.append(name)
            if not args.check:
                (ROOT / name).write_text(new, encoding="utf-8")
    verb = "stale" if args.check else "rewritten"
    print(f"{verb}: {', '.join(stale)}" if stale else "every figure is current")
    return 1 if (args.check and stale) else 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
