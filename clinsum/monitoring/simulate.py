"""Planted changes, for measuring what the monitor detects (tests, ``benchmarks/monitor_power.py``).

A pool of scored production summaries is the population; a window is a draw of
summaries from it (with replacement, each drawn summary a new encounter), so two
windows drawn the same way differ by chance alone and the false-alarm rate can be
measured. A degraded window swaps some drawn summaries for a planted variant
(truncated, negations flipped, a weaker system's), scored with the same evaluators.

Planted changes:

- ``truncate(text, fraction)``: the summary loses its last ``fraction`` of words
  (a lowered output-token limit, a cut-off stream);
- ``flip_negation(text)``: the first negation cue of the summary is reversed
  (``denies chest pain`` -> ``reports chest pain``, ``no fever`` -> ``fever``),
  or None when it has none.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from clinsum.monitoring.windows import Observation, Selector, Window, with_derived
from clinsum.records import Note, Summary

_NEGATION_FLIPS = (
    (re.compile(r"\bdenies\b", re.I), "reports"),
    (re.compile(r"\bdenied\b", re.I), "reported"),
    (re.compile(r"\bnegative for\b", re.I), "positive for"),
    (re.compile(r"\b(?:does not|doesn't|did not|didn't) (?:have|report|experience)\b", re.I), "has"),
    (re.compile(r"\bno (?=[a-z])", re.I), ""),
    (re.compile(r"\bwithout\b", re.I), "with"),
)


def flip_negation(text: str, negated: Sequence[int] | None = None) -> str | None:
    """The text with its first negation cue reversed, or None when it has no cue.

    With ``negated`` (start offsets of concepts stated as negated, from the concept
    extractor), only a cue that governs one of them (the concept starts within 60
    characters after the cue, on the same line) is reversed: the plant is then a flip
    of a clinical finding ("denies chest pain"), not of a phrase such as "denies any
    issues" that no concept-level check could see.
    """
    found = sorted((m.start(), m.end(), replacement) for pattern, replacement in _NEGATION_FLIPS
                   for m in pattern.finditer(text))
    for start, end, replacement in found:
        if negated is None or any(end <= at <= end + 60 and "\n" not in text[end:at] for at in negated):
            return text[:start] + replacement + text[end:]
    return None


def truncate(text: str, fraction: float) -> str:
    """The first ``1 - fraction`` of the summary's words (at least one word), line breaks kept."""
    words = text.split()
    keep = max(1, round(len(words) * (1 - fraction)))
    kept, count = [], 0
    for line in text.split("\n"):
        line_words = line.split()
        if count + len(line_words) >= keep:
            kept.append(" ".join(line_words[: keep - count]))
            break
        kept.append(line)
        count += len(line_words)
    return "\n".join(kept)


@dataclass(frozen=True)
class PoolItem:
    """One scored summary of the pool, with its planted variants' scores."""

    note_id: str
    fields: Mapping[str, Any]
    note_words: int
    values: Mapping[str, Mapping[str, float]]
    """Variant (``base``, ``weaker``, ``truncate:0.2``, ``flip``...) -> metric -> value."""


def draw_window(pool: Sequence[PoolItem], size: int, rng: np.random.Generator, *,
                variant: str | None = None, share: float = 0.0, weights: Sequence[float] | None = None,
                label: str = "window", indices: Sequence[int] | None = None) -> Window:
    """``size`` summaries drawn from ``pool``; ``round(share * size)`` of them swapped for ``variant``.

    The swapped summaries are chosen among the drawn ones that have the variant (a
    summary with no negation cannot have one flipped), so planting never changes
    which notes are in the window; when too few drawn summaries have the variant,
    all that have it are swapped. ``weights`` (one per pool item) skews the draw, to
    plant a case-mix shift. Every drawn summary gets its own note id (``<pool
    id>#<draw>``): windows drawn this way share no notes and are compared unpaired,
    as production windows are. Given ``indices`` (pool positions, from an earlier
    draw), the window holds those summaries under note ids shared with every other
    window drawn with the same indices: a fixed set of notes re-summarized, compared
    paired.
    """
    same_notes = indices is not None
    if indices is None:
        p = None if weights is None else np.asarray(weights, float) / np.sum(weights)
        indices = [int(i) for i in rng.choice(len(pool), size=size, replace=True, p=p)]
    planted: set[int] = set()
    if variant is not None and share > 0:
        eligible = [position for position, i in enumerate(indices) if variant in pool[i].values]
        count = min(len(eligible), round(share * size))
        planted = {int(x) for x in rng.choice(eligible, size=count, replace=False)} if count else set()
    observations = []
    for draw, index in enumerate(indices):
        item = pool[index]
        values = item.values[variant] if draw in planted and variant is not None else item.values["base"]
        note_id = f"{item.note_id}#{draw}" if same_notes else f"{item.note_id}#{label}{draw}"
        observations.append(Observation(label, note_id, str(item.fields.get("system")),
                                        None, dict(values), dict(item.fields), item.note_words))
    return Window(Selector(runs=(label,)), (label,), tuple(observations))


def draw_same_notes(pool: Sequence[PoolItem], size: int, rng: np.random.Generator, *,
                    variant: str | None = None, share: float = 0.0) -> tuple[Window, Window]:
    """A baseline and a current window of the same ``size`` notes (a fixed canary set re-summarized)."""
    indices = [int(i) for i in rng.choice(len(pool), size=size, replace=size > len(pool))]
    return (draw_window(pool, size, rng, label="b", indices=indices),
            draw_window(pool, size, rng, label="c", indices=indices, variant=variant, share=share))


# -- the fixture pool ------------------------------------------------------------------------

Variant = Callable[[str, "SourceItem"], str | None]
"""Makes a variant's summary text from the base summary (None: no such variant for this one)."""


@dataclass(frozen=True)
class SourceItem:
    """One production summary of the pool before scoring, with a weaker system's summary of the same note."""

    note: Note
    summary: str
    weaker: str
    fields: Mapping[str, Any]


def fixture_sources(fixtures: Path) -> list[SourceItem]:
    """The pool's notes and summaries, from the repository's fixtures (see fixtures/README.md).

    - 52 visit notes (ACI-Bench: ``aci_notes.jsonl`` and the 40 test-1 references),
      ``note_type = visit_note``; the production summary is ``extractive:centroid``
      (120 words), the weaker system's ``extractive:lead`` at 60 words.
    - 200 section summaries of 50 MTS-Dialog dialogues by four systems,
      ``note_type = dialogue``, with the human reference (so ROUGE applies); the
      weaker system for a dialogue is the one the study's raters scored lowest
      (FactualF1) on it.
    """
    from clinsum.providers.base import Request
    from clinsum.providers.extractive import ExtractiveProvider

    centroid = ExtractiveProvider("extractive:centroid", {"max_words": 120})
    lead = ExtractiveProvider("extractive:lead", {"max_words": 60})

    def summarize(provider: ExtractiveProvider, note: Note) -> str:
        return asyncio.run(provider.generate(Request(prompt="", note=note))).text

    items: list[SourceItem] = []
    visit_notes = [json.loads(line) for line in (fixtures / "aci_notes.jsonl").open(encoding="utf-8")]
    visit_notes += [{"id": f"acibench-test1-{r['id']}", "text": r["reference"], "meta": {"subset": r["subset"]}}
                    for r in map(json.loads, (fixtures / "aci_test1" / "references.jsonl").open(encoding="utf-8"))]
    for row in visit_notes:
        note = Note(id=row["id"], text=row["text"], meta={"note_type": "visit_note",
                                                         "specialty": row["meta"].get("subset", "")})
        items.append(SourceItem(note, summarize(centroid, note), summarize(lead, note),
                                {"note_type": "visit_note", "specialty": note.meta["specialty"],
                                 "system": "production"}))
    dialogues = [json.loads(line) for line in (fixtures / "mts_dialog_ratings.jsonl").open(encoding="utf-8")]
    worst = {}
    for row in sorted(dialogues, key=lambda r: r["ratings"]["FactualF1"], reverse=True):
        worst[row["dialogue_id"]] = row["summary"]
    for row in dialogues:
        note = Note(id=row["id"], text=row["dialogue"], reference=row["reference"],
                    meta={"note_type": "dialogue", "specialty": row["section_header"]})
        items.append(SourceItem(note, row["summary"], worst[row["dialogue_id"]],
                                {"note_type": "dialogue", "specialty": row["section_header"],
                                 "system": row["system"]}))
    return items


def score_pool(sources: Sequence[SourceItem], variants: Mapping[str, Variant]) -> list[PoolItem]:
    """Score every source's base summary and each variant with coverage, overlap and length."""
    from clinsum.evaluators.coverage import CoverageEvaluator
    from clinsum.evaluators.overlap import LengthEvaluator, OverlapEvaluator

    coverage, overlap, length = CoverageEvaluator(), OverlapEvaluator(), LengthEvaluator()

    async def values(note: Note, text: str) -> dict[str, float]:
        summary = Summary(note_id=note.id, system="pool", text=text)
        scores = coverage.scores(note, summary) + await length.evaluate(note, summary)
        if note.reference:
            scores += await overlap.evaluate(note, summary)
        return with_derived({s.metric: s.value for s in scores if s.value is not None}, ok=True, text=text)

    async def score_all() -> list[PoolItem]:
        pool = []
        for source in sources:
            by_variant = {"base": await values(source.note, source.summary)}
            for name, make in variants.items():
                text = make(source.summary, source)
                if text is not None:
                    by_variant[name] = await values(source.note, text)
            pool.append(PoolItem(source.note.id, source.fields, len(source.note.text.split()), by_variant))
        return pool

    return asyncio.run(score_all())


def flip_negated_finding(text: str, source: SourceItem | None = None) -> str | None:
    """``flip_negation`` restricted to cues that govern a concept the extractor reads as negated."""
    from clinsum.concepts.extract import extract

    return flip_negation(text, [m.start for m in extract(text) if m.assertion == "negated"])


STANDARD_VARIANTS: dict[str, Variant] = {
    "weaker": lambda text, source: source.weaker,
    "flip": flip_negated_finding,
    "truncate:0.5": lambda text, source: truncate(text, 0.5),
    "empty": lambda text, source: "",
}
"""The planted changes the tests use."""
