"""``ollama:MODEL``: a model served by Ollama, through ``ollama.AsyncClient`` and ``/api/chat``.

The host comes from the ``host`` option, else ``OLLAMA_HOST``, else
``http://127.0.0.1:11434``. The provider is ``local`` (usable offline) only
when that host is a loopback address.

Errors, classified for the dispatcher:

    connection refused          -> SetupError "Ollama is not running at HOST: start it with `ollama serve`"
                                   (fatal: a loopback server that refuses connections is absent, not
                                   busy; retrying would only delay every note's clear error)
    404 / "model ... not found" -> SetupError "run `ollama pull MODEL`"
    context overflow            -> FatalError (CONTEXT_TOO_LONG): the prompt is longer than num_ctx
    429 / 5xx                   -> RateLimited / TransientError (``classify_http``)
    timeout, connection reset   -> TransientError
    malformed body              -> TransientError

Ollama does not refuse a prompt longer than its context window: it silently
drops tokens and answers about what is left. That would be a wrong summary
stored as a good one, so this provider always sends ``num_ctx`` (8192 unless
set) and fails the note when the prompt is obviously longer than ``num_ctx``
before sending it, or when ``prompt_eval_count`` shows the window was filled.

Cost: 0.0 for a loopback host (no per-token charge; the local compute is not
priced), unless a price override for the model exists; None for a remote host
without an override (whoever runs it may charge; clinsum does not guess).
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

from pydantic import Field, ValidationError

from clinsum.errors import FatalError, ProviderError, SetupError, TransientError
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
    timed,
)

DEFAULT_HOST = "http://127.0.0.1:11434"
DEFAULT_NUM_CTX = 8192

CHARS_PER_TOKEN_UPPER = 6.0
"""No tokenizer in common use averages more than ~6 characters per token on clinical
English, so ``len(prompt) / 6`` is a lower bound on its tokens: a prompt above
``num_ctx`` by this bound is certainly too long and is refused before sending."""

CONTEXT_FILLED_MARGIN = 8
"""A prompt whose evaluated tokens come this close to ``num_ctx`` was (or may have been)
cut by Ollama's silent truncation."""


class OllamaOptions(ProviderOptions):
    host: str | None = None
    """Ollama server URL; default ``OLLAMA_HOST``, then http://127.0.0.1:11434."""
    num_ctx: int = Field(default=DEFAULT_NUM_CTX, gt=0)
    """Context window in tokens, always sent: Ollama's own default is small and
    version-dependent, and a prompt longer than it is truncated without an error."""
    keep_alive: str | float | None = None
    """How long the model stays loaded after a call (``"5m"``, seconds, ``-1`` forever)."""
    think: bool | None = None
    """For reasoning models: whether to think first (the thinking is not part of the text)."""
    prices: dict[str, Any] | None = None
    """Price overrides (``provider:model`` -> price, or one price for this spec)."""


def resolve_host(option: str | None) -> str:
    """The base URL the SDK will use: option, ``OLLAMA_HOST``, default; normalised by the SDK's rules."""
    raw = option or os.environ.get("OLLAMA_HOST") or DEFAULT_HOST
    try:
        from ollama._client import _parse_host  # the SDK's own rules, so we check what it will use

        parsed: str = _parse_host(raw)
        return parsed
    except ImportError:  # pragma: no cover - SDK missing: create() raises SetupError anyway
        return raw if "://" in raw else f"http://{raw}"


class OllamaProvider(BaseProvider):
    """Chat with an Ollama model; ``format=<JSON schema>`` for structured output."""

    options_model = OllamaOptions
    options: OllamaOptions

    def __init__(self, spec: str, options: ProviderOptions | dict[str, Any] | None = None,
                 *, client: Any | None = None) -> None:
        super().__init__(spec, options)
        self.host = resolve_host(self.options.host)
        self.endpoint = self.host
        self.local = is_loopback_host(self.host)
        self.prices = price_overrides(spec, self.options.prices)
        self._client = client
        self._loop_client: tuple[asyncio.AbstractEventLoop, Any] | None = None

    def client(self) -> Any:
        """The injected client, or one ``AsyncClient`` per running event loop (httpx pools are loop-bound)."""
        if self._client is not None:
            return self._client
        loop = asyncio.get_running_loop()
        if self._loop_client is None or self._loop_client[0] is not loop:
            ollama = require("ollama", "ollama")
            self._loop_client = (loop, ollama.AsyncClient(host=self.host, timeout=self.options.timeout_s))
        return self._loop_client[1]

    def chat_params(self, request: Request) -> dict[str, Any]:
        messages = []
        system = self.system_for(request)
        if system:
            messages.append({"role": "system", "content": system})
        messages.append({"role": "user", "content": request.prompt})
        model_options: dict[str, Any] = {
            "temperature": self.temperature_for(request),
            "num_predict": self.options.max_output_tokens,
            "num_ctx": self.options.num_ctx,
        }
        if self.options.seed is not None:
            model_options["seed"] = self.options.seed + request.sample
        params: dict[str, Any] = {"model": self.model, "messages": messages, "options": model_options}
        if request.json_schema is not None:
            params["format"] = request.json_schema
        if self.options.keep_alive is not None:
            params["keep_alive"] = self.options.keep_alive
        if self.options.think is not None:
            params["think"] = self.options.think
        return params

    def check_prompt_fits(self, params: dict[str, Any]) -> None:
        chars = sum(len(m["content"]) for m in params["messages"])
        at_least = int(chars / CHARS_PER_TOKEN_UPPER)
        if at_least >= self.options.num_ctx:
            raise FatalError(
                f"{CONTEXT_TOO_LONG}: the prompt is {chars} characters, at least {at_least} tokens, "
                f"and num_ctx is {self.options.num_ctx}; raise the num_ctx option (if the model supports "
                "it) or shorten the note. Not sent: Ollama would silently truncate it."
            )

    async def generate(self, request: Request) -> Generation:
        params = self.chat_params(request)
        self.check_prompt_fits(params)
        with timed() as clock:
            try:
                response = await self.client().chat(**params)
            except Exception as exc:
                raise self.convert_error(exc) from exc
        return self.to_generation(response, latency_s=clock.seconds, structured=request.json_schema is not None)

    def to_generation(self, response: Any, *, latency_s: float | None, structured: bool = False) -> Generation:
        prompt_tokens = response.prompt_eval_count
        output_tokens = response.eval_count
        num_ctx = self.options.num_ctx
        if prompt_tokens is not None and prompt_tokens >= num_ctx - CONTEXT_FILLED_MARGIN:
            raise FatalError(
                f"{CONTEXT_TOO_LONG}: Ollama evaluated {prompt_tokens} prompt tokens with num_ctx "
                f"{num_ctx}, so it silently truncated the prompt; the answer would be about part of the "
                "note. Raise the num_ctx option or shorten the note."
            )
        text = response.message.content if response.message is not None else None
        if text is None:
            raise TransientError(f"Ollama at {self.host} returned no message content")
        if structured and response.done_reason == "length":
            raise FatalError(
                "the structured answer was cut off at max_output_tokens before the JSON was complete; "
                "raise max_output_tokens"
            )
        return Generation(
            text=text,
            input_tokens=prompt_tokens,
            output_tokens=output_tokens,
            cost_usd=self.cost(prompt_tokens, output_tokens),
            latency_s=latency_s,
            request_id=None,  # Ollama has no request id
            model=response.model or self.model,
        )

    def cost(self, input_tokens: int | None, output_tokens: int | None) -> float | None:
        priced = cost_usd("ollama", self.model, input_tokens, output_tokens, self.prices)
        if priced is not None or not self.local:
            return priced
        return 0.0 if input_tokens is not None and output_tokens is not None else None

    def convert_error(self, exc: Exception) -> ProviderError:
        """Turn an ``ollama``/``httpx`` exception into one of ours."""
        known = already_classified(exc)
        if known is not None:
            return known
        ollama = require("ollama", "ollama")
        import httpx

        if isinstance(exc, ollama.ResponseError):
            return self.classify_response_error(exc.status_code, str(exc.error))
        if isinstance(exc, ConnectionError):  # the SDK turns httpx.ConnectError into this
            return SetupError(
                f"Ollama is not running at {self.host}: start it with `ollama serve` "
                "(or set OLLAMA_HOST / the host option to where it runs)"
            )
        if isinstance(exc, httpx.TimeoutException):
            return TransientError(
                f"Ollama at {self.host} did not answer within {self.options.timeout_s:g} s "
                f"({type(exc).__name__}); a large model may still be loading"
            )
        if isinstance(exc, httpx.TransportError):
            return TransientError(f"connection to Ollama at {self.host} failed: {type(exc).__name__}: {exc}")
        if isinstance(exc, json.JSONDecodeError | ValidationError):
            return TransientError(f"Ollama at {self.host} returned a malformed body ({type(exc).__name__})")
        return FatalError(f"unexpected error calling Ollama at {self.host}: {type(exc).__name__}: {exc}")

    def classify_response_error(self, status: int, message: str) -> ProviderError:
        if status == 404 or ("not found" in message.lower() and "model" in message.lower()):
            return SetupError(
                f"model '{self.model}' is not available at {self.host}: run `ollama pull {self.model}` "
                f"(Ollama said: {message})"
            )
        if is_context_overflow(message):
            return FatalError(
                f"{CONTEXT_TOO_LONG}; raise num_ctx or shorten the note (Ollama said: {message})"
            )
        if status < 0:  # an error inside a 200 body
            return FatalError(f"Ollama at {self.host} reported an error: {message}")
        return classify_http(status, message, None, model=self.model)


def create(spec: str, options: dict[str, Any] | None = None, *, client: Any | None = None) -> OllamaProvider:
    """Registry factory for ``ollama:MODEL``; ``client`` injects a ready-made ``ollama.AsyncClient``."""
    if client is None:
        require("ollama", "ollama")
    return OllamaProvider(spec, options, client=client)
