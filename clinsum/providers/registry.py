"""Which provider name builds which provider, without importing any SDK early.

Built-in providers are named by ``module:function`` strings and imported only
when a spec asks for them, so ``clinsum --help`` stays fast whatever is
installed. Third-party packages add providers through the ``clinsum.providers``
entry-point group: the entry point's name is the provider name and its object a
factory ``(spec: str, options: dict) -> Provider``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any

from clinsum.errors import ConfigError
from clinsum.providers.base import Provider, parse_spec

Factory = Callable[[str, dict[str, Any]], Provider]

BUILTIN: dict[str, str] = {
    "extractive": "clinsum.providers.extractive:create",
    "replay": "clinsum.providers.replay:create",
    "anthropic": "clinsum.providers.anthropic:create",
    "vertex": "clinsum.providers.vertex:create",
    "langchain": "clinsum.providers.langchain:create",
    "ollama": "clinsum.providers.ollama:create",
}
"""Built-in providers: name -> ``module:factory``, imported lazily."""

ENTRY_POINT_GROUP = "clinsum.providers"


def available() -> dict[str, str]:
    """Every provider name known, built-in and from entry points, with its target."""
    names = dict(BUILTIN)
    names.update({name: f"{f.__module__}:{f.__qualname__}" for name, f in _REGISTERED.items()})
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        names.setdefault(ep.name, ep.value)
    return names


def origin(name: str) -> str:
    """Where the provider ``create`` would build for ``name`` comes from, in the order it looks:
    ``registered`` (in this process), ``built in``, or ``entry point <distribution> <version>``."""
    if name in _REGISTERED:
        return "registered"
    if name in BUILTIN:
        return "built in"
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name == name:
            dist = getattr(ep, "dist", None)
            return " ".join(["entry point", *([dist.name, dist.version] if dist is not None else [])])
    raise ConfigError(f"unknown provider '{name}'")


def _load(target: str) -> Factory:
    module_name, _, attr = target.partition(":")
    module = importlib.import_module(module_name)
    factory: Factory = getattr(module, attr)
    return factory


def build(spec: str, options: dict[str, Any] | None = None, *, prices: dict[str, Any] | None = None,
          offline: bool = False) -> Provider:
    """Build a provider for a run: the one place summarizers and judges are made from specs.

    ``prices`` is the run's price table, given to the provider unless its own options set
    one. With ``offline``, a provider that cannot run offline is refused before it is
    built (no credential is asked for) and a built one must say it is local.
    """
    from clinsum.offline import check_offline_providers, refuse_remote_spec

    if offline:
        refuse_remote_spec(spec)
    options = dict(options or {})
    if prices and "prices" not in options:
        options["prices"] = prices  # the whole table: entries may be patterns (ollama:*)
    provider = create(spec, options)
    if offline:
        check_offline_providers([provider])
    return provider


def create(spec: str, options: dict[str, Any] | None = None) -> Provider:
    """Build the provider a spec names, with its options."""
    name, _ = parse_spec(spec)
    if name in _REGISTERED:
        return _REGISTERED[name](spec, dict(options or {}))
    if name in BUILTIN:
        factory = _load(BUILTIN[name])
    else:
        matches = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == name]
        if not matches:
            known = ", ".join(sorted(available()))
            raise ConfigError(f"unknown provider '{name}' in spec '{spec}'; known providers: {known}")
        factory = matches[0].load()
    return factory(spec, dict(options or {}))


_REGISTERED: dict[str, Factory] = {}


def register(name: str, factory: Factory) -> None:
    """Make a provider available in this process under ``name`` (Python API, tests).

    ``factory`` is called as ``factory(spec, options)``; a provider class whose
    ``__init__`` takes those works as is, and then ``clinsum providers`` can read its
    ``local`` and whether it implements ``batch`` (``providers.base.BatchCapable``).
    """
    _REGISTERED[name.lower()] = factory


def registered(name: str) -> Factory | None:
    """The factory registered in this process under ``name``, if any."""
    return _REGISTERED.get(name.lower())
