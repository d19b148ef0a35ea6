"""Scores about the generation itself: whether it failed, what it cost, how long it took.

These come from the ``Summary`` record alone and apply to failed summaries too,
so failure rates, cost and latency land in the same table as quality, with the
same confidence intervals.

An empty (or whitespace-only) summary is not a failure: the model answered with
nothing, which is scored like any text (ROUGE 0, no concept captured) and
flagged by ``empty_summary``; its detail names the evaluators that were not
asked about it (the judge: rating nothing costs calls and says nothing).
"""

from __future__ import annotations

from collections.abc import Sequence

from clinsum.evaluators.metrics import Metric
from clinsum.records import Note, Score, Summary

METRICS = (
    Metric("failed", "lower", "rate", 0, 1, 170, "1 when the summary could not be produced"),
    Metric("empty_summary", "lower", "rate", 0, 1, 175,
           "1 when the summary has no text (scored as such; the judge is not asked)"),
    Metric("latency_s", "lower", "continuous", 0, None, 180, "seconds the provider call took", "s"),
    Metric("cost_usd", "lower", "continuous", 0, None, 190, "what the summary cost, where the price is known", "USD"),
    Metric("output_tokens", "neutral", "count", 0, None, 195, "tokens the provider generated"),
)


def is_empty(summary: Summary) -> bool:
    """A summary that was produced but has no text."""
    return summary.ok and not summary.text.strip()


class GenerationEvaluator:
    name = "generation"
    version = "2"

    async def evaluate(self, note: Note, summary: Summary, *,
                       skipped_if_empty: Sequence[str] = ()) -> list[Score]:
        values = {
            "failed": 0.0 if summary.ok else 1.0,
            "empty_summary": (1.0 if is_empty(summary) else 0.0) if summary.ok else None,
            "latency_s": summary.latency_s,
            "cost_usd": summary.usage.cost_usd,
            "output_tokens": summary.usage.output_tokens,
        }
        detail = {"error": summary.error} if summary.error else {}
        empty = {"not_evaluated": list(skipped_if_empty), "reason": "empty summary"} if is_empty(summary) else {}
        return [
            Score(note_id=note.id, system=summary.system, metric=metric, value=value,
                  evaluator=self.name, version=self.version,
                  detail=empty if metric == "empty_summary" else detail)
            for metric, value in values.items()
            if value is not None
        ]
