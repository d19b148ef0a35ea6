"""Concept coverage: which medical concepts of the source a summary kept, invented or flipped.

Source, summary and reference go through the same extractor
(``clinsum.concepts.extract``); every mention carries a concept id and an
assertion. Scores, each with its evidence in ``detail``:

``concept_recall``
    weighted share of the source's key concepts that the summary states with a
    compatible assertion. Key concepts are the note's ``key_concepts`` phrases
    when it lists them, otherwise every concept of the source, weighted by
    group (drugs, disorders and allergies weigh most; ``weights`` option).
``concept_support``
    share of the summary's concepts that the source supports with a compatible
    assertion (precision); 1.0 for a summary with no concepts.
``unsupported_concepts``
    count of summary concepts the source never mentions (fabrications).
``assertion_flips`` / ``critical_flips``
    concepts present in both whose status is incompatible, each listed with both
    spans and both statuses, and a severity: ``critical`` when the summary
    affirms what the source denied or attributed to a relative, or denies what
    the source affirms; ``major`` when it affirms what the source only
    suspected or made conditional; ``minor`` otherwise, and always for body
    parts, tests and dosing schedules. A concept flips when none of the
    summary's statuses for it is compatible with one the source states; a
    finding the source only asked about in a dialogue ("Any chest pain?"
    answered with talk of something else) supports a summary but neither
    excuses nor makes a critical flip.
``has_critical_flip``
    1 when the summary has a critical flip, else 0: averaged over summaries it is the share of
    summaries that reverse a clinical fact, which a monitor can compare as a rate.
``concept_f1``
    harmonic mean of recall and support.
``concept_f1_ref`` / ``concept_recall_ref``
    F1 (and its recall) of the summary's concepts against the reference
    summary's (MEDCON-like, unweighted), only when the note has a reference. A
    finding a dialogue-like summary only asks about in an open question is not
    one it states: it counts on neither side (``asked_only`` in the detail).

Spans. Every span in a detail names the text it indexes: entries with a ``span`` say
``in`` (``source`` or ``summary``) and carry the mention's ``text``; a flip keeps the
source's and the reference's mentions apart, under ``source`` and ``reference``.

Matching. Two mentions are the same concept when their concept ids are equal or
their preferred names normalise to the same string (the lexicon merges sources,
but an ICD-10-CM and a MeSH entry of one disorder can keep separate ids).

Compatible assertions. Equal statuses are compatible, and so are ``present``
and ``historical`` unless ``strict_history`` is set: a note's past history lists
chronic conditions that are still current ("PMH: hypertension", then "on
lisinopril"), a summary rightly restates them as current, and ConText's
historical axis is the least reliable one. Every other pair is a flip; in
particular ``possible`` -> ``present`` (uncertainty lost) and
``hypothetical`` -> ``present`` are flips.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, cast

from clinsum.errors import ConfigError
from clinsum.evaluators.base import score
from clinsum.evaluators.metrics import Metric
from clinsum.records import Mention, Note, Score, Summary

NAME = "coverage"
METRICS = (
    Metric("concept_f1", "higher", "continuous", 0, 1, 20, "harmonic mean of concept recall and support"),
    Metric("concept_recall", "higher", "continuous", 0, 1, 30,
           "weighted share of the source's key concepts the summary keeps with a compatible status"),
    Metric("concept_support", "higher", "continuous", 0, 1, 40,
           "share of the summary's concepts the source supports with a compatible status"),
    Metric("assertion_flips", "lower", "count", 0, None, 50,
           "concepts whose status changed between source and summary"),
    Metric("critical_flips", "lower", "count", 0, None, 60,
           "status changes that reverse meaning (denied became present, present became denied...)"),
    Metric("has_critical_flip", "lower", "rate", 0, 1, 65,
           "1 when the summary has at least one critical flip, else 0 (its mean is the share of such summaries)"),
    Metric("unsupported_concepts", "lower", "count", 0, None, 70, "summary concepts the source never mentions"),
    Metric("concept_f1_ref", "higher", "continuous", 0, 1, 80,
           "concept F1 of the summary against the reference summary (MEDCON-like)"),
    Metric("concept_recall_ref", "higher", "continuous", 0, 1, 90,
           "share of the reference summary's concepts the summary has"),
)
_LOGIC_VERSION = "4"

DEFAULT_WEIGHTS: dict[str, float] = {
    "drug": 3.0, "disorder": 3.0, "allergy": 3.0, "finding": 2.0, "procedure": 1.5, "test": 1.5,
    "device": 1.0, "anatomy": 0.5,
}
"""Weight of a source concept in ``concept_recall`` by semantic group; ``allergy`` is any concept
mentioned in an allergies section or next to the word allergy/allergic."""

AFFIRMED = frozenset({"present", "historical"})
NOT_ASSERTABLE = frozenset({"anatomy", "test"})
"""Concept groups whose status changes are never critical (see ``flip_severity``)."""
DOSING = frozenset({"clinsum:bid", "clinsum:tid", "clinsum:qid", "clinsum:qd", "clinsum:qhs", "clinsum:prn",
                    "clinsum:po"})
"""Dosing schedules of the curated table ("twice a day", "at night"): words of an order, not clinical facts."""
_ALLERGY_CONTEXT = re.compile(r"allerg|anaphyla|intoleran", re.IGNORECASE)
_SPACE = re.compile(r"\s+")
_NON_WORD = re.compile(r"[^\w\s]")


# -- concept sets -----------------------------------------------------------------------------------

@dataclass
class Concept:
    """All mentions of one concept in one text."""

    key: str
    concept_id: str
    name: str
    group: str
    mentions: list[Mention] = field(default_factory=list)
    allergy: bool = False

    @property
    def assertions(self) -> set[str]:
        return {m.assertion for m in self.mentions}

    def evidence(self, where: str) -> dict[str, Any]:
        """The concept with its first mention in the text ``where`` names (source, summary or reference).

        A key-concept phrase found nowhere in the source has no mention there: its span is None.
        """
        placed = [m for m in self.mentions if m.end > m.start]
        first = placed[0] if placed else None
        return {"concept_id": self.concept_id, "name": self.name, "group": self.group,
                "assertions": sorted(self.assertions), "in": where,
                "span": [first.start, first.end] if first else None,
                "text": first.text if first else self.name}


def normalise(text: str) -> str:
    return _SPACE.sub(" ", _NON_WORD.sub(" ", text.lower())).strip()


def concept_key(mention: Mention) -> str:
    """Mentions with equal keys are one concept: the normalised preferred name merges duplicates."""
    return normalise(mention.name) or mention.concept_id


def concepts_of(text: str, mentions: Iterable[Mention]) -> dict[str, Concept]:
    concepts: dict[str, Concept] = {}
    allergy_sections = _allergy_spans(text)
    for mention in mentions:
        key = concept_key(mention)
        concept = concepts.setdefault(key, Concept(key, mention.concept_id, mention.name, mention.group))
        concept.mentions.append(mention)
        window = text[max(0, mention.start - 40):mention.end + 20]
        if _ALLERGY_CONTEXT.search(window) or any(s <= mention.start < e for s, e in allergy_sections):
            concept.allergy = True
    return concepts


def statements(text: str, mentions: Iterable[Mention]) -> list[Mention]:
    """The mentions that ``text`` states: a dialogue's open question ("Any chest pain?" answered with
    talk of something else) names a finding without stating it, in a source or in a summary."""
    from clinsum.concepts.assertion import in_open_question

    return [m for m in mentions if not (m.assertion in AFFIRMED and in_open_question(text, m.start))]


def _allergy_spans(text: str) -> list[tuple[int, int]]:
    from clinsum.concepts.sections import find_sections

    return [(s.header_start, s.end) for s in find_sections(text) if s.name == "allergies"]


@lru_cache(maxsize=512)
def _extract_cached(text: str) -> tuple[Mention, ...]:
    """Mentions of a text; the source is scored once per system (and by ``facts`` too), so its
    extraction is cached. Engines send every summary of a note in one batch, so the cache serves
    a note's other summaries in whatever order the input lists them."""
    from clinsum.concepts.extract import extract

    return tuple(extract(text))


def compatible(source: str, summary: str, *, strict_history: bool = False) -> bool:
    if source == summary:
        return True
    return not strict_history and {source, summary} <= AFFIRMED


def flip_severity(source: set[str], summary: str, group: str = "disorder", concept_id: str = "") -> str:
    """``critical`` reverses a clinical fact: what the source denied or gave to a relative is affirmed, or
    what it affirmed is denied. Body parts and tests are not facts that can be reversed this way
    ("no extra heart sounds" does not deny the heart), and neither are dosing schedules ("at night" is
    QHS), so their flips are ``minor``."""
    if group in NOT_ASSERTABLE or concept_id in DOSING:
        return "minor"
    if summary in AFFIRMED and source & {"negated", "family"}:
        return "critical"
    if summary == "family" and "negated" in source:
        return "critical"  # "no family history of colon cancer" became "family history of colon cancer"
    if summary == "negated" and source & AFFIRMED:
        return "critical"
    if summary in AFFIRMED and source & {"possible", "hypothetical"}:
        return "major"
    return "minor"


# -- options ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class CoverageOptions:
    weights: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    strict_history: bool = False
    """Treat historical and present as different statuses (a flip) instead of compatible."""
    reference_assertions: bool = True
    """In ``concept_f1_ref``, a concept matches only with a compatible assertion."""
    fuzzy_threshold: float = 90.0
    """rapidfuzz partial-ratio above which a key-concept phrase counts as present in the summary."""

    @classmethod
    def from_dict(cls, options: Mapping[str, Any]) -> CoverageOptions:
        known = {"weights", "strict_history", "reference_assertions", "fuzzy_threshold"}
        unknown = set(options) - known
        if unknown:
            raise ConfigError(f"coverage: unknown option(s) {sorted(unknown)}; known: {sorted(known)}")
        weights = dict(DEFAULT_WEIGHTS)
        for group, weight in dict(options.get("weights", {})).items():
            if group not in DEFAULT_WEIGHTS:
                raise ConfigError(f"coverage: weights: unknown group {group!r}; groups: {sorted(DEFAULT_WEIGHTS)}")
            if not isinstance(weight, int | float) or weight < 0:
                raise ConfigError(f"coverage: weights.{group} must be a number >= 0, not {weight!r}")
            weights[group] = float(weight)
        threshold = options.get("fuzzy_threshold", 90.0)
        if not isinstance(threshold, int | float) or not 0 < threshold <= 100:
            raise ConfigError(f"coverage: fuzzy_threshold must be in (0, 100], not {threshold!r}")
        return cls(weights=weights, strict_history=bool(options.get("strict_history", False)),
                   reference_assertions=bool(options.get("reference_assertions", True)),
                   fuzzy_threshold=float(threshold))


# -- the comparison -------------------------------------------------------------------------------------

@dataclass
class Comparison:
    """Source (or key concepts) against summary; pure data, built per call."""

    recall: float
    recalled: list[dict[str, Any]]
    missed: list[dict[str, Any]]
    support: float
    supported: list[dict[str, Any]]
    unsupported: list[dict[str, Any]]
    flips: list[dict[str, Any]]


def compare(source_text: str, source: Mapping[str, Concept], summary_text: str,
            summary: Mapping[str, Concept], options: CoverageOptions, *,
            reference: tuple[str, Mapping[str, Concept]] | None = None) -> Comparison:
    """Recall of ``source`` concepts in ``summary``; support of ``summary`` concepts by the source.

    With ``reference`` (text and concepts of a human summary of the same source), a summary concept
    is also supported by the reference: it is a trusted restatement of the source, in the clinical
    words a summary uses (a dialogue says "sugar", the reference and the summary say "diabetes").
    Recall stays over the source's concepts; a source with none is recalled vacuously (1.0).
    """
    from clinsum.concepts.assertion import in_open_question

    strict = options.strict_history
    flips: list[dict[str, Any]] = []
    # A dialogue's open question ("Any chest pain?" answered with talk of something else) names a
    # finding without stating it: such a mention supports a summary but cannot make its flip critical.
    asked = {id(m) for concept in source.values() for m in concept.mentions
             if m.assertion in AFFIRMED and in_open_question(source_text, m.start)}
    supported, unsupported = [], []
    evidence = dict(source)
    texts = [source_text]
    if reference is not None:
        texts.append(reference[0])
        for key, concept in reference[1].items():
            if key in evidence:
                merged = Concept(key, evidence[key].concept_id, evidence[key].name, evidence[key].group)
                merged.mentions = [*evidence[key].mentions, *concept.mentions]
                evidence[key] = merged
            else:
                evidence[key] = concept
    evidence_normalised = " | ".join(f" {normalise(text)} " for text in texts)
    for key, concept in summary.items():
        origin = evidence.get(key)
        if origin is None:
            surface = {normalise(m.text) for m in concept.mentions}
            if any(s and f" {s} " in evidence_normalised for s in surface):
                supported.append({**concept.evidence("summary"), "by": "surface text"})
            else:
                unsupported.append(concept.evidence("summary"))
            continue
        # what the source only asked about supports a summary's mention but does not excuse a reversal
        # of what it stated ("What about chest pain?" - "No chest pain." does not support "chest pain")
        stated: set[str] = {m.assertion for m in origin.mentions if id(m) not in asked} or set(origin.assertions)
        if any(compatible(s, a, strict_history=strict) for s in stated for a in concept.assertions):
            supported.append(concept.evidence("summary"))
        else:
            sides = {"source": source.get(key), "reference": reference[1].get(key) if reference else None}
            flips.extend(_flip(origin, sides, concept, assertion, asked) for assertion in sorted(concept.assertions))
    total_summary = len(summary)
    support = len(supported) / total_summary if total_summary else 1.0

    recalled, missed = [], []
    weight_total = weight_kept = 0.0
    for key, concept in source.items():
        weight = options.weights.get("allergy" if concept.allergy else concept.group, 1.0)
        weight_total += weight
        kept = summary.get(key)
        if kept is not None and any(compatible(s, a, strict_history=strict)
                                    for s in concept.assertions for a in kept.assertions):
            weight_kept += weight
            recalled.append({**concept.evidence("source"), "weight": weight})
        else:
            missed.append({**concept.evidence("source"), "weight": weight})
    recall = weight_kept / weight_total if weight_total else 1.0
    return Comparison(recall, recalled, missed, support, supported, unsupported, flips)


def _flip(evidence: Concept, sides: Mapping[str, Concept | None], summary: Concept, assertion: str,
          asked: set[int]) -> dict[str, Any]:
    """One flip: the statuses and spans of each text that states the concept, each under its text's name.

    ``evidence`` is the source's and the reference's mentions together (what decides the severity);
    ``sides`` holds them apart, so that every span is reported in the text it indexes.
    """
    said = next(m for m in summary.mentions if m.assertion == assertion)
    stated: set[str] = {m.assertion for m in evidence.mentions if id(m) not in asked}
    flip: dict[str, Any] = {
        "concept_id": evidence.concept_id, "name": evidence.name, "group": evidence.group,
        "severity": flip_severity(stated, assertion, evidence.group, evidence.concept_id) if stated else "minor",
        "source": _side(sides.get("source")),
        "summary": {"assertion": assertion, "span": [said.start, said.end], "text": said.text},
    }
    if sides.get("reference") is not None:
        flip["reference"] = _side(sides["reference"])
    return flip


def _side(concept: Concept | None) -> dict[str, Any]:
    """Statuses and ``[start, end, status, text]`` spans of a concept's mentions in one text."""
    mentions = [] if concept is None else [m for m in concept.mentions if m.end > m.start]
    return {"assertions": sorted({m.assertion for m in mentions}),
            "spans": [[m.start, m.end, m.assertion, m.text] for m in mentions]}


def f1(precision: float | None, recall: float | None) -> float | None:
    if precision is None or recall is None:
        return None
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def reference_f1(reference: Mapping[str, Concept], summary: Mapping[str, Concept],
                 options: CoverageOptions) -> tuple[float, dict[str, Any]]:
    """Set F1 of summary concepts against reference concepts (MEDCON-like, optionally assertion-aware)."""
    def same(a: Concept, b: Concept) -> bool:
        if not options.reference_assertions:
            return True
        return any(compatible(x, y, strict_history=options.strict_history)
                   for x in a.assertions for y in b.assertions)

    matched = [key for key, c in summary.items() if key in reference and same(reference[key], c)]
    # an empty side is vacuously precise or complete (as concept_support and concept_recall are)
    precision = len(matched) / len(summary) if summary else 1.0
    recall = len(matched) / len(reference) if reference else 1.0
    value = f1(precision, recall) or 0.0
    return value, {"precision": precision, "recall": recall, "matched": sorted(matched),
                   "reference_only": sorted(set(reference) - set(matched)),
                   "summary_only": sorted(set(summary) - set(matched))}


# -- key concepts chosen by a clinician ---------------------------------------------------------------

def key_concepts_of(source_text: str, phrases: Sequence[str],
                    source: Mapping[str, Concept] | None = None) -> tuple[dict[str, Concept], list[str]]:
    """One pseudo-concept per phrase, and the phrases found nowhere in the source.

    A phrase is located in the source case-insensitively and takes its status from ConText there. A
    phrase that names a lexicon concept takes that concept's key, so the summary may use a synonym,
    and when the phrase itself is absent, the source's mentions of that concept stand for it. Other
    phrases are matched as phrases (exactly or fuzzily) in the summary. A phrase found nowhere counts
    as present (the clinician chose it) and is reported.
    """
    from clinsum.concepts.assertion import assertions_for

    keys: dict[str, Concept] = {}
    absent: list[str] = []
    for phrase in phrases:
        phrase = phrase.strip()
        if not phrase:
            continue
        spans = [(m.start(), m.end()) for m in re.finditer(re.escape(phrase), source_text, re.IGNORECASE)]
        mentions = _extract_cached(phrase)
        named = mentions[0] if len(mentions) == 1 and mentions[0].end - mentions[0].start >= 0.6 * len(phrase) \
            else None
        key = concept_key(named) if named is not None else f"phrase:{normalise(phrase)}"
        concept = Concept(key, named.concept_id if named else key, named.name if named else phrase,
                          named.group if named else "finding")
        if not spans and source is not None and key in source:
            concept.mentions = list(source[key].mentions)
            keys[key] = concept
            continue
        if not spans:
            absent.append(phrase)
        assertions = assertions_for(source_text, spans) if spans else ["present"]
        for (start, end), assertion in zip(spans or [(0, 0)], assertions, strict=True):
            concept.mentions.append(Mention(start=start, end=end, text=source_text[start:end] or phrase,
                                            concept_id=concept.concept_id, name=concept.name,
                                            group=cast(Any, concept.group), assertion=cast(Any, assertion)))
        keys[key] = concept
    return keys, absent


def phrase_in_summary(key: Concept, summary_text: str, threshold: float) -> Concept | None:
    """The summary's statement of a phrase-only key concept, found exactly or fuzzily."""
    from clinsum.concepts.assertion import assertions_for

    match = re.search(re.escape(key.name), summary_text, re.IGNORECASE)
    if match is None:
        from rapidfuzz import fuzz

        alignment = fuzz.partial_ratio_alignment(key.name.lower(), summary_text.lower())
        if alignment is None or alignment.score < threshold:
            return None
        start, end = alignment.dest_start, alignment.dest_end
    else:
        start, end = match.start(), match.end()
    if start >= end:
        return None
    (assertion,) = assertions_for(summary_text, [(start, end)])
    found = Concept(key.key, key.concept_id, key.name, key.group)
    found.mentions.append(Mention(start=start, end=end, text=summary_text[start:end], concept_id=key.concept_id,
                                  name=key.name, group=cast(Any, key.group), assertion=cast(Any, assertion)))
    return found


# -- the evaluator --------------------------------------------------------------------------------------

class CoverageEvaluator:
    """Stateless: options are fixed at construction; every call builds its own comparison."""

    name = NAME

    def __init__(self, options: CoverageOptions | None = None) -> None:
        self.options = options or CoverageOptions()
        self.version = coverage_version(self.options)

    async def evaluate(self, note: Note, summary: Summary) -> list[Score]:
        if not summary.ok:
            return []
        return await asyncio.to_thread(self.scores, note, summary)

    def scores(self, note: Note, summary: Summary) -> list[Score]:
        options = self.options
        source_concepts = concepts_of(note.text, _extract_cached(note.text))
        summary_mentions = list(_extract_cached(summary.text)) if summary.text.strip() else []
        summary_concepts = concepts_of(summary.text, summary_mentions)

        reference = None
        if note.reference and note.reference.strip():
            reference = (note.reference, concepts_of(note.reference, _extract_cached(note.reference)))
        comparison = compare(note.text, source_concepts, summary.text, summary_concepts, options,
                             reference=reference)
        recall_detail: dict[str, Any]
        if note.key_concepts:
            keys, absent = key_concepts_of(note.text, note.key_concepts, source_concepts)
            in_summary = dict(summary_concepts)
            for key, concept in keys.items():
                if key.startswith("phrase:") and key not in in_summary:
                    found = phrase_in_summary(concept, summary.text, options.fuzzy_threshold)
                    if found is not None:
                        in_summary[key] = found
            uniform = CoverageOptions(weights=dict.fromkeys(DEFAULT_WEIGHTS, 1.0),
                                      strict_history=options.strict_history)
            keyed = compare(note.text, keys, summary.text, {k: in_summary[k] for k in keys if k in in_summary},
                            uniform)
            recall = keyed.recall
            recall_detail = {"key_concepts": "note", "recalled": keyed.recalled, "missed": keyed.missed,
                             "flips": keyed.flips, "not_in_source": absent}
        else:
            recall = comparison.recall
            recall_detail = {"key_concepts": "source concepts weighted by group" if source_concepts
                             else "none in the source (recall is vacuously complete)",
                             "weights": dict(options.weights), "recalled": comparison.recalled,
                             "missed": comparison.missed}

        critical = [f for f in comparison.flips if f["severity"] == "critical"]
        out = [
            score(note, summary, self, "concept_recall", recall, **recall_detail),
            score(note, summary, self, "concept_support", comparison.support,
                  supported=comparison.supported, unsupported=comparison.unsupported,
                  flipped=[f["name"] for f in comparison.flips]),
            score(note, summary, self, "unsupported_concepts", float(len(comparison.unsupported)),
                  concepts=comparison.unsupported),
            score(note, summary, self, "concept_f1", f1(comparison.support, recall)),
            score(note, summary, self, "assertion_flips", float(len(comparison.flips)),
                  flips=comparison.flips, critical=len(critical)),
            score(note, summary, self, "critical_flips", float(len(critical)), flips=critical),
            score(note, summary, self, "has_critical_flip", 1.0 if critical else 0.0,
                  names=[f["name"] for f in critical]),
        ]
        if reference is not None:
            # a transcript-like summary's open questions are not statements it makes about the patient
            stated = concepts_of(summary.text, statements(summary.text, summary_mentions))
            value, detail = reference_f1(reference[1], stated, options)
            detail["asked_only"] = sorted(set(summary_concepts) - set(stated))
            out.append(score(note, summary, self, "concept_f1_ref", value, **detail))
            out.append(score(note, summary, self, "concept_recall_ref", detail["recall"],
                             recalled=detail["matched"], missed=detail["reference_only"]))
        return out


def coverage_version(options: CoverageOptions) -> str:
    """Logic, lexicon and assertion-rule versions, plus a hash of non-default options."""
    from clinsum.concepts.assertion import RULES_VERSION
    from clinsum.concepts.terminology import LEXICON_PATH

    lexicon = hashlib.sha256(LEXICON_PATH.read_bytes()).hexdigest()[:8] if LEXICON_PATH.exists() else "none"
    text = f"{sorted(options.weights.items())}|{options.strict_history}|{options.reference_assertions}|" \
           f"{options.fuzzy_threshold}"
    default = CoverageOptions()
    default_text = f"{sorted(default.weights.items())}|{default.strict_history}|" \
                   f"{default.reference_assertions}|{default.fuzzy_threshold}"
    suffix = "" if text == default_text else "+opt" + hashlib.sha256(text.encode()).hexdigest()[:6]
    return f"{_LOGIC_VERSION}+lex.{lexicon}+ctx.{RULES_VERSION}{suffix}"


CONCEPTS_EXTRA = ("spacy", "scispacy.abbreviation", "rapidfuzz.distance")
"""What concept extraction imports from the ``concepts`` extra."""
CONCEPTS_INSTALL = "pip install 'clinsum[concepts]'"


def concepts_extra_missing() -> str | None:
    """The first module of the ``concepts`` extra that cannot be imported, or None when all can."""
    for module in CONCEPTS_EXTRA:
        try:
            importlib.import_module(module)
        except ImportError:
            return module
    return None


def require_concepts_extra(what: str = "concept coverage") -> None:
    """A ConfigError naming the install command when the ``concepts`` extra is missing.

    Checked when the evaluator is built, before any provider call: a missing package
    must stop the run, not turn every summary's scores into ``coverage_error`` rows.
    """
    missing = concepts_extra_missing()
    if missing is not None:
        raise ConfigError(f"{what} needs the 'concepts' extra (spaCy, scispaCy, rapidfuzz), and "
                          f"'{missing}' cannot be imported; fix: {CONCEPTS_INSTALL}")


def create(options: dict[str, Any], dispatcher: object = None) -> CoverageEvaluator:
    """Factory used by the runner (``coverage`` in the run configuration); needs no model."""
    require_concepts_extra()
    return CoverageEvaluator(CoverageOptions.from_dict(options or {}))
