"""Large runs through the Anthropic Message Batches API: submit, poll, read results.

A batch costs half the standard price and finishes within 24 hours. The flow
(``providers.batch_job.BatchJob``, shared with Vertex AI) is resumable: ``submit``
returns the batch id, which the caller persists (``on_submitted`` in ``run`` is
called before the first poll), and ``run(..., batch_id=...)`` picks an existing
batch up again without resubmitting. What is Anthropic's here: the ``custom_id``
of each request, the SDK calls, and how a result entry reads.

Each request comes back as a ``Generation`` or as the ``ProviderError`` that
the same failure would have raised live, so the runner stores batch results
exactly like any others. The shortest way to put a batch under a normal run is
``prefill_cache``: it stores every batch answer in the dispatcher's response
cache under the key the dispatcher itself computes, so the runner, unchanged,
finds them as cache hits and makes live calls only for what the batch could not
answer::

    batch = AnthropicBatch(create("anthropic:claude-sonnet-5-5", {}))
    outcomes = await batch.run(
        [(note.id, Request(prompt=...)) for note in notes],
        on_submitted=store_batch_id,
    )
    for note_id, outcome in outcomes.items(): ...

    # or, under the runner: answers land in the response cache
    await prefill_cache(batch, store, [Request(prompt=template.render(n), note=n) for n in notes],
                        batch_id=saved_batch_id, on_submitted=save_batch_id)
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from clinsum.errors import FatalError, ProviderError, TransientError
from clinsum.providers.anthropic import AnthropicProvider, convert_error
from clinsum.providers.base import Request
from clinsum.providers.batch_job import BatchJob, Outcome, Requests, prefill_cache
from clinsum.providers.common import classify_http

__all__ = ["BATCH_DISCOUNT", "MAX_REQUESTS", "AnthropicBatch", "BatchStatus", "Outcome", "custom_id_for",
           "prefill_cache"]

BATCH_DISCOUNT = 0.5
"""Message Batches bill input and output at 50% of the standard price."""
MAX_REQUESTS = 100_000
"""Most requests one Message Batch accepts."""

_SAFE_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

# The API's error types in a batch result, mapped to the HTTP status the same
# error carries on a live call, so classification is the same either way.
_ERROR_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}


def custom_id_for(key: str) -> str:
    """A ``custom_id`` the API accepts (``[A-Za-z0-9_-]{1,64}``) for any key, stable across runs."""
    if _SAFE_ID.match(key):
        return key
    return "h" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:40]


@dataclass(frozen=True)
class BatchStatus:
    """Where a batch stands, as the API reports it."""

    batch_id: str
    processing_status: str
    """``in_progress``, ``canceling`` or ``ended``."""
    counts: dict[str, int] = field(default_factory=dict)
    """Requests per state: processing, succeeded, errored, canceled, expired."""

    @property
    def ended(self) -> bool:
        return self.processing_status == "ended"


class AnthropicBatch(BatchJob[AnthropicProvider, BatchStatus]):
    """Send many requests of one Anthropic provider as a Message Batch."""

    discount = BATCH_DISCOUNT
    max_requests = MAX_REQUESTS
    api_name = "Message Batches"

    def request_id(self, key: str) -> str:
        return custom_id_for(key)

    async def _create(self, requests: Requests) -> str:
        body = [
            {"custom_id": custom_id, "params": self.provider.request_params(request)}
            for custom_id, (_, request) in requests.items()
        ]
        try:
            batch = await self.provider.client.messages.batches.create(requests=body)
        except Exception as exc:
            raise convert_error(exc, model=self.provider.model) from exc
        batch_id: str = batch.id
        return batch_id

    async def status(self, batch_id: str) -> BatchStatus:
        try:
            batch = await self.provider.client.messages.batches.retrieve(batch_id)
        except Exception as exc:
            raise convert_error(exc, model=self.provider.model) from exc
        counts = getattr(batch, "request_counts", None)
        return BatchStatus(
            batch_id=batch.id,
            processing_status=batch.processing_status,
            counts=counts.model_dump() if counts is not None else {},
        )

    def _still(self, status: BatchStatus) -> str:
        return f"batch {status.batch_id} still {status.processing_status}"

    async def _answers(self, job: BatchStatus) -> AsyncIterator[tuple[str | None, Any, str]]:
        try:
            decoder = await self.provider.client.messages.batches.results(job.batch_id)
            async for entry in decoder:
                yield entry.custom_id, entry.result, f"batch {job.batch_id}"
        except Exception as exc:
            raise convert_error(exc, model=self.provider.model) from exc

    def _outcome(self, answer: Any, request: Request, where: str) -> Outcome:
        kind = getattr(answer, "type", None)
        if kind == "succeeded":
            try:
                generation = self.provider.to_generation(answer.message, request, latency_s=None)
            except ProviderError as exc:
                return exc
            return self.at_batch_price(generation)
        if kind == "errored":
            error = getattr(getattr(answer, "error", None), "error", None)
            error_type = str(getattr(error, "type", "api_error"))
            message = str(getattr(error, "message", "") or error_type)
            return classify_http(
                _ERROR_STATUS.get(error_type, 500),
                message,
                None,
                credentials="ANTHROPIC_API_KEY",
                model=self.provider.model,
            )
        if kind == "canceled":
            return TransientError("the batch was canceled before this request was processed")
        if kind == "expired":
            return TransientError("the batch expired (24 h) before this request was processed")
        return FatalError(f"unknown batch result type {kind!r}")
