"""LLM-as-judge: an anchored rubric (PDSQI-9 derived), a validated verdict, pairwise comparison.

``create(options, dispatcher)`` builds the ``judge`` evaluator for a run; see
``judge.py`` for the scores it writes and docs/judge.md for how to validate a
judge against physicians before trusting it.
"""

from clinsum.evaluators.judge.judge import JudgeEvaluator, JudgeOptions, create
from clinsum.evaluators.judge.rubric import Attribute, Rubric
from clinsum.evaluators.judge.verdict import (
    AttributeRating,
    ClinicalError,
    Verdict,
    VerdictError,
    check_quotes,
    parse_verdict,
    quote_found,
    verdict_json_schema,
)

__all__ = [
    "Attribute",
    "AttributeRating",
    "ClinicalError",
    "JudgeEvaluator",
    "JudgeOptions",
    "Rubric",
    "Verdict",
    "VerdictError",
    "check_quotes",
    "create",
    "parse_verdict",
    "quote_found",
    "verdict_json_schema",
]
