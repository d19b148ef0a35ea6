"""``anthropic:MODEL``: Claude through the Messages API (``anthropic.AsyncAnthropic``).

Credentials and endpoint follow the SDK's own conventions: ``ANTHROPIC_API_KEY``
(or any other credential the SDK resolves: ``ANTHROPIC_AUTH_TOKEN``, a profile)
and ``ANTHROPIC_BASE_URL``. The SDK's own retries are switched off
(``max_retries=0``): the dispatcher alone retries, on the errors classified here.

Structured output (``Request.json_schema``) uses the Messages API's native JSON
outputs (``output_config.format``, schema prepared by ``anthropic.transform_schema``)
on models that support them, and a forced tool call on older models, whose input
is returned as JSON text. ``structured_output`` in the options picks one by hand.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

from clinsum.errors import FatalError, ProviderError, SetupError, TransientError
from clinsum.providers.base import BaseProvider, Generation, ProviderOptions, Request
from clinsum.providers.common import (
    CONTEXT_TOO_LONG,
    already_classified,
    classify_http,
    cost_usd,
    price_overrides,
    require,
    retry_after_of,
    timed,
)

if TYPE_CHECKING:
    from clinsum.providers.anthropic_batch import AnthropicBatch

VERDICT_TOOL = "record_verdict"
"""Name of the forced tool that carries structured output on models without JSON outputs."""

CREDENTIALS_HINT = "ANTHROPIC_API_KEY (export ANTHROPIC_API_KEY=...)"

# Models before the 4.5 generation have no native JSON outputs: use a forced tool.
_TOOL_ONLY_MODELS = re.compile(r"^claude-(3|2|instant|opus-4(-0|-1)?$|sonnet-4(-0)?$)")
_DATE_SUFFIX = re.compile(r"[-@]\d{8}$")


class AnthropicOptions(ProviderOptions):
    """Options for ``anthropic:MODEL``.

    ``temperature`` and ``seed`` are accepted (so one config can name several
    providers) but never sent: the Messages API version the SDK speaks
    (``2026-10-21``) refuses sampling parameters on every model, and has never had
    a seed. Claude's answers are therefore not reproducible call to call; the
    response cache is what makes a re-run stable.
    """

    max_output_tokens: int = 4096
    """``max_tokens``; thinking counts against it on models that think (Opus 5.5 always
    does), so the default leaves room for thinking plus a summary."""
    effort: Literal["low", "medium", "high", "xhigh", "max"] | None = None
    """``output_config.effort``: how much the model thinks; None keeps the model's default."""
    structured_output: Literal["auto", "json_schema", "tool"] = "auto"
    """How a JSON schema is enforced: native JSON outputs, a forced tool, or chosen by model."""
    base_url: str | None = None
    """Overrides ``ANTHROPIC_BASE_URL`` (a gateway or proxy); never a credential."""
    prices: dict[str, Any] | None = None
    """Price overrides: one price for this spec, or ``provider:model`` -> price."""


def structured_mode(model: str, setting: str) -> Literal["json_schema", "tool"]:
    """Which mechanism enforces a schema for ``model`` under the ``structured_output`` setting."""
    if setting == "json_schema":
        return "json_schema"
    if setting == "tool":
        return "tool"
    return "tool" if _TOOL_ONLY_MODELS.match(_DATE_SUFFIX.sub("", model)) else "json_schema"


class AnthropicProvider(BaseProvider):
    """Claude via ``AsyncAnthropic.messages.create``."""

    options_model = AnthropicOptions
    local = False
    options: AnthropicOptions

    def batch(self, *, poll_interval_s: float, max_wait_s: float | None) -> AnthropicBatch:
        """The Message Batches API for this provider (``clinsum run --batch``)."""
        from clinsum.providers.anthropic_batch import AnthropicBatch

        return AnthropicBatch(self, poll_interval_s=poll_interval_s, max_wait_s=max_wait_s)

    def __init__(
        self,
        spec: str,
        options: ProviderOptions | dict[str, Any] | None = None,
        *,
        client: Any | None = None,
        prices: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        super().__init__(spec, options)
        self.prices = price_overrides(spec, self.options.prices, prices)
        self.client = client if client is not None else build_client(self.options)
        # the SDK resolves ANTHROPIC_BASE_URL; read where the client really sends
        self.endpoint = str(getattr(self.client, "base_url", None) or self.options.base_url
                            or os.environ.get("ANTHROPIC_BASE_URL") or "https://api.anthropic.com")

    def request_params(self, request: Request) -> dict[str, Any]:
        """The keyword arguments of ``messages.create`` for one request (also used by batches)."""
        params: dict[str, Any] = {
            "model": self.model,
            "max_tokens": self.options.max_output_tokens,
            "messages": [{"role": "user", "content": request.prompt}],
        }
        system = self.system_for(request)
        if system:
            params["system"] = system
        output_config: dict[str, Any] = {}
        if self.options.effort is not None:
            output_config["effort"] = self.options.effort
        if request.json_schema is not None:
            if structured_mode(self.model, self.options.structured_output) == "json_schema":
                anthropic = require("anthropic", "anthropic")
                output_config["format"] = {
                    "type": "json_schema",
                    "schema": anthropic.transform_schema(request.json_schema),
                }
            else:
                params["tools"] = [
                    {
                        "name": VERDICT_TOOL,
                        "description": "Record the answer. Call this exactly once with the complete answer.",
                        "input_schema": request.json_schema,
                    }
                ]
                params["tool_choice"] = {"type": "tool", "name": VERDICT_TOOL}
        if output_config:
            params["output_config"] = output_config
        return params

    async def generate(self, request: Request) -> Generation:
        params = self.request_params(request)
        with timed() as clock:
            try:
                message = await self.client.messages.create(**params)
            except Exception as exc:
                raise convert_error(exc, model=self.model) from exc
        return self.to_generation(message, request, latency_s=clock.seconds)

    def to_generation(self, message: Any, request: Request, *, latency_s: float | None) -> Generation:
        """Read text, usage, ids and cost from a ``Message`` (live or from a batch result)."""
        text = answer_text(message, structured=request.json_schema is not None)
        usage = getattr(message, "usage", None)
        input_tokens = getattr(usage, "input_tokens", None)
        output_tokens = getattr(usage, "output_tokens", None)
        answered_by = getattr(message, "model", None) or None
        cost = cost_usd("anthropic", self.model, input_tokens, output_tokens, self.prices)
        if cost is None and answered_by:
            cost = cost_usd("anthropic", answered_by, input_tokens, output_tokens, self.prices)
        return Generation(
            text=text,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cost_usd=cost,
            latency_s=latency_s,
            request_id=getattr(message, "_request_id", None) or getattr(message, "id", None),
            model=answered_by,
        )


def answer_text(message: Any, *, structured: bool) -> str:
    """The answer in a Message: the forced tool's input as JSON, else the text blocks joined.

    Raises FatalError for answers that cannot be used: a refusal, a context
    overflow, an answer cut off by the token limit (a truncated summary would be
    scored as if complete). An empty text is returned as it is: a model that said
    nothing gave an answer, which the runner scores and flags (``empty_summary``).
    """
    stop = getattr(message, "stop_reason", None)
    if stop == "refusal":
        raise FatalError("the model refused to answer (stop_reason=refusal)")
    if stop == "model_context_window_exceeded":
        raise FatalError(f"{CONTEXT_TOO_LONG} (stop_reason=model_context_window_exceeded)")
    blocks = getattr(message, "content", None)
    if not isinstance(blocks, list):
        raise TransientError("malformed response from the Messages API: no 'content' list")
    if stop == "max_tokens":
        what = "the JSON answer" if structured else "the answer"
        raise FatalError(f"{what} was cut off at max_output_tokens (stop_reason=max_tokens); raise max_output_tokens")
    for block in blocks:
        if getattr(block, "type", None) == "tool_use" and getattr(block, "name", None) == VERDICT_TOOL:
            return json.dumps(getattr(block, "input", None), ensure_ascii=False)
    text = "".join(getattr(block, "text", "") for block in blocks if getattr(block, "type", None) == "text")
    return text  # empty is an answer: the runner scores and flags it (empty_summary)


def build_client(options: AnthropicOptions) -> Any:
    """An ``AsyncAnthropic`` with SDK retries off, our timeout, and SDK-resolved credentials."""
    anthropic = require("anthropic", "anthropic")
    kwargs: dict[str, Any] = {"max_retries": 0, "timeout": options.timeout_s}
    if options.base_url:
        kwargs["base_url"] = options.base_url
    try:
        client = anthropic.AsyncAnthropic(**kwargs)
    except anthropic.AnthropicError as exc:
        raise SetupError(f"cannot build the Anthropic client: {exc}; {CREDENTIALS_HINT}") from exc
    if not (client.api_key or client.auth_token or getattr(client, "credentials", None)):
        raise SetupError("no Anthropic credentials found; fix: export ANTHROPIC_API_KEY=...")
    return client


def convert_error(exc: Exception, *, model: str | None = None) -> ProviderError:
    """Turn an ``anthropic`` SDK exception into one of ours (see ``clinsum.errors``)."""
    known = already_classified(exc)
    if known is not None:
        return known
    anthropic = require("anthropic", "anthropic")
    if isinstance(exc, anthropic.APITimeoutError):
        return TransientError(f"the Anthropic API did not answer in time ({exc})")
    if isinstance(exc, anthropic.APIConnectionError):
        return TransientError(f"cannot reach the Anthropic API ({exc.__cause__ or exc})")
    if isinstance(exc, anthropic.APIStatusError):
        message = exc.api_message if getattr(exc, "api_message", None) else exc.message
        error = classify_http(
            exc.status_code,
            str(message),
            retry_after_of(exc),
            credentials=CREDENTIALS_HINT,
            model=model,
        )
        if exc.request_id:
            error.args = (f"{error.args[0]} [request-id {exc.request_id}]",)
        return error
    if isinstance(exc, anthropic.APIResponseValidationError):
        return TransientError(f"malformed response from the Anthropic API ({exc})")
    if isinstance(exc, json.JSONDecodeError | ValueError):
        return TransientError(f"malformed response from the Anthropic API ({exc})")
    if isinstance(exc, anthropic.AnthropicError):
        return FatalError(f"Anthropic SDK error: {exc}")
    return FatalError(f"unexpected error calling the Anthropic API: {type(exc).__name__}: {exc}")


def create(
    spec: str,
    options: dict[str, Any] | None = None,
    *,
    client: Any | None = None,
    prices: Mapping[str, Mapping[str, Any]] | None = None,
) -> AnthropicProvider:
    """Registry factory for ``anthropic:MODEL``; ``client`` injects a ready-made ``AsyncAnthropic``."""
    return AnthropicProvider(spec, options, client=client, prices=prices)
