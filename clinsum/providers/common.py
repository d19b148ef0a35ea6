"""What every SDK-backed provider shares: lazy SDK import, HTTP error
classification, latency timing and the price table.

Nothing here imports a provider SDK; adapters call ``require`` inside their
factory, so ``clinsum --help`` stays fast whatever is installed.

Error classification (``classify_http``) maps an HTTP status to our tree::

    429                      -> RateLimited (retry_after: see ``retry_after_of``)
    408, 409, 5xx, 529       -> TransientError
    400, 413, 422            -> FatalError (context-too-long gets its own message)
    401, 403                 -> FatalError naming the credentials to check
    404                      -> FatalError "model not found"
    anything else            -> FatalError
"""

from __future__ import annotations

import importlib
import math
import re
import time
import tomllib
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from functools import cache
from importlib import resources
from types import ModuleType
from typing import Any, Protocol, TypeVar

from clinsum.errors import (
    ClinsumError,
    ConfigError,
    FatalError,
    ProviderError,
    RateLimited,
    SetupError,
    TransientError,
)
from clinsum.offline import violation_in

__all__ = [
    "CONTEXT_TOO_LONG",
    "Price",
    "Stopwatch",
    "already_classified",
    "classify_http",
    "cost_usd",
    "is_context_overflow",
    "parse_retry_after",
    "poll_until_ended",
    "price_for",
    "price_overrides",
    "prices",
    "require",
    "retry_after_in",
    "retry_after_of",
    "timed",
]


def require(module: str, extra: str) -> ModuleType:
    """Import ``module`` or raise a SetupError that says which extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise SetupError(
            f"the '{extra}' provider needs the Python package that provides '{module}', "
            f"which is not installed ({exc}); fix: pip install 'clinsum[{extra}]'"
        ) from exc


# --- error classification -------------------------------------------------------------------

CONTEXT_TOO_LONG = "the note exceeds the model's context window"
"""Start of the message of every context-overflow FatalError, whatever the provider."""

_CONTEXT_PATTERNS = re.compile(
    r"context[ _-]?(length|window)"
    r"|too many (input )?tokens"
    r"|prompt is too long"
    r"|maximum context"
    r"|input token count .*exceeds"
    r"|exceeds the maximum number of tokens"
    r"|input is too long"
    r"|context_length_exceeded",
    re.IGNORECASE | re.DOTALL,
)


def is_context_overflow(message: str) -> bool:
    """True when a provider's error message says the input did not fit the model."""
    return bool(_CONTEXT_PATTERNS.search(message or ""))


def parse_retry_after(value: str | float | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value: a number of seconds or an HTTP date.

    Returns None when the value is missing or unreadable (the dispatcher then
    backs off on its own); never negative.
    """
    if value is None:
        return None
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        text = value.strip()
        if not text:
            return None
        try:
            seconds = float(text)
        except ValueError:
            try:
                when = parsedate_to_datetime(text)
            except (TypeError, ValueError, IndexError):
                return None
            if when.tzinfo is None:
                when = when.replace(tzinfo=UTC)
            seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if math.isnan(seconds) or math.isinf(seconds):
        return None
    return max(0.0, seconds)


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)s\s*$")


def retry_after_of(exc: BaseException) -> float | None:
    """Seconds a provider's error asks us to wait, wherever the SDK keeps it; None when it does not say.

    Reads ``exc.response.headers`` and a Vertex AI error body in ``exc.details``
    (see ``retry_after_in``).
    """
    return retry_after_in(getattr(getattr(exc, "response", None), "headers", None), getattr(exc, "details", None))


def retry_after_in(headers: Any, body: Any = None) -> float | None:
    """Seconds to wait from an HTTP error's headers and body: the one reader for every adapter.

    First answer wins:

    - ``retry-after-ms`` header (Anthropic, OpenAI): milliseconds;
    - ``Retry-After`` header: seconds or an HTTP date (``parse_retry_after``);
    - a ``google.rpc.RetryInfo`` ``retryDelay`` ("30s") in a Google error body
      (``{"error": {"details": [...]}}`` or the inner ``{"details": [...]}``).

    Never negative; None when neither says.
    """
    if headers is not None and hasattr(headers, "get"):
        millis = parse_retry_after(headers.get("retry-after-ms"))
        if millis is not None:
            return millis / 1000
        seconds = parse_retry_after(headers.get("retry-after"))
        if seconds is not None:
            return seconds
    error = body.get("error", body) if isinstance(body, dict) else None
    for item in (error or {}).get("details", []) if isinstance(error, dict) else []:
        if isinstance(item, dict) and str(item.get("@type", "")).endswith("google.rpc.RetryInfo"):
            match = _DURATION.match(str(item.get("retryDelay", "")))
            if match:
                return float(match.group(1))
    return None


def already_classified(exc: BaseException) -> ProviderError | None:
    """The error to raise for ``exc`` when it needs no SDK-specific reading, else None.

    The offline guard's refusal (even wrapped by an SDK as a connection error)
    comes back as itself, a ``ProviderError`` as it is, and any other clinsum
    error as a ``FatalError``. Every adapter's ``convert_error`` starts here.
    """
    violation = violation_in(exc)
    if violation is not None:
        return violation
    if isinstance(exc, ProviderError):
        return exc
    if isinstance(exc, ClinsumError):
        return FatalError(str(exc))
    return None


def classify_http(
    status: int,
    message: str,
    retry_after: str | float | None,
    *,
    credentials: str | None = None,
    model: str | None = None,
) -> ProviderError:
    """Turn a provider's HTTP status and message into one of our ProviderErrors.

    ``credentials`` names what to check on 401/403 (for example
    ``"ANTHROPIC_API_KEY"``); ``model`` is named in the 404 message.
    The result is returned, not raised, so the caller can ``raise ... from exc``.
    """
    detail = f"HTTP {status}: {message}".strip()
    if status == 429:
        return RateLimited(f"rate limited ({detail})", retry_after=parse_retry_after(retry_after))
    if status in (408, 409, 529) or status >= 500:
        return TransientError(f"provider temporarily unavailable ({detail})")
    if status in (400, 413, 422) and is_context_overflow(message):
        return FatalError(f"{CONTEXT_TOO_LONG}; shorten or split the note ({detail})")
    if status in (401, 403):
        what = credentials or "the provider's credentials"
        verb = "rejected" if status == 401 else "not allowed to use this model/project"
        return FatalError(f"credentials {verb}; check {what} ({detail})")
    if status == 404:
        name = f"'{model}' " if model else ""
        return FatalError(f"model {name}not found, or not available to this account/region ({detail})")
    if status == 413:
        return FatalError(f"request too large ({detail})")
    return FatalError(f"request refused ({detail})")


# --- latency --------------------------------------------------------------------------------


class Stopwatch:
    """Elapsed wall time of a block, from ``time.perf_counter``."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.end: float | None = None

    @property
    def seconds(self) -> float:
        """Elapsed seconds: final once the block has exited, running until then."""
        return (self.end if self.end is not None else time.perf_counter()) - self.start


@contextmanager
def timed() -> Iterator[Stopwatch]:
    """``with timed() as clock: ...``; then ``clock.seconds`` is the latency (also on error)."""
    clock = Stopwatch()
    try:
        yield clock
    finally:
        clock.end = time.perf_counter()


# --- prices ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Price:
    """USD per million tokens for one model, as checked on ``checked``.

    Some models (Gemini 2.5 Pro) charge more for every token of a call whose
    prompt exceeds ``long_context_threshold`` input tokens.
    """

    input_per_mtok: float
    output_per_mtok: float
    checked: str | None = None
    source: str | None = None
    long_context_threshold: int | None = None
    long_input_per_mtok: float | None = None
    long_output_per_mtok: float | None = None

    @classmethod
    def from_mapping(cls, key: str, raw: Mapping[str, Any]) -> Price:
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(raw) - known
        if unknown:
            raise ConfigError(f"price for '{key}': unknown field(s) {sorted(unknown)}; known: {sorted(known)}")
        try:
            inp, out = float(raw["input_per_mtok"]), float(raw["output_per_mtok"])
        except KeyError as exc:
            raise ConfigError(f"price for '{key}' needs input_per_mtok and output_per_mtok") from exc
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"price for '{key}': {exc}") from exc
        if inp < 0 or out < 0:
            raise ConfigError(f"price for '{key}' is negative")
        checked = raw.get("checked")
        threshold = raw.get("long_context_threshold")
        long_in, long_out = raw.get("long_input_per_mtok"), raw.get("long_output_per_mtok")
        return cls(
            input_per_mtok=inp,
            output_per_mtok=out,
            checked=str(checked) if checked is not None else None,
            source=raw.get("source"),
            long_context_threshold=int(threshold) if threshold is not None else None,
            long_input_per_mtok=float(long_in) if long_in is not None else None,
            long_output_per_mtok=float(long_out) if long_out is not None else None,
        )

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        inp, out = self.input_per_mtok, self.output_per_mtok
        if self.long_context_threshold is not None and input_tokens > self.long_context_threshold:
            inp = self.long_input_per_mtok if self.long_input_per_mtok is not None else inp
            out = self.long_output_per_mtok if self.long_output_per_mtok is not None else out
        return (input_tokens * inp + output_tokens * out) / 1_000_000


@cache
def prices() -> dict[str, Price]:
    """The packaged price table (``prices.toml``), keyed ``provider:model``."""
    text = resources.files("clinsum.providers").joinpath("prices.toml").read_text(encoding="utf-8")
    table = tomllib.loads(text)
    return {key: Price.from_mapping(key, raw) for key, raw in table.items()}


_VERSION_SUFFIX = re.compile(r"([-@]\d{8}|-\d{3}|-latest)$")


def _candidates(provider: str, model: str) -> list[str]:
    """Keys to try, most specific first: exact, without a date/version suffix, provider wildcard."""
    keys = [f"{provider}:{model}"]
    base = _VERSION_SUFFIX.sub("", model)
    if base != model:
        keys.append(f"{provider}:{base}")
    keys.append(f"{provider}:*")
    return keys


def price_for(provider: str, model: str, overrides: Mapping[str, Mapping[str, Any]] | None = None) -> Price | None:
    """The price of ``provider:model``: config overrides first, then the packaged table.

    A dated model id (``claude-sonnet-4-5-20250929``, ``gemini-2.0-flash-001``)
    falls back to its undated alias. ``provider:*`` in the overrides prices every
    model of a provider (``[prices."ollama:*"] input_per_mtok = 0`` for local
    models); the packaged table has no wildcards, so local models cost nothing
    only when the user says so.
    """
    provider = provider.lower()
    for key in _candidates(provider, model):
        if overrides and key in overrides:
            return Price.from_mapping(key, overrides[key])
        if key in prices():
            return prices()[key]
    return None


def price_overrides(
    spec: str,
    *sources: Mapping[str, Any] | None,
) -> dict[str, Mapping[str, Any]] | None:
    """Merge price overrides given as a provider option and/or a constructor argument.

    Each source is either one price for this spec (``{"input_per_mtok": 3,
    "output_per_mtok": 15}``, what the run config's ``[prices."SPEC"]`` table
    holds) or a mapping ``provider:model -> price``. Later sources win.
    """
    merged: dict[str, Mapping[str, Any]] = {}
    for source in sources:
        if not source:
            continue
        if "input_per_mtok" in source or "output_per_mtok" in source:
            merged[spec] = dict(source)
        else:
            merged.update({key: dict(value) for key, value in source.items()})
    return merged or None


def cost_usd(
    provider_name: str,
    model: str,
    input_tokens: int | None,
    output_tokens: int | None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> float | None:
    """USD cost of one call, or None when the price or the token counts are unknown."""
    if input_tokens is None or output_tokens is None:
        return None
    price = price_for(provider_name, model, overrides)
    if price is None:
        return None
    return price.cost(input_tokens, output_tokens)


# --- batch jobs -----------------------------------------------------------------------------


class _JobStatus(Protocol):
    @property
    def ended(self) -> bool: ...


JobStatusT = TypeVar("JobStatusT", bound=_JobStatus)


async def poll_until_ended(status: Callable[[], Awaitable[JobStatusT]], *, describe: Callable[[JobStatusT], str],
                           poll_interval_s: float, max_wait_s: float | None,
                           sleep: Callable[[float], Awaitable[None]],
                           on_poll: Callable[[JobStatusT], None] | None = None) -> JobStatusT:
    """Ask a batch job's status until it has ended; ``TransientError`` once ``max_wait_s`` has passed.

    The job id was stored when the job was submitted, so the error tells the user to
    resume: a resumed run polls the same job instead of paying for a new one.
    """
    waited = 0.0
    while True:
        state = await status()
        if on_poll is not None:
            on_poll(state)
        if state.ended:
            return state
        if max_wait_s is not None and waited >= max_wait_s:
            raise TransientError(f"{describe(state)} after {waited:.0f}s; resume later with the same batch id")
        await sleep(poll_interval_s)
        waited += poll_interval_s
