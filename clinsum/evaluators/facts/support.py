"""Which facts of a summary the source supports, and why the others are not supported.

A summary fact is checked against every fact of the evidence (the source, and the
reference summary when there is one): a number against every number (with unit
conversion and a relative ``tolerance``), a dose against the doses of the same drug,
a side against the sides stated next to the same body part. An unsupported fact
carries one reason:

``absent``               nothing in the source states it (no such number, drug or body part)
``different number``     the source gives the same measure (age, heart rate, duration...) another value
``different dose``       the source gives the drug another dose
``different frequency``  the source gives the drug another frequency
``different side``       the source puts the same body part on the other side
``different status``     the source states the concept with an incompatible status (from ``coverage``)

and, when there is one, the source span it was compared with.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from clinsum.evaluators.facts.numbers import Number, same_value
from clinsum.evaluators.facts.statements import OPPOSITE, Fact, side_words, stem
from clinsum.records import Mention

_WORDS = re.compile(r"[a-z][a-z'-]+", re.IGNORECASE)
SIDE_BEFORE = 30
SIDE_AFTER = 45
"""Characters before and after a side word of the source whose words it is the side of."""
DRUG_WINDOW = 200
"""Characters after a drug's mention in the source in which its dose and frequency are looked for."""


@dataclass
class Evidence:
    """One text that can support a summary (the source or the reference), prepared once."""

    text: str
    facts: list[Fact]
    mentions: Sequence[Mention]
    role: str = "source"
    """``source`` (the note's text) or ``reference`` (its reference summary): which text a span indexes."""
    numbers: list[Fact] = field(init=False)
    side_pairs: dict[tuple[str, str], tuple[int, int]] = field(init=False)
    words: set[str] = field(init=False)

    def __post_init__(self) -> None:
        self.numbers = [f for f in self.facts if f.number is not None]
        self.words = {stem(w) for w in _WORDS.findall(self.text)}
        self.side_pairs = {}
        for start, end, side in side_words(self.text):
            around = list(_WORDS.finditer(self.text[max(0, start - SIDE_BEFORE):end + SIDE_AFTER]))
            for word in around:
                self.side_pairs.setdefault((side, stem(word.group(0))), (start, end))


def _span(source: Evidence, start: int, end: int) -> dict[str, Any]:
    return {"start": start, "end": end, "text": source.text[start:end], "in": source.role}


_STOP = frozenset({
    "a", "an", "the", "and", "or", "of", "in", "on", "at", "to", "for", "with", "without", "from", "by", "as",
    "is", "are", "was", "were", "be", "been", "has", "have", "had", "he", "she", "his", "her", "they", "their",
    "them", "it", "its", "this", "that", "these", "those", "there", "which", "who", "not", "no", "about",
    "approximately", "around", "some", "any", "my", "your", "our", "we", "you", "i", "me", "us", "do", "did",
    "does", "so", "but", "if", "then", "than", "also", "very", "just", "over", "under", "into", "per",
})
SUMMARY_CONTEXT = 40
"""Characters either side of a summary number whose words are its context."""
SOURCE_CONTEXT = 120
"""Characters either side of a source number in which a summary number's context word must appear."""


def context_words(text: str, start: int, end: int, reach: int) -> set[str]:
    window = text[max(0, start - reach):start] + " " + text[end:end + reach]
    return {stem(w) for w in _WORDS.findall(window)} - _STOP


def check(fact: Fact, evidence: Sequence[Evidence], tolerance: float, *, summary_text: str = "",
          context: bool = False) -> tuple[str, dict[str, Any] | None] | None:
    """None when ``evidence`` supports ``fact``; otherwise the reason and the span compared with.

    With ``context``, a source number supports a summary number only when a word around the summary's
    number (a content word, stemmed) is also around the source's: "3 years ago" near "kidney stones"
    is not supported by a "three years" said about something else.
    """
    if fact.kind == "laterality":
        return _check_side(fact, evidence)
    if fact.kind == "dose":
        return _check_dose(fact, evidence, tolerance)
    assert fact.number is not None
    number = fact.number
    around = context_words(summary_text, fact.start, fact.end, SUMMARY_CONTEXT) if context and summary_text \
        else None
    for source in evidence:
        for other in source.numbers:
            if not _same(number, other.number, tolerance):
                continue
            if not around or fact.kind in {"age", "date"} or \
                    around & context_words(source.text, other.start, other.end, SOURCE_CONTEXT):
                return None
    compared = _nearest_measure(fact, evidence)
    if compared is not None:
        return "different number", compared
    return "absent", None


def _same(a: Number, b: Number | None, tolerance: float) -> bool:
    return b is not None and same_value(a, b, tolerance)


def _nearest_measure(fact: Fact, evidence: Sequence[Evidence]) -> dict[str, Any] | None:
    """The source's statement of the same measure: same subject, else (for ages) another age."""
    for source in evidence:
        for other in source.numbers:
            same_subject = fact.subject is not None and other.subject == fact.subject
            same_age = fact.kind == "age" and other.kind == "age"
            if same_subject or same_age:
                return _span(source, other.start, other.end)
    return None


def _drug_mentions(name: str, source: Evidence) -> list[Mention]:
    return [m for m in source.mentions if m.group == "drug" and m.name.lower() == name]


def _check_dose(fact: Fact, evidence: Sequence[Evidence], tolerance: float) -> tuple[str, dict[str, Any] | None] | None:
    assert fact.number is not None and fact.subject is not None
    mentioned = [(source, m) for source in evidence for m in _drug_mentions(fact.subject, source)]
    if not mentioned and not any(fact.subject in source.text.lower() for source in evidence):
        return "absent", None
    near: list[tuple[Evidence, Fact]] = []
    for source, mention in mentioned:
        near.extend((source, f) for f in source.numbers
                    if mention.end <= f.start <= mention.end + DRUG_WINDOW and f.number is not None and
                    f.number.unit is not None and fact.number.unit is not None and
                    f.number.unit.dimension == fact.number.unit.dimension)
    value_found = any(_same(fact.number, other.number, tolerance) for source in evidence for other in source.numbers)
    if not value_found:
        if near:
            source, other = near[0]
            return "different dose", _span(source, other.start, other.end)
        return "absent", None
    if fact.per_day is not None:
        frequencies = [(source, f) for source, f in near if f.per_day is not None]
        if frequencies and not any(abs(f.per_day - fact.per_day) < 1e-6 for _s, f in frequencies
                                   if f.per_day is not None):
            source, other = frequencies[0]
            return "different frequency", _span(source, other.start, other.end)
    return None


def _check_side(fact: Fact, evidence: Sequence[Evidence]) -> tuple[str, dict[str, Any] | None] | None:
    assert fact.side is not None and fact.subject is not None
    if any((fact.side, fact.subject) in source.side_pairs for source in evidence):
        return None
    for source in evidence:
        for opposite in OPPOSITE[fact.side]:
            span = source.side_pairs.get((opposite, fact.subject))
            if span is not None:
                return "different side", _span(source, *span)
    if not any(fact.subject in source.words for source in evidence):
        return "absent", None
    return None
