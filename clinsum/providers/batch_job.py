"""What every provider's batch API shares: submit, poll, collect, resume.

A batch job takes many requests of one provider at a discount and answers them
later. The steps are the same whatever the provider (``BatchJob.run``):

1. ``submit``: give each request an id the API accepts (``request_id``), refuse an
   empty batch, a key given twice or more requests than the API takes, and create
   the job (``_create``); its id is returned and handed to ``on_submitted`` before
   the first poll, so the caller can persist it;
2. ``wait``: ask the job's ``status`` every ``poll_interval_s`` until it has ended
   (``providers.common.poll_until_ended``), at most ``max_wait_s``;
3. ``results``: read the answers (``_answers``), match each to the caller's key by
   its id, turn it into a ``Generation`` at the batch price or the ``ProviderError``
   the same failure would have raised live (``_outcome``); a request with no answer
   comes back as a ``TransientError`` (``_no_answer``), for the caller to call live.

Given the ``batch_id`` of a job submitted before, ``run`` skips step 1: a resumed
run collects the same job instead of paying for a new one. A provider's batch is a
subclass that fills in the hooks (``providers.anthropic_batch``, ``providers.vertex_batch``).
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Protocol, TypeVar, cast

from clinsum.errors import ConfigError, ProviderError, TransientError
from clinsum.providers.base import Generation, Request
from clinsum.providers.common import poll_until_ended

if TYPE_CHECKING:
    from clinsum.providers.base import Batch, Provider
    from clinsum.store import Store

Outcome = Generation | ProviderError
"""What one request of a batch came back as."""
Requests = Mapping[str, tuple[str, Request]]
"""Request id (as the API sees it) -> (the caller's key, the request)."""


class JobStatus(Protocol):
    """Where a job stands: enough for the shared loop (each provider's status says more)."""

    @property
    def batch_id(self) -> str: ...

    @property
    def ended(self) -> bool: ...


ProviderT = TypeVar("ProviderT")
StatusT = TypeVar("StatusT", bound=JobStatus)


class BatchJob(abc.ABC, Generic[ProviderT, StatusT]):
    """Send many requests of one provider as one batch job; subclasses fill in the hooks."""

    discount: ClassVar[float] = 0.5
    """Share of the standard price a batch answer costs."""
    max_requests: ClassVar[int | None] = None
    """Most requests one job accepts (None: no documented limit)."""
    api_name: ClassVar[str] = "batch"
    """The API's name, for the error that refuses an oversize batch."""

    def __init__(
        self,
        provider: ProviderT,
        *,
        poll_interval_s: float = 60.0,
        max_wait_s: float | None = None,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        self.provider = provider
        self.poll_interval_s = poll_interval_s
        self.max_wait_s = max_wait_s
        self._sleep = sleep

    # -- the skeleton ------------------------------------------------------------------------

    async def run(
        self,
        items: Iterable[tuple[str, Request]],
        *,
        batch_id: str | None = None,
        on_submitted: Callable[[str], None] | None = None,
        on_poll: Callable[[StatusT], None] | None = None,
    ) -> dict[str, Outcome]:
        """Submit (unless ``batch_id`` resumes an existing job), wait, and read every outcome."""
        items = list(items)
        if batch_id is None:
            batch_id = await self.submit(items)
            if on_submitted is not None:
                on_submitted(batch_id)
        job = await self.wait(batch_id, on_poll)
        return await self.results(job, items)

    async def submit(self, items: Iterable[tuple[str, Request]]) -> str:
        """Create the job; returns its id (persist it to resume later)."""
        return await self._create(self.requests(items))

    async def wait(self, batch_id: str, on_poll: Callable[[StatusT], None] | None = None) -> StatusT:
        """Poll until the job has ended; TransientError if ``max_wait_s`` passes first."""
        return await poll_until_ended(
            lambda: self.status(batch_id), on_poll=on_poll, sleep=self._sleep,
            describe=self._still, poll_interval_s=self.poll_interval_s, max_wait_s=self.max_wait_s)

    async def results(self, job: StatusT, items: Iterable[tuple[str, Request]]) -> dict[str, Outcome]:
        """Every request's outcome, keyed by the caller's key; an ended job only.

        An answer for a request this caller did not send is not ours to store and is
        skipped; where a request is answered twice, the first good answer wins.
        """
        requests = self.requests(items)
        outcomes: dict[str, Outcome] = {}
        async for request_id, answer, where in self._answers(job):
            pair = requests.get(request_id) if request_id is not None else None
            if pair is None:
                continue
            key, request = pair
            if not isinstance(outcomes.get(key), Generation):
                outcomes[key] = self._outcome(answer, request, where)
        for key, _ in requests.values():
            outcomes.setdefault(key, TransientError(self._no_answer(job, key)))
        return outcomes

    def requests(self, items: Iterable[tuple[str, Request]]) -> Requests:
        """request id -> (caller's key, request); refuses duplicate keys, empty and oversize batches."""
        by_id: dict[str, tuple[str, Request]] = {}
        for key, request in items:
            request_id = self.request_id(key)
            if request_id in by_id:
                raise ConfigError(f"duplicate key '{key}' in one batch: every request needs its own key")
            by_id[request_id] = (key, request)
        if not by_id:
            raise ConfigError("an empty batch: nothing to send")
        if self.max_requests is not None and len(by_id) > self.max_requests:
            raise ConfigError(f"{len(by_id)} requests exceed the {self.api_name} limit of {self.max_requests}; "
                              "split the run")
        return by_id

    def at_batch_price(self, generation: Generation) -> Generation:
        """The generation with its cost at the batch discount (the provider priced it live)."""
        if generation.cost_usd is None:
            return generation
        return generation.model_copy(update={"cost_usd": generation.cost_usd * self.discount})

    # -- the hooks: what differs from one provider to the next -------------------------------

    @abc.abstractmethod
    def request_id(self, key: str) -> str:
        """The id the API carries for a caller's key: stable across runs, in the API's alphabet."""

    @abc.abstractmethod
    async def _create(self, requests: Requests) -> str:
        """Send the requests as one job; returns the job's id."""

    @abc.abstractmethod
    async def status(self, batch_id: str) -> StatusT:
        """Where the job stands, as the API reports it."""

    @abc.abstractmethod
    def _still(self, status: StatusT) -> str:
        """The job still running, in words (``batch msgbatch_1 still in_progress``)."""

    @abc.abstractmethod
    def _answers(self, job: StatusT) -> AsyncIterator[tuple[str | None, Any, str]]:
        """(request id or None, raw answer, where it was read) for every answer of an ended job."""

    @abc.abstractmethod
    def _outcome(self, answer: Any, request: Request, where: str) -> Outcome:
        """One raw answer as a ``Generation`` at the batch price, or the error it reports."""

    def _no_answer(self, job: StatusT, key: str) -> str:
        """Why the request of ``key`` has no answer (it is then the caller's to call live)."""
        return f"batch {job.batch_id} returned no result for '{key}'"


async def prefill_cache(
    batch: Batch,
    store: Store,
    requests: Iterable[Request],
    *,
    batch_id: str | None = None,
    on_submitted: Callable[[str], None] | None = None,
    on_poll: Callable[[Any], None] | None = None,
) -> dict[str, Outcome]:
    """Answer ``requests`` through a batch and store each answer in the response cache.

    Keys are the dispatcher's own cache keys, so ``Dispatcher.generate`` later returns
    these answers as cache hits. Requests already in the cache are not sent; when all
    are, no batch is created and an empty dict is returned. Failures are returned, not
    cached: the run's normal live call decides about them.
    """
    from clinsum.dispatch import cache_key

    provider = batch.provider
    pending: dict[str, Request] = {}
    for request in requests:
        key = cache_key(cast("Provider", provider), request)
        if store.cached_response(key) is None:
            pending[key] = request
    if not pending:  # also on resume of a stored batch whose every answer reached the cache before a crash
        return {}
    outcomes = await batch.run(pending.items(), batch_id=batch_id, on_submitted=on_submitted, on_poll=on_poll)
    for key, outcome in outcomes.items():
        if isinstance(outcome, Generation):
            store.cache_response(key, provider.spec, outcome.model_dump_json())
    return outcomes
