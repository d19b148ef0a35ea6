"""Evaluators turn a note and its summary into ``Score``s."""

from clinsum.evaluators.base import Evaluator, score

__all__ = ["Evaluator", "score"]
