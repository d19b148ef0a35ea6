"""The provider protocol: one async method that turns a request into a generation.

A provider is built from a spec (``name:model``) and options by a factory in the
registry. It classifies its own failures by raising ``RateLimited``,
``TransientError`` or ``FatalError`` (``clinsum.errors``); it never retries:
the dispatcher alone does, in one bounded loop.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, ClassVar, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from clinsum.errors import ConfigError, ProviderError
from clinsum.records import Note


class ProviderOptions(BaseModel):
    """Options every provider understands; a provider may subclass to add its own.

    Unknown options are refused (``extra="forbid"``) so that a typo in a config
    file fails loudly instead of being silently ignored.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    temperature: float = 0.0
    """0 by default: deterministic where the provider allows it."""
    max_output_tokens: int = 1024
    seed: int | None = None
    system_prompt: str | None = None
    timeout_s: float = 120.0
    concurrency: int = 4
    """Maximum calls in flight to this provider at once."""
    prices: dict[str, Any] | None = None
    """Price overrides from the run config (one price, or ``provider:model`` -> price);
    providers that cost nothing ignore them."""


class Request(BaseModel):
    """What the dispatcher asks of a provider."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    prompt: str
    system: str | None = None
    """System instructions; overrides ``ProviderOptions.system_prompt`` when set."""
    json_schema: dict[str, Any] | None = None
    """When set, the answer must be JSON matching this schema (native structured output)."""
    temperature: float | None = None
    """Overrides the provider's temperature for this call (judge sampling)."""
    sample: int = 0
    """Sample index: distinct samples of the same prompt are distinct cache entries."""
    note: Note | None = None
    """The note being summarized, for local providers that work on the note itself
    (extractive baselines, replay). LLM providers read only ``prompt``."""


class Generation(BaseModel):
    """What a provider returns for one request."""

    model_config = ConfigDict(frozen=True)

    text: str
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost_usd: float | None = None
    latency_s: float | None = None
    request_id: str | None = None
    model: str | None = None
    """The model that actually answered, as the provider reports it."""
    cached: bool = Field(default=False, exclude=True)
    """True when the dispatcher served this from the response cache."""


@runtime_checkable
class Provider(Protocol):
    """Anything that can answer a ``Request``.

    ``spec`` is the full spec string (``ollama:llama3.1:8b``); ``options`` the
    validated options; ``local`` is True when no byte of a request leaves the
    machine (the offline mode accepts only local providers). A provider that calls
    a server should also set ``endpoint`` (see ``BaseProvider.endpoint``): the
    dispatcher reads it, when present, into the response cache key.
    """

    spec: str
    local: bool

    @property
    def options(self) -> ProviderOptions:
        """Read-only here, so a provider may narrow it to its own options model."""
        ...

    async def generate(self, request: Request) -> Generation: ...


class Batch(Protocol):
    """Many requests of one provider answered as one batch job (cheaper, slower), resumable.

    ``run`` submits the items (or, given ``batch_id``, picks up a batch submitted
    before), calls ``on_submitted`` with the new id before waiting, and returns each
    item's outcome by the caller's key: a ``Generation``, or the ``ProviderError``
    the same failure would have raised live.
    """

    provider: Provider

    async def run(self, items: Iterable[tuple[str, Request]], *, batch_id: str | None = None,
                  on_submitted: Callable[[str], None] | None = None,
                  on_poll: Callable[[Any], None] | None = None) -> dict[str, Generation | ProviderError]: ...


@runtime_checkable
class BatchCapable(Protocol):
    """A provider with a batch API: ``clinsum run --batch`` sends its summaries through ``batch()``.

    Built-in (Anthropic) and plugin providers alike: implementing this method is all
    a plugin needs for ``--batch``.
    """

    def batch(self, *, poll_interval_s: float, max_wait_s: float | None) -> Batch: ...


class BaseProvider:
    """Shared plumbing for providers: spec, options, and the cache switch."""

    options_model: ClassVar[type[ProviderOptions]] = ProviderOptions
    local: bool = False
    cacheable: ClassVar[bool] = True
    """False for providers whose answers cost nothing to recompute (replay)."""
    endpoint: str | None = None
    """Where the calls go (host or base URL, project, region), as resolved from options and
    environment; part of the response cache key, so an answer cached from one server is
    never served for another. None for providers that compute locally without a server.
    Set it when the provider is built: a dispatcher reads it (with ``spec`` and ``options``)
    once per provider, for every key it makes."""

    def __init__(self, spec: str, options: ProviderOptions | dict[str, Any] | None = None) -> None:
        self.spec = spec
        self.name, self.model = parse_spec(spec)
        if isinstance(options, ProviderOptions):
            options = options.model_dump(exclude_unset=True)
        try:
            self.options = self.options_model(**(options or {}))
        except ValidationError as exc:
            from clinsum.config import describe_validation

            raise ConfigError(f"invalid options for provider '{spec}': "
                              f"{describe_validation(exc, self.options_model, 'option')}") from None

    def system_for(self, request: Request) -> str | None:
        return request.system if request.system is not None else self.options.system_prompt

    def temperature_for(self, request: Request) -> float:
        return request.temperature if request.temperature is not None else self.options.temperature

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.spec}>"


def parse_spec(spec: str) -> tuple[str, str]:
    """Split ``name:model``; everything after the first colon is the model.

    >>> parse_spec("ollama:llama3.1:8b")
    ('ollama', 'llama3.1:8b')
    """
    name, sep, model = spec.partition(":")
    if not sep or not name or not model:
        raise ConfigError(
            f"invalid provider spec '{spec}': expected NAME:MODEL, "
            "for example 'extractive:lead' or 'ollama:llama3.1:8b'"
        )
    return name.strip().lower(), model.strip()
