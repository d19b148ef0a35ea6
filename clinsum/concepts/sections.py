"""Section headers of clinical notes and the assertion each section implies.

A header is recognised when a line starts with a known section name, written
either as a line of its own ("FAMILY HISTORY", "Past Medical History:") or as
an inline label followed by text ("FH: mother with breast cancer"). Only known
names open a section: an all-capital line such as "COPD." or "HIV" in a list is
content, not a header.

Section defaults (combined with the trigger-based ConText result in
``clinsum.concepts.assertion``, where negation and the other triggers still
apply):

- family history -> ``family`` (the experiencer is a relative);
- past medical / surgical history -> ``historical``;
- everything else -> no default, that is ``present``.

Plans are deliberately *not* hypothetical by default. In "PLAN: start
metformin; repeat echocardiogram" the drug and the test are decisions recorded
in the note, and a summary that says "metformin started" keeps them; conditional
statements in a plan ("return if the fever recurs", "capsule endoscopy if this
is inconclusive") are made hypothetical by their own triggers. Diagnoses in
"ASSESSMENT AND PLAN" are present for the same reason.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from dataclasses import dataclass

# canonical section -> header names (regex fragments, matched case-insensitively)
_SECTION_NAMES: dict[str, tuple[str, ...]] = {
    "family_history": (r"family\s+(?:medical\s+)?history", r"family\s+hx", r"fhx?", r"fam\s+hx"),
    "past_history": (
        r"past\s+(?:medical\s+)?history", r"past\s+surgical\s+history", r"medical\s+history",
        r"surgical\s+history", r"past\s+medical\s+and\s+surgical\s+history", r"pmhx?", r"pshx?",
        r"prior\s+surgeries", r"past\s+surgeries", r"surgeries", r"problem\s+list",
        r"past\s+(?:medical\s+)?history\s+and\s+surgical\s+history",
    ),
    "social_history": (r"social\s+history", r"sh", r"shx", r"social"),
    "allergies": (r"allergies", r"allergy", r"drug\s+allergies"),
    "medications": (
        r"(?:current\s+|home\s+|discharge\s+|outpatient\s+)?medications?", r"meds", r"current\s+meds",
    ),
    "chief_complaint": (r"chief\s+complaint", r"cc", r"reason\s+for\s+visit"),
    "hpi": (r"history\s+of\s+present(?:ing)?\s+illness", r"hpi", r"interval\s+history"),
    "ros": (r"review\s+of\s+systems?", r"ros"),
    "physical_exam": (r"physical\s+exam(?:ination)?", r"exam(?:ination)?", r"pe", r"vitals?(?:\s+reviewed)?",
                      r"vital\s+signs"),
    "results": (r"results", r"labs?", r"laboratory(?:\s+data)?", r"imaging", r"studies", r"data"),
    "assessment_plan": (r"assessment\s+(?:and|&)\s+plan", r"a\s*/\s*p", r"a\s*&\s*p"),
    "assessment": (r"assessment", r"impression", r"diagnosis", r"diagnoses"),
    "plan": (r"plan", r"recommendations?", r"follow[-\s]?up"),
    "instructions": (r"(?:patient\s+|discharge\s+)?instructions",),
    "procedure": (r"procedures?", r"operations?"),
}

SECTION_DEFAULTS: dict[str, str] = {"family_history": "family", "past_history": "historical"}
"""The assertion a section implies when no trigger says otherwise."""

_ALTERNATIVES = sorted(
    ((name, canonical) for canonical, names in _SECTION_NAMES.items() for name in names),
    key=lambda item: -len(item[0]),
)
_GROUP = {f"s{i}": canonical for i, (_name, canonical) in enumerate(_ALTERNATIVES)}
_NAME_PATTERN = "|".join(f"(?P<s{i}>{name})" for i, (name, _c) in enumerate(_ALTERNATIVES))
# a header: at line start (after optional bullet/number), a known name, then either ':' / '-' (inline
# label, text may follow) or the end of the line (a header line of its own).
_HEADER = re.compile(
    rf"^[ \t]*(?:[#*•\-]+[ \t]*)?(?:{_NAME_PATTERN})[ \t]*(?:(?P<colon>[:\-–][ \t]*)|(?=\r?$))",
    re.IGNORECASE | re.MULTILINE,
)


@dataclass(frozen=True)
class Section:
    """A region of a note under one header; ``name`` is canonical (``family_history``, ``plan``...)."""

    name: str
    header_start: int
    header_end: int
    end: int


def find_sections(text: str) -> list[Section]:
    """Sections of ``text`` in order; text before the first header belongs to no section."""
    headers: list[tuple[str, int, int]] = []
    for match in _HEADER.finditer(text):
        group = next(key for key, value in match.groupdict().items() if value is not None and key != "colon")
        canonical = _GROUP[group]
        if match.group("colon") is None and not _looks_like_header_line(text, match.start(), match.end()):
            continue
        headers.append((canonical, match.start(), match.end()))
    sections = []
    for i, (name, start, end) in enumerate(headers):
        stop = headers[i + 1][1] if i + 1 < len(headers) else len(text)
        sections.append(Section(name, start, end, stop))
    return sections


def _looks_like_header_line(text: str, start: int, end: int) -> bool:
    """A bare name alone on a line is a header only if written as one (capitals or Title Case).

    This keeps a sentence line such as "plan" or "exam" inside running text from opening a section.
    """
    words = re.findall(r"[A-Za-z]+", text[start:end])
    if not words:
        return False
    return all(w.isupper() for w in words) or all(w[0].isupper() for w in words if len(w) > 3)


class SectionIndex:
    """Answers "which section is this offset in" in O(log n)."""

    def __init__(self, text: str) -> None:
        self.sections = find_sections(text)
        self._starts = [s.header_start for s in self.sections]

    def section_at(self, offset: int) -> Section | None:
        i = bisect_right(self._starts, offset) - 1
        if i < 0:
            return None
        section = self.sections[i]
        return section if offset < section.end else None

    def default_at(self, offset: int) -> str | None:
        """The assertion the section at ``offset`` implies, or None (present)."""
        section = self.section_at(offset)
        return SECTION_DEFAULTS.get(section.name) if section else None

    def header_spans(self) -> list[tuple[int, int]]:
        return [(s.header_start, s.header_end) for s in self.sections]


# -- dialogue turns ---------------------------------------------------------------------------------

_SPEAKER = re.compile(
    r"^[ \t]*(?:\[(?P<bracketed>[a-z_ ]+?)(?:_?\d+)?\]|(?P<labelled>doctor|patient|dr|pt|nurse|clinician|provider|"
    r"physician|guest_family|guest_clinician|family|caregiver|mother|father|wife|husband|son|daughter|parent)"
    r"(?:_?\d+)?[ \t]*:)[ \t]*",
    re.IGNORECASE | re.MULTILINE,
)
_FILLERS = r"(?:(?:uh|um|uhm|umm|hmm|hm|mm|oh|ah|er|well|so|okay|ok|honestly|actually)(?![\w'’-])[\s,.\-–…]*)*"
"""Words a spoken answer often opens with before the answer itself ("uh , no", "um , i have not")."""
_NEGATIVE_ANSWER = re.compile(
    _FILLERS
    + r"(?:no(?=[\s,.!…-]*(?:$|[,.!…]|(?:no|not|nothing|never|none|nobody|neither|nope|i|sir|ma['’]am|we|it|that"
    r"|that['’]s|but|really|actually|uh|um|thank|thanks)\b))|nope|nah|never|none|negative|neither|nothing|not(?!\s+(?:sure|certain|really\s+sure)\b)"
    r"|i\s+(?:do|did|have|has|had|am|was)\s*(?:n['’]?t|\s+not)(?!\s+(?:know|sure)\b)"
    r"|i['’]ve\s+(?:not|never)|i\s+(?:have\s+)?never|i\s+(?:ca\s*n['’]?t|can['’]?t|cannot)\s+(?:recall|remember|think)"
    r"|uh-uh|nuh-uh)(?![\w'’-])",
    re.IGNORECASE,
)
"""A reply that denies: "no", "nope", "not really", "none of that", "i have n't", "uh , i have not"; "not sure"
and "i do n't know" are not denials, and neither is "no" followed by what it denies ("no drugs . i do drink
socially"): that "no" negates its own words only."""


@dataclass(frozen=True)
class Turn:
    """One speaker's turn in a dialogue: ``start`` is where the words begin (after the speaker tag)."""

    speaker: str
    tag_start: int
    start: int
    end: int


def find_turns(text: str) -> list[Turn]:
    """The speaker turns of a dialogue ("[doctor] ...", "Patient: ..."); [] when the text is not one."""
    tags = [(m.start(), m.end(), (m.group("bracketed") or m.group("labelled")).lower())
            for m in _SPEAKER.finditer(text)]
    if len(tags) < 2 or len({speaker for _s, _e, speaker in tags}) < 2:
        return []
    return [Turn(speaker, tag_start, start, tags[i + 1][0] if i + 1 < len(tags) else len(text))
            for i, (tag_start, start, speaker) in enumerate(tags)]


def is_negative_answer(text: str, start: int, end: int) -> bool:
    """Whether the turn ``text[start:end]`` opens with a negative answer ("No.", "nope , i have n't")."""
    return _NEGATIVE_ANSWER.match(text[start:end].lstrip(" \t,.-–…")) is not None


_AFFIRMATIVE_ANSWER = re.compile(
    _FILLERS + r"(?:yes|yeah|yep|yup|ya|uh-huh|mm-hmm|correct|right|sure|definitely|absolutely"
    r"|i\s+(?:do|did|have|had|am)\b|(?:a\s+little|a\s+bit|some|sometimes|kind\s+of|kinda|occasionally)"
    r"(?!\s+(?:bit\s+)?of\b))(?![\w'’-])",
    re.IGNORECASE,
)


def is_affirmative_answer(text: str, start: int, end: int) -> bool:
    """Whether the turn ``text[start:end]`` opens by confirming ("yes", "a little", "sometimes", "i do"); "a
    little bit of joint pain" names what it confirms, so it does not confirm the whole question."""
    return _AFFIRMATIVE_ANSWER.match(text[start:end].lstrip(" \t,.-–…")) is not None
