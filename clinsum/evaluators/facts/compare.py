"""A summary's facts against its source: the unsupported ones, each with its span and reason."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from clinsum.evaluators.facts.statements import facts_of, stem
from clinsum.evaluators.facts.support import Evidence, check
from clinsum.records import Mention

if TYPE_CHECKING:
    from clinsum.evaluators.coverage import Concept
    from clinsum.evaluators.facts import FactsOptions
    from clinsum.evaluators.facts.grounding import Evidence as StatementEvidence
    from clinsum.evaluators.facts.grounding import Statements


@dataclass
class Found:
    unsupported: list[dict[str, Any]]
    """One entry per unsupported fact: start, end, text, kind, reason, source (span or None)."""
    total: int
    by_kind: dict[str, int]
    supported: list[tuple[int, int]] = field(default_factory=list)
    """Spans of the number, dose and side facts the source supports (concepts are not listed)."""


def mentions_of(text: str) -> tuple[Mention, ...]:
    """Concept mentions of a text, from the cache ``coverage`` fills too: a run that scores both
    extracts each source, reference and summary once, not once per evaluator."""
    from clinsum.evaluators.coverage import _extract_cached

    return _extract_cached(text) if text.strip() else ()


SPOKEN: dict[str, frozenset[str]] = {
    "pain": frozenset({"pain", "hurt", "hurting", "ache", "aching", "sore", "soreness", "painful"}),
    "painful": frozenset({"pain", "hurt", "hurting", "ache", "aching", "sore", "painful"}),
    "swelling": frozenset({"swelling", "swollen", "swell"}),
    "nausea": frozenset({"nausea", "nauseous", "nauseated", "queasy"}),
    "vomiting": frozenset({"vomiting", "vomit", "vomited", "throwing", "threw"}),
    "fatigue": frozenset({"fatigue", "tired", "exhausted"}),
    "dyspnea": frozenset({"dyspnea", "breath", "breathe", "breathing"}),
}
"""How a patient says the head word of a finding ("my knee hurts" for "knee pain")."""
NEARBY = 80
"""Characters within which all words of a concept must appear in the source to support it."""
_TOKEN = re.compile(r"[a-z0-9]+")
_FILLER = frozenset({"of", "the", "a", "an", "in", "on", "and", "with", "to", "left", "right", "bilateral"})


def words_nearby(surface: str, text: str) -> bool:
    """Whether every word of ``surface`` (or its spoken form) occurs in ``text`` within ``NEARBY`` characters.

    A dialogue seldom says a finding by its lexicon name: "my knee has been hurting" supports
    "knee pain". Every word must be there, close together, so an invented disorder is not excused.
    """
    words = [w for w in _TOKEN.findall(surface.lower()) if w not in _FILLER]
    if len(words) < 2:
        return False
    lowered = text.lower()
    positions: list[list[int]] = []
    for word in words:
        forms = SPOKEN.get(word, frozenset({word}))
        found = [m.start() for form in forms for m in re.finditer(rf"\b{re.escape(stem(form))}", lowered)]
        if not found:
            return False
        positions.append(found)
    return any(all(any(abs(p - anchor) <= NEARBY for p in others) for others in positions[1:])
               for anchor in positions[0])


def _status_span(flip: dict[str, Any], source_concepts: Mapping[str, Concept],
                 reference: tuple[str, Mapping[str, Concept]] | None) -> dict[str, Any] | None:
    """Where the source (or the reference) states the flipped concept, with its status there."""
    from clinsum.evaluators.coverage import normalise

    key = normalise(flip["name"])
    texts: list[tuple[str, Mapping[str, Concept]]] = [("source", source_concepts)]
    if reference is not None:
        texts.append(("reference", reference[1]))
    for role, concepts in texts:
        concept = concepts.get(key)
        if concept is not None and concept.mentions:
            mention = concept.mentions[0]
            return {"start": mention.start, "end": mention.end, "text": mention.text, "in": role,
                    "status": mention.assertion}
    return None


@lru_cache(maxsize=2048)
def evidence_of(text: str, role: str = "source") -> Evidence:
    mentions = mentions_of(text)
    return Evidence(text, facts_of(text, mentions), mentions, role)


def unsupported_facts(source: str, summary: str, options: FactsOptions, *,
                      reference: str | None = None) -> Found:
    """Every fact of ``summary`` that ``source`` (or ``reference``, when given) does not support."""
    from clinsum.evaluators.coverage import CoverageOptions, compare, concepts_of

    evidence = [evidence_of(source)]
    if reference and reference.strip():
        evidence.append(evidence_of(reference, "reference"))
    summary_mentions = mentions_of(summary)
    unsupported: list[dict[str, Any]] = []
    supported: list[tuple[int, int]] = []
    by_kind: dict[str, int] = {}
    facts = facts_of(summary, summary_mentions)
    doses = [(f.start, f.end) for f in facts if f.kind == "dose"]
    for fact in facts:
        by_kind[fact.kind] = by_kind.get(fact.kind, 0) + 1
        verdict = check(fact, evidence, options.tolerance, summary_text=summary, context=options.number_context)
        if verdict is None:
            supported.append((fact.start, fact.end))
            continue
        reason, compared = verdict
        unsupported.append({"start": fact.start, "end": fact.end, "text": fact.text, "kind": fact.kind,
                            "reason": reason, "source": compared})

    groups = set(options.concept_groups)
    counted = [m for m in summary_mentions if m.group in groups
               and not any(start <= m.start < end for start, end in doses)]
    summary_concepts = concepts_of(summary, counted)
    source_concepts = concepts_of(source, mentions_of(source))
    ref = (reference, concepts_of(reference, mentions_of(reference))) if reference and reference.strip() else None
    comparison = compare(source, source_concepts, summary, summary_concepts, CoverageOptions(), reference=ref)
    by_kind["concept"] = len(summary_concepts)
    texts = [source] + ([reference] if ref is not None and reference else [])
    for concept in comparison.unsupported:
        if any(words_nearby(concept["text"], text) for text in texts):
            continue
        start, end = concept["span"]
        unsupported.append({"start": start, "end": end, "text": concept["text"], "kind": "concept",
                            "reason": "absent", "source": None, "concept": concept["name"]})
    for flip in comparison.flips:
        if options.statuses == "none" or (options.statuses == "critical" and flip["severity"] != "critical"):
            continue
        start, end = flip["summary"]["span"]
        compared = _status_span(flip, source_concepts, ref)
        unsupported.append({"start": start, "end": end, "text": flip["summary"]["text"], "kind": "concept",
                            "reason": "different status", "source": compared, "concept": flip["name"],
                            "status": flip["summary"]["assertion"]})
    unsupported.sort(key=lambda f: (f["start"], f["end"]))
    return Found(unsupported, sum(by_kind.values()), by_kind, supported)


@lru_cache(maxsize=2048)
def statement_evidence_of(text: str, role: str = "source") -> StatementEvidence:
    from clinsum.evaluators.facts.grounding import evidence_of as grounding_evidence

    return grounding_evidence(text, mentions_of(text), role)


def claims(source: str, summary: str, options: FactsOptions, facts: Found, *,
           reference: str | None = None) -> tuple[Statements, int]:
    """The summary's unsupported statements, and how many statements have anything unsupported.

    The second figure is the combined check: a statement counts once whether its words are not in the
    source, or a fact inside it (number, dose, side, concept) is unsupported.
    """
    from clinsum.evaluators.facts.grounding import unsupported_statements

    evidence = [statement_evidence_of(source)]
    if reference and reference.strip():
        evidence.append(statement_evidence_of(reference, "reference"))
    statements = unsupported_statements(summary, mentions_of(summary), evidence,
                                        threshold=options.statement_threshold, window=options.statement_window,
                                        content_weight=options.content_weight,
                                        elsewhere=options.statement_elsewhere, missing=options.statement_missing)
    flagged = set(statements.flagged)
    claimed = sum(1 for span in statements.spans if span in flagged or
                  any(span[0] <= f["start"] < span[1] for f in facts.unsupported))
    return statements, claimed


def statement_likelihoods(statements: Statements, facts: Found) -> list[dict[str, Any]]:
    """Each flagged statement with ``p``, the chance it is unsupported (``confidence``), and its features."""
    from clinsum.evaluators.facts.confidence import features, likelihood

    out = []
    for span in statements.spans:
        values = features(span, statements.unsupported, facts.unsupported, facts.supported)
        p = likelihood(values)
        if p > 0:
            out.append({"start": span[0], "end": span[1], "p": p,
                        "features": {k: v for k, v in values.items() if v}})
    return out
