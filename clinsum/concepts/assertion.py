"""Assertion status of concept mentions: an implementation of the ConText algorithm.

ConText (Harkema, Dowling, Thornblade, Chapman 2009) decides whether a condition
is negated, uncertain, historical, hypothetical or experienced by someone other
than the patient from trigger phrases around it:

- the text is cut into clauses (sentences, lines, bullets, semicolons);
- trigger phrases (``context_rules.tsv``) open a *scope* forward, backward or in
  both directions, to the end of the clause or a maximum number of words;
- a scope ends early at a termination term ("but", "however", "which",
  "presents"...) or at a trigger of another category that is separated from it
  by content ("denies chest pain, history of asthma"); adjacent triggers compose
  ("no family history of" stays negated);
- pseudo-triggers ("no increase", "not only", "gram negative") contain a trigger
  word but open no scope;
- a section header sets a default ("FAMILY HISTORY" -> family, "PAST MEDICAL
  HISTORY" -> historical; see ``clinsum.concepts.sections``).

A mention in the scope of several categories gets one status, by the priority
``negated > family > hypothetical > possible > historical > present``: a
condition that is denied is absent whoever it concerns, a relative's condition
is never the patient's, and so on.

The matcher is one compiled regular expression over the raw text: no spaCy, no
tokenizer, which keeps assertion a small fraction of extraction time.
"""

from __future__ import annotations

import re
import sys
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import pairwise

from clinsum.concepts.context_rules import (
    TOKEN,
    Match,
    PhraseMatcher,
    in_clause,
    load_rules,
    rules_hash,
)
from clinsum.concepts.sections import SectionIndex, find_turns, is_affirmative_answer, is_negative_answer

__all__ = ["PRIORITY", "RULES_VERSION", "Trigger", "assertion_of", "assertions_for", "in_open_question",
           "load_rules", "triggers_in"]

CATEGORIES = ("NEGATED", "FAMILY", "HYPOTHETICAL", "POSSIBLE", "HISTORICAL")
_STATUS = {"NEGATED": "negated", "FAMILY": "family", "HYPOTHETICAL": "hypothetical",
           "POSSIBLE": "possible", "HISTORICAL": "historical"}
PRIORITY = ("negated", "family", "hypothetical", "possible", "historical", "present")
"""Resolution order when a mention is in the scope of several categories."""

_ALGORITHM_VERSION = "9"
_LONG_CLAUSE_WORDS = 40
_UNPUNCTUATED_SCOPE = {"NEGATED": 8, "HYPOTHETICAL": 15, "POSSIBLE": 12}
"""In a clause of more than ``_LONG_CLAUSE_WORDS`` words (an unpunctuated transcript), a scope without
its own limit reaches this many words: a denial is short ("no rales no wheezing"), a condition longer
("if the headaches become more severe or you develop a fever")."""
_MAX_ADJACENT_WORDS = 2
"""Triggers of different categories compose when at most this many words and no punctuation separate them."""


@dataclass(frozen=True)
class Trigger:
    start: int
    end: int
    category: str
    direction: str
    scope_start: int
    scope_end: int


RULES_VERSION = f"{_ALGORITHM_VERSION}-{rules_hash()}"
"""Changes whenever the rule table or the algorithm changes; part of the coverage evaluator's version."""

_RULES = load_rules()
# Terminations are matched separately so that one ("he has") never hides a trigger ("he denies").
_TRIGGERS = PhraseMatcher([r for r in _RULES if r.direction != "terminate"])
_TERMINATIONS = PhraseMatcher([r for r in _RULES if r.direction == "terminate"])

# Clause boundaries: line breaks, bullets, semicolons, and sentence punctuation followed by space
# (a "?" only when it ends a word, so "? pneumonia" stays a trigger inside its clause).
_ABBREVIATIONS = r"(?<!\bdr)(?<!\bmr)(?<!\bmrs)(?<!\bms)(?<!\bvs)(?<!\be\.g)(?<!\bi\.e)(?<!\bst)(?<!\bapprox)"
# Tokenised transcripts ("how are you ?", "okay .") put a space before the punctuation.
_CLAUSE_BREAK = re.compile(
    rf"\n\s*|[•;]\s*|{_ABBREVIATIONS}(?<=[a-z0-9)\]%])[.!]+(?:\s+|$)|(?<=\w)\s?\?+(?:\s+|$)"
    r"|(?<=\w)\s[.!]+(?:\s+|$)",
    re.IGNORECASE,
)
_WORD = re.compile(r"[\w'’/]+")
_GAP_PUNCTUATION = re.compile(r"[,.:()]")
_NEGATING_PREFIX = re.compile(r"non-?(?:smoker|smoking|drinker|drinking|tender|drug\s+user)s?$", re.IGNORECASE)
"""A mention that is itself a negated word; kept narrow, since "non-small cell" or "nonalcoholic
fatty liver disease" name conditions that are present."""


@dataclass(frozen=True)
class _Analysis:
    clause_starts: list[int]
    clause_ends: list[int]
    triggers: list[list[Trigger]]
    sections: SectionIndex
    denied: list[tuple[int, int]]
    """Question clauses of a dialogue that the next speaker answered "no" to."""
    family_replies: list[tuple[int, int]]
    """Dialogue turns answering a question about relatives ("Anything that runs in your family?")."""
    past_replies: list[tuple[int, int]]
    """Dialogue replies to a question about the past ("Any surgeries in the past?")."""
    open_questions: list[tuple[int, int]]
    """Questions of a dialogue that no reply confirmed or denied: what they name is asked, not stated."""


def assertions_for(text: str, spans: Sequence[tuple[int, int]]) -> list[str]:
    """The assertion status of each ``(start, end)`` span of ``text``, in order."""
    if not spans:
        return []
    analysis = _analyse(text)
    return [_status(analysis, start, end, text) for start, end in spans]


def assertion_of(text: str, start: int, end: int) -> str:
    """The assertion status of the span ``text[start:end]``."""
    if not 0 <= start < end <= len(text):
        raise ValueError(f"span ({start}, {end}) outside a text of length {len(text)}")
    return assertions_for(text, [(start, end)])[0]


def in_open_question(text: str, start: int) -> bool:
    """Whether ``start`` lies in a dialogue question that no reply confirmed or denied ("Any chest pain?"
    followed by talk of something else): the finding there was asked about, not stated."""
    return any(s <= start < e for s, e in _analyse(text).open_questions)


def triggers_in(text: str) -> list[Trigger]:
    """Every trigger found in ``text`` with its scope (for explanations and debugging)."""
    return [t for clause in _analyse(text).triggers for t in clause]


@lru_cache(maxsize=64)
def _analyse(text: str) -> _Analysis:
    starts, ends, questions = [], [], []
    position = 0
    for match in _CLAUSE_BREAK.finditer(text):
        if match.start() > position:
            starts.append(position)
            ends.append(match.start())
            questions.append("?" in match.group())
        position = match.end()
    if position < len(text):
        starts.append(position)
        ends.append(len(text))
        questions.append(False)
    sections = SectionIndex(text)
    tokens = [(m.start(), m.end()) for m in TOKEN.finditer(text)]
    norms = [text[s:e].lower().replace("’", "'") for s, e in tokens]
    token_starts = [t[0] for t in tokens]
    trigger_expressions = _TRIGGERS.expression_matches(text)
    termination_expressions = _TERMINATIONS.expression_matches(text)
    trigger_starts = [m[0] for m in trigger_expressions]
    termination_starts = [m[0] for m in termination_expressions]
    triggers: list[list[Trigger]] = []
    for start, end in zip(starts, ends, strict=True):
        lo, hi = bisect_right(token_starts, start - 1), bisect_right(token_starts, end - 1)
        while hi > lo and tokens[hi - 1][1] > end:
            hi -= 1
        found = _TRIGGERS.clause_matches(tokens, norms, lo, hi,
                                         in_clause(trigger_expressions, trigger_starts, start, end))
        if not any(rule.direction != "pseudo" for _s, _e, rule in found):
            triggers.append([])
            continue
        terminations = _TERMINATIONS.clause_matches(
            tokens, norms, lo, hi, in_clause(termination_expressions, termination_starts, start, end))
        triggers.append(_clause_triggers(text, start, end, found + terminations, tokens[lo:hi]))
    denied, family, past, open_questions = _dialogue_context(text, starts, ends, questions, triggers)
    return _Analysis(starts, ends, triggers, sections, denied, family, past, open_questions)


# A question asked without a question mark (transcripts written without punctuation): "are you having any
# belly pain", "do you remember any trauma", "no shortness of breath just wan na make sure".
_SPOKEN_QUESTION = re.compile(
    r"\b(?:(?<!\bwe\s)(?<!\bi\s)(?:do|did|does|have|has|are|were|is|was)\s+(?:you|there|they)|any(?:thing)?|how\s+about|what\s+about"
    r"|ever|make\s+sure)\b",
    re.IGNORECASE,
)
_PRESUPPOSING = re.compile(r"\b(?:how(?!\s+about)|when|what(?!\s+about)|where|why|which)\b", re.IGNORECASE)
"""A question that takes its finding as given ("How often have you been using your inhaler?"): not open."""
_QUESTION_WORDS = 25
_SHORT_TURN_WORDS = 6
"""An unpunctuated turn this short that another speaker answers is a question even without a question word."""
"""How far back from the end of an unpunctuated turn its question may start, in words."""
# A reply to a question about the past keeps that time until it turns to the present.
_REPLY_TURNS = re.compile(r"\b(?:but|however|now|currently|today|recently|lately|these\s+days)\b", re.IGNORECASE)


def _dialogue_context(text: str, starts: list[int], ends: list[int], questions: list[bool],
                      triggers: list[list[Trigger]]) -> tuple[list[tuple[int, int]], list[tuple[int, int]],
                                                              list[tuple[int, int]], list[tuple[int, int]]]:
    """What the question closing a dialogue turn implies for the question and for the reply.

    - A reply by another speaker that opens with a denial ("no", "nope", "not really", "uh , i have
      n't") negates the question's findings: "Doctor: Any shortness of breath or wheezing? Patient:
      No." — no trigger inside the question could tell. In a transcript without question marks the
      question is the end of the turn from its first interrogative word ("are you having any belly pain").
    - A question about relatives ("Anything that runs in your family?") makes the reply's
      conditions the family's, like a FAMILY HISTORY header: "My dad died. He had colon cancer."
    - A question about the past ("any surgeries in the past?", "do you have a history of heavy
      periods?") makes the reply historical, like a PAST HISTORY header, until the reply turns to
      the present ("but now...").

    Only the run of questions at the end of the turn counts: an earlier question was followed by more
    talk from the same speaker. Also returned: the questions that no reply confirmed or denied.
    """
    denied: list[tuple[int, int]] = []
    answered: set[tuple[int, int]] = set()
    spoken_open: list[tuple[int, int]] = []
    family: list[tuple[int, int]] = []
    past: list[tuple[int, int]] = []
    turns = find_turns(text)
    if not turns:
        return denied, family, past, []
    unpunctuated = "?" not in text  # a transcript written without question marks: questions are found by words
    for turn, reply in pairwise(turns):
        if reply.speaker == turn.speaker:
            continue
        question: list[tuple[int, int]] = []
        categories: set[str] = set()
        i = bisect_right(starts, turn.end - 1) - 1
        while i >= 0 and starts[i] >= turn.tag_start and not text[starts[i]:ends[i]].strip():
            i -= 1
        last = i
        while i >= 0 and starts[i] >= turn.tag_start and questions[i]:
            question.append((starts[i], ends[i]))
            categories.update(t.category for t in triggers[i])
            i -= 1
        spoken = None
        if not question and last >= 0 and starts[last] >= turn.tag_start:
            spoken = _spoken_question(text, max(starts[last], turn.start), min(ends[last], turn.end))
            if spoken is not None and not unpunctuated and not is_negative_answer(text, reply.start, reply.end):
                spoken = None  # where questions have marks, one without asks only when denied ("or vomiting-")
            if spoken is not None:
                question.append(spoken[0])
                categories.update(t.category for t in triggers[last] if t.start >= spoken[0][0])
        if not question:
            continue
        if is_negative_answer(text, reply.start, reply.end):
            denied.extend(question)
            answered.update(question)
        elif spoken is not None:
            # an unpunctuated question is often several ("any nausea vomiting or diarrhea are you peeing a
            # lot"): "yes" confirms the last one, the earlier ones stay open
            (first, end), last_cue = spoken
            if last_cue > first:
                spoken_open.append((first, last_cue))
            if not is_affirmative_answer(text, reply.start, reply.end):
                spoken_open.append((last_cue, end))
        elif is_affirmative_answer(text, reply.start, reply.end):
            answered.update(question)
        if "FAMILY" in categories and not is_negative_answer(text, reply.start, reply.end):
            family.append((reply.start, reply.end))
        elif "HISTORICAL" in categories and not is_negative_answer(text, reply.start, reply.end):
            stop = _REPLY_TURNS.search(text, reply.start, reply.end)
            past.append((reply.start, stop.start() if stop else reply.end))
    asked = [(s, e) for s, e, q in zip(starts, ends, questions, strict=True)
             if q and (s, e) not in answered and not _presupposes(text, s, e)]
    return sorted(denied), family, past, sorted(asked + spoken_open)


def _presupposes(text: str, start: int, end: int) -> bool:
    """Whether a question asks how/when/what/where/why/which rather than whether."""
    return _PRESUPPOSING.search(text, start, end) is not None


def _spoken_question(text: str, start: int, end: int) -> tuple[tuple[int, int], int] | None:
    """The question at the end of an unpunctuated clause, from its first interrogative word among the last
    ``_QUESTION_WORDS`` words to the end, and where its last interrogative word starts; a turn of a few
    words is a question as a whole; None when the words ask nothing."""
    words = list(_WORD.finditer(text, start, end))[-_QUESTION_WORDS:]
    if not words:
        return None
    cues = list(_SPOKEN_QUESTION.finditer(text, words[0].start(), end))
    if cues:
        return (cues[0].start(), end), cues[-1].start()
    if len(words) <= _SHORT_TURN_WORDS:  # "okay coughing headache" asks by its tone
        return (words[0].start(), end), words[0].start()
    return None


def _clause_triggers(text: str, start: int, end: int, found: list[Match],
                     words: list[tuple[int, int]]) -> list[Trigger]:
    word_starts = [w[0] for w in words]
    terminations = [(s, e, set(rule.category.split(","))) for s, e, rule in found
                    if rule.direction == "terminate"]
    openers = [(s, e, rule) for s, e, rule in found if rule.direction not in ("terminate", "pseudo")]
    triggers = []
    # A very long clause is a transcript written without punctuation ("there is no jugular venous
    # distention on your heart exam i appreciate a murmur"): a scope there stops after a few words.
    unpunctuated = len(words) > _LONG_CLAUSE_WORDS
    for s, e, rule in openers:
        scope_start, scope_end = s, e
        max_scope = rule.max_scope
        if max_scope is None and unpunctuated:
            max_scope = _UNPUNCTUATED_SCOPE.get(rule.category, _UNPUNCTUATED_SCOPE["NEGATED"])
        if rule.direction in ("forward", "bidirectional"):
            scope_end = end
            if max_scope is not None:
                i = bisect_right(word_starts, e - 1) + max_scope - 1
                if i < len(words):
                    scope_end = min(scope_end, words[i][1])
            for ts, _te, categories in terminations:
                if ts >= e and ("ALL" in categories or rule.category in categories):
                    scope_end = min(scope_end, ts)
                    break
            for os_, _oe, other in openers:
                if os_ >= e and _cuts(rule.category, other.category) and _separated(text, e, os_):
                    scope_end = min(scope_end, os_)
                    break
        if rule.direction in ("backward", "bidirectional"):
            scope_start = start
            if max_scope is not None:
                i = bisect_right(word_starts, s - 1) - max_scope
                if i >= 0:
                    scope_start = max(scope_start, words[i][0])
            for _ts, te, categories in reversed(terminations):
                if te <= s and ("ALL" in categories or rule.category in categories):
                    scope_start = max(scope_start, te)
                    break
            for _os, oe, other in reversed(openers):
                if oe <= s and _cuts(rule.category, other.category) and _separated(text, oe, s):
                    scope_start = max(scope_start, oe)
                    break
        triggers.append(Trigger(s, e, rule.category, rule.direction, scope_start, scope_end))
    return triggers


def _cuts(category: str, other: str) -> bool:
    """Whether a trigger of ``other`` category ends a scope of ``category`` (see ``_separated``).

    Negation, uncertainty, time and conditionals end where another kind of statement begins
    ("denies chest pain, history of diabetes"). The experiencer does not change with them: in "his
    father died years ago of colon cancer" the cancer is still the father's.
    """
    return category != other and category != "FAMILY"


def _separated(text: str, start: int, end: int) -> bool:
    """Whether real content lies between two triggers, so that the later one starts a new scope."""
    gap = text[start:end]
    return bool(_GAP_PUNCTUATION.search(gap)) or len(_WORD.findall(gap)) > _MAX_ADJACENT_WORDS


def _status(analysis: _Analysis, start: int, end: int, text: str) -> str:
    found: set[str] = set()
    if _NEGATING_PREFIX.match(text[start:end]) or text[max(0, start - 4):start].lower() == "non-":
        found.add("negated")  # "nonsmoker", "non-smoker" (the lexicon may match the word whole)
    i = bisect_right(analysis.clause_starts, start) - 1
    if i >= 0 and start < analysis.clause_ends[i]:
        for trigger in analysis.triggers[i]:
            if trigger.start < end and start < trigger.end:
                continue  # the trigger is part of the mention itself
            if start < trigger.scope_end and trigger.scope_start < end and (
                (trigger.direction != "backward" and start >= trigger.end)
                or (trigger.direction != "forward" and end <= trigger.start)
            ):
                found.add(_STATUS[trigger.category])
    j = bisect_right(analysis.denied, (start, sys.maxsize)) - 1
    if j >= 0 and analysis.denied[j][0] <= start < analysis.denied[j][1]:
        found.add("negated")
    if any(s <= start < e for s, e in analysis.family_replies):
        found.add("family")
    if any(s <= start < e for s, e in analysis.past_replies):
        found.add("historical")
    default = analysis.sections.default_at(start)
    if default:
        found.add(default)
    return next((status for status in PRIORITY if status in found), "present")
