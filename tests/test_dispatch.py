from __future__ import annotations

import asyncio

import pytest
from fakes import ScriptedProvider

from clinsum.dispatch import Dispatcher, cache_key
from clinsum.errors import FatalError, RateLimited, TransientError
from clinsum.providers.base import Request
from clinsum.records import Note
from clinsum.store import Store


class Sleeps:
    """Records requested delays instead of sleeping."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


async def test_transient_errors_are_retried_with_growing_backoff():
    sleeps = Sleeps()
    provider = ScriptedProvider(answers=[TransientError("503"), TransientError("503"), "ok"])
    dispatcher = Dispatcher(None, max_attempts=4, base_delay_s=1.0, sleep=sleeps)
    generation = await dispatcher.generate(provider, Request(prompt="p"))
    assert generation.text == "ok"
    assert len(provider.calls) == 3
    assert 0.5 <= sleeps.delays[0] <= 1.0 and 1.0 <= sleeps.delays[1] <= 2.0


async def test_retry_after_is_honoured_and_capped():
    sleeps = Sleeps()
    provider = ScriptedProvider(answers=[RateLimited("429", retry_after=7.0),
                                         RateLimited("429", retry_after=500.0), "ok"])
    dispatcher = Dispatcher(None, max_delay_s=60.0, sleep=sleeps)
    await dispatcher.generate(provider, Request(prompt="p"))
    assert sleeps.delays == [7.0, 60.0]


async def test_fatal_errors_are_never_retried():
    provider = ScriptedProvider(answers=[FatalError("401 invalid key"), "never"])
    with pytest.raises(FatalError, match="401"):
        await Dispatcher(None, sleep=Sleeps()).generate(provider, Request(prompt="p"))
    assert len(provider.calls) == 1


async def test_retries_are_bounded():
    provider = ScriptedProvider(default=lambda r: (_ for _ in ()).throw(TransientError("down")))
    with pytest.raises(TransientError):
        await Dispatcher(None, max_attempts=3, sleep=Sleeps()).generate(provider, Request(prompt="p"))
    assert len(provider.calls) == 3


async def test_unexpected_exceptions_become_fatal_without_retry():
    provider = ScriptedProvider(answers=[KeyError("bug")])
    with pytest.raises(FatalError, match="unexpected KeyError"):
        await Dispatcher(None, sleep=Sleeps()).generate(provider, Request(prompt="p"))
    assert len(provider.calls) == 1


async def test_cache_hits_make_no_call_and_survive_reopening(tmp_path):
    store = Store.open(tmp_path / "s.db")
    provider = ScriptedProvider()
    request = Request(prompt="p", note=Note(id="n1", text="t"))
    first = await Dispatcher(store).generate(provider, request)
    store.close()
    again = Dispatcher(Store.open(tmp_path / "s.db"))
    second = await again.generate(provider, request)
    assert len(provider.calls) == 1 and again.cache_hits == 1
    assert second.cached and second.text == first.text and second.request_id == first.request_id


def test_cache_key_depends_on_answer_relevant_inputs_only():
    base = ScriptedProvider("fake:a")
    request = Request(prompt="p")
    assert cache_key(base, request) == cache_key(ScriptedProvider("fake:a", {"concurrency": 9}), request)
    assert cache_key(base, request) != cache_key(ScriptedProvider("fake:b"), request)
    assert cache_key(base, request) != cache_key(ScriptedProvider("fake:a", {"temperature": 0.7}), request)
    assert cache_key(base, request) != cache_key(base, Request(prompt="p", sample=1))
    assert cache_key(base, request) != cache_key(base, Request(prompt="q"))


async def test_failures_are_not_cached(tmp_path):
    store = Store.open(tmp_path / "s.db")
    provider = ScriptedProvider(answers=[FatalError("400"), "ok"])
    dispatcher = Dispatcher(store, sleep=Sleeps())
    with pytest.raises(FatalError):
        await dispatcher.generate(provider, Request(prompt="p"))
    assert (await dispatcher.generate(provider, Request(prompt="p"))).text == "ok"


async def test_concurrency_is_limited_per_provider():
    in_flight = peak = 0

    class Counting(ScriptedProvider):
        async def generate(self, request):
            nonlocal in_flight, peak
            in_flight += 1
            peak = max(peak, in_flight)
            await asyncio.sleep(0.01)
            in_flight -= 1
            return await super().generate(request)

    provider = Counting(options={"concurrency": 3})
    dispatcher = Dispatcher(None)
    await asyncio.gather(*(dispatcher.generate(provider, Request(prompt=str(i))) for i in range(12)))
    assert peak == 3


async def test_an_offline_refusal_wrapped_by_an_sdk_is_never_retried():
    from clinsum.offline import OfflineViolation

    def refused(request):
        try:
            raise OfflineViolation("203.0.113.1:443", "connect")
        except OfflineViolation as violation:
            wrapped = TransientError("connection error")  # what an SDK's connection error becomes
            wrapped.__cause__ = violation
            return wrapped

    provider = ScriptedProvider(default=refused)
    with pytest.raises(OfflineViolation):
        await Dispatcher(None, sleep=Sleeps()).generate(provider, Request(prompt="p"))
    assert len(provider.calls) == 1


def test_the_cache_key_holds_the_endpoint(monkeypatch):
    """An answer cached from one server is never served for another (a dead host fails loudly)."""
    from clinsum.providers.ollama import OllamaProvider

    request = Request(prompt="p")
    one = OllamaProvider("ollama:m", {"host": "http://127.0.0.1:1111"})
    other = OllamaProvider("ollama:m", {"host": "http://127.0.0.1:2222"})
    monkeypatch.setenv("OLLAMA_HOST", "http://127.0.0.1:1111")
    from_env = OllamaProvider("ollama:m")
    assert cache_key(one, request) != cache_key(other, request)
    assert cache_key(one, request) == cache_key(from_env, request)  # the same server, however named


async def test_a_forgotten_answer_is_asked_again(tmp_path):
    store = Store.open(tmp_path / "s.db")
    provider = ScriptedProvider(answers=["first", "second"])
    dispatcher = Dispatcher(store)
    request = Request(prompt="p")
    assert (await dispatcher.generate(provider, request)).text == "first"
    assert (await dispatcher.generate(provider, request)).cached
    dispatcher.forget(provider, request)
    assert (await dispatcher.generate(provider, request)).text == "second"
    assert len(provider.calls) == 2


def test_anthropic_and_vertex_endpoints_are_in_the_cache_key(monkeypatch):
    from clinsum.providers.anthropic import AnthropicProvider
    from clinsum.providers.vertex import VertexProvider

    monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key")
    request = Request(prompt="p")
    direct = AnthropicProvider("anthropic:claude-x")
    gateway = AnthropicProvider("anthropic:claude-x", {"base_url": "http://127.0.0.1:9/gateway"})
    assert cache_key(direct, request) != cache_key(gateway, request)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://127.0.0.1:9/gateway")
    assert cache_key(AnthropicProvider("anthropic:claude-x"), request) == cache_key(gateway, request)

    client = object()  # an injected client: the endpoint comes from the options and environment
    eu = VertexProvider("vertex:gemini-x", {"project": "p", "location": "europe-west4"}, client=client)
    us = VertexProvider("vertex:gemini-x", {"project": "p", "location": "us-central1"}, client=client)
    other = VertexProvider("vertex:gemini-x", {"project": "q", "location": "us-central1"}, client=client)
    assert len({cache_key(p, request) for p in (eu, us, other)}) == 3
