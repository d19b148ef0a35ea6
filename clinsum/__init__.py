"""clinsum: evaluate LLM summaries of clinical text."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("clinsum")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+local"
