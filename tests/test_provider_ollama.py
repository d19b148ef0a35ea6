"""The Ollama provider against an Ollama-protocol server on 127.0.0.1, through the real ``ollama`` SDK."""

from __future__ import annotations

import json
import os

import pytest
from ollama_fake import OllamaFake, chat_body, closed_port
from provider_fakes import json_response, local_http, local_http_server, slow  # noqa: F401
from pytest_httpserver import HTTPServer

from clinsum.dispatch import Dispatcher
from clinsum.errors import ConfigError, FatalError, RateLimited, SetupError, TransientError
from clinsum.offline import check_offline_providers
from clinsum.providers import registry
from clinsum.providers.base import Request
from clinsum.providers.common import CONTEXT_TOO_LONG
from clinsum.providers.ollama import DEFAULT_NUM_CTX, OllamaProvider, create

MODEL = "llama3.1:8b"
SCHEMA = {
    "type": "object",
    "properties": {"accurate": {"type": "integer", "minimum": 1, "maximum": 5}},
    "required": ["accurate"],
}


@pytest.fixture
def ollama_http(local_http: HTTPServer) -> HTTPServer:
    """The shared fake server (tests/provider_fakes.py), speaking Ollama's protocol in these tests."""
    return local_http


def provider(server: HTTPServer, **options: object) -> OllamaProvider:
    return create(f"ollama:{MODEL}", {"host": f"http://127.0.0.1:{server.port}", **options})


async def test_summary_with_usage_latency_and_the_options_sent(ollama_http: HTTPServer) -> None:
    fake = OllamaFake(ollama_http, "Patient with CAP, started on ceftriaxone.")
    ollama = provider(ollama_http, seed=7, max_output_tokens=300, system_prompt="You summarize notes.")

    generation = await ollama.generate(Request(prompt="Summarize: 67M with fever and cough."))

    assert generation.text == "Patient with CAP, started on ceftriaxone."
    sent_words = "You summarize notes. Summarize: 67M with fever and cough.".split()  # noqa: SIM905
    assert generation.input_tokens == len(sent_words) + 10
    assert generation.output_tokens == 6
    assert generation.cost_usd == 0.0  # loopback: no per-token charge
    assert generation.latency_s is not None and generation.latency_s > 0
    assert generation.model == MODEL
    sent = fake.requests[0]
    assert sent["model"] == MODEL
    assert sent["stream"] is False
    assert sent["messages"] == [
        {"role": "system", "content": "You summarize notes."},
        {"role": "user", "content": "Summarize: 67M with fever and cough."},
    ]
    assert sent["options"] == {"temperature": 0.0, "num_predict": 300, "num_ctx": DEFAULT_NUM_CTX, "seed": 7}
    assert "format" not in sent


async def test_structured_output_sends_the_schema_as_format(ollama_http: HTTPServer) -> None:
    fake = OllamaFake(ollama_http, json.dumps({"accurate": 4}))
    generation = await provider(ollama_http).generate(
        Request(prompt="Rate this summary.", json_schema=SCHEMA, temperature=0.7, sample=2)
    )
    assert json.loads(generation.text) == {"accurate": 4}
    assert fake.requests[0]["format"] == SCHEMA
    assert fake.requests[0]["options"]["temperature"] == 0.7


async def test_distinct_samples_get_distinct_seeds(ollama_http: HTTPServer) -> None:
    fake = OllamaFake(ollama_http, "ok")
    ollama = provider(ollama_http, seed=100)
    await ollama.generate(Request(prompt="x", sample=0))
    await ollama.generate(Request(prompt="x", sample=3))
    assert [r["options"]["seed"] for r in fake.requests] == [100, 103]


async def test_structured_answer_cut_off_is_an_error_and_an_empty_answer_is_returned(ollama_http: HTTPServer) -> None:
    ollama_http.expect_oneshot_request("/api/chat", method="POST").respond_with_json(
        chat_body('{"accurate": ', done_reason="length")
    )
    ollama_http.expect_oneshot_request("/api/chat", method="POST").respond_with_json(chat_body("  "))
    ollama = provider(ollama_http)
    with pytest.raises(FatalError, match="cut off at max_output_tokens"):
        await ollama.generate(Request(prompt="Rate it.", json_schema=SCHEMA))
    empty = await ollama.generate(Request(prompt="Summarize."))  # scored and flagged by the runner
    assert empty.text == "  " and empty.output_tokens is not None


async def test_model_not_pulled_says_how_to_pull_it(ollama_http: HTTPServer) -> None:
    OllamaFake(ollama_http, known_models=("mistral:7b",))
    with pytest.raises(SetupError, match=r"run `ollama pull llama3\.1:8b`"):
        await provider(ollama_http).generate(Request(prompt="hi"))


async def test_server_error_is_transient_and_the_dispatcher_retries_it(ollama_http: HTTPServer) -> None:
    ollama_http.expect_oneshot_request("/api/chat", method="POST").respond_with_response(
        json_response({"error": "llama runner process has terminated"}, 500)
    )
    ollama_http.expect_request("/api/chat", method="POST").respond_with_json(chat_body("Recovered."))
    ollama = provider(ollama_http)

    with pytest.raises(TransientError, match="500"):
        await ollama.generate(Request(prompt="hi"))
    generation = await Dispatcher(None, base_delay_s=0).generate(ollama, Request(prompt="hi again"))
    assert generation.text == "Recovered."


async def test_busy_server_is_rate_limited(ollama_http: HTTPServer) -> None:
    ollama_http.expect_request("/api/chat", method="POST").respond_with_response(
        json_response({"error": "server busy, please try again.  maximum pending requests exceeded"}, 429)
    )
    with pytest.raises(RateLimited, match="maximum pending requests"):
        await provider(ollama_http).generate(Request(prompt="hi"))


async def test_timeout_is_transient(ollama_http: HTTPServer) -> None:
    ollama_http.expect_request("/api/chat", method="POST").respond_with_handler(
        slow(json_response(chat_body("late")), 1.0)
    )
    with pytest.raises(TransientError, match=r"did not answer within 0\.2 s"):
        await provider(ollama_http, timeout_s=0.2).generate(Request(prompt="hi"))


@pytest.mark.parametrize("body", ["<html>502 Bad Gateway</html>", json.dumps({"model": MODEL, "message": 3})])
async def test_malformed_body_is_transient(ollama_http: HTTPServer, body: str) -> None:
    ollama_http.expect_request("/api/chat", method="POST").respond_with_data(body, content_type="text/html")
    with pytest.raises(TransientError, match="malformed body"):
        await provider(ollama_http).generate(Request(prompt="hi"))


async def test_server_not_running_fails_at_once_with_the_fix() -> None:
    port = closed_port()
    ollama = create(f"ollama:{MODEL}", {"host": f"127.0.0.1:{port}"})
    sleeps: list[float] = []

    async def record(delay: float) -> None:
        sleeps.append(delay)

    fix = rf"not running at http://127\.0\.0\.1:{port}: start it with `ollama serve`"
    dispatcher = Dispatcher(None, base_delay_s=5, sleep=record)
    with pytest.raises(SetupError, match=fix):
        await dispatcher.generate(ollama, Request(prompt="hi"))
    assert sleeps == [] and dispatcher.calls == 1  # fatal: no backoff, no retry


async def test_prompt_obviously_longer_than_num_ctx_is_not_sent(ollama_http: HTTPServer) -> None:
    fake = OllamaFake(ollama_http, "never")
    ollama = provider(ollama_http, num_ctx=512)
    with pytest.raises(FatalError, match=CONTEXT_TOO_LONG) as caught:
        await ollama.generate(Request(prompt="Chest pain on exertion. " * 200))
    assert "num_ctx is 512" in str(caught.value)
    assert fake.requests == []


async def test_silent_truncation_at_num_ctx_is_a_per_note_error(ollama_http: HTTPServer) -> None:
    # 1500 words fit the character bound of num_ctx=1024 but the fake (like Ollama) truncates to num_ctx.
    fake = OllamaFake(ollama_http, "a summary of the tail of the note")
    ollama = provider(ollama_http, num_ctx=1024)
    with pytest.raises(FatalError, match="silently truncated"):
        await ollama.generate(Request(prompt=" ".join(["a"] * 1500)))
    assert len(fake.requests) == 1
    generation = await ollama.generate(Request(prompt=" ".join(["a"] * 500)))
    assert generation.input_tokens == 510


async def test_context_error_from_the_server_is_fatal(ollama_http: HTTPServer) -> None:
    ollama_http.expect_request("/api/chat", method="POST").respond_with_response(
        json_response({"error": "the input length exceeds the context length"}, 400)
    )
    with pytest.raises(FatalError, match=CONTEXT_TOO_LONG):
        await provider(ollama_http).generate(Request(prompt="hi"))


def test_host_from_environment_and_locality(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OLLAMA_HOST", "gpu-box.internal:11434")
    remote = create(f"ollama:{MODEL}")
    assert remote.host == "http://gpu-box.internal:11434"
    assert remote.local is False
    monkeypatch.delenv("OLLAMA_HOST")
    assert create(f"ollama:{MODEL}").host == "http://127.0.0.1:11434"
    assert create(f"ollama:{MODEL}").local is True
    assert create(f"ollama:{MODEL}", {"host": "http://[::1]:11434"}).local is True
    assert create(f"ollama:{MODEL}", {"host": "localhost"}).local is True
    with pytest.raises(ConfigError, match="gpu-box"):
        check_offline_providers([remote])
    check_offline_providers([create(f"ollama:{MODEL}", {"host": "127.0.0.1"})])


async def test_remote_host_cost_is_unknown_unless_priced(ollama_http: HTTPServer) -> None:
    OllamaFake(ollama_http, "two words")
    host = f"http://127.0.0.1:{ollama_http.port}"
    local = create(f"ollama:{MODEL}", {"host": host})
    generation = await local.generate(Request(prompt="hi"))
    assert generation.cost_usd == 0.0
    remote = create(f"ollama:{MODEL}", {"host": host})
    remote.local = False  # as if the server were elsewhere; the fake still answers on loopback
    assert (await remote.generate(Request(prompt="hi"))).cost_usd is None
    price = {"input_per_mtok": 1e6, "output_per_mtok": 2e6}
    priced = create(f"ollama:{MODEL}", {"host": host, "prices": price})
    generation = await priced.generate(Request(prompt="hi"))
    assert generation.cost_usd == pytest.approx(generation.input_tokens + 2 * generation.output_tokens)


def test_registry_builds_it_and_refuses_unknown_options() -> None:
    built = registry.create(f"ollama:{MODEL}", {"num_ctx": 4096})
    assert isinstance(built, OllamaProvider)
    assert built.model == MODEL
    with pytest.raises(ConfigError, match="num_ctxx"):
        registry.create(f"ollama:{MODEL}", {"num_ctxx": 4096})


@pytest.mark.live
async def test_live_ollama() -> None:
    model = os.environ.get("CLINSUM_OLLAMA_MODEL")
    if not os.environ.get("OLLAMA_HOST") or not model:
        pytest.skip("set OLLAMA_HOST and CLINSUM_OLLAMA_MODEL (a pulled model) to run")
    ollama = create(f"ollama:{model}", {"max_output_tokens": 64})
    generation = await ollama.generate(Request(prompt="In five words: what is hypertension?"))
    assert generation.text.strip()
    assert generation.input_tokens and generation.output_tokens
