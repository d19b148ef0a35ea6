"""The ConText rule table (``context_rules.tsv``) and a fast matcher for it.

Literal phrases ("no evidence of", "s/p", "history of") are looked up by their
word tokens in a dictionary, longest phrase first at each token; only the few
rules that need a regular expression ("is/was negative" not followed by "for",
relatives after a possessive) run as expressions. One alternation of all 250
phrases would cost Python's regex engine every alternative at every character;
the dictionary costs a few lookups per word.

Matches never overlap: at each position the longest phrase wins, so a
pseudo-trigger ("no increase", "gram negative") hides the trigger it contains.
"""

from __future__ import annotations

import hashlib
import re
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources

TOKEN = re.compile(r"\w+(?:['’/-]\w+)*")
"""A word as the matcher sees it: "s/p", "doesn't", "gram-negative" are one token each."""


@dataclass(frozen=True)
class Rule:
    phrase: str
    """The phrase as written in the table (a regular expression when it starts with ``re:``)."""
    category: str
    """NEGATED, POSSIBLE, HISTORICAL, FAMILY, HYPOTHETICAL, PSEUDO, or for terminations the categories
    terminated (comma-separated, or ALL)."""
    direction: str
    """forward, backward, bidirectional, pseudo or terminate."""
    max_scope: int | None
    """Scope limit in words; None means to the end of the clause."""
    source: str
    literal: tuple[str, ...] | None
    """Lower-cased tokens of a literal phrase; None for an expression."""
    pattern: str
    """The regular expression of an expression rule (boundaries added)."""


def rules_text() -> str:
    return resources.files("clinsum.concepts").joinpath("context_rules.tsv").read_text("utf-8")


def rules_hash() -> str:
    return hashlib.sha256(rules_text().encode()).hexdigest()[:8]


def phrase_tokens(phrase: str) -> tuple[str, ...]:
    return tuple(token.lower().replace("’", "'") for token in TOKEN.findall(phrase))


def load_rules(text: str | None = None) -> list[Rule]:
    """Parse the rule table (the packaged ``context_rules.tsv`` by default)."""
    rules = []
    for line in (rules_text() if text is None else text).splitlines():
        if not line.strip() or line.startswith("#") or line.startswith("phrase\t"):
            continue
        phrase, category, direction, max_scope, source = (line.split("\t") + [""] * 5)[:5]
        literal: tuple[str, ...] | None = None
        if phrase.startswith("re:"):
            body = phrase[3:]
            if "(?<" in body:
                pattern = body  # the expression draws its own boundaries
            else:
                # grouped, so the boundaries hold for every alternative of the body ("is on|takes")
                left = r"(?<![\w/])" if body[0].isalnum() or body.startswith("(?:") else ""
                pattern = rf"{left}(?:{body})(?![\w/])"
        else:
            tokens = phrase_tokens(phrase)
            if " ".join(tokens) == " ".join(phrase.lower().replace("’", "'").split()):
                literal = tokens
            body = r"\s+".join(re.escape(word).replace("'", "['’]") for word in phrase.split())
            left = r"(?<![\w/])" if phrase[0].isalnum() else ""
            right = r"(?![\w/])" if phrase[-1].isalnum() else ""
            pattern = f"{left}{body}{right}"
        rules.append(Rule(phrase, category, direction, int(max_scope) if max_scope else None, source,
                          literal, pattern))
    return rules


Match = tuple[int, int, Rule]


class PhraseMatcher:
    """Finds the rules of one kind (triggers and pseudo-triggers, or terminations) in a text."""

    def __init__(self, rules: Sequence[Rule]) -> None:
        self.literals: dict[tuple[str, ...], Rule] = {}
        self.expressions: list[tuple[re.Pattern[str], Rule]] = []
        for rule in rules:
            if rule.literal:
                self.literals.setdefault(rule.literal, rule)
            else:
                self.expressions.append((re.compile(rule.pattern, re.IGNORECASE), rule))
        self.first_tokens = {key[0] for key in self.literals}
        self.longest = max((len(key) for key in self.literals), default=0)

    def expression_matches(self, text: str) -> list[Match]:
        """Matches of the expression rules over the whole text, by start."""
        found: list[Match] = [(m.start(), m.end(), rule) for pattern, rule in self.expressions
                              for m in pattern.finditer(text) if m.end() > m.start()]
        found.sort(key=lambda match: match[0])
        return found

    def clause_matches(self, tokens: Sequence[tuple[int, int]], norms: Sequence[str], lo: int, hi: int,
                       expressions: Sequence[Match]) -> list[Match]:
        """Non-overlapping matches among tokens ``lo:hi`` of one clause (longest first at each start)."""
        candidates = list(expressions)
        literals, first, longest = self.literals, self.first_tokens, self.longest
        for i in range(lo, hi):
            if norms[i] not in first:
                continue
            for n in range(min(longest, hi - i), 0, -1):
                rule = literals.get(tuple(norms[i:i + n]))
                if rule is not None:
                    candidates.append((tokens[i][0], tokens[i + n - 1][1], rule))
                    break
        candidates.sort(key=lambda match: (match[0], -match[1]))
        chosen: list[Match] = []
        reached = -1
        for match in candidates:
            if match[0] >= reached:
                chosen.append(match)
                reached = match[1]
        return chosen


def in_clause(matches: Sequence[Match], starts: Sequence[int], start: int, end: int) -> list[Match]:
    """The matches (sorted by start, with their starts in ``starts``) lying inside ``start:end``."""
    i = bisect_right(starts, start - 1)
    out = []
    while i < len(matches) and matches[i][0] < end:
        if matches[i][1] <= end:
            out.append(matches[i])
        i += 1
    return out
