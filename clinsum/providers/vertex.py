"""``vertex:MODEL``: Gemini on Vertex AI through ``google-genai`` in Vertex mode.

``genai.Client(vertexai=True, project=..., location=...)`` with Google
Application Default Credentials. Project and location come from the options,
then the SDK's environment variables (``GOOGLE_CLOUD_PROJECT``,
``GOOGLE_CLOUD_LOCATION``), then the ADC's own project; the location defaults
to ``global`` as in the SDK. The SDK's own retries are off: the dispatcher
alone retries.

``vertexai.generative_models`` (google-cloud-aiplatform) is deprecated with its
removal announced, so this adapter is built on ``google-genai`` only.

Structured output uses ``response_mime_type="application/json"`` with
``response_json_schema`` (plain JSON Schema). Gemini 2.5 models think by
default and their thinking tokens count against ``max_output_tokens`` and are
billed as output, so ``output_tokens`` here is candidates + thoughts.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pydantic import field_validator

from clinsum.errors import FatalError, ProviderError, SetupError, TransientError
from clinsum.providers.base import BaseProvider, Generation, ProviderOptions, Request
from clinsum.providers.common import (
    already_classified,
    classify_http,
    cost_usd,
    price_overrides,
    require,
    retry_after_of,
    timed,
)

if TYPE_CHECKING:
    from clinsum.providers.vertex_batch import VertexBatch

ADC_FIX = (
    "run `gcloud auth application-default login` (or set GOOGLE_APPLICATION_CREDENTIALS to a "
    "service-account key file) and export GOOGLE_CLOUD_PROJECT=..."
)
CREDENTIALS_HINT = "the Application Default Credentials and their IAM role on the project (roles/aiplatform.user)"
SCOPES = ["https://www.googleapis.com/auth/cloud-platform"]

_USABLE_FINISH = {None, "STOP", "FINISH_REASON_UNSPECIFIED", "MAX_TOKENS"}


class VertexOptions(ProviderOptions):
    """Options for ``vertex:MODEL``."""

    max_output_tokens: int = 8192
    """Thinking tokens count against it on Gemini 2.5 (Pro cannot stop thinking), so the
    default leaves room for thinking plus a summary; only tokens used are billed."""
    project: str | None = None
    """Google Cloud project; default ``GOOGLE_CLOUD_PROJECT``, then the ADC project."""
    location: str | None = None
    """Vertex AI location (``us-central1``, ``europe-west4``, ``global``); default
    ``GOOGLE_CLOUD_LOCATION``, then ``global``."""
    thinking_budget: int | None = None
    """Thinking tokens allowed (Gemini 2.5); 0 switches thinking off on Flash models.
    None keeps the model's default."""
    base_url: str | None = None
    """Another endpoint for the same API (a Private Service Connect endpoint, a proxy)."""
    api_version: str | None = None
    """API version in the URL path; the SDK's default when None."""
    batch_bucket: str | None = None
    """``gs://bucket/prefix`` where ``--batch`` stages its request file and Vertex AI writes
    the results; batch prediction needs this or ``batch_bigquery``."""
    batch_bigquery: str | None = None
    """``bq://project.dataset`` where ``--batch`` stages its requests as a table and Vertex AI
    writes the results table (instead of ``batch_bucket``)."""
    prices: dict[str, Any] | None = None
    """Price overrides: one price for this spec, or ``provider:model`` -> price."""

    @field_validator("batch_bucket")
    @classmethod
    def _cloud_storage_uri(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^gs://[a-z0-9][a-z0-9._-]{1,220}[a-z0-9](/.*)?$", value.strip()):
            raise ValueError(f"must be a Cloud Storage URI like 'gs://BUCKET/PREFIX', got {value!r}")
        return value

    @field_validator("batch_bigquery")
    @classmethod
    def _bigquery_dataset(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^bq://(?:[a-z0-9.-]+:)?[a-z][a-z0-9-]{4,28}[a-z0-9]\.\w{1,1024}$",
                                              value.strip()):
            raise ValueError(f"must be a BigQuery dataset like 'bq://PROJECT.DATASET', got {value!r}")
        return value


class VertexProvider(BaseProvider):
    """Gemini via ``client.aio.models.generate_content``."""

    options_model = VertexOptions
    local = False
    options: VertexOptions

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
        self.credentials: Any | None = None
        """The ADC the client was built with (None for an injected client); batch staging reuses them."""
        if client is None:
            client, self.credentials = build_client(self.options)
        self.client = client
        self.endpoint = endpoint_of(self.client, self.options)

    def batch(self, *, poll_interval_s: float, max_wait_s: float | None) -> VertexBatch:
        """Vertex AI batch prediction for this provider (``clinsum run --batch``)."""
        from clinsum.providers.vertex_batch import VertexBatch

        return VertexBatch(self, poll_interval_s=poll_interval_s, max_wait_s=max_wait_s)

    def config_for(self, request: Request) -> Any:
        types = require("google.genai.types", "vertex")
        config: dict[str, Any] = {
            "temperature": self.temperature_for(request),
            "max_output_tokens": self.options.max_output_tokens,
        }
        if self.options.seed is not None:
            config["seed"] = self.options.seed
        system = self.system_for(request)
        if system:
            config["system_instruction"] = system
        if request.json_schema is not None:
            config["response_mime_type"] = "application/json"
            config["response_json_schema"] = request.json_schema
        if self.options.thinking_budget is not None:
            config["thinking_config"] = types.ThinkingConfig(thinking_budget=self.options.thinking_budget)
        return types.GenerateContentConfig(**config)

    async def generate(self, request: Request) -> Generation:
        config = self.config_for(request)
        with timed() as clock:
            try:
                response = await self.client.aio.models.generate_content(
                    model=self.model, contents=request.prompt, config=config
                )
            except Exception as exc:
                raise convert_error(exc, model=self.model) from exc
        return self.to_generation(response, request, latency_s=clock.seconds)

    def to_generation(self, response: Any, request: Request, *, latency_s: float | None) -> Generation:
        """Read text, usage, ids and cost from a ``GenerateContentResponse`` (live or from a batch)."""
        text = answer_text(response, structured=request.json_schema is not None)
        usage = getattr(response, "usage_metadata", None)
        input_tokens = getattr(usage, "prompt_token_count", None)
        candidates = getattr(usage, "candidates_token_count", None)
        thoughts = getattr(usage, "thoughts_token_count", None)
        output_tokens = None if candidates is None and thoughts is None else (candidates or 0) + (thoughts or 0)
        return Generation(
            text=text,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cost_usd=cost_usd("vertex", self.model, input_tokens, output_tokens, self.prices),
            latency_s=latency_s,
            request_id=getattr(response, "response_id", None),
            model=getattr(response, "model_version", None),
        )


def _name(value: Any) -> str | None:
    """An enum's name, or the string itself (the SDK returns enums for known values only)."""
    if value is None:
        return None
    return str(getattr(value, "name", value))


def answer_text(response: Any, *, structured: bool) -> str:
    """The text of the first candidate, or a FatalError saying why there is none."""
    candidates = getattr(response, "candidates", None)
    if not candidates:
        feedback = getattr(response, "prompt_feedback", None)
        reason = _name(getattr(feedback, "block_reason", None))
        if reason:
            detail = getattr(feedback, "block_reason_message", None) or ""
            raise FatalError(f"Vertex AI blocked the prompt (block_reason={reason}) {detail}".strip())
        if getattr(response, "usage_metadata", None) is None:
            raise TransientError("malformed response from Vertex AI: no candidates and no usage metadata")
        raise FatalError("Vertex AI returned no candidates")
    candidate = candidates[0]
    finish = _name(getattr(candidate, "finish_reason", None))
    content = getattr(candidate, "content", None)
    parts = getattr(content, "parts", None) or []
    text = "".join(p.text for p in parts if getattr(p, "text", None) and not getattr(p, "thought", False))
    if finish not in _USABLE_FINISH:
        message = getattr(candidate, "finish_message", None) or ""
        raise FatalError(f"Vertex AI gave no usable answer (finish_reason={finish}) {message}".strip())
    if finish == "MAX_TOKENS":  # a truncated summary would be scored as if complete
        what = "the JSON answer" if structured else "the answer"
        raise FatalError(
            f"{what} was cut off at max_output_tokens (finish_reason=MAX_TOKENS; thinking tokens count "
            "against it); raise max_output_tokens or lower thinking_budget"
        )
    return text


def endpoint_of(client: Any, options: VertexOptions) -> str:
    """Project, location and base URL the client calls (as the SDK resolved them, else the options)."""
    api = getattr(client, "_api_client", None)
    http = getattr(api, "_http_options", None)
    project = getattr(api, "project", None) or options.project or os.environ.get("GOOGLE_CLOUD_PROJECT")
    location = (getattr(api, "location", None) or options.location
                or os.environ.get("GOOGLE_CLOUD_LOCATION") or "global")
    base_url = getattr(http, "base_url", None) or options.base_url
    return f"vertex project={project} location={location} base_url={base_url}"


def build_client(options: VertexOptions) -> tuple[Any, Any]:
    """A ``genai.Client`` in Vertex mode with ADC, our timeout and SDK retries off, and the ADC."""
    genai = require("google.genai", "vertex")
    types = require("google.genai.types", "vertex")
    auth = require("google.auth", "vertex")
    auth_exceptions = require("google.auth.exceptions", "vertex")
    try:
        credentials, adc_project = auth.default(scopes=SCOPES)
    except auth_exceptions.DefaultCredentialsError as exc:
        raise SetupError(f"no Google Application Default Credentials ({exc}); fix: {ADC_FIX}") from exc
    project = options.project or os.environ.get("GOOGLE_CLOUD_PROJECT") or adc_project
    if not project:
        raise SetupError(
            "no Google Cloud project for Vertex AI; fix: export GOOGLE_CLOUD_PROJECT=... "
            "(or set project in the vertex provider options)"
        )
    location = options.location or os.environ.get("GOOGLE_CLOUD_LOCATION") or "global"
    http_options = types.HttpOptions(
        timeout=max(1, round(options.timeout_s * 1000)),
        retry_options=types.HttpRetryOptions(attempts=1),
        base_url=options.base_url,
        api_version=options.api_version,
    )
    try:
        client = genai.Client(
            vertexai=True, project=project, location=location, credentials=credentials, http_options=http_options
        )
    except ValueError as exc:
        raise SetupError(f"cannot build the Vertex AI client: {exc}; fix: {ADC_FIX}") from exc
    return client, credentials


def _transport_errors() -> tuple[tuple[type[BaseException], ...], tuple[type[BaseException], ...]]:
    """(timeouts, other transport errors) of whichever httpx flavours are installed."""
    timeouts: list[type[BaseException]] = []
    transport: list[type[BaseException]] = []
    for name in ("httpx", "httpx2"):
        try:
            module = require(name, "vertex")
        except SetupError:
            continue
        timeouts.append(module.TimeoutException)
        transport.append(module.TransportError)
    return tuple(timeouts), tuple(transport)


def convert_error(exc: Exception, *, model: str | None = None) -> ProviderError:
    """Turn a google-genai / google-auth / transport exception into one of ours."""
    known = already_classified(exc)
    if known is not None:
        return known
    errors = require("google.genai.errors", "vertex")
    auth_exceptions = require("google.auth.exceptions", "vertex")
    timeouts, transport = _transport_errors()
    if isinstance(exc, errors.APIError):
        message = str(exc.message or exc.status or exc)
        # Gemini words a context overflow "The input token count (N) exceeds the maximum
        # number of tokens allowed (M)", which classify_http recognises.
        return classify_http(int(exc.code or 0), message, retry_after_of(exc), credentials=CREDENTIALS_HINT,
                             model=model)
    if timeouts and isinstance(exc, timeouts):
        return TransientError(f"Vertex AI did not answer in time ({type(exc).__name__})")
    if transport and isinstance(exc, transport):
        return TransientError(f"cannot reach Vertex AI ({type(exc).__name__}: {exc})")
    if isinstance(exc, auth_exceptions.DefaultCredentialsError):
        return SetupError(f"no Google Application Default Credentials ({exc}); fix: {ADC_FIX}")
    if isinstance(exc, auth_exceptions.RefreshError):
        return FatalError(f"Google credentials could not be refreshed ({exc}); fix: {ADC_FIX}")
    if isinstance(exc, auth_exceptions.TransportError):
        return TransientError(f"cannot reach Google's auth service ({exc})")
    if isinstance(exc, json.JSONDecodeError | ValueError):
        return TransientError(f"malformed response from Vertex AI ({type(exc).__name__}: {exc})")
    return FatalError(f"unexpected error calling Vertex AI: {type(exc).__name__}: {exc}")


def create(
    spec: str,
    options: dict[str, Any] | None = None,
    *,
    client: Any | None = None,
    prices: Mapping[str, Mapping[str, Any]] | None = None,
) -> VertexProvider:
    """Registry factory for ``vertex:MODEL``; ``client`` injects a ready-made ``genai.Client``."""
    return VertexProvider(spec, options, client=client, prices=prices)
