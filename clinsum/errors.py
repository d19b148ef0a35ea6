"""clinsum's exceptions.

    ClinsumError
    ├── InputError          bad notes, summaries, ratings or config; names file, line, field
    ├── ConfigError         an invalid run configuration or provider option
    ├── StoreError          the SQLite store cannot be opened or is from a newer clinsum
    │   └── StoreWriteError a write failed (disk full, read-only file, locked): the run stops
    ├── OutputWriteError    an output file (``--out``) cannot be written
    └── ProviderError       a provider call failed; ``kind`` tells the runner what to do
        ├── RateLimited     retry after ``retry_after`` seconds (or backoff)
        ├── TransientError  retry with backoff (5xx, timeouts, connection reset)
        └── FatalError      do not retry (auth, bad request, unknown model, context too long)
            └── SetupError  the provider cannot be built: missing package, credentials or host

Provider SDK exceptions are converted to these at the provider boundary; nothing
above the providers sees an SDK exception type.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class ClinsumError(Exception):
    """Base of every error clinsum raises on purpose."""


class InputError(ClinsumError):
    """A record in an input file is invalid."""

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None,
                 field: str | None = None) -> None:
        self.path, self.line, self.field = path, line, field
        where = ":".join(str(p) for p in (path, line) if p is not None)
        prefix = f"{where}: " if where else ""
        suffix = f" (field '{field}')" if field else ""
        super().__init__(f"{prefix}{message}{suffix}")


class ConfigError(ClinsumError):
    """The run configuration is invalid."""


class StoreError(ClinsumError):
    """The store cannot be used."""


class StoreWriteError(StoreError):
    """A write to the store failed; what it would have written is not in the store."""


class OutputWriteError(ClinsumError):
    """An output file cannot be written; the run itself is stored."""


class ProviderError(ClinsumError):
    """A provider call failed."""

    retryable = False


class RateLimited(ProviderError):
    retryable = True

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class TransientError(ProviderError):
    retryable = True


class FatalError(ProviderError):
    retryable = False


class SetupError(FatalError):
    """The provider cannot be built; the message says exactly how to fix it."""


def unknown_choice(flag: str, value: str, valid: Iterable[str], *, noun: str, where: str) -> ConfigError:
    """The error for a flag whose value names none of ``valid``: the closest one, then all of them.

    ``--sort-by 'sumary_words' is not a metric; did you mean 'summary_words'? (metrics of this run: ...)``
    """
    choices = list(valid)
    close = difflib.get_close_matches(value, choices, n=1)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    return ConfigError(f"{flag} '{value}' is not {noun}{hint} ({where}: {', '.join(choices) or 'none'})")
