"""Providers: anything that turns a request into a generation."""

from clinsum.providers.base import (
    BaseProvider,
    Generation,
    Provider,
    ProviderOptions,
    Request,
    parse_spec,
)
from clinsum.providers.registry import available, create

__all__ = [
    "BaseProvider",
    "Generation",
    "Provider",
    "ProviderOptions",
    "Request",
    "available",
    "create",
    "parse_spec",
]
