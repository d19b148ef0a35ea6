"""Statements the source does not support, seen through their words rather than fact patterns.

Number, side, dose and concept patterns (``statements``) miss what a summary invents in plain words:
"lives with his case manager", "works as a teacher", "completed the fifth grade". Here the summary
is split into statements (sentences, and lines of a list) and each statement's content words are
aligned with the source:

* a content word is a normalised word (lower case, light suffix stripping: "lives", "living" and
  "lived" are one word) that is neither a stop word, a speaker filler ("um", "okay", "yeah"), nor a
  word of note-writing ("patient", "reports", "presents"); a number is its value ("twenty six" and
  "26" are one word); a word inside a lexicon concept also matches the concept's other names in the
  source ("hypertension" and "high blood pressure", "HTN"); a few lay synonyms ("dad", "father");
  spelled letters are joined ("P T" is "pt");
* the source is cut into units (sentences; a dialogue's turns are cut at their sentences too) and
  a window is a unit with ``window`` units either side, so a question and its answer are one window;
* a statement's support is the weighted share of its content words found in its best window.
  A word's weight is its rarity in clinical notes (inverse document frequency over the ACI-Bench
  train notes, ``note_words.tsv``): "continue", "plan" and "follow" weigh little, "apartment" much.

A statement whose support is under ``threshold`` is unsupported (kind ``statement``); in a
statement that passes, a content word found nowhere in the source and rare enough (weight at least
``content_weight``) is unsupported too (kind ``content``). Either way the reason is
``not in the source``, with the words that were not found and the source window compared with.
"""

from __future__ import annotations

import gzip
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any

from clinsum.evaluators.facts.numbers import numbers_in
from clinsum.records import Mention

REASON = "not in the source"
_WORD = re.compile(r"\b[A-Za-z]-[A-Za-z]+|[A-Za-z]+(?:'[A-Za-z]+)?|\d+(?:\.\d+)?")
"""A word ("x-ray" and "t-cell" are one), or a number."""
_SPEAKER = re.compile(r"^\s*(?:\[[a-z_ ]+\]|(?:doctor|patient|guest_family|guest_clinician|dr|pt)\s*:)",
                      re.IGNORECASE | re.MULTILINE)
_STATEMENT_END = re.compile(r"(?<=[a-z0-9)\]%])[.!?]+(?=\s|$)|[;\n•]|\s-\s", re.IGNORECASE)
_UNIT_END = re.compile(r"[.!?]+(?=\s|$)|[;\n]")
_HEADER = re.compile(r"^[^a-z]*:?$")
"""A section header ("HISTORY OF PRESENT ILLNESS", "PLAN:", "1."): no lower-case letter, six words at most."""
_LABEL = re.compile(r"(?:[A-Za-z][\w/&,-]*\s){0,5}[A-Za-z][\w/&-]*\s?:\s+")
"""A section label that opens a statement ("Medical Reasoning: ", "Cardiovascular: "): not a statement's words."""
_PREFIX = 6
"""Words sharing their first six letters match ("hypertension", "hypertensive"; "diabetes", "diabetic")."""


def _listed(words: str) -> frozenset[str]:
    return frozenset(words.split())


STOP = _listed("""
a about above after again against all almost along already also although always am among an and another any
anybody anyone anything anyway are around as at away back be because been before being below between both
but by can cannot could did do does doing done down during each either else enough etc even ever every few
for from further get gets getting go goes going gone got had has have having he her here hers herself him
himself his how however i if in into is it its itself just least less let like many may me might mine more
most much must my myself near neither never no nobody none nor not nothing now of off often on once one only
onto or other others otherwise our ours ourselves out over own per perhaps quite rather really said same
say says see seen several shall she should since so some somebody someone something sometimes still such than
that the their theirs them themselves then there therefore these they thing things this those though through
thus to together too toward towards under until up upon us very via was we well were what whatever when
where whether which while who whom whose why will with within without would yet you your yours yourself
yourselves ll ve re d s t m don doesn didn isn wasn aren weren haven hasn hadn won wouldn couldn shouldn
can't don't doesn't didn't isn't wasn't i'm i've i'll i'd you're you've he's she's it's that's there's
what's we're they're let's
""")
FILLERS = _listed("""
um umm uh uhh hmm hm mm mhm mm-hmm uh-huh huh oh ah okay ok yeah yep yes yup nope alright right sure
gonna wanna gotta kinda sorta know mean guess think thank thanks please sorry hi hello bye good great
little bit lot lots pretty actually basically probably maybe definitely absolutely totally kind sort
""")
FRAME = _listed("""
patient patients pt's mr mrs ms miss dr reports reported reporting states stated stating notes noted
presents presented presenting complains complained complaint describes described endorses endorsed denies
denied today currently current recently recent additionally further also year old female male woman man
gentleman lady per
""")
"""Words of note-writing that a faithful summary adds to what was said."""
SYNONYMS: tuple[frozenset[str], ...] = (
    frozenset({"father", "dad", "daddy"}), frozenset({"mother", "mom", "mum", "mommy"}),
    frozenset({"child", "children", "kid", "kids"}), frozenset({"wife", "spouse", "husband", "partner"}),
    frozenset({"physician", "doctor", "provider"}), frozenset({"medication", "medicine", "meds", "drug", "pill"}),
    frozenset({"surgery", "operation", "surgical", "procedure"}), frozenset({"pain", "hurt", "ache", "sore"}),
    frozenset({"fatigue", "tired", "exhausted"}), frozenset({"vomit", "throw"}),
    frozenset({"nausea", "nauseous", "nauseated", "queasy"}), frozenset({"swell", "swollen", "swelling"}),
    frozenset({"smoke", "smoker", "cigarette", "tobacco"}), frozenset({"alcohol", "drink", "drinker", "etoh"}),
    frozenset({"exercise", "workout", "active", "activity"}), frozenset({"xray", "x-ray", "radiograph"}),
    frozenset({"pt", "therapy", "therapist"}), frozenset({"bp", "pressure"}), frozenset({"sob", "breath"}),
    frozenset({"week", "weekly"}), frozenset({"day", "daily"}), frozenset({"month", "monthly"}),
    frozenset({"year", "yearly", "annual", "annually"}),
    frozenset({"death", "die", "died", "dead", "deceased", "passed"}), frozenset({"night", "nightly", "nighttime"}),
)


def stem(word: str) -> str:
    """A light, order-preserving suffix stripper: enough to make inflections one word."""
    word = word.lower().replace("'s", "").strip("'")
    if len(word) <= 3 or word.isdigit():
        return word
    for suffix, keep in (("ies", "y"), ("sses", "ss"), ("ches", "ch"), ("shes", "sh"), ("xes", "x")):
        if word.endswith(suffix):
            return word[: -len(suffix)] + keep
    if word.endswith("s") and not word.endswith(("ss", "us", "is")):
        word = word[:-1]
    for suffix in ("ingly", "edly", "ing", "ed", "ly"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[: -len(suffix)]
            if len(word) > 3 and word[-1] == word[-2] and word[-1] not in "lsz":
                word = word[:-1]
            break
    return word[:-1] if word.endswith("e") and len(word) > 3 else word


_SYNONYM_KEY = {stem(w): "s:" + sorted(group)[0] for group in SYNONYMS for w in group}
_SKIP = frozenset(stem(w) for w in STOP | FILLERS | FRAME) | STOP | FILLERS | FRAME


@lru_cache(maxsize=1)
def note_weights() -> tuple[dict[str, float], float]:
    """Word -> inverse document frequency over clinical notes, scaled to [0, 1]; the weight of an unseen word."""
    path = resources.files("clinsum.evaluators.facts") / "note_words.tsv.gz"
    with path.open("rb") as raw, gzip.open(raw, "rt", encoding="utf-8") as handle:
        header = handle.readline()
        documents = int(header.split("documents=")[1].split()[0])
        counts = {word: int(df) for word, df in (line.rstrip("\n").split("\t") for line in handle if line.strip())}
    top = math.log(documents + 1)
    return {word: math.log((documents + 1) / (df + 1)) / top for word, df in counts.items()}, 1.0


def weight(key: str) -> float:
    table, unseen = note_weights()
    return table.get(key, unseen)


@dataclass(frozen=True)
class Word:
    """A content word of a text: its span and every key it matches by (its stem first)."""

    start: int
    end: int
    keys: tuple[str, ...]


def words_of(text: str, mentions: Sequence[Mention] = ()) -> list[Word]:
    """The content words of ``text`` in order; numbers as their values, concepts with their ids."""
    numbers = numbers_in(text)
    taken = {i for n in numbers for i in range(n.start, n.end)}
    words = [Word(n.start, n.end, ("n:" + "/".join(f"{v:g}" for v in n.value),)) for n in numbers]
    letters: list[re.Match[str]] = []

    def flush() -> None:
        if len(letters) >= 2:
            joined = "".join(m.group(0) for m in letters).lower()
            words.append(Word(letters[0].start(), letters[-1].end(), _keys(joined)))
        letters.clear()

    for match in _WORD.finditer(text):
        token = match.group(0)
        if match.start() in taken:
            continue
        if len(token) == 1 and token.isalpha() and (token.isupper() or token not in "ai"):
            letters.append(match)
            continue
        flush()
        lowered = token.lower().replace("-", "")
        if lowered in _SKIP or len(lowered) < 2 or token.isdigit() or lowered.split("'")[0] in _SKIP:
            continue
        keys = _keys(lowered)
        if keys[0] in _SKIP:
            continue
        words.append(Word(match.start(), match.end(), keys))
    flush()
    words.sort(key=lambda w: w.start)
    return _with_concepts(words, mentions) if mentions else words


@lru_cache(maxsize=65536)
def _keys(lowered: str) -> tuple[str, ...]:
    root = stem(lowered)
    keys = [root]
    if len(root) >= _PREFIX:
        keys.append("p:" + root[:_PREFIX])
    synonym = _SYNONYM_KEY.get(root)
    if synonym is not None:
        keys.append(synonym)
    return tuple(keys)


def _with_concepts(words: list[Word], mentions: Sequence[Mention]) -> list[Word]:
    """Each word inside a concept mention also matches by the concept's id."""
    from bisect import bisect_left

    starts = [w.start for w in words]
    extra: dict[int, list[str]] = {}
    for mention in mentions:
        i = bisect_left(starts, mention.start)
        while i < len(words) and words[i].start < mention.end:
            if words[i].end <= mention.end:
                extra.setdefault(i, []).append("c:" + mention.concept_id)
            i += 1
    return [Word(w.start, w.end, w.keys + tuple(extra[i])) if i in extra else w for i, w in enumerate(words)]


@dataclass
class Evidence:
    """A text that can support a summary, cut into units with an index from word key to units."""

    text: str
    role: str
    units: list[tuple[int, int]]
    index: dict[str, list[int]] = field(default_factory=dict)
    _covered: dict[tuple[str, int], frozenset[int]] = field(default_factory=dict, repr=False)

    def centres(self, key: str, window: int) -> frozenset[int]:
        """The window centres whose window holds ``key`` (memoised: a source is scored for many summaries)."""
        found = self._covered.get((key, window))
        if found is None:
            last = len(self.units) - 1
            found = frozenset(c for unit in self.index.get(key, ()) for c in range(max(0, unit - window),
                                                                                   min(last, unit + window) + 1))
            self._covered[(key, window)] = found
        return found


def evidence_of(text: str, mentions: Sequence[Mention], role: str = "source") -> Evidence:
    cleaned = _SPEAKER.sub(lambda m: " " * len(m.group(0)), text)
    units = _cut(cleaned, _UNIT_END)
    evidence = Evidence(text, role, units)
    bounds = [start for start, _end in units]
    for word in words_of(cleaned, mentions):
        unit = max(0, _bisect(bounds, word.start))
        for key in word.keys:
            at = evidence.index.setdefault(key, [])
            if not at or at[-1] != unit:
                at.append(unit)
    return evidence


def _bisect(bounds: list[int], position: int) -> int:
    from bisect import bisect_right

    return bisect_right(bounds, position) - 1


def _cut(text: str, boundary: re.Pattern[str]) -> list[tuple[int, int]]:
    """Spans of the pieces of ``text`` between boundaries, stripped, non-empty."""
    out = []
    start = 0
    for match in [*boundary.finditer(text), None]:
        end = match.end() if match is not None else len(text)
        piece = text[start:end]
        stripped = piece.strip(" \t\n;•-")
        if stripped:
            lead = piece.index(stripped[0])
            out.append((start + lead, start + lead + len(stripped)))
        start = end
    return out


def statements_of(text: str) -> list[tuple[int, int]]:
    """Spans of the statements of a summary: sentences and list lines, without section headers."""
    return [(s, e) for s, e in _cut(text, _STATEMENT_END)
            if not (_HEADER.match(text[s:e]) and len(text[s:e].split()) <= 6)]


@dataclass(frozen=True)
class Alignment:
    support: float
    unmatched: list[Word]
    evidence: Evidence | None
    window: tuple[int, int] | None
    missing: float
    """The weight not found (what keeps ``support`` under 1)."""


def align(words: Sequence[Word], evidence: Sequence[Evidence], window: int, elsewhere: float) -> Alignment:
    """The best window of any evidence for ``words``: the weighted share of them found there.

    A word found in the evidence outside the window counts ``elsewhere`` (0 to 1) of its weight: a
    summary sentence often gathers what was said in several places.
    """
    weights = [weight(w.keys[0]) for w in words]
    total = sum(weights)
    best = Alignment(0.0, list(words), None, None, total)
    for source in evidence:
        scores: dict[int, float] = {}
        covers: list[frozenset[int]] = []
        anywhere = 0.0
        for word, size in zip(words, weights, strict=True):
            centres = frozenset().union(*(source.centres(key, window) for key in word.keys))
            covers.append(centres)
            if centres:
                anywhere += size
            for centre in centres:
                scores[centre] = scores.get(centre, 0.0) + size
        if not scores:
            continue
        centre = max(scores, key=lambda c: (scores[c], -c))
        found = scores[centre] + elsewhere * (anywhere - scores[centre])
        support = found / total if total else 1.0
        if support > best.support:
            first, last = max(0, centre - window), min(len(source.units) - 1, centre + window)
            span = (source.units[first][0], source.units[last][1])
            best = Alignment(support, [w for w, c in zip(words, covers, strict=True) if centre not in c],
                             source, span, total - found)
    return best


def _found_anywhere(word: Word, evidence: Sequence[Evidence]) -> bool:
    return any(key in source.index for key in word.keys for source in evidence)


@dataclass
class Statements:
    unsupported: list[dict[str, Any]]
    """One entry per unsupported statement or content word: start, end, text, kind, reason, unmatched, source."""
    total: int
    """Statements of the summary with at least ``min_words`` content words (the rate's denominator)."""
    spans: list[tuple[int, int]]
    """Spans of those statements."""
    flagged: list[tuple[int, int]]
    """Spans of the statements with an unsupported entry."""


def unsupported_statements(summary: str, summary_mentions: Sequence[Mention], evidence: Sequence[Evidence], *,
                           threshold: float, window: int, content_weight: float | None,
                           elsewhere: float = 0.5, missing: float = 1.0, min_words: int = 2) -> Statements:
    """Statements whose support is under ``threshold`` with at least ``missing`` weight not found, and the
    rare words found nowhere (``content_weight``) in the others."""
    words = words_of(summary, summary_mentions)
    found: list[dict[str, Any]] = []
    spans: list[tuple[int, int]] = []
    flagged: list[tuple[int, int]] = []
    for start, end in statements_of(summary):
        label = _LABEL.match(summary, start, end)
        body = label.end() if label is not None else start
        inside = [w for w in words if body <= w.start and w.end <= end]
        if len(inside) < min_words:
            continue
        spans.append((start, end))
        alignment = align(inside, evidence, window, elsewhere)
        compared = _span(alignment)
        if alignment.support < threshold and alignment.missing >= missing:
            flagged.append((start, end))
            found.append({"start": start, "end": end, "text": summary[start:end], "kind": "statement",
                          "reason": REASON, "unmatched": [summary[w.start:w.end] for w in alignment.unmatched],
                          "support": round(alignment.support, 3), "source": compared})
            continue
        if content_weight is None:
            continue
        absent = [w for w in alignment.unmatched if not w.keys[0].startswith("n:")  # numbers: ``statements``
                  and weight(w.keys[0]) >= content_weight and not _found_anywhere(w, evidence)]
        if absent:
            flagged.append((start, end))
        for word in absent:
            found.append({"start": word.start, "end": word.end, "text": summary[word.start:word.end],
                          "kind": "content", "reason": REASON, "unmatched": [summary[word.start:word.end]],
                          "support": round(alignment.support, 3), "source": compared})
    return Statements(found, len(spans), spans, flagged)


def _span(alignment: Alignment) -> dict[str, Any] | None:
    if alignment.evidence is None or alignment.window is None:
        return None
    start, end = alignment.window
    return {"start": start, "end": end, "text": alignment.evidence.text[start:end], "in": alignment.evidence.role}
