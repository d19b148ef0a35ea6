"""``extractive:lead`` and ``extractive:centroid``: offline baselines that copy sentences of the note.

Every LLM summary should be compared with these: they cost nothing, never
leave the machine, cannot hallucinate, and say how much of a metric is earned
by simply copying the source.

- ``lead``: the note's first sentences, in order, while they fit ``max_words``.
- ``centroid``: the sentences most similar (TF-IDF cosine) to the centroid of all
  sentences, chosen greedily while they fit ``max_words``, skipping near-duplicates
  of sentences already chosen, and printed in source order.

Both skip section-header lines (``HISTORY OF PRESENT ILLNESS``, ``A/P:``): a header
carries no content of its own. Chosen sentences are printed one per line. They
read ``request.note.text``; without a note they fall back to ``request.prompt``
(which then includes the prompt's instructions).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable
from typing import Any

from pydantic import Field

from clinsum.errors import ConfigError
from clinsum.providers.base import BaseProvider, Generation, ProviderOptions, Request
from clinsum.providers.common import timed

METHODS = ("lead", "centroid")

_TITLES = {"dr.", "mr.", "mrs.", "ms.", "prof.", "st.", "e.g.", "i.e.", "vs.", "approx.", "no.", "pt."}
"""Abbreviations after which a capital letter never starts a new sentence.
(Dosing abbreviations such as ``b.i.d.`` often do end one, so they are not listed;
followed by a lower-case word they never split anyway.)"""

_BOUNDARY = re.compile(
    r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])"  # punctuation, space, then a capital or digit
    r"|(?<=\s[.!?])\s+"  # or tokenized text (" . "), whatever follows
)
_INLINE_HEADER = re.compile(r"^([A-Z][A-Z /&-]{1,40}):\s+(?=\S)")
"""``HPI: The patient...``: an upper-case label opening a line, dropped from its sentence."""
_LIST_MARKER = re.compile(r"^\s*(?:[-*•]|\d{1,2}[.)]|[a-zA-Z][.)])\s*$")
_WORD = re.compile(r"[a-z0-9]+")
_SPEAKER = re.compile(r"^\s*\[[^\]]{1,30}\]")
"""A speaker tag opening a dialogue turn (``[doctor]``): kept in the text, not a content word."""

_STOPWORD_LIST = """
a an and are as at be been but by for from had has have he her his i if in into is it its me my no
not of on or our she so that the their them then there these they this to was we were what when
which who will with you your yes okay ok um uh mm hmm mhm yeah oh right alright all just do
does did can how any about well like know think going get got go s m re ll ve t d let
good sounds thank thanks hi hey
"""
_STOPWORDS = frozenset(_STOPWORD_LIST.split())
"""Function words, and the fillers of transcribed speech, that say nothing about content."""


def sentences(text: str) -> list[str]:
    """Split clinical text into sentences, without headers.

    Lines are split first (notes put one finding, list item or speaker turn per
    line), then sentence-final punctuation splits a line where a capital letter
    or digit follows, except after a title (``Dr.``) or an initial (``J.``).
    """
    found: list[str] = []
    for raw_line in text.splitlines():
        line = raw_line.strip()
        if not line or _is_header(line):
            continue
        line = _INLINE_HEADER.sub("", line)
        pending = ""
        for piece in _split_line(line):
            pending = f"{pending} {piece}".strip() if pending else piece
            if not _LIST_MARKER.match(pending):
                found.append(pending)
                pending = ""
        if pending:
            found.append(pending)
    return found


def _is_header(line: str) -> bool:
    """``CHIEF COMPLAINT``, ``A/P:``, ``PHYSICAL EXAM``: no lower-case letter, and either a closing
    colon or neither a digit nor closing punctuation (``BP 130/85.`` and ``CBC WNL.`` are content)."""
    if any(ch.islower() for ch in line) or not any(ch.isupper() for ch in line):
        return False
    return line.endswith(":") or not (any(ch.isdigit() for ch in line) or line.endswith((".", "!", "?")))


def _split_line(line: str) -> list[str]:
    pieces, start = [], 0
    for boundary in _BOUNDARY.finditer(line):
        words = line[start:boundary.start()].rstrip("\"')]").split()
        last_word = words[-1].lower() if words else ""
        if last_word in _TITLES or _is_initial(words):
            continue
        pieces.append(line[start:boundary.start()].strip())
        start = boundary.end()
    pieces.append(line[start:].strip())
    return [p for p in pieces if p]


def _is_initial(words: list[str]) -> bool:
    """``J.`` in ``Mr. J. Brown``, but not ``C.`` in ``37.5 C.`` (a unit ends the sentence)."""
    if not words or not re.fullmatch(r"[A-Za-z]\.", words[-1]):
        return False
    return len(words) < 2 or not any(ch.isdigit() for ch in words[-2])


def _words(sentence: str) -> int:
    return len(sentence.split())


def _truncate(sentence: str, max_words: int) -> str:
    return " ".join(sentence.split()[:max_words])


def lead(candidates: list[str], max_words: int) -> list[str]:
    """The first sentences while they fit; the first one cut to the budget if it alone does not."""
    chosen: list[str] = []
    used = 0
    for sentence in candidates:
        if used + _words(sentence) > max_words:
            break
        chosen.append(sentence)
        used += _words(sentence)
    if not chosen and candidates:
        chosen.append(_truncate(candidates[0], max_words))
    return chosen


def _vectors(candidates: list[str]) -> list[dict[str, float]]:
    """Unit-length TF-IDF vectors, each sentence a document."""
    bags = [Counter(w for w in _WORD.findall(_SPEAKER.sub("", s).lower()) if w not in _STOPWORDS)
            for s in candidates]
    documents = Counter(term for bag in bags for term in bag)
    n = len(bags)
    vectors = []
    for bag in bags:
        weights = {t: c * (math.log((1 + n) / (1 + documents[t])) + 1) for t, c in bag.items()}
        norm = math.sqrt(sum(w * w for w in weights.values())) or 1.0
        vectors.append({t: w / norm for t, w in weights.items()})
    return vectors


def _cosine(a: dict[str, float], b: dict[str, float]) -> float:
    if len(a) > len(b):
        a, b = b, a
    return sum(w * b.get(t, 0.0) for t, w in a.items())


REDUNDANT = 0.7
"""A sentence this similar (cosine) to one already chosen adds nothing and is skipped."""
MIN_CONTENT_TERMS = 3
"""Sentences with fewer content words ("Okay.", "Thank you.") are chosen only as a last resort."""


def centroid(candidates: list[str], max_words: int) -> list[str]:
    """Sentences closest to the TF-IDF centroid, greedily within the budget, in source order."""
    if not candidates:
        return []
    vectors = _vectors(candidates)
    center: Counter[str] = Counter()
    for vector in vectors:
        center.update(vector)
    norm = math.sqrt(sum(w * w for w in center.values())) or 1.0
    unit_center = {t: w / norm for t, w in center.items()}

    def rank(i: int) -> tuple[float, int]:
        return (-_cosine(vectors[i], unit_center), i)

    eligible = [i for i, v in enumerate(vectors) if len(v) >= MIN_CONTENT_TERMS] or list(range(len(vectors)))
    chosen: list[int] = []
    used = 0
    for i in sorted(eligible, key=rank):
        words = _words(candidates[i])
        if used + words > max_words:
            continue
        if any(_cosine(vectors[i], vectors[j]) > REDUNDANT for j in chosen):
            continue
        chosen.append(i)
        used += words
    if not chosen:
        best = min(eligible, key=rank)
        return [_truncate(candidates[best], max_words)]
    return [candidates[i] for i in sorted(chosen)]


_SELECTORS: dict[str, Callable[[list[str], int], list[str]]] = {"lead": lead, "centroid": centroid}


class ExtractiveOptions(ProviderOptions):
    max_words: int = Field(default=120, ge=1)
    """Word budget of the summary (whitespace-separated words)."""


class ExtractiveProvider(BaseProvider):
    """Copies sentences of the note; free, local and deterministic."""

    options_model = ExtractiveOptions
    local = True
    cacheable = False
    """Recomputing is faster than a cache look-up, and the answer depends on ``request.note``."""
    options: ExtractiveOptions

    def __init__(self, spec: str, options: ProviderOptions | dict[str, Any] | None = None) -> None:
        super().__init__(spec, options)
        if self.model not in _SELECTORS:
            raise ConfigError(f"unknown extractive method '{self.model}' in spec '{spec}'; "
                              f"known methods: {', '.join(METHODS)}")
        self._select = _SELECTORS[self.model]

    async def generate(self, request: Request) -> Generation:
        source = request.note.text if request.note is not None else request.prompt
        with timed() as clock:
            text = "\n".join(self._select(sentences(source), self.options.max_words))
        return Generation(text=text, cost_usd=0.0, latency_s=clock.seconds, model=self.model)


def create(spec: str, options: dict[str, Any]) -> ExtractiveProvider:
    return ExtractiveProvider(spec, options)
