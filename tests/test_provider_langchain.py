"""The LangChain provider: fake chat models through the ``module:factory`` form, errors shaped like
the SDKs LangChain wraps, and one HTTP-level path through ``ChatOllama`` (langchain-ollama) when installed."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from ollama_fake import OllamaFake
from provider_fakes import local_http, local_http_server  # noqa: F401
from pytest_httpserver import HTTPServer

from clinsum.dispatch import Dispatcher
from clinsum.errors import ConfigError, FatalError, RateLimited, SetupError, TransientError
from clinsum.providers import registry
from clinsum.providers.base import Request
from clinsum.providers.common import CONTEXT_TOO_LONG
from clinsum.providers.langchain import LangChainProvider, convert_error, create, is_factory_spec

SCHEMA = {
    "type": "object",
    "properties": {"accurate": {"type": "integer"}, "errors": {"type": "array", "items": {"type": "string"}}},
    "required": ["accurate", "errors"],
}

# -- fakes built by the factories below (the module:factory form) ------------------------------------

ANSWERS: list[AIMessage] = []
FACTORY_CALLS: list[dict[str, Any]] = []
BOUND_TOOLS: list[Any] = []
PROMPTS: list[list[BaseMessage]] = []


class RecordingFakeChatModel(GenericFakeChatModel):
    """Answers from ``ANSWERS`` and records the messages it was sent."""

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: Any = None, **kwargs: Any) -> ChatResult:
        PROMPTS.append(messages)
        return super()._generate(messages, stop, run_manager, **kwargs)


class ToolCallingFakeChatModel(RecordingFakeChatModel):
    """A fake that supports ``bind_tools``, so ``with_structured_output`` takes its native path."""

    def bind_tools(self, tools: Any, *, tool_choice: Any = None, **kwargs: Any) -> Any:
        BOUND_TOOLS.append((tools, tool_choice))
        return self


class FailingChatModel(BaseChatModel):
    error: Any = None
    delay_s: float = 0.0

    @property
    def _llm_type(self) -> str:
        return "failing-fake"

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: Any = None, **kwargs: Any) -> ChatResult:
        raise self.error

    async def _agenerate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                         run_manager: Any = None, **kwargs: Any) -> ChatResult:
        await asyncio.sleep(self.delay_s)
        if self.error is not None:
            raise self.error
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content="late"))])


def fake_model(temperature: float = 0.0, max_tokens: int = 0, max_retries: int = -1) -> BaseChatModel:
    FACTORY_CALLS.append({"temperature": temperature, "max_tokens": max_tokens, "max_retries": max_retries})
    return RecordingFakeChatModel(messages=iter(list(ANSWERS)))


def tool_model(**kwargs: Any) -> BaseChatModel:
    FACTORY_CALLS.append(kwargs)
    return ToolCallingFakeChatModel(messages=iter(list(ANSWERS)))


def no_argument_model() -> BaseChatModel:
    return RecordingFakeChatModel(messages=iter(list(ANSWERS)))


def not_a_model() -> object:
    return object()


@pytest.fixture(autouse=True)
def _reset() -> Iterator[None]:
    for queue in (ANSWERS, FACTORY_CALLS, BOUND_TOOLS, PROMPTS):
        queue.clear()
    yield


HERE = "test_provider_langchain"


# -- the module:factory form -----------------------------------------------------------------------------


async def test_summary_usage_and_ids_from_a_factory_model() -> None:
    ANSWERS.append(AIMessage(
        content="58M with CHF, fatigue; echo ordered.",
        usage_metadata={"input_tokens": 40, "output_tokens": 9, "total_tokens": 49},
        response_metadata={"id": "chatcmpl-abc123", "model_name": "fake-clinical-1"},
    ))
    provider = create(f"langchain:{HERE}:fake_model", {"max_output_tokens": 256, "system_prompt": "Be brief."})

    generation = await provider.generate(Request(prompt="Summarize the note."))

    assert generation.text == "58M with CHF, fatigue; echo ordered."
    assert (generation.input_tokens, generation.output_tokens) == (40, 9)
    assert generation.request_id == "chatcmpl-abc123"
    assert generation.model == "fake-clinical-1"
    assert generation.cost_usd is None  # no price known: never guessed
    assert generation.latency_s is not None
    assert FACTORY_CALLS == [{"temperature": 0.0, "max_tokens": 256, "max_retries": 0}]
    assert [(m.type, m.content) for m in PROMPTS[0]] == [("system", "Be brief."), ("human", "Summarize the note.")]
    assert provider.local is False


async def test_missing_usage_stays_empty_and_priced_models_get_a_cost() -> None:
    ANSWERS.append(AIMessage(content="ok", usage_metadata={"input_tokens": 1000, "output_tokens": 500,
                                                           "total_tokens": 1500}))
    ANSWERS.append(AIMessage(content="no usage reported"))
    price = {"input_per_mtok": 2.0, "output_per_mtok": 10.0}
    provider = create(f"langchain:{HERE}:fake_model", {"prices": price})
    first = await provider.generate(Request(prompt="a"))
    assert first.cost_usd == pytest.approx((1000 * 2.0 + 500 * 10.0) / 1e6)
    second = await provider.generate(Request(prompt="b"))
    assert (second.input_tokens, second.output_tokens, second.cost_usd) == (None, None, None)


async def test_structured_output_through_native_tool_calling() -> None:
    ANSWERS.append(AIMessage(
        content="", tool_calls=[{"name": "clinsum_answer", "args": {"accurate": 4, "errors": []}, "id": "c1"}],
        usage_metadata={"input_tokens": 50, "output_tokens": 12, "total_tokens": 62},
    ))
    provider = create(f"langchain:{HERE}:tool_model")
    generation = await provider.generate(Request(prompt="Rate it.", json_schema=SCHEMA))
    assert json.loads(generation.text) == {"accurate": 4, "errors": []}
    assert generation.input_tokens == 50  # usage read from the raw message, not lost by the parser
    (tools, _choice), = BOUND_TOOLS
    assert tools[0]["properties"] == SCHEMA["properties"]
    assert "JSON schema" not in PROMPTS[0][-1].content  # native: no schema pasted into the prompt


async def test_structured_output_cut_off_by_the_token_limit_is_an_error() -> None:
    ANSWERS.append(AIMessage(content='{"accurate": 4, "err', response_metadata={"finish_reason": "length"}))
    with pytest.raises(FatalError, match="cut off at max_output_tokens"):
        await create(f"langchain:{HERE}:tool_model").generate(Request(prompt="Rate it.", json_schema=SCHEMA))


async def test_structured_output_without_native_support_puts_the_schema_in_the_prompt() -> None:
    ANSWERS.append(AIMessage(content='{"accurate": 5, "errors": []}'))
    provider = create(f"langchain:{HERE}:fake_model")
    generation = await provider.generate(Request(prompt="Rate it.", json_schema=SCHEMA))
    assert generation.text == '{"accurate": 5, "errors": []}'  # raw text, for the caller to validate
    assert json.dumps(SCHEMA) in PROMPTS[0][-1].content


async def test_per_request_temperature_builds_a_model_at_that_temperature() -> None:
    ANSWERS.extend([AIMessage(content="x")] * 2)
    provider = create(f"langchain:{HERE}:fake_model")
    await provider.generate(Request(prompt="a", temperature=0.8, sample=1))
    assert [c["temperature"] for c in FACTORY_CALLS] == [0.0, 0.8]


def test_factory_without_parameters_is_called_bare_and_bad_factories_are_config_errors() -> None:
    assert isinstance(create(f"langchain:{HERE}:no_argument_model"), LangChainProvider)
    with pytest.raises(ConfigError, match="not a BaseChatModel"):
        create(f"langchain:{HERE}:not_a_model")
    with pytest.raises(ConfigError, match="has no callable 'nope'"):
        create(f"langchain:{HERE}:nope")
    with pytest.raises(ConfigError, match="seed"):
        create(f"langchain:{HERE}:fake_model", {"seed": 3})


def test_spec_forms() -> None:
    assert is_factory_spec("my_pkg.models:build_chat")
    assert is_factory_spec("models:build")
    assert not is_factory_spec("openai:gpt-4o")
    assert not is_factory_spec("ollama:llama3")  # a provider LangChain knows, not a module
    assert not is_factory_spec("bedrock_converse:anthropic.claude-3-5-sonnet-20240620-v1:0")
    assert not is_factory_spec("gpt-4o")


def test_init_chat_model_errors_say_what_to_install_or_fix() -> None:
    pytest.importorskip("langchain")
    if _installed("langchain_openai"):
        pytest.skip("langchain-openai is installed here")
    with pytest.raises(SetupError, match="pip install langchain-openai"):
        registry.create("langchain:openai:gpt-4o")
    with pytest.raises(ConfigError, match="infer model provider"):
        registry.create("langchain:no-such-family-7b")


def _installed(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


# -- error classification --------------------------------------------------------------------------------


class APIStatusError(Exception):  # shaped like openai/anthropic's
    def __init__(self, message: str, response: httpx.Response) -> None:
        super().__init__(message)
        self.response, self.status_code = response, response.status_code


class RateLimitError(APIStatusError):
    pass


class InternalServerError(APIStatusError):
    pass


class BadRequestError(APIStatusError):
    pass


class APITimeoutError(Exception):
    pass


class ClientError(Exception):  # shaped like botocore's
    def __init__(self, code: str, status: int) -> None:
        super().__init__(f"An error occurred ({code})")
        self.response = {"Error": {"Code": code, "Message": "..."}, "ResponseMetadata": {"HTTPStatusCode": status}}


def _response(status: int, **headers: str) -> httpx.Response:
    return httpx.Response(status, headers=headers, request=httpx.Request("POST", "http://127.0.0.1/v1"))


@pytest.mark.parametrize(("error", "kind", "pattern"), [
    (RateLimitError("slow down", _response(429, **{"retry-after": "7"})), RateLimited, "rate limited"),
    (InternalServerError("boom", _response(500)), TransientError, "500"),
    (BadRequestError("prompt is too long: 250000 tokens > 200000 maximum", _response(400)), FatalError,
     CONTEXT_TOO_LONG),
    (BadRequestError("invalid api key", _response(401)), FatalError, "credentials"),
    (APITimeoutError("Request timed out."), TransientError, "timed out"),
    (ClientError("ThrottlingException", 400), RateLimited, "ThrottlingException"),
    (ClientError("ValidationException", 400), FatalError, "HTTP 400"),
    (httpx.ConnectError("connection refused"), TransientError, "ConnectError"),
    (ConnectionError("Failed to connect to Ollama. Please check..."), SetupError, "ollama serve"),
    (KeyError("weird"), FatalError, "KeyError"),
])
async def test_errors_are_classified(error: Exception, kind: type, pattern: str) -> None:
    provider = create("langchain:failing", chat_model=FailingChatModel(error=error))
    with pytest.raises(kind, match=pattern) as caught:
        await provider.generate(Request(prompt="a note"))
    assert type(caught.value) is kind
    if isinstance(error, RateLimitError) and kind is RateLimited:
        assert caught.value.retry_after == 7.0  # type: ignore[attr-defined]


def test_retry_after_ms_wins() -> None:
    error = convert_error(RateLimitError("x", _response(429, **{"retry-after-ms": "1500", "retry-after": "9"})),
                          spec="langchain:x")
    assert isinstance(error, RateLimited) and error.retry_after == 1.5


async def test_a_model_that_never_answers_times_out_as_transient() -> None:
    provider = create("langchain:slow", {"timeout_s": 0.2}, chat_model=FailingChatModel(delay_s=5))
    with pytest.raises(TransientError, match=r"did not answer within 0\.2 s"):
        await Dispatcher(None, max_attempts=1).generate(provider, Request(prompt="a"))


# -- HTTP level: ChatOllama (langchain-ollama) against the Ollama-protocol fake ---------------------------


@pytest.fixture
def ollama_http(local_http: HTTPServer) -> HTTPServer:
    """The shared fake server (tests/provider_fakes.py), speaking Ollama's protocol in these tests."""
    return local_http


async def test_chat_ollama_over_http(ollama_http: HTTPServer) -> None:
    pytest.importorskip("langchain_ollama")
    fake = OllamaFake(ollama_http, "Knee sprain; no fracture. RICE and PT.")
    provider = create("langchain:ollama:llama3.1:8b",
                      {"max_output_tokens": 200, "model_kwargs": {"base_url": fake.host}})
    generation = await provider.generate(Request(prompt="Summarize: knee pain after a fall."))
    assert generation.text == "Knee sprain; no fracture. RICE and PT."
    assert generation.output_tokens == 7 and generation.input_tokens
    assert provider.local is True  # ChatOllama on loopback
    sent = fake.requests[0]
    assert sent["model"] == "llama3.1:8b"
    assert sent["options"]["num_predict"] == 200 and sent["options"]["temperature"] == 0.0


async def test_chat_ollama_structured_and_remote_is_not_local(ollama_http: HTTPServer) -> None:
    pytest.importorskip("langchain_ollama")
    fake = OllamaFake(ollama_http, json.dumps({"accurate": 3, "errors": ["dose omitted"]}))
    provider = create("langchain:ollama:llama3.1:8b", {"model_kwargs": {"base_url": fake.host}})
    generation = await provider.generate(Request(prompt="Rate it.", json_schema=SCHEMA))
    assert json.loads(generation.text) == {"accurate": 3, "errors": ["dose omitted"]}
    assert fake.requests[0]["format"]["properties"] == SCHEMA["properties"]
    remote = create("langchain:ollama:llama3.1:8b", {"model_kwargs": {"base_url": "http://10.2.3.4:11434"}})
    assert remote.local is False


async def test_chat_ollama_model_not_pulled(ollama_http: HTTPServer) -> None:
    pytest.importorskip("langchain_ollama")
    fake = OllamaFake(ollama_http, known_models=("mistral:7b",))
    provider = create("langchain:ollama:llama3.1:8b", {"model_kwargs": {"base_url": fake.host}})
    with pytest.raises(FatalError, match="404"):
        await provider.generate(Request(prompt="hi"))


@pytest.mark.live
async def test_live_langchain() -> None:
    spec = os.environ.get("CLINSUM_LANGCHAIN_SPEC")  # e.g. openai:gpt-4o-mini, with its API key set
    if not spec:
        pytest.skip("set CLINSUM_LANGCHAIN_SPEC (an init_chat_model spec whose credentials are set)")
    provider = create(f"langchain:{spec}", {"max_output_tokens": 64})
    generation = await provider.generate(Request(prompt="In five words: what is hypertension?"))
    assert generation.text.strip()


# -- end to end: `clinsum run` with a langchain provider next to an ollama one ---------------------------


def test_cli_run_with_langchain_and_ollama_providers(ollama_http: HTTPServer, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from clinsum.cli import app
    from clinsum.store import Store

    OllamaFake(ollama_http, "Ollama summary.")
    ANSWERS.extend(AIMessage(content=f"LangChain summary {i}.", usage_metadata={
        "input_tokens": 100 + i, "output_tokens": 5, "total_tokens": 105 + i}) for i in range(2))
    notes = tmp_path / "notes.jsonl"
    notes.write_text("\n".join(json.dumps({"id": f"n{i}", "text": f"Note {i}: cough and fever, CXR clear."})
                               for i in range(2)) + "\n")
    db = tmp_path / "clinsum.db"
    result = CliRunner().invoke(app, [
        "run", "--notes", str(notes), "--metric", "length", "--db", str(db),
        "--provider", f"langchain:{HERE}:fake_model", "--provider", "ollama:llama3.1:8b",
        "-o", f"ollama:llama3.1:8b.host=http://127.0.0.1:{ollama_http.port}",
    ])
    assert result.exit_code == 0, result.output
    store = Store.open(str(db))
    run_id = store.latest_run_id()
    assert run_id is not None
    by_system: dict[str, list[Any]] = {}
    for summary in store.summaries(run_id):
        by_system.setdefault(summary.system, []).append(summary)
    lc = by_system[f"langchain:{HERE}:fake_model"]
    assert sorted(s.text for s in lc) == ["LangChain summary 0.", "LangChain summary 1."]
    assert sorted(s.usage.input_tokens for s in lc) == [100, 101]
    assert all(s.latency_s is not None and s.ok for s in lc)
    assert [s.text for s in by_system["ollama:llama3.1:8b"]] == ["Ollama summary."] * 2
