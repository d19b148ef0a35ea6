"""Numbers as a clinician writes them and as a patient says them, with their units.

``numbers_in(text)`` finds every number of a text: digits (``8``, ``1,000``,
``98.6``, ``120/80``, ``4/5``), number words (``twenty six``, ``one hundred and
five``, ``seven and a half``), the paired forms of speech (``nineteen eighty
four`` = 1984, ``one twenty two`` = 122, ``one fifty over ninety`` = 150/90),
ordinals (``tenth``, ``fifth``) and ``once``/``twice``. Each comes with the unit
written right after it (``mg``, ``milligrams``, ``beats per minute``,
``percent``...) normalised to a dimension and a factor, so ``two weeks`` equals
``14 days`` and ``0.5 g`` equals ``500 mg``.

Vague quantities (``a few``, ``a couple of``, ``several``) are not numbers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

SMALL = {
    "zero": 0, "oh": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14,
    "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19,
}
TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80,
        "ninety": 90}
SCALES = {"hundred": 100, "thousand": 1000, "million": 1_000_000}
ORDINALS = {
    "first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7, "eighth": 8,
    "ninth": 9, "tenth": 10, "eleventh": 11, "twelfth": 12, "thirteenth": 13, "fourteenth": 14,
    "fifteenth": 15, "sixteenth": 16, "seventeenth": 17, "eighteenth": 18, "nineteenth": 19,
    "twentieth": 20, "thirtieth": 30,
}
ADVERBS = {"once": 1, "twice": 2}

_WORD = re.compile(r"[a-z]+(?:-[a-z]+)*|\d[\d,]*(?:\.\d+)?|\S", re.IGNORECASE)
_DIGITS = re.compile(r"(?<![\w.])(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?"  # 1,000  8  98.6
                     r"(?:(?:\s*/\s*|\s+out of\s+)(\d+(?:\.\d+)?))?"  # 120/80  4 out of 10
                     r"(?![\d.]\d|st\b|nd\b|rd\b|th\b)")


@dataclass(frozen=True, slots=True)
class Unit:
    name: str
    """Canonical name (``mg``, ``day``, ``mmHg``)."""
    dimension: str
    """``mass``, ``time``, ``volume``, ``pressure``, ``rate``, ``percent``, ``temperature``, ``length``,
    ``count``, ``concentration``, ``dose``."""
    factor: float
    """Multiplier to the dimension's base unit (mass: mg; time: day; length: cm; volume: ml)."""


def _units() -> list[tuple[str, Unit]]:
    table: list[tuple[str, str, str, float]] = [
        # pattern, canonical, dimension, factor
        (r"mg\s*/\s*d[lL]|milligrams? per deciliter", "mg/dL", "concentration", 1),
        (r"mmol\s*/\s*l|millimoles? per liter", "mmol/L", "concentration", 1),
        (r"meq\s*/\s*l", "mEq/L", "concentration", 1),
        (r"mg\s*/\s*kg", "mg/kg", "dose", 1),
        (r"mcg|µg|micrograms?", "mcg", "mass", 0.001),
        (r"mgs?|milligrams?|milligram", "mg", "mass", 1),
        (r"kgs?|kilograms?|kilos?", "kg", "mass", 1_000_000),
        (r"lbs?|pounds?", "lb", "mass", 453_592),
        (r"oz|ounces?", "oz", "mass", 28_349.5),
        (r"grams?|g(?=\W|$)|gm", "g", "mass", 1000),
        (r"ml|mls|milliliters?|millilitres?|cc|ccs", "ml", "volume", 1),
        (r"liters?|litres?|l(?=\W|$)", "L", "volume", 1000),
        (r"units?|iu|u(?=\W|$)", "unit", "count", 1),
        (r"mm\s*hg|millimeters? of mercury", "mmHg", "pressure", 1),
        (r"bpm|beats? (?:per|a|an) minute", "bpm", "rate", 1),
        (r"breaths? (?:per|a|an) minute", "breaths/min", "rate", 1),
        (r"%|percent|per cent", "%", "percent", 1),
        (r"°\s*[fc]?|degrees?(?: fahrenheit| celsius| f| c)?|fahrenheit|celsius", "degree", "temperature", 1),
        (r"cm|centimeters?|centimetres?", "cm", "length", 1),
        (r"mm|millimeters?|millimetres?", "mm", "length", 0.1),
        (r"inch(?:es)?|in(?=\.)", "inch", "length", 2.54),
        (r"feet|foot|ft", "ft", "length", 30.48),
        (r"years?|yrs?|y(?=\W|$)", "year", "time", 365),
        (r"months?|mos?", "month", "time", 30.4),
        (r"weeks?|wks?", "week", "time", 7),
        (r"days?", "day", "time", 1),
        (r"hours?|hrs?|h(?=\W|$)", "hour", "time", 1 / 24),
        (r"minutes?|mins?", "minute", "time", 1 / 1440),
        (r"seconds?|secs?", "second", "time", 1 / 86_400),
        (r"tablets?|tabs?|pills?|capsules?|puffs?|drops?|sprays?", "tablet", "count", 1),
        (r"times|x(?=\W|$)", "times", "count", 1),
    ]
    return [(pattern, Unit(name, dimension, factor)) for pattern, name, dimension, factor in table]


_UNIT_TABLE = _units()
_UNIT = re.compile(
    r"\s?-?\s?(?:" + "|".join(f"(?P<u{i}>{p})" for i, (p, _) in enumerate(_UNIT_TABLE)) + r")(?![a-z])",
    re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Number:
    """A number in a text: its span (with its unit, when one follows) and value."""

    start: int
    end: int
    value: tuple[float, ...]
    """One value, or two for a pair (``120/80``, ``4/5``, ``one fifty over ninety``)."""
    unit: Unit | None = None
    spoken: bool = False
    """Written as words."""
    ordinal: bool = False

    def base(self) -> tuple[float, ...]:
        """The value in the dimension's base unit (``2 weeks`` -> 14 days)."""
        factor = self.unit.factor if self.unit is not None else 1.0
        return tuple(v * factor for v in self.value)


def _word_value(word: str) -> tuple[str, int] | None:
    w = word.lower()
    if w in SMALL:
        return "small", SMALL[w]
    if w in TENS:
        return "tens", TENS[w]
    if w in SCALES:
        return "scale", SCALES[w]
    return None


def _parse_words(words: list[str]) -> list[float]:
    """Values of a run of number words: usually one, several when speech strings them.

    ``twenty six`` -> [26]; ``nineteen eighty four`` -> [1984]; ``one twenty two`` -> [122];
    ``two thousand nine`` -> [2009]; ``one hundred and five`` -> [105].
    """
    if "oh" in words and all(w in SMALL and SMALL[w] < 10 for w in words):
        return [float("".join(str(SMALL[w]) for w in words))]
    chunks: list[list[tuple[str, int]]] = [[]]
    for word in words:
        if word == "and":
            continue
        parsed = _word_value(word)
        if parsed is None:
            continue
        kind, value = parsed
        current = chunks[-1]
        if current:
            last_kind = current[-1][0]
            continues = (kind == "scale") or (last_kind == "scale" and kind in {"small", "tens"}) or \
                        (last_kind == "tens" and kind == "small" and 0 < value < 10)
            if not continues:
                chunks.append([])
        chunks[-1].append((kind, value))
    values: list[float] = []
    for chunk in chunks:
        if not chunk:
            continue
        total = current_value = 0
        for kind, value in chunk:
            if kind == "scale":
                current_value = (current_value or 1) * value
                if value >= 1000:
                    total += current_value
                    current_value = 0
            else:
                current_value += value
        values.append(total + current_value)
    # speech pairs two-digit groups: "nineteen eighty four", "one twenty two", "one oh five"
    merged: list[float] = []
    for number in values:
        amount = float(number)
        if merged and 1 <= merged[-1] <= 99 and 10 <= amount <= 99 and len(values) == 2:
            merged[-1] = merged[-1] * 100 + amount
        elif merged and 1 <= merged[-1] <= 9 and amount == 0:
            merged[-1] = merged[-1] * 10
        else:
            merged.append(amount)
    return merged


_NUMBER_WORDS = set(SMALL) | set(TENS) | set(SCALES)
_VAGUE_BEFORE = re.compile(r"\b(?:a few|a couple(?: of)?|several|few)\s*$", re.IGNORECASE)


def numbers_in(text: str) -> list[Number]:
    """Every number of ``text`` with its unit, in text order."""
    found: list[Number] = []
    for match in _DIGITS.finditer(text):
        whole = match.group(1).replace(",", "") + (match.group(2) or "")
        value: tuple[float, ...] = (float(whole),)
        if match.group(3) is not None:
            value = (float(whole), float(match.group(3)))
        found.append(_with_unit(text, Number(match.start(), match.end(), value)))
    found.extend(_spoken(text))
    found.sort(key=lambda n: n.start)
    return found


def _spoken(text: str) -> list[Number]:
    tokens = [(m.group(0).lower(), m.start(), m.end()) for m in _WORD.finditer(text)]
    out: list[Number] = []
    i = 0
    while i < len(tokens):
        word, start, end = tokens[i]
        parts = word.split("-")
        if word in ORDINALS or (len(parts) == 2 and parts[0] in TENS and parts[1] in ORDINALS):
            value = ORDINALS.get(word) or TENS[parts[0]] + ORDINALS[parts[1]]
            out.append(Number(start, end, (float(value),), spoken=True, ordinal=True))
            i += 1
            continue
        if word == "half" and i + 1 < len(tokens) and tokens[i + 1][0] in {"a", "an"} and \
                (i == 0 or tokens[i - 1][0] not in {"and", "a"}):
            out.append(_with_unit(text, Number(start, tokens[i + 1][2], (0.5,), spoken=True)))
            i += 2
            continue
        if word == "point" and (i == 0 or tokens[i - 1][0] not in _NUMBER_WORDS):
            decimal = _decimal_tail(tokens, i)
            if decimal is not None:
                digits, j, run_end = decimal
                out.append(_with_unit(text, Number(start, run_end, (float(f"0.{digits}"),), spoken=True)))
                i = j
                continue
        if word in ADVERBS:
            out.append(Number(start, end, (float(ADVERBS[word]),), unit=Unit("times", "count", 1), spoken=True))
            i += 1
            continue
        if not all(p in _NUMBER_WORDS for p in parts) or word in {"oh", "and"}:
            # "a hundred"
            if word == "a" and i + 1 < len(tokens) and tokens[i + 1][0] in SCALES:
                pass
            else:
                i += 1
                continue
        run: list[str] = []
        j = i
        run_end = end
        while j < len(tokens):
            w = tokens[j][0]
            pieces = w.split("-")
            if all(p in _NUMBER_WORDS for p in pieces) or (w == "a" and j == i):
                run.extend("one" if p == "a" else p for p in pieces)
                run_end = tokens[j][2]
                j += 1
            elif w == "and" and j + 1 < len(tokens) and tokens[j + 1][0] in _NUMBER_WORDS and run and \
                    run[-1] in SCALES:
                run.append("and")
                j += 1
            else:
                break
        if not run or (run == ["one"] and word == "a"):
            i = max(j, i + 1)
            continue
        values = _parse_words(run)
        decimal = _decimal_tail(tokens, j)
        if decimal is not None and len(values) == 1:
            digits, j, run_end = decimal
            values = [float(f"{int(values[0])}.{digits}")]
        half = _and_a_half(tokens, j)
        if half is not None and len(values) == 1:
            values = [values[0] + 0.5]
            j, run_end = half
        pair = _over(tokens, j)
        if pair is not None and len(values) == 1:
            second, j, run_end = pair
            out.append(_with_unit(text, Number(start, run_end, (values[0], second), spoken=True)))
        elif len(values) == 1:
            if not _VAGUE_BEFORE.search(text[:start]):
                out.append(_with_unit(text, Number(start, run_end, (values[0],), spoken=True)))
        else:
            # a string of separate numbers ("four five") keeps each as its own, spanning the run
            out.extend(Number(start, run_end, (float(v),), spoken=True) for v in values)
        i = max(j, i + 1)
    return out


def _decimal_tail(tokens: list[tuple[str, int, int]], j: int) -> tuple[str, int, int] | None:
    if j + 1 < len(tokens) and tokens[j][0] == "point":
        digits = ""
        k = j + 1
        end = tokens[j][2]
        while k < len(tokens) and tokens[k][0] in SMALL and SMALL[tokens[k][0]] < 10:
            digits += str(SMALL[tokens[k][0]])
            end = tokens[k][2]
            k += 1
        if digits:
            return digits, k, end
    return None


def _and_a_half(tokens: list[tuple[str, int, int]], j: int) -> tuple[int, int] | None:
    words = [t[0] for t in tokens[j:j + 3]]
    if words == ["and", "a", "half"]:
        return j + 3, tokens[j + 2][2]
    return None


def _over(tokens: list[tuple[str, int, int]], j: int) -> tuple[float, int, int] | None:
    """``one fifty over ninety``: the second value of a spoken pair."""
    if j + 2 < len(tokens) and tokens[j][0] == "out" and tokens[j + 1][0] == "of":
        j += 1
    if j + 1 < len(tokens) and tokens[j][0] in {"over", "of"}:
        run: list[str] = []
        k = j + 1
        end = tokens[j][2]
        while k < len(tokens) and all(p in _NUMBER_WORDS for p in tokens[k][0].split("-")):
            run.extend(tokens[k][0].split("-"))
            end = tokens[k][2]
            k += 1
        values = _parse_words(run) if run else []
        if len(values) == 1:
            return values[0], k, end
        match = re.fullmatch(r"\d+(?:\.\d+)?", tokens[j + 1][0])
        if match:
            return float(match.group(0)), j + 2, tokens[j + 1][2]
    return None


def _with_unit(text: str, number: Number) -> Number:
    match = _UNIT.match(text, number.end)
    if match is None:
        return number
    for i, (_, unit) in enumerate(_UNIT_TABLE):
        if match.group(f"u{i}") is not None:
            return Number(number.start, match.end(), number.value, unit, number.spoken, number.ordinal)
    return number


def same_value(a: Number, b: Number, tolerance: float) -> bool:
    """Equal within ``tolerance`` (relative), in a common unit when both have one.

    A number without a unit matches a number of any unit with the same value (speech often drops
    the unit: "one twenty over eighty", "weighed seven pounds three").
    """
    if a.unit is not None and b.unit is not None:
        if a.unit.dimension != b.unit.dimension:
            return False
        x, y = a.base(), b.base()
    else:
        x, y = a.value, b.value
    if len(x) != len(y):
        return False
    return all(abs(p - q) <= tolerance * max(abs(p), abs(q)) + 1e-9 for p, q in zip(x, y, strict=True))
