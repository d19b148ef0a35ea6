"""Unsupported facts: the statements of a summary that its source does not support.

Beyond lexicon concepts (``coverage``), a summary states numbers with their units
and what they measure (ages, dates, durations, doses, vitals, lab values), sides
(left/right), medication doses and frequencies, and concepts with a status. Each
is a fact; each fact is looked for in the source (and in the reference summary
when the note has one, as ``coverage`` does). Dialogue sources are read as spoken:
"twenty milligrams", "one twenty over eighty", "two weeks ago" (``numbers``).

Then the statements of the summary (sentences, list lines) are checked by their words
(``grounding``): a statement whose content words the source does not support, or a rare
word in it found nowhere in the source, is unsupported too, with the words not found.

Scores (the details list every unsupported fact or statement with ``start``, ``end``, ``text``,
``kind``, ``reason`` and the ``source`` span it was compared with, or null):

``unsupported_likelihood``
    the chance that the summary states anything unsupported: each statement's flags (its words, the
    facts in it) weighed by how sure each kind of flag is (``confidence``, fitted on ACI-Bench train),
    1 − Π(1 − p) over the statements. The recommended metric: most flags on faithful text are weak
    ones, and counting them alike let them rank the summaries. Chosen before the ratings were scored
    with it.
``unsupported_claim_rate``
    statements with anything unsupported (their words, or a fact inside them) / statements of
    the summary (0 for a summary with none); recommended before ``unsupported_likelihood``.
``unsupported_fact_rate``
    ``unsupported_facts`` / facts stated by the summary (0 for a summary that states none).
``unsupported_facts``
    count of summary facts the source does not support.
``summary_facts``
    facts the summary states (the rate's denominator).
``unsupported_statement_rate``, ``unsupported_statements``, ``summary_statements``
    the statement check alone: statements flagged / statements, their count (detail: every
    flagged statement or word), and the statements counted.

The tolerance, which concept groups count and the statement check's threshold, window and
word weight are options; their defaults were fitted on ACI-Bench train, valid held out
(clinician notes as faithful summaries of their dialogues, and the same notes with planted
fabrications): see benchmarks/facts_fit.py.
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
    Metric("unsupported_statement_rate", "lower", "continuous", 0, 1, 67,
           "share of the summary's statements whose content words the source does not support"),
    Metric("unsupported_statements", "lower", "count", 0, None, 68,
           "summary statements (sentences, list lines) whose content words the source does not support"),
    Metric("unsupported_claim_rate", "lower", "continuous", 0, 1, 63,
           "share of the summary's statements with anything unsupported: their words, or a fact in them"),
    Metric("unsupported_likelihood", "lower", "continuous", 0, 1, 62,
           "chance the summary states anything unsupported: its statements' flags weighed by how sure each is"),
    Metric("summary_statements", "neutral", "count", 0, None, 69,
           "statements the summary makes (sentences and list lines with two content words or more)"),
)
_LOGIC_VERSION = "3"

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
    statement_threshold: float = 0.4
    """A statement is unsupported when the weighted share of its content words in its best source window
    is under this (``grounding``)."""
    statement_window: int = 1
    """Source units (sentences, turns) either side of a unit that make one window."""
    statement_elsewhere: float = 0.0
    """How much of its weight a statement word found in the source outside the best window counts."""
    statement_missing: float = 1.5
    """The least weight of words not found that makes a statement unsupported (1: one word no note uses)."""
    content_weight: float | None = 0.8
    """In a supported statement, a content word found nowhere in the source and at least this rare
    (weight in [0, 1]) is unsupported; None: words are not flagged one by one."""

    @classmethod
    def from_dict(cls, options: Mapping[str, Any]) -> FactsOptions:
        known = {"tolerance", "concept_groups", "statuses", "reference_supports", "number_context",
                 "statement_threshold", "statement_window", "statement_elsewhere", "statement_missing",
                 "content_weight"}
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
        threshold = options.get("statement_threshold", default.statement_threshold)
        if not isinstance(threshold, int | float) or isinstance(threshold, bool) or not 0 <= threshold <= 1:
            raise ConfigError(f"facts: statement_threshold must be a number in [0, 1], not {threshold!r}")
        window = options.get("statement_window", default.statement_window)
        if not isinstance(window, int) or isinstance(window, bool) or not 0 <= window <= 10:
            raise ConfigError(f"facts: statement_window must be a whole number in [0, 10], not {window!r}")
        elsewhere = options.get("statement_elsewhere", default.statement_elsewhere)
        if not isinstance(elsewhere, int | float) or isinstance(elsewhere, bool) or not 0 <= elsewhere <= 1:
            raise ConfigError(f"facts: statement_elsewhere must be a number in [0, 1], not {elsewhere!r}")
        missing = options.get("statement_missing", default.statement_missing)
        if not isinstance(missing, int | float) or isinstance(missing, bool) or missing < 0:
            raise ConfigError(f"facts: statement_missing must be a number >= 0, not {missing!r}")
        content = options.get("content_weight", default.content_weight)
        if content is not None and (not isinstance(content, int | float) or isinstance(content, bool)
                                    or not 0 <= content <= 1):
            raise ConfigError(f"facts: content_weight must be a number in [0, 1] or omitted, not {content!r}")
        return cls(tolerance=float(tolerance), concept_groups=groups, statuses=statuses,
                   reference_supports=bool(options.get("reference_supports", default.reference_supports)),
                   number_context=bool(options.get("number_context", default.number_context)),
                   statement_threshold=float(threshold), statement_window=window,
                   statement_elsewhere=float(elsewhere), statement_missing=float(missing),
                   content_weight=None if content is None else float(content))


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
        from clinsum.evaluators.facts.compare import claims, statement_likelihoods, unsupported_facts
        from clinsum.evaluators.facts.confidence import summary_likelihood

        reference = note.reference if self.options.reference_supports and note.reference else None
        found = unsupported_facts(note.text, summary.text, self.options, reference=reference)
        statements, claimed = claims(note.text, summary.text, self.options, found, reference=reference)
        likely = statement_likelihoods(statements, found)
        per_statement = statements.total
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
            score(note, summary, self, "unsupported_statements", float(len(statements.flagged)),
                  statements=statements.unsupported),
            score(note, summary, self, "unsupported_statement_rate",
                  len(statements.flagged) / per_statement if per_statement else 0.0,
                  unsupported=len(statements.flagged), statements=per_statement),
            score(note, summary, self, "unsupported_claim_rate", claimed / per_statement if per_statement else 0.0,
                  unsupported=claimed, statements=per_statement),
            score(note, summary, self, "unsupported_likelihood", summary_likelihood([s["p"] for s in likely]),
                  statements=likely),
            score(note, summary, self, "summary_statements", float(per_statement)),
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
    from clinsum.evaluators.coverage import require_concepts_extra

    require_concepts_extra("the facts evaluator")  # it reads concepts with the same extractor
    return FactsEvaluator(FactsOptions.from_dict(options or {}))
