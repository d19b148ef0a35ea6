"""The extraction pipeline: text → concept mentions with assertions.

1. Tokenise with a blank English spaCy pipeline (no model download); split each token into
   alphanumeric words, normalised exactly as the lexicon's names were (terminology.py).
   Sentence punctuation is a barrier no name can span.
2. Exact matching: at each word, the longest lexicon name starting there (greedy, left to right),
   from a dict of normalised n-grams; short all-capital abbreviations match case-sensitively.
3. Fuzzy matching: a word of 7+ letters that is in no lexicon name and is no ordinary word of
   medical English (a likely misspelling such as "diabetis") is corrected to the nearest lexicon
   word with rapidfuzz (edit distance 1, or 2 from 11 letters); names completed by a correction
   become mentions.
4. Abbreviations the text defines ("chronic obstructive pulmonary disease (COPD)"): scispacy's
   AbbreviationDetector pairs short and long forms; every occurrence of the short form takes the
   long form's concept (or the concept of its head, a final disorder or finding), and a short form
   defined as something outside the lexicon is not matched. A capitalised acronym in parentheses
   right after a recognised concept ("zidovudine (AZT)") names that concept too.
5. Assertion for every mention from clinsum.concepts.assertion (ConText, section-aware).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any, cast

from clinsum.concepts.assertion import assertions_for
from clinsum.concepts.terminology import Concept, Lexicon, is_barrier, load_lexicon, token_parts
from clinsum.errors import InputError
from clinsum.records import Mention

if TYPE_CHECKING:
    from spacy.language import Language
    from spacy.tokens import Doc

MAX_CHARS = 2_000_000
"""Texts longer than this are refused with InputError (a clinical note is a few thousand chars)."""
CHUNK_CHARS = 100_000
"""Long texts are tokenised in chunks of about this size, cut at a line break."""
FUZZY_MIN_LENGTH = 7


@dataclass(frozen=True, slots=True)
class Word:
    norm: str
    start: int
    end: int
    surface: str


@dataclass(frozen=True, slots=True)
class Match:
    start_word: int
    end_word: int
    concept: Concept
    fuzzy: bool = False


class ConceptExtractor:
    """Tokeniser, lexicon and abbreviation detector, built once and shared (``extract`` is thread-safe)."""

    def __init__(self, lexicon: Lexicon, nlp: Language) -> None:
        self.lexicon = lexicon
        self.nlp = nlp
        self._abbreviations: Any = None
        self._abbreviation_lock = threading.Lock()  # the detector mutates a matcher per call
        self._buckets: dict[tuple[str, int], list[str]] = {}
        for word in lexicon.vocabulary:
            if len(word) >= FUZZY_MIN_LENGTH - 1 and word.isalpha():
                self._buckets.setdefault((word[0], len(word)), []).append(word)
        self.correct = lru_cache(maxsize=65536)(self._correct)

    # -- tokens ------------------------------------------------------------------------------

    def doc(self, text: str) -> Doc:
        return self.nlp.make_doc(text)

    def words(self, text: str) -> tuple[list[Word | None], list[Doc]]:
        """The text's words in order; ``None`` marks a barrier (sentence punctuation, line break)."""
        words: list[Word | None] = []
        docs = []
        for offset, chunk in _chunks(text):
            doc = self.doc(chunk)
            docs.append(doc)
            words.append(None)
            for token in doc:
                token_text = token.text
                if is_barrier(token_text):
                    words.append(None)
                    continue
                base = token.idx + offset
                for norm, start, end in token_parts(token_text):
                    words.append(Word(norm, base + start, base + end, token_text[start:end]))
        return words, docs

    # -- matching ----------------------------------------------------------------------------

    def match(self, norms: Sequence[str | None], words: Sequence[Word | None],
              accept: Sequence[bool] | None = None) -> list[Match]:
        """Greedy longest match of lexicon names over ``norms`` (None = barrier).

        With ``accept``, only matches covering at least one accepted position are kept (the
        fuzzy pass: only names that a corrected word completes).
        """
        keys, acronyms, spans = self.lexicon.keys, self.lexicon.acronyms, self.lexicon.first_word_span
        concepts = self.lexicon.concepts
        found: list[Match] = []
        i, n = 0, len(norms)
        while i < n:
            first = norms[i]
            if first is None:
                i += 1
                continue
            best: tuple[int, int] | None = None
            longest = spans.get(first, 0)
            if longest:
                stop = i + 1
                while stop < n and stop - i < longest and norms[stop] is not None:
                    stop += 1
                for end in range(stop, i, -1):
                    index = keys.get(" ".join(cast("list[str]", norms[i:end])))
                    if index is not None:
                        best = (end, index)
                        break
            word = words[i]
            if (best is None or best[0] == i + 1) and word is not None and word.surface in acronyms:
                best = (i + 1, acronyms[word.surface])
            if best is not None and (accept is None or any(accept[i:best[0]])):
                found.append(Match(i, best[0], concepts[best[1]], fuzzy=accept is not None))
                i = best[0]
            else:
                i += 1
        return found

    def _correct(self, word: str) -> str | None:
        """The lexicon word nearest a word no lexicon name contains, or None.

        Optimal-string-alignment distance (a swap of two letters costs 1): at most 1 for words of
        7 to 10 letters, 2 from 11 letters; shorter words are never corrected. Ties go to the
        alphabetically first candidate, so results are deterministic.
        """
        from rapidfuzz.distance import OSA

        budget = 1 if len(word) <= 10 else 2
        best: tuple[int, str] | None = None
        for length in range(len(word) - budget, len(word) + budget + 1):
            for candidate in self._buckets.get((word[0], length), ()):
                distance = OSA.distance(word, candidate, score_cutoff=budget)
                if distance <= budget and not _opposite_prefixes(word, candidate) \
                        and (best is None or (distance, candidate) < best):
                    best = (distance, candidate)
        return best[1] if best else None

    def fuzzy_matches(self, words: Sequence[Word | None], taken: Sequence[bool]) -> list[Match]:
        vocabulary, known = self.lexicon.vocabulary, self.lexicon.known_words
        norms: list[str | None] = []
        corrected: list[bool] = []
        for position, word in enumerate(words):
            norm = None if word is None else word.norm
            fixed = False
            # A capitalised word inside a sentence is a name ("Filipino", "Mrs. Jennings"), not a typo.
            proper_noun = (word is not None and word.surface[:1].isupper() and word.surface[1:].islower()
                           and position > 0 and words[position - 1] is not None)
            if (word is not None and not taken[position] and len(word.norm) >= FUZZY_MIN_LENGTH
                    and word.norm.isalpha() and not proper_noun and word.norm not in vocabulary
                    and not is_known_word(word.norm, known)):
                replacement = self.correct(word.norm)
                if replacement is not None:
                    norm, fixed = replacement, True
            norms.append(norm)
            corrected.append(fixed)
        if not any(corrected):
            return []
        return [m for m in self.match(norms, words, accept=corrected)
                if not any(taken[m.start_word:m.end_word])]

    # -- abbreviations defined in the text ---------------------------------------------------

    def defined_abbreviations(self, docs: Sequence[Doc],
                              offsets: Sequence[int]) -> list[tuple[int, int, str]]:
        """(start, end, long form) for every occurrence of an abbreviation the text defines."""
        if self._abbreviations is None:
            import warnings

            from scispacy.abbreviation import AbbreviationDetector

            # The detector runs its (often empty) per-document matcher on every call; spaCy warns
            # about the empty matcher each time. Silence that one warning only.
            warnings.filterwarnings("ignore", message=r"\[W036\]", category=UserWarning)
            self._abbreviations = AbbreviationDetector(self.nlp)
        found: list[tuple[int, int, str]] = []
        for doc, offset in zip(docs, offsets, strict=True):
            if "(" not in doc.text:
                continue
            with self._abbreviation_lock:
                doc = self._abbreviations(doc)
                found.extend((offset + short.start_char, offset + short.end_char, short._.long_form.text)
                             for short in doc._.abbreviations)
        return found

    def concept_of_phrase(self, phrase: str) -> Concept | None:
        """The concept of a whole phrase (an abbreviation's long form).

        Either one name covers the phrase (all words, or all but one), or the phrase ends with a
        disorder or finding, its head noun: "levodopa-induced dyskinesia" is a dyskinesia.
        """
        words, _ = self.words(phrase)
        real = [w for w in words if w is not None]
        if not real:
            return None
        matches = self.match([w.norm for w in real], real)
        if len(matches) == 1 and matches[0].end_word - matches[0].start_word >= max(1, len(real) - 1):
            return matches[0].concept
        if matches and matches[-1].end_word == len(real) and matches[-1].concept.group in ("disorder", "finding"):
            return matches[-1].concept
        return None

    # -- the whole pipeline ------------------------------------------------------------------

    def extract(self, text: str) -> list[Mention]:
        """The pipeline in its named steps (see the module docstring)."""
        if not text or not text.strip():
            return []
        _check_length(text)
        words, docs = self.words(text)
        spans = self.matched_spans(text, words)
        if "(" in text:
            defined = self.apply_defined_abbreviations(text, docs, spans)
            _apply_parenthesised_acronyms(text, spans, defined)
        return _with_assertions(text, spans)

    def matched_spans(self, text: str, words: Sequence[Word | None]) -> dict[tuple[int, int], Concept]:
        """Exact matches, then fuzzy ones over the words no exact match took; "non-X" dropped."""
        matches = self.match([w.norm if w else None for w in words], words)
        taken = [False] * len(words)
        for m in matches:
            taken[m.start_word:m.end_word] = [True] * (m.end_word - m.start_word)
        matches.extend(self.fuzzy_matches(words, taken))
        spans: dict[tuple[int, int], Concept] = {}
        for m in matches:
            first, last = words[m.start_word], words[m.end_word - 1]
            assert first is not None and last is not None
            if m.end_word - m.start_word == 1 and _after_non(text, words, m.start_word):
                continue
            spans[(first.start, last.end)] = m.concept
        return spans

    def apply_defined_abbreviations(self, text: str, docs: Sequence[Doc],
                                    spans: dict[tuple[int, int], Concept]) -> set[str]:
        """Give every occurrence of a short form the text defines its long form's concept (in place);
        a short form defined as something outside the lexicon loses its usual sense. Returns the
        short forms defined."""
        offsets = [offset for offset, _ in _chunks(text)]
        defined = self.defined_abbreviations(docs, offsets)
        for start, end, long_form in defined:
            concept = self.concept_of_phrase(long_form)
            for span in [s for s in spans if s[0] >= start and s[1] <= end]:
                del spans[span]
            if concept is not None:
                spans[(start, end)] = concept
        return {text[start:end] for start, end, _ in defined}


def _check_length(text: str) -> None:
    if len(text) > MAX_CHARS:
        raise InputError(f"text is {len(text):,} characters; concept extraction accepts at most "
                         f"{MAX_CHARS:,} (split the document)", field="text")


def _apply_parenthesised_acronyms(text: str, spans: dict[tuple[int, int], Concept], defined: set[str]) -> None:
    """Give every occurrence of an acronym named in parentheses after a concept ("zidovudine (AZT)") that
    concept (in place), unless the text defined the acronym otherwise."""
    for short_form, concept in _named_in_parentheses(text, spans).items():
        if short_form in defined:
            continue
        for occurrence in re.finditer(rf"(?<![\w-]){re.escape(short_form)}(?![\w-])", text):
            span = (occurrence.start(), occurrence.end())
            for other in [s for s in spans if s[0] < span[1] and span[0] < s[1]]:
                del spans[other]
            spans[span] = concept


def _with_assertions(text: str, spans: dict[tuple[int, int], Concept]) -> list[Mention]:
    ordered = sorted(spans.items())
    assertions = _assertions(text, [span for span, _ in ordered])
    return [Mention(start=start, end=end, text=text[start:end], concept_id=concept.id, name=concept.name,
                    group=cast(Any, concept.group), assertion=cast(Any, assertion))
            for ((start, end), concept), assertion in zip(ordered, assertions, strict=True)]


# Prefixes that differ by a letter or two and mean the opposite: "macromastia" is not a misspelt
# "micromastia", nor "hypokalemia" a misspelt "hyperkalemia".
_CONTRASTING_PREFIXES = ("hyper", "hypo", "macro", "micro", "intra", "inter", "extra", "ante", "anti",
                         "brady", "tachy", "poly", "oligo", "hetero", "homo", "endo", "exo", "ecto",
                         "infra", "supra")


def _opposite_prefixes(word: str, candidate: str) -> bool:
    first = next((p for p in _CONTRASTING_PREFIXES if word.startswith(p)), None)
    second = next((p for p in _CONTRASTING_PREFIXES if candidate.startswith(p)), None)
    return first != second


_INFLECTIONS = (("ation", ("e", "")), ("ing", ("", "e", "ed")), ("ed", ("", "e", "ing")), ("e", ("ation", "ed", "ing")),
                ("ly", ("",)), ("er", ("", "e")), ("ment", ("",)))


def is_known_word(word: str, known: frozenset[str]) -> bool:
    """Whether a word, or a regular inflection of it, is an ordinary word ("examine": "examination")."""
    if word in known:
        return True
    for suffix, alternatives in _INFLECTIONS:
        if word.endswith(suffix):
            root = word[: -len(suffix)]
            if any(root + alternative in known for alternative in alternatives):
                return True
    return False


def _after_non(text: str, words: Sequence[Word | None], position: int) -> bool:
    """Whether a one-word match is the tail of "non-X" ("non-tender", "non tender"): a statement
    that X is absent, not a mention of X. Names that start with "non" ("non-Hodgkin lymphoma") are
    longer matches that include the "non"; a longer match after "non" ("non-productive cough") is
    kept, since its head is still what the text is about."""
    previous = words[position - 1] if position > 0 else None
    current = words[position]
    return (previous is not None and current is not None and previous.norm == "non"
            and text[previous.end:current.start] in ("-", " ", "- ", "‐"))


_PARENTHESISED_ACRONYM = re.compile(r"\(\s*([A-Za-z][A-Za-z0-9-]{1,9})\s*\)")


def _named_in_parentheses(text: str, spans: dict[tuple[int, int], Concept]) -> dict[str, Concept]:
    """Acronyms in parentheses right after a mention: "zidovudine (AZT)", "nitroglycerin (NTG)".

    Schwartz & Hearst only accept a short form whose letters appear in the long form ("AZT" is not
    in "zidovudine"); a capitalised token in parentheses right after a recognised concept names the
    same concept far more often than not. Only forms with at least two capitals count, so
    "(left)" or "(x2)" are ignored.
    """
    ends = {end: concept for (_, end), concept in spans.items()}
    found: dict[str, Concept] = {}
    for match in _PARENTHESISED_ACRONYM.finditer(text):
        form = match.group(1)
        if sum(c.isupper() for c in form) < 2:
            continue
        before = match.start()
        while before > 0 and text[before - 1] in " \t":
            before -= 1
        concept = ends.get(before)
        if concept is not None:
            found.setdefault(form, concept)
    return found


def _chunks(text: str) -> list[tuple[int, str]]:
    """Cut a long text at line breaks (or spaces) into pieces of about CHUNK_CHARS."""
    if len(text) <= CHUNK_CHARS:
        return [(0, text)]
    pieces = []
    start = 0
    while start < len(text):
        end = min(start + CHUNK_CHARS, len(text))
        if end < len(text):
            cut = text.rfind("\n", start + CHUNK_CHARS // 2, end)
            if cut < 0:
                cut = text.rfind(" ", start + CHUNK_CHARS // 2, end)
            end = cut + 1 if cut >= 0 else end
        pieces.append((start, text[start:end]))
        start = end
    return pieces


def _assertions(text: str, spans: Sequence[tuple[int, int]]) -> list[str]:
    if not spans:
        return []
    return list(assertions_for(text, spans))


_extractor: ConceptExtractor | None = None
_extractor_lock = threading.Lock()


def extractor() -> ConceptExtractor:
    """The process-wide extractor, built on first use."""
    global _extractor
    with _extractor_lock:
        if _extractor is None:
            import spacy

            nlp = spacy.blank("en")
            nlp.max_length = CHUNK_CHARS * 2
            _extractor = ConceptExtractor(load_lexicon(), nlp)
        return _extractor


def extract(text: str) -> list[Mention]:
    """The concept mentions of a text, in order of position, each with its assertion."""
    return extractor().extract(text)
