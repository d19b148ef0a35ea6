"""Every provider call goes through one ``Dispatcher``: cache, concurrency, retries.

Providers classify their failures; the dispatcher alone decides to retry, in one
bounded loop (``max_attempts`` tries in all). ``RateLimited`` waits what the
provider asked for (``retry-after``) when it said, else backs off exponentially;
``TransientError`` backs off; ``FatalError`` and anything unexpected fail at
once. A successful answer is stored in the response cache before it is
returned, so a killed run never pays for the same call twice. A caller that
validates answers (the judge) ``forget``s the answers of a request that failed
validation for good, so a resumed run asks again instead of replaying the failure.

The cache key holds everything that changes the answer: the provider spec, its
answer-relevant options, its endpoint (host, base URL, project, region: an
answer from one server is never served for another) and the whole request.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import pydantic_core

from clinsum.errors import FatalError, ProviderError, RateLimited
from clinsum.offline import violation_in
from clinsum.providers.base import Generation, Provider, Request
from clinsum.store import Store

log = logging.getLogger(__name__)

# Options that change how a call is made, not what it answers.
_NOT_IN_CACHE_KEY = {"concurrency", "timeout_s", "prices"}
# Options that say where calls go; in the key through the provider's resolved ``endpoint``.
_ENDPOINT_OPTIONS = {"host", "base_url", "project", "location"}


def cache_key(provider: Provider, request: Request) -> str:
    """Key of a response: provider spec, endpoint, answer-relevant options and the whole request."""
    return _request_key(_provider_part(provider), request)


def request_keys(provider: Provider) -> Callable[[Request], str]:
    """``cache_key`` for many requests of one provider: its part of the key made once."""
    return partial(_request_key, _provider_part(provider))


_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"))
"""What ``json.dumps(value, sort_keys=True, separators=(",", ":"))`` uses, made once instead of per call."""


def _dumps(value: Any) -> str:
    return _ENCODER.encode(value)


def _provider_part(provider: Provider) -> tuple[str, str, str]:
    """The JSON of what a key takes from the provider (endpoint, options, spec): the same for
    every request of a provider, so a dispatcher makes it once per provider (``Dispatcher.key``)."""
    endpoint = getattr(provider, "endpoint", None)
    # the resolved endpoint replaces the options that name it: OLLAMA_HOST or host=, the same server
    excluded = _NOT_IN_CACHE_KEY | (_ENDPOINT_OPTIONS if endpoint is not None else set())
    options = provider.options.model_dump(mode="json", exclude=excluded)
    return _dumps(endpoint), _dumps(options), _dumps(provider.spec)


def _request_key(part: tuple[str, str, str], request: Request) -> str:
    """SHA-256 of the JSON object {endpoint, note, options, request, spec} with sorted keys and no
    spaces, written a part at a time in that (sorted) order: the bytes of ``json.dumps(payload,
    sort_keys=True, separators=(",", ":"))``, so keys stay those of earlier versions
    (tests/test_dispatch.py compares them)."""
    endpoint, options, spec = part
    note = ""
    if request.note is not None:  # local providers answer from the note itself
        text = hashlib.sha256(request.note.text.encode()).hexdigest()
        note = f',"note":{{"id":{_dumps(request.note.id)},"text":"{text}"}}'  # the keys sorted, as json.dumps would
    blob = (f'{{"endpoint":{endpoint}{note},"options":{options},'
            f'"request":{_dumps(request.model_dump(mode="json", exclude={"note"}))},"spec":{spec}}}')
    return hashlib.sha256(blob.encode()).hexdigest()


@dataclass(frozen=True)
class Prepared:
    """A request with its cache key, and the cached answer when the cache held one at lookup."""

    request: Request
    key: str
    """Empty when the provider's answers are not cached."""
    hit: Generation | None = None


def _from_cache(response: str) -> Generation:
    """A cached answer, validated as it is read, marked ``cached``."""
    fields = pydantic_core.from_json(response)
    if isinstance(fields, dict):
        fields["cached"] = True
    return Generation.model_validate(fields)


class Dispatcher:
    """Makes provider calls: cached, limited per provider, retried within bounds."""

    def __init__(
        self,
        store: Store | None = None,
        *,
        max_attempts: int = 4,
        base_delay_s: float = 1.0,
        max_delay_s: float = 60.0,
        concurrency: int | None = None,
        use_cache: bool = True,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.store = store
        self.max_attempts = max_attempts
        self.base_delay_s = base_delay_s
        self.max_delay_s = max_delay_s
        self.concurrency = concurrency
        self.use_cache = use_cache and store is not None
        self._sleep = sleep
        self._limits: dict[str, asyncio.Semaphore] = {}
        self._parts: dict[int, tuple[Provider, tuple[str, str, str]]] = {}
        self.calls = 0
        """Provider calls actually made (cache hits excluded), for reports and tests."""
        self.cache_hits = 0

    def _limit(self, provider: Provider) -> asyncio.Semaphore:
        limit = self._limits.get(provider.spec)
        if limit is None:
            size = self.concurrency or provider.options.concurrency
            limit = self._limits[provider.spec] = asyncio.Semaphore(max(1, size))
        return limit

    def backoff(self, attempt: int) -> float:
        """Delay before retry ``attempt`` (1-based): exponential, capped, with jitter."""
        delay = min(self.max_delay_s, self.base_delay_s * 2 ** (attempt - 1))
        return delay * (0.5 + random.random() / 2)

    def _cacheable(self, provider: Provider) -> bool:
        return self.use_cache and self.store is not None and getattr(provider, "cacheable", True)

    def key(self, provider: Provider, request: Request) -> str:
        """``cache_key(provider, request)``, with the provider's part of it made once per provider
        (its options are frozen, and the provider is held so that its id is never reused)."""
        entry = self._parts.get(id(provider))
        if entry is None or entry[0] is not provider:
            entry = self._parts[id(provider)] = (provider, _provider_part(provider))
        return _request_key(entry[1], request)

    def prepare(self, calls: Sequence[tuple[Provider, Request]]) -> list[Prepared]:
        """Each call's cache key and cached answer, looked up in one query for them all.

        ``generate(..., prepared=)`` then answers a hit without asking the store again; a
        miss is looked up once more there (another task may have cached it since) before
        the provider is called."""
        keys = [self.key(p, r) if self._cacheable(p) else "" for p, r in calls]
        found = self.store.cached_responses([k for k in keys if k]) if self.store is not None else {}
        return [Prepared(request, key, _from_cache(found[key]) if key in found else None)
                for (_, request), key in zip(calls, keys, strict=True)]

    async def generate(self, provider: Provider, request: Request, *,
                       prepared: Prepared | None = None) -> Generation:
        """The provider's answer: from the cache when stored, else called and then cached.

        ``prepared`` (from ``prepare``, for this provider and request) carries the key and
        any answer the cache held when it was made."""
        cacheable = self._cacheable(provider)
        if prepared is not None and prepared.hit is not None:
            self.cache_hits += 1
            return prepared.hit
        key = (prepared.key if prepared is not None else self.key(provider, request)) if cacheable else ""
        if cacheable and self.store is not None:
            hit = self.store.cached_response(key)
            if hit is not None:
                self.cache_hits += 1
                return _from_cache(hit)

        async with self._limit(provider):
            generation = await self._with_retries(provider, request)
        if cacheable and self.store is not None:
            self.store.cache_response(key, provider.spec, generation.model_dump_json())
        return generation

    def forget(self, provider: Provider, request: Request) -> None:
        """Drop a cached answer the caller rejected, so the same request is asked again."""
        if self._cacheable(provider) and self.store is not None:
            self.store.forget_response(self.key(provider, request))

    async def _with_retries(self, provider: Provider, request: Request) -> Generation:
        attempt = 1
        while True:
            self.calls += 1
            try:
                return await provider.generate(request)
            except ProviderError as exc:
                violation = violation_in(exc)  # an SDK may wrap the offline guard's refusal as a
                if violation is not None and violation is not exc:  # connection error: final
                    raise violation from exc
                if not exc.retryable or attempt >= self.max_attempts:
                    raise
                delay = self.backoff(attempt)
                if isinstance(exc, RateLimited) and exc.retry_after is not None:
                    delay = min(max(exc.retry_after, 0.0), self.max_delay_s)
                log.info("%s: %s; retry %d/%d in %.1fs", provider.spec, exc, attempt,
                         self.max_attempts - 1, delay)
                await self._sleep(delay)
                attempt += 1
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a provider bug or an unconverted SDK error: never retried
                raise FatalError(f"{provider.spec}: unexpected {type(exc).__name__}: {exc}") from exc
