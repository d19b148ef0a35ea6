"""clinsum: evaluate LLM summaries of clinical text."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("clinsum")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+local"


def __getattr__(name: str) -> object:
    # ``clinsum.evaluate`` without importing the pipeline when only the CLI's --help is asked for.
    if name == "evaluate":
        from clinsum.api import evaluate

        return evaluate
    raise AttributeError(f"module 'clinsum' has no attribute {name!r}")
