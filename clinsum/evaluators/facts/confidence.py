"""How sure a flag is: from a statement's flags to the chance it is unsupported, and a summary score.

The two checks (facts, statement words) flag many faithful statements: a clinician's note scored
against its own dialogue has about a quarter of its statements flagged on ACI-Bench valid, mostly
by paraphrase and what the clinician adds from the chart. Flags are not equally telling: a number
the source gives another value, or a swapped side, is nearly always a real change; a statement
with a third of its words in one window of the source, or a rare word found nowhere, much less;
and a statement whose numbers and sides the source does support is less likely invented.

Each statement of a summary gets the features below, and a logistic model turns them into ``p``,
the chance the statement is unsupported; a statement with no flag has ``p`` = 0. The summary
score, ``unsupported_likelihood``, is the chance that at least one statement is unsupported,
1 − Π(1 − p): what a reviewer wants to know first (is anything in this summary made up?), and
one near-certain flag weighs more than several weak ones.

``COEFFICIENTS`` were fitted by ``benchmarks/facts_fit.py --fit-confidence`` on ACI-Bench train
only (scikit-learn logistic regression, C = 1): the statements flagged in the 67 faithful
clinician notes (label 0) against the planted statements flagged in the same notes with one
fabrication planted at a time (label 1; nine kinds of plant). Valid is held out.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

FEATURES = ("statement", "statement_missing", "content", "different", "different_side", "absent_number",
            "absent_side", "absent_concept", "supported_facts")
"""
``statement``          1 when the statement check flagged the statement's words
``statement_missing``  1 − its support (the weighted share of its words found in one source window), when flagged
``content``            rare words found nowhere in the source (at most 2)
``different``          a number, dose, frequency or status the source gives another value (at most 1)
``different_side``     a side the source puts on the other side (at most 1)
``absent_number``      a number, age, date, duration, measurement or dose the source never states (at most 1)
``absent_side``        a side whose body part the source never sides (at most 1)
``absent_concept``     a concept the source never mentions (at most 2)
``supported_facts``    numbers, doses and sides of the statement the source supports (at most 3), counted only
                       when the statement's words are flagged: the relation between the two checks
"""
COEFFICIENTS: Mapping[str, float] = {
    "intercept": -1.561, "statement": -0.751, "statement_missing": 2.475, "content": 0.165, "different": 2.561,
    "different_side": 2.866, "absent_number": 1.052, "absent_side": 1.243, "absent_concept": 1.149,
    "supported_facts": -0.477,
}
NUMERIC_KINDS = frozenset({"age", "number", "measurement", "duration", "date", "dose"})


def features(span: tuple[int, int], statement_flags: Sequence[Mapping[str, Any]],
             fact_flags: Sequence[Mapping[str, Any]], supported: Sequence[tuple[int, int]]) -> dict[str, float]:
    """The features of the statement at ``span`` from the flags (and supported facts) that start inside it."""
    start, end = span

    def inside(item: Mapping[str, Any]) -> bool:
        return bool(start <= item["start"] < end)

    words = [f for f in statement_flags if inside(f)]
    flagged = next((f for f in words if f["kind"] == "statement"), None)
    facts = [f for f in fact_flags if inside(f)]
    numeric = [f for f in facts if f["kind"] in NUMERIC_KINDS]
    sides = [f for f in facts if f["kind"] == "laterality"]
    return {
        "statement": 1.0 if flagged is not None else 0.0,
        "statement_missing": 1.0 - float(flagged["support"]) if flagged is not None else 0.0,
        "content": float(min(2, sum(1 for f in words if f["kind"] == "content"))),
        "different": float(min(1, sum(1 for f in facts if f["reason"].startswith("different")
                                      and f["reason"] != "different side"))),
        "different_side": float(min(1, sum(1 for f in sides if f["reason"] == "different side"))),
        "absent_number": float(min(1, sum(1 for f in numeric if f["reason"] == "absent"))),
        "absent_side": float(min(1, sum(1 for f in sides if f["reason"] == "absent"))),
        "absent_concept": float(min(2, sum(1 for f in facts if f["kind"] == "concept" and f["reason"] == "absent"))),
        "supported_facts": float(min(3, sum(1 for s, _e in supported if start <= s < end))) if words else 0.0,
    }


def flagged(values: Mapping[str, float]) -> bool:
    """Whether anything in the statement was flagged (supported facts alone are not a flag)."""
    return any(values[name] for name in FEATURES if name not in {"supported_facts", "statement_missing"})


def likelihood(values: Mapping[str, float], coefficients: Mapping[str, float] = COEFFICIENTS) -> float:
    """The chance the statement is unsupported; 0 for a statement with no flag."""
    if not flagged(values):
        return 0.0
    z = coefficients["intercept"] + sum(coefficients[name] * values[name] for name in FEATURES)
    return 1.0 / (1.0 + math.exp(-z))


def summary_likelihood(chances: Sequence[float]) -> float:
    """The chance that at least one statement is unsupported, 1 − Π(1 − p) (0 for none)."""
    return 1.0 - math.prod(1.0 - p for p in chances)
