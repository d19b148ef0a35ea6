"""Large runs through the Anthropic Message Batches API: submit, poll, read results.

A batch costs half the standard price and finishes within 24 hours. The flow
is resumable: ``submit`` returns the batch id, which the caller persists
(``on_submitted`` in ``run`` is called before the first poll), and ``run(...,
batch_id=...)`` picks an existing batch up again without resubmitting.

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

import asyncio
import hashlib
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from clinsum.errors import ConfigError, FatalError, ProviderError, TransientError
from clinsum.providers.anthropic import AnthropicProvider, convert_error
from clinsum.providers.base import Generation, Request
from clinsum.providers.common import classify_http, poll_until_ended

if TYPE_CHECKING:
    from clinsum.providers.base import Batch, Provider
    from clinsum.store import Store

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

Outcome = Generation | ProviderError


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


class AnthropicBatch:
    """Send many requests of one Anthropic provider as a Message Batch."""

    def __init__(
        self,
        provider: AnthropicProvider,
        *,
        poll_interval_s: float = 60.0,
        max_wait_s: float | None = None,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        self.provider = provider
        self.poll_interval_s = poll_interval_s
        self.max_wait_s = max_wait_s
        self._sleep = sleep

    async def submit(self, items: Iterable[tuple[str, Request]]) -> str:
        """Create the batch; returns its id (persist it to resume later)."""
        requests = _requests_by_id(items)
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

    async def wait(self, batch_id: str, on_poll: Callable[[BatchStatus], None] | None = None) -> BatchStatus:
        """Poll until the batch has ended; TransientError if ``max_wait_s`` passes first."""
        return await poll_until_ended(
            lambda: self.status(batch_id), on_poll=on_poll, sleep=self._sleep,
            describe=lambda s: f"batch {batch_id} still {s.processing_status}",
            poll_interval_s=self.poll_interval_s, max_wait_s=self.max_wait_s)

    async def results(self, batch_id: str, items: Iterable[tuple[str, Request]]) -> dict[str, Outcome]:
        """Every request's outcome, keyed by the caller's key; an ended batch only."""
        requests = _requests_by_id(items)
        outcomes: dict[str, Outcome] = {}
        try:
            decoder = await self.provider.client.messages.batches.results(batch_id)
            async for entry in decoder:
                pair = requests.get(entry.custom_id)
                if pair is None:
                    continue  # a result for a request this caller did not send: not ours to store
                key, request = pair
                outcomes[key] = self._outcome(entry.result, request)
        except Exception as exc:
            raise convert_error(exc, model=self.provider.model) from exc
        for key, _ in requests.values():
            outcomes.setdefault(key, TransientError(f"batch {batch_id} returned no result for '{key}'"))
        return outcomes

    async def run(
        self,
        items: Iterable[tuple[str, Request]],
        *,
        batch_id: str | None = None,
        on_submitted: Callable[[str], None] | None = None,
        on_poll: Callable[[BatchStatus], None] | None = None,
    ) -> dict[str, Outcome]:
        """Submit (unless ``batch_id`` resumes an existing batch), wait, and read every outcome."""
        items = list(items)
        if batch_id is None:
            batch_id = await self.submit(items)
            if on_submitted is not None:
                on_submitted(batch_id)
        await self.wait(batch_id, on_poll)
        return await self.results(batch_id, items)

    def _outcome(self, result: Any, request: Request) -> Outcome:
        kind = getattr(result, "type", None)
        if kind == "succeeded":
            try:
                generation = self.provider.to_generation(result.message, request, latency_s=None)
            except ProviderError as exc:
                return exc
            if generation.cost_usd is not None:
                generation = generation.model_copy(update={"cost_usd": generation.cost_usd * BATCH_DISCOUNT})
            return generation
        if kind == "errored":
            error = getattr(getattr(result, "error", None), "error", None)
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


async def prefill_cache(
    batch: Batch,
    store: Store,
    requests: Iterable[Request],
    *,
    batch_id: str | None = None,
    on_submitted: Callable[[str], None] | None = None,
    on_poll: Callable[[BatchStatus], None] | None = None,
) -> dict[str, Outcome]:
    """Answer ``requests`` through a batch and store each answer in the response cache.

    Keys are the dispatcher's own cache keys (64 hex characters, a valid
    ``custom_id``), so ``Dispatcher.generate`` later returns these answers as
    cache hits. Requests already in the cache are not sent; when all are, no
    batch is created and an empty dict is returned. Failures are returned, not
    cached: the run's normal live call decides about them.
    """
    from clinsum.dispatch import cache_key

    provider = batch.provider
    pending: dict[str, Request] = {}
    for request in requests:
        key = cache_key(cast("Provider", provider), request)
        if store.cached_response(key) is None:
            pending[key] = request
    if not pending and batch_id is None:
        return {}
    outcomes = await batch.run(pending.items(), batch_id=batch_id, on_submitted=on_submitted, on_poll=on_poll)
    for key, outcome in outcomes.items():
        if isinstance(outcome, Generation):
            store.cache_response(key, provider.spec, outcome.model_dump_json())
    return outcomes


def _requests_by_id(items: Iterable[tuple[str, Request]]) -> Mapping[str, tuple[str, Request]]:
    """custom_id -> (caller's key, request); refuses duplicate keys and oversize batches."""
    by_id: dict[str, tuple[str, Request]] = {}
    for key, request in items:
        custom_id = custom_id_for(key)
        if custom_id in by_id:
            raise ConfigError(f"duplicate key '{key}' in one batch: every request needs its own key")
        by_id[custom_id] = (key, request)
    if not by_id:
        raise ConfigError("an empty batch: nothing to send")
    if len(by_id) > MAX_REQUESTS:
        raise ConfigError(f"{len(by_id)} requests exceed the Message Batches limit of {MAX_REQUESTS}; split the run")
    return by_id
