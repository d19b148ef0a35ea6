"""Evaluator names (``--evaluator/-e``) → evaluator factories, imported only when a run asks for them."""

from __future__ import annotations

import importlib
from typing import Any

from clinsum.errors import ConfigError
from clinsum.evaluators.base import Evaluator
from clinsum.evaluators.metrics import describe

BUILTIN: dict[str, str] = {
    "overlap": "clinsum.evaluators.overlap:create_overlap",
    "length": "clinsum.evaluators.overlap:create_length",
    "coverage": "clinsum.evaluators.coverage:create",
    "facts": "clinsum.evaluators.facts:create",
    "judge": "clinsum.evaluators.judge:create",
}


def create(name: str, options: dict[str, Any], dispatcher: Any) -> Evaluator:
    """Build the evaluator ``name``; ``dispatcher`` serves evaluators that call models."""
    target = BUILTIN.get(name)
    if target is None:
        hint = ""
        if describe(name) is not None:
            hint = f" ('{name}' is a metric; the evaluators emit metrics, and --metric names them in `agreement`)"
        raise ConfigError(f"unknown evaluator '{name}'{hint}; evaluators: {', '.join(sorted(BUILTIN))}")
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if (exc.name or "").startswith("clinsum"):
            raise
        raise ConfigError(
            f"evaluator '{name}' needs a package that is not installed ({exc.name}); "
            "install it with: pip install 'clinsum[all]'"
        ) from exc
    evaluator: Evaluator = getattr(module, attr)(options, dispatcher)
    return evaluator
