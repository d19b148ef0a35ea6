"""The checkable facts of a text: numbers with what they measure, sides, medication doses.

A ``Fact`` is a span of a summary that states something the source must support:

``age``          "a 74-year-old", "died at 59"
``date``         a year ("in 1984", "nineteen eighty four"), a written date ("04/15/2005")
``duration``     "for two weeks", "10 years ago"
``measurement``  a number with a unit or a named thing it measures ("blood pressure 120/80",
                 "heart rate of 122", "7 pounds 3 ounces", "A1c 8")
``number``       any other number ("one brother", "grade 2/6")
``dose``         a medication's dose or frequency ("lisinopril 20 mg once daily")
``laterality``   a side and what it is the side of ("left shoulder", "right knee")

Concept–status facts come from the concept extractor and are compared in ``support``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from clinsum.evaluators.facts.numbers import Number, numbers_in
from clinsum.records import Mention

MEASURES: dict[str, str] = {
    "blood pressure": "blood pressure", "bp": "blood pressure", "pressure": "blood pressure",
    "heart rate": "heart rate", "pulse": "heart rate", "hr": "heart rate", "rate": "heart rate",
    "temperature": "temperature", "temp": "temperature", "fever": "temperature",
    "oxygen": "oxygen saturation", "o2": "oxygen saturation", "saturation": "oxygen saturation",
    "sat": "oxygen saturation", "sats": "oxygen saturation", "pulse ox": "oxygen saturation",
    "respiratory rate": "respiratory rate", "respirations": "respiratory rate", "rr": "respiratory rate",
    "weight": "weight", "weighed": "weight", "weighs": "weight", "weighing": "weight",
    "height": "height", "bmi": "bmi", "a1c": "hemoglobin a1c", "hba1c": "hemoglobin a1c",
    "glucose": "glucose", "sugar": "glucose", "sugars": "glucose", "cholesterol": "cholesterol",
    "ldl": "ldl", "hdl": "hdl", "triglycerides": "triglycerides", "creatinine": "creatinine",
    "sodium": "sodium", "potassium": "potassium", "tsh": "tsh", "t4": "t4", "hemoglobin": "hemoglobin",
    "ejection fraction": "ejection fraction", "ef": "ejection fraction", "psa": "psa",
    "white count": "white blood cell count", "white blood cell": "white blood cell count",
    "wbc": "white blood cell count",
    "platelets": "platelets", "inr": "inr", "strength": "strength", "murmur": "murmur", "pain": "pain score",
}
_MEASURE = re.compile(r"\b(" + "|".join(sorted(map(re.escape, MEASURES), key=len, reverse=True)) + r")\b",
                      re.IGNORECASE)
_CLAUSE_BREAK = re.compile(r"[.;:\n!?]")
_AGE_AFTER = re.compile(r"\s*-?\s*(?:years?|yrs?|y)?\s*-?\s*(?:old\b|yo\b|y/o|\.?o\.)", re.IGNORECASE)
_AGE_BEFORE = re.compile(r"(?:\bage(?:d)?(?: of)?|\bdied at|\bat age|\bi'm|\bi am|\bhe's|\bshe's|\bhe is|\bshe is)\s*$",
                         re.IGNORECASE)
_AGO_AFTER = re.compile(r"\s*(?:ago|prior|earlier|before)\b", re.IGNORECASE)
_MONTHS = "january|february|march|april|may|june|july|august|september|october|november|december"
_WRITTEN_DATE = re.compile(r"\b(\d{1,2})/(?:(\d{1,2})/)?(\d{4})\b|\b(\d{1,2})/(\d{1,2})/(\d{2})\b")
_LIST_MARKER = re.compile(r"(?:^|\n)\s*$")
_FREQUENCY = re.compile(
    r"\b(?P<f>once|twice|three times|four times|one time|two times|[1-4] times|q\.?d\.?|b\.?i\.?d\.?|"
    r"t\.?i\.?d\.?|q\.?i\.?d\.?|q\.?h\.?s\.?|daily|nightly|weekly|monthly|every (?:day|night|morning|evening|"
    r"other day|week|month)|every \d+ (?:hours?|days?|weeks?))\b(?:\s*(?:(?:a|per|each) (?:day|week|month)|daily|"
    r"weekly|monthly)\b)?",
    re.IGNORECASE)
PER_DAY: dict[str, float] = {"once": 1, "one time": 1, "twice": 2, "two times": 2, "three times": 3,
                             "four times": 4, "qd": 1, "daily": 1, "nightly": 1, "qhs": 1, "bid": 2, "tid": 3,
                             "qid": 4, "every day": 1, "every night": 1, "every morning": 1,
                             "every evening": 1, "every other day": 0.5, "weekly": 1 / 7, "every week": 1 / 7,
                             "monthly": 1 / 30, "every month": 1 / 30}
SIDES = {"left": "left", "right": "right", "bilateral": "bilateral", "bilaterally": "bilateral"}
OPPOSITE = {"left": {"right"}, "right": {"left"}, "bilateral": set()}
_SIDE = re.compile(r"\b(left|right|bilateral|bilaterally)\b", re.IGNORECASE)
_NOT_A_SIDE = re.compile(r"(?:all|that's|thats|is|alright|you're|youre|you are)\s+$|^\s*(?:now|away|after|here|"
                         r"there|back|before|then|so|at|in|about|around|when|where|\?|,\s*(?:okay|ok))\b",
                         re.IGNORECASE)
_MODIFIERS = {"side", "sided", "upper", "lower", "side's", "the", "of", "a", "an", "and", "my", "his", "her",
              "posterior", "anterior", "medial", "lateral", "distal", "proximal", "mid", "greater", "lesser", "on",
              "in", "to", "great", "big", "little", "small", "index", "ring", "middle", "hand", "handed",
              "dominant", "hand-dominant", "handed-dominant", "both", "sides"}
_HANDEDNESS = re.compile(r"[-\s]?hand(?:ed)?(?:[-\s]dominant)?\b|[-\s]handed", re.IGNORECASE)
_CONTENT_WORD = re.compile(r"[a-z][a-z'-]+", re.IGNORECASE)


@dataclass(frozen=True)
class Fact:
    """A checkable statement in a text."""

    kind: str
    start: int
    end: int
    text: str
    number: Number | None = None
    subject: str | None = None
    """What the number measures, the drug of a dose, or the body part of a side."""
    side: str | None = None
    per_day: float | None = None
    """A dose's frequency, in administrations per day."""


def facts_of(text: str, mentions: Sequence[Mention]) -> list[Fact]:
    """The number, dose and laterality facts of ``text`` (``mentions``: its concepts, for drugs and tests)."""
    facts: list[Fact] = []
    taken: set[int] = set()
    drugs = [m for m in mentions if m.group == "drug"]
    tests = [m for m in mentions if m.group == "test"]
    for match in _WRITTEN_DATE.finditer(text):
        year = float(match.group(3) or match.group(6))
        number = Number(match.start(), match.end(), (year if year > 100 else 2000 + year,))
        facts.append(Fact("date", match.start(), match.end(), match.group(0), number))
        taken.update(range(match.start(), match.end()))
    for number in numbers_in(text):
        if number.start in taken or _is_list_marker(text, number):
            continue
        if number.spoken and number.unit is not None and number.unit.name == "times" and \
                number.end - number.start <= 5:
            continue  # "once", "twice": a frequency, checked with its dose
        if number.spoken and number.value == (1.0,) and number.unit is None and text[number.start] in "oO":
            continue  # "one" is mostly a pronoun ("the right one", "no one")
        drug = _drug_before(text, number, drugs)
        if drug is not None and number.unit is not None and \
                number.unit.dimension in {"mass", "volume", "count", "dose"} and number.unit.name != "times":
            dose = _dose(text, number, drug)
            facts.append(dose)
            taken.update(range(dose.start, dose.end))
            continue
        kind, subject = _classify(text, number, tests)
        facts.append(Fact(kind, number.start, number.end, text[number.start:number.end], number, subject))
    facts.extend(sides_of(text))
    facts.sort(key=lambda f: (f.start, f.end))
    return facts


def _is_list_marker(text: str, number: Number) -> bool:
    following = text[number.end:number.end + 2]
    return not number.spoken and number.unit is None and len(number.value) == 1 and \
        following[:1] in {".", ")"} and following[1:2] in {" ", "\t", ""} and \
        _LIST_MARKER.search(text[:number.start]) is not None


def _drug_before(text: str, number: Number, drugs: Sequence[Mention]) -> Mention | None:
    for drug in reversed(drugs):
        if drug.end <= number.start and number.start - drug.end <= 40 and \
                not _CLAUSE_BREAK.search(text[drug.end:number.start].replace(".", "", 0)):
            return drug
    return None


def _dose(text: str, number: Number, drug: Mention) -> Fact:
    tail = text[number.end:number.end + 40]
    frequency = _FREQUENCY.search(tail)
    end = number.end
    per_day = None
    if frequency is not None and not _CLAUSE_BREAK.search(tail[:frequency.start()]):
        per_day = frequency_per_day(frequency.group(0))
        end = number.end + frequency.end()
    return Fact("dose", number.start, end, text[number.start:end], number, drug.name.lower(), per_day=per_day)


def frequency_per_day(phrase: str) -> float | None:
    words = re.sub(r"[.\s]+", " ", phrase.lower()).strip()
    compact = words.replace(" ", "")
    every = re.match(r"every (\d+) (hour|day|week)", words)
    if every:
        hours = float(every.group(1)) * {"hour": 1, "day": 24, "week": 168}[every.group(2)]
        return 24 / hours
    for key in sorted(PER_DAY, key=len, reverse=True):
        if words.startswith(key) or compact.startswith(key):
            count = PER_DAY[key]
            if key in {"once", "twice", "one time", "two times", "three times", "four times"}:
                if "week" in words:
                    return count / 7
                if "month" in words:
                    return count / 30
            return count
    digits = re.match(r"([1-4]) times", words)
    return float(digits.group(1)) if digits else None


def _classify(text: str, number: Number, tests: Sequence[Mention]) -> tuple[str, str | None]:
    before = text[max(0, number.start - 40):number.start]
    after = text[number.end:number.end + 15]
    if (number.unit is not None and number.unit.name == "year" and _AGE_AFTER.match(after)) or \
            (number.unit is None and _AGE_AFTER.match(after)) or \
            (number.unit is None and _AGE_BEFORE.search(before) and 1 <= number.value[0] <= 110):
        return "age", "age"
    if number.unit is None and len(number.value) == 1 and 1900 <= number.value[0] <= 2100 and \
            number.value[0] == int(number.value[0]):
        return "date", None
    if number.unit is not None and number.unit.dimension == "time":
        return "duration", "ago" if _AGO_AFTER.match(text, number.end) else None
    if re.search(rf"\b(?:{_MONTHS})\s*$", before, re.IGNORECASE) or \
            re.match(rf"\s*(?:of\s+)?(?:{_MONTHS})\b", after, re.IGNORECASE):
        return "date", None
    subject = _subject_before(text, number, tests)
    if subject is not None or number.unit is not None:
        return "measurement", subject
    return "number", None


def _subject_before(text: str, number: Number, tests: Sequence[Mention]) -> str | None:
    window_start = max(0, number.start - 45)
    window = text[window_start:number.start]
    cut = max((m.end() for m in _CLAUSE_BREAK.finditer(window)), default=0)
    window = window[cut:]
    offset = window_start + cut
    best: tuple[int, str] | None = None
    for test in tests:
        if offset <= test.start and test.end <= number.start:
            best = max(best or (test.end, ""), (test.end, test.name.lower()))
    for match in _MEASURE.finditer(window):
        end = offset + match.end()
        if best is None or end > best[0]:
            best = (end, MEASURES[match.group(1).lower()])
    return best[1] if best else None


# -- laterality ----------------------------------------------------------------------------------------

def side_words(text: str) -> list[tuple[int, int, str]]:
    """Each use of left/right/bilateral as a side (not "all right", "right now", "that's right")."""
    out = []
    for match in _SIDE.finditer(text):
        word = match.group(1).lower()
        if word == "right" and (_NOT_A_SIDE.search(text[max(0, match.start() - 12):match.start()]) or
                                _NOT_A_SIDE.match(text[match.end():match.end() + 10])):
            continue
        out.append((match.start(), match.end(), SIDES[word]))
    return out


def sides_of(text: str) -> list[Fact]:
    facts = []
    for start, end, side in side_words(text):
        if _HANDEDNESS.match(text, end):
            continue
        subject = _side_subject(text, end)
        if subject is None:
            continue
        facts.append(Fact("laterality", start, subject[1], text[start:subject[1]], subject=subject[0], side=side))
    return facts


def _side_subject(text: str, position: int) -> tuple[str, int] | None:
    """The first content word after a side word, within three words and the clause."""
    tail = text[position:position + 40]
    cut = _CLAUSE_BREAK.search(tail)
    tail = tail[:cut.start()] if cut else tail
    for count, match in enumerate(_CONTENT_WORD.finditer(tail)):
        if count > 3:
            break
        word = match.group(0).lower()
        if word in _MODIFIERS:
            continue
        return stem(word), position + match.end()
    return None


def stem(word: str) -> str:
    word = word.lower().strip("'")
    for suffix in ("es", "s"):
        if word.endswith(suffix) and len(word) > len(suffix) + 3 and not word.endswith("ss"):
            return word[: -len(suffix)]
    return word
