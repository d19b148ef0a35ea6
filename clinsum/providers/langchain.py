"""``langchain:SPEC``: any LangChain chat model, the door to every provider LangChain supports.

Two spec forms:

- ``langchain:openai:gpt-4o``, ``langchain:bedrock_converse:anthropic.claude-...``: the
  part after ``langchain:`` goes to ``init_chat_model``; the integration package
  (``langchain-openai``, ``langchain-aws``...) must be installed.
- ``langchain:my_pkg.models:build_chat``: ``module.path:factory``, a function returning
  any ``BaseChatModel``. It is called with the keyword arguments it declares among
  ``temperature``, ``max_tokens``, ``timeout``, ``max_retries`` and the
  ``model_kwargs`` option (all of them if it takes ``**kwargs``), else with none.

clinsum's options become LangChain's standard parameters (``temperature``,
``max_tokens``, ``timeout``, ``max_retries=0``: the dispatcher alone retries),
renamed for integrations that spell them differently (``num_predict`` for
``ChatOllama``). ``seed`` is not a standard parameter: put it in ``model_kwargs``
if the integration knows it.

Structured output uses ``with_structured_output(schema, include_raw=True)`` with the
integration's own method (override with ``structured_method``) and returns the
parsed object as JSON text. A model without native structured output gets the
schema in the prompt instead, and its raw text is returned for the caller to
validate (never repaired here).

LangChain does not unify errors, so ``convert_error`` reads the status code,
``Retry-After`` header and exception class names the common SDKs use
(openai, anthropic, httpx, botocore, google.api_core, ollama). Anything unknown is a
FatalError naming the exception type: a clear failure, never a silent retry loop.

``local`` is True only for ``ChatOllama`` pointed at a loopback host.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import json
import logging
import os
import re
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import Field

from clinsum.errors import (
    ClinsumError,
    ConfigError,
    FatalError,
    ProviderError,
    RateLimited,
    SetupError,
    TransientError,
)
from clinsum.offline import is_loopback_host
from clinsum.providers.base import BaseProvider, Generation, ProviderOptions, Request
from clinsum.providers.common import (
    CONTEXT_TOO_LONG,
    already_classified,
    classify_http,
    cost_usd,
    is_context_overflow,
    price_overrides,
    require,
    retry_after_of,
    timed,
)

log = logging.getLogger(__name__)

_FACTORY_SPEC = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*$")

STANDARD_ALIASES: dict[str, tuple[str, ...]] = {
    "temperature": ("temperature",),
    "max_tokens": ("max_tokens", "num_predict", "max_output_tokens", "max_new_tokens"),
    "timeout": ("timeout", "request_timeout", "default_request_timeout"),
    "max_retries": ("max_retries",),
}
"""clinsum's standard parameter -> the field names integrations use for it, first match wins."""

PRICE_TABLE_PROVIDER = {"anthropic": "anthropic", "google_vertexai": "vertex"}
"""init_chat_model providers whose calls are billed like our own adapter's (same API, same price)."""

STRUCTURED_FALLBACK = (
    "\n\nAnswer with a single JSON object, and nothing else, that matches this JSON schema:\n{schema}"
)


class LangChainOptions(ProviderOptions):
    model_kwargs: dict[str, Any] = Field(default_factory=dict)
    """Extra keyword arguments for ``init_chat_model`` or the factory (``base_url``, ``region_name``...)."""
    structured_method: str | None = None
    """``method=`` for ``with_structured_output`` (``json_schema``, ``function_calling``,
    ``json_mode``); None keeps the integration's default."""
    prices: dict[str, Any] | None = None
    """Price overrides (``provider:model`` -> price, or one price for this spec)."""


def is_factory_spec(spec: str) -> bool:
    """``module.path:factory`` rather than an ``init_chat_model`` spec (``openai:gpt-4o``)."""
    if not _FACTORY_SPEC.match(spec):
        return False
    prefix = spec.split(":", 1)[0]
    return prefix not in init_chat_model_providers()


def init_chat_model_providers() -> set[str]:
    try:
        from langchain.chat_models.base import _BUILTIN_PROVIDERS

        return set(_BUILTIN_PROVIDERS)
    except ImportError:  # langchain missing or reorganised: every known prefix still works
        return {"openai", "anthropic", "azure_openai", "bedrock", "bedrock_converse", "google_vertexai",
                "google_genai", "ollama", "groq", "mistralai", "cohere", "fireworks", "together"}


class LangChainProvider(BaseProvider):
    """Calls a LangChain ``BaseChatModel`` with ``ainvoke``."""

    options_model = LangChainOptions
    options: LangChainOptions

    def __init__(self, spec: str, options: ProviderOptions | dict[str, Any] | None = None,
                 *, chat_model: Any | None = None) -> None:
        super().__init__(spec, options)
        if self.options.seed is not None and "seed" not in self.options.model_kwargs:
            raise ConfigError(
                f"'{spec}': LangChain has no portable seed parameter; put seed in model_kwargs "
                "if this integration supports it (model_kwargs={\"seed\": ...})"
            )
        self.prices = price_overrides(spec, self.options.prices)
        self.factory_form = is_factory_spec(self.model)
        self._models: dict[float, Any] = {}
        self._structured: dict[tuple[float, str], Any] = {}
        base = chat_model if chat_model is not None else self.build(self.options.temperature)
        self._models[self.options.temperature] = base
        self.chat_class = type(base).__name__
        self.local = _is_local_model(base)
        self.endpoint = endpoint_of(base)

    # -- building ------------------------------------------------------------------------------

    def build(self, temperature: float) -> Any:
        """A chat model for this spec at ``temperature``; errors say how to fix them."""
        require("langchain_core", "langchain")
        standard: dict[str, Any] = {
            "temperature": temperature,
            "max_tokens": self.options.max_output_tokens,
            "timeout": self.options.timeout_s,
            "max_retries": 0,
        }
        try:
            if self.factory_form:
                return self._from_factory(standard)
            return self._from_init_chat_model(standard)
        except ClinsumError:
            raise
        except ImportError as exc:
            raise SetupError(f"cannot build '{self.spec}': {exc}") from exc
        except ValueError as exc:
            raise ConfigError(f"cannot build '{self.spec}': {exc}") from exc
        except Exception as exc:  # typically missing credentials, raised by the SDK client
            raise SetupError(
                f"cannot build '{self.spec}': {type(exc).__name__}: {exc} "
                "(check the integration's credentials, for example OPENAI_API_KEY)"
            ) from exc

    def _from_init_chat_model(self, standard: dict[str, Any]) -> Any:
        init_chat_model = require("langchain.chat_models", "langchain").init_chat_model
        user = dict(self.options.model_kwargs)
        probe = init_chat_model(self.model, **user)
        return init_chat_model(self.model, **{**_rename_for(type(probe), standard), **user})

    def _from_factory(self, standard: dict[str, Any]) -> Any:
        factory = _load_factory(self.model)
        offered = {**standard, **self.options.model_kwargs}
        try:
            params = inspect.signature(factory).parameters
        except (TypeError, ValueError):
            params = {}  # type: ignore[assignment]
        if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
            kwargs = offered
        else:
            kwargs = {k: v for k, v in offered.items() if k in params}
        model = factory(**kwargs)
        base_chat_model = require("langchain_core.language_models", "langchain").BaseChatModel
        if not isinstance(model, base_chat_model):
            raise ConfigError(f"'{self.spec}': the factory returned {type(model).__name__}, not a BaseChatModel")
        return model

    def model_at(self, temperature: float) -> Any:
        if temperature not in self._models:
            if self.factory_form and "temperature" not in _factory_params(self.model):
                log.warning("%s: the factory takes no temperature; using the model's own", self.spec)
                self._models[temperature] = self._models[self.options.temperature]
            else:
                self._models[temperature] = self.build(temperature)
        return self._models[temperature]

    def structured_at(self, temperature: float, schema: dict[str, Any]) -> Any | None:
        """The model bound to ``schema`` (raw message included), or None if it has no native way."""
        key = (temperature, json.dumps(schema, sort_keys=True))
        if key not in self._structured:
            kwargs: dict[str, Any] = {"include_raw": True}
            if self.options.structured_method:
                kwargs["method"] = self.options.structured_method
            named = schema if "title" in schema else {"title": "clinsum_answer", **schema}
            try:
                self._structured[key] = self.model_at(temperature).with_structured_output(named, **kwargs)
            except NotImplementedError:
                self._structured[key] = None
        return self._structured[key]

    # -- calling -------------------------------------------------------------------------------

    async def generate(self, request: Request) -> Generation:
        temperature = self.temperature_for(request)
        system = self.system_for(request)
        prompt = request.prompt
        structured = None
        if request.json_schema is not None:
            structured = self.structured_at(temperature, request.json_schema)
            if structured is None:
                prompt += STRUCTURED_FALLBACK.format(schema=json.dumps(request.json_schema))
        messages = ([("system", system)] if system else []) + [("human", prompt)]
        runnable = structured if structured is not None else self.model_at(temperature)
        with timed() as clock:
            try:
                result = await asyncio.wait_for(runnable.ainvoke(messages), timeout=self.options.timeout_s)
            except TimeoutError as exc:
                raise TransientError(
                    f"'{self.spec}' did not answer within {self.options.timeout_s:g} s"
                ) from exc
            except Exception as exc:
                raise convert_error(exc, spec=self.spec) from exc
        if structured is not None:
            raw, text = _structured_text(result)
        else:
            raw, text = result, _message_text(result)
        return self.to_generation(raw, text, latency_s=clock.seconds)

    def to_generation(self, raw: Any, text: str, *, latency_s: float | None) -> Generation:
        usage = getattr(raw, "usage_metadata", None) or {}
        metadata = getattr(raw, "response_metadata", None) or {}
        input_tokens, output_tokens = usage.get("input_tokens"), usage.get("output_tokens")
        answered_by = metadata.get("model_name") or metadata.get("model") or metadata.get("model_id")
        return Generation(
            text=text,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cost_usd=self.cost(answered_by, input_tokens, output_tokens),
            latency_s=latency_s,
            request_id=_request_id(raw, metadata),
            model=answered_by or self.model,
        )

    def cost(self, answered_by: str | None, input_tokens: int | None, output_tokens: int | None) -> float | None:
        priced = cost_usd("langchain", self.model, input_tokens, output_tokens, self.prices)
        if priced is not None or self.factory_form:
            return priced
        prefix, sep, model = self.model.partition(":")
        table = PRICE_TABLE_PROVIDER.get(prefix) if sep else None
        if table is None:
            return None
        return cost_usd(table, answered_by or model, input_tokens, output_tokens, self.prices)


# -- helpers ---------------------------------------------------------------------------------------


def _rename_for(cls: type, standard: Mapping[str, Any]) -> dict[str, Any]:
    """The standard parameters under the names ``cls`` declares; those it lacks are left out."""
    fields = getattr(cls, "model_fields", {})
    names = set(fields) | {f.alias for f in fields.values() if getattr(f, "alias", None)}
    kwargs: dict[str, Any] = {}
    for key, value in standard.items():
        target = next((n for n in STANDARD_ALIASES[key] if n in names), None)
        if target is not None:
            kwargs[target] = value
        elif key == "timeout" and "client_kwargs" in names:  # ChatOllama passes these to httpx
            kwargs["client_kwargs"] = {"timeout": value}
        else:
            log.debug("%s has no parameter for %s; not set", cls.__name__, key)
    return kwargs


def _load_factory(target: str) -> Callable[..., Any]:
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"langchain factory '{target}': cannot import '{module_name}' ({exc})") from exc
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise ConfigError(f"langchain factory '{target}': '{module_name}' has no callable '{attr}'")
    return factory


def _factory_params(target: str) -> set[str]:
    try:
        params = inspect.signature(_load_factory(target)).parameters
    except (TypeError, ValueError):
        return set()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return set(STANDARD_ALIASES)
    return set(params)


_ENDPOINT_FIELDS = ("base_url", "openai_api_base", "anthropic_api_url", "azure_endpoint", "endpoint_url",
                    "api_base", "region_name", "region", "project", "location", "deployment_name")
"""Chat model attributes that say where calls go, across the common integrations."""


def endpoint_of(model: Any) -> str:
    """The chat class and the endpoint attributes it resolved (from kwargs or its environment)."""
    found = {name: str(value) for name in _ENDPOINT_FIELDS
             if isinstance(value := getattr(model, name, None), str | int | float) and value != ""}
    if type(model).__name__ == "ChatOllama":  # no base_url means OLLAMA_HOST, then the default
        from clinsum.providers.ollama import resolve_host

        found["base_url"] = resolve_host(getattr(model, "base_url", None))
    return f"{type(model).__name__} " + " ".join(f"{k}={v}" for k, v in sorted(found.items()))


def _is_local_model(model: Any) -> bool:
    """Conservative: only ``ChatOllama`` pointed at a loopback host is local."""
    if type(model).__name__ != "ChatOllama":
        return False
    from clinsum.providers.ollama import resolve_host

    return is_loopback_host(resolve_host(getattr(model, "base_url", None)))


def _message_text(message: Any) -> str:
    text = getattr(message, "text", None)
    if isinstance(text, str):
        return text
    content = getattr(message, "content", message)
    return content if isinstance(content, str) else json.dumps(content)


def _structured_text(result: Any) -> tuple[Any, str]:
    """JSON text of a structured answer: the parsed object, else the tool arguments, else the raw text."""
    if not isinstance(result, dict) or "raw" not in result:
        return None, json.dumps(result.model_dump() if hasattr(result, "model_dump") else result)
    raw, parsed = result["raw"], result.get("parsed")
    if parsed is not None:
        return raw, json.dumps(parsed.model_dump() if hasattr(parsed, "model_dump") else parsed)
    if _stopped_at_token_limit(raw):
        raise FatalError(
            "the structured answer was cut off at max_output_tokens before the JSON was complete; "
            "raise max_output_tokens"
        )
    tool_calls = getattr(raw, "tool_calls", None) or []
    if tool_calls:
        return raw, json.dumps(tool_calls[0].get("args", {}))
    return raw, _message_text(raw)


def _stopped_at_token_limit(raw: Any) -> bool:
    """The stop reasons integrations report when the output token limit was hit."""
    metadata = getattr(raw, "response_metadata", None) or {}
    reasons = {str(metadata.get(k, "")).lower() for k in ("finish_reason", "stop_reason", "done_reason")}
    return bool(reasons & {"length", "max_tokens"})


def _request_id(raw: Any, metadata: Mapping[str, Any]) -> str | None:
    for key in ("id", "request_id", "response_id", "RequestId"):
        value = metadata.get(key)
        if isinstance(value, str) and value:
            return value
    headers = metadata.get("ResponseMetadata", {})
    if isinstance(headers, dict) and headers.get("RequestId"):
        return str(headers["RequestId"])
    message_id = getattr(raw, "id", None)
    if isinstance(message_id, str) and not message_id.startswith(("run-", "lc_run")):
        return message_id
    return None


# -- errors ----------------------------------------------------------------------------------------


def _status_of(exc: BaseException) -> int | None:
    for candidate in (getattr(exc, "status_code", None), getattr(getattr(exc, "response", None), "status_code", None),
                      getattr(exc, "code", None), getattr(exc, "status", None)):
        if isinstance(candidate, int) and 100 <= candidate <= 599:
            return candidate
    response = getattr(exc, "response", None)
    if isinstance(response, dict):  # botocore ClientError
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if isinstance(status, int):
            return status
    return None


def convert_error(exc: BaseException, *, spec: str) -> ProviderError:
    """Classify an exception raised by any LangChain integration (see the module docstring)."""
    known = already_classified(exc)
    if known is not None:
        return known
    names = " ".join(c.__name__ for c in type(exc).__mro__)
    message = str(exc)
    response = getattr(exc, "response", None)
    code = response.get("Error", {}).get("Code", "") if isinstance(response, dict) else ""
    what = f"{type(exc).__name__}: {message}"
    if re.search(r"RateLimit|TooManyRequests|ResourceExhausted|Throttl", f"{names} {code}"):
        return RateLimited(f"'{spec}' rate limited ({what})", retry_after=retry_after_of(exc))
    status = _status_of(exc)
    if status is not None:
        return classify_http(status, f"{what}", retry_after_of(exc), model=spec)
    if "Failed to connect to Ollama" in message:
        return SetupError(f"'{spec}': Ollama is not running: start it with `ollama serve` ({message})")
    if re.search(r"Timeout|TimedOut|DeadlineExceeded", names):
        return TransientError(f"'{spec}' timed out ({what})")
    if re.search(r"Connect|ServiceUnavailable|InternalServer|Overloaded|RemoteProtocol|ReadError", names):
        return TransientError(f"'{spec}' connection or server failure ({what})")
    if re.search(r"Authentication|PermissionDenied|Unauthori[sz]ed|Forbidden", names):
        return FatalError(f"'{spec}' credentials rejected; check the integration's API key ({what})")
    if is_context_overflow(message):
        return FatalError(f"{CONTEXT_TOO_LONG}; shorten or split the note ({what})")
    return FatalError(f"'{spec}' failed with an error clinsum does not know how to classify ({what})")


def create(spec: str, options: dict[str, Any] | None = None, *, chat_model: Any | None = None) -> LangChainProvider:
    """Registry factory for ``langchain:SPEC``; ``chat_model`` injects a ready-made ``BaseChatModel``."""
    require("langchain_core", "langchain")
    if any(os.environ.get(v, "").lower() == "true" for v in ("LANGSMITH_TRACING", "LANGCHAIN_TRACING_V2")):
        log.warning("LANGSMITH_TRACING is on: LangChain will send every prompt (with its note) to LangSmith")
    return LangChainProvider(spec, options, chat_model=chat_model)
