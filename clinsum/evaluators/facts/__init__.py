"""Unsupported facts: the statements of a summary that its source does not support.

Beyond lexicon concepts (``coverage``), a summary states numbers with their units
and what they measure (ages, dates, durations, doses, vitals, lab values), sides
(left/right), medication doses and frequencies, and concepts with a status. Each
is a fact; each fact is looked for in the source (and in the reference summary
when the note has one, as ``coverage`` does). Dialogue sources are read as spoken:
"twenty milligrams", "one twenty over eighty", "two weeks ago" (``numbers``).

Scores (the detail lists every unsupported fact with ``start``, ``end``, ``text``,
``kind``, ``reason`` and the ``source`` span it was compared with, or null):

``unsupported_facts``
    count of summary facts the source does not support.
``unsupported_fact_rate``
    ``unsupported_facts`` / facts stated by the summary (0 for a summary that states
    none). The recommended metric: a longer summary states more facts, and the human
    hallucination rate it is checked against is a rate per fact too.
``summary_facts``
    facts the summary states (the rate's denominator).

The tolerance and which concept groups count are options; their defaults were fitted
on ACI-Bench train/valid (clinician notes as faithful summaries of their dialogues,
and the same notes with planted fabrications): see benchmarks/facts_fit.py.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from clinsum.errors import ConfigError
from clinsum.evaluators.base import score
from clinsum.evaluators.metrics import Metric
from clinsum.records import Note, Score, Summary

NAME = "facts"
METRICS = (
    Metric("unsupported_fact_rate", "lower", "continuous", 0, 1, 64,
           "share of the summary's facts (numbers, doses, sides, concepts with status) the source does not support"),
    Metric("unsupported_facts", "lower", "count", 0, None, 65,
           "summary facts the source does not support (absent, different number, side, dose or status)"),
    Metric("summary_facts", "neutral", "count", 0, None, 66,
           "facts the summary states (numbers, doses, sides, concepts with status)"),
)
_LOGIC_VERSION = "1"

GROUPS = ("disorder", "finding", "drug", "procedure", "test", "anatomy", "device")
STATUSES = ("critical", "all", "none")
DEFAULT_GROUPS = ("disorder", "finding", "drug")


@dataclass(frozen=True)
class FactsOptions:
    tolerance: float = 0.05
    """Relative difference under which two numbers are the same (0.05: 5 %)."""
    concept_groups: tuple[str, ...] = DEFAULT_GROUPS
    """Semantic groups whose concepts count as facts. Tests, procedures, anatomy and devices are left
    out by default: a visit note names them ("follow up", "X-ray", "lungs") where the dialogue does not."""
    statuses: str = "none"
    """Which status changes count: ``critical`` (meaning reversed), ``all`` (every flip) or ``none``."""
    reference_supports: bool = True
    """A summary fact stated by the note's reference summary is supported (as in ``coverage``)."""
    number_context: bool = False
    """A source number supports a summary number only when they share a content word around them."""

    @classmethod
    def from_dict(cls, options: Mapping[str, Any]) -> FactsOptions:
        known = {"tolerance", "concept_groups", "statuses", "reference_supports", "number_context"}
        unknown = set(options) - known
        if unknown:
            raise ConfigError(f"facts: unknown option(s) {sorted(unknown)}; known: {sorted(known)}")
        default = cls()
        tolerance = options.get("tolerance", default.tolerance)
        if not isinstance(tolerance, int | float) or isinstance(tolerance, bool) or not 0 <= tolerance < 1:
            raise ConfigError(f"facts: tolerance must be a number in [0, 1), not {tolerance!r}")
        groups = tuple(options.get("concept_groups", default.concept_groups))
        bad = [g for g in groups if g not in GROUPS]
        if bad:
            raise ConfigError(f"facts: concept_groups: unknown group(s) {bad}; groups: {list(GROUPS)}")
        statuses = options.get("statuses", default.statuses)
        if statuses not in STATUSES:
            raise ConfigError(f"facts: statuses must be one of {list(STATUSES)}, not {statuses!r}")
        return cls(tolerance=float(tolerance), concept_groups=groups, statuses=statuses,
                   reference_supports=bool(options.get("reference_supports", default.reference_supports)),
                   number_context=bool(options.get("number_context", default.number_context)))


class FactsEvaluator:
    """Stateless: options are fixed at construction; every call builds its own comparison."""

    name = NAME

    def __init__(self, options: FactsOptions | None = None) -> None:
        self.options = options or FactsOptions()
        self.version = facts_version(self.options)

    async def evaluate(self, note: Note, summary: Summary) -> list[Score]:
        if not summary.ok:
            return []
        return await asyncio.to_thread(self.scores, note, summary)

    def scores(self, note: Note, summary: Summary) -> list[Score]:
        from clinsum.evaluators.facts.compare import unsupported_facts

        reference = note.reference if self.options.reference_supports and note.reference else None
        found = unsupported_facts(note.text, summary.text, self.options, reference=reference)
        total = found.total
        rate = len(found.unsupported) / total if total else 0.0
        by_reason: dict[str, int] = {}
        for fact in found.unsupported:
            by_reason[fact["reason"]] = by_reason.get(fact["reason"], 0) + 1
        return [
            score(note, summary, self, "unsupported_facts", float(len(found.unsupported)),
                  facts=found.unsupported, by_reason=by_reason),
            score(note, summary, self, "unsupported_fact_rate", rate, unsupported=len(found.unsupported),
                  facts=total),
            score(note, summary, self, "summary_facts", float(total), by_kind=found.by_kind),
        ]


def facts_version(options: FactsOptions) -> str:
    """Logic and assertion-rule versions, plus a hash of non-default options."""
    from clinsum.concepts.assertion import RULES_VERSION

    suffix = ""
    if options != FactsOptions():
        suffix = "+opt" + hashlib.sha256(repr(options).encode()).hexdigest()[:6]
    return f"{_LOGIC_VERSION}+ctx.{RULES_VERSION}{suffix}"


def create(options: dict[str, Any], dispatcher: object = None) -> FactsEvaluator:
    """Factory used by the runner (``facts`` in the run configuration); needs no model."""
    return FactsEvaluator(FactsOptions.from_dict(options or {}))
