"""Scores about the generation itself: whether it failed, what it cost, how long it took.

These come from the ``Summary`` record alone and apply to failed summaries too,
so failure rates, cost and latency land in the same table as quality, with the
same confidence intervals.
"""

from __future__ import annotations

from clinsum.evaluators.metrics import Metric
from clinsum.records import Note, Score, Summary

METRICS = (
    Metric("failed", "lower", "rate", 0, 1, 170, "1 when the summary could not be produced"),
    Metric("latency_s", "lower", "continuous", 0, None, 180, "seconds the provider call took", "s"),
    Metric("cost_usd", "lower", "continuous", 0, None, 190, "what the summary cost, where the price is known", "USD"),
    Metric("output_tokens", "neutral", "count", 0, None, 195, "tokens the provider generated"),
)


class GenerationEvaluator:
    name = "generation"
    version = "1"

    async def evaluate(self, note: Note, summary: Summary) -> list[Score]:
        values = {
            "failed": 0.0 if summary.ok else 1.0,
            "latency_s": summary.latency_s,
            "cost_usd": summary.usage.cost_usd,
            "output_tokens": summary.usage.output_tokens,
        }
        detail = {"error": summary.error} if summary.error else {}
        return [
            Score(note_id=note.id, system=summary.system, metric=metric, value=value,
                  evaluator=self.name, version=self.version, detail=detail)
            for metric, value in values.items()
            if value is not None
        ]
