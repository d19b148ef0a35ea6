"""``replay:PATH``: serve summaries generated elsewhere (production logs, published systems).

The file is JSONL or CSV of summaries, ``{"note_id", "system", "text"}`` plus
the optional fields of ``Summary`` (``usage``, ``latency_s``, ``error``,
``request_id``), read with ``clinsum.inputs.load_summaries``. A request for a
note is answered with that note's stored summary, so stored summaries go
through the same scoring as generated ones.

- A file with several systems needs the option ``system`` to pick one; the
  system then keeps its name in the results (its label, unless the run config
  gives the provider a ``name``), so a replayed ``production`` stays ``production``.
- A note the file has no summary for, or a stored summary with an ``error``,
  fails that note (``FatalError``); the other notes go on.
- The stored usage, cost, latency and request id are passed through: they are
  what producing the summary cost, which is what a comparison wants to show.

The file is read once per provider instance, at the first request (not at
construction, so building a provider for ``--help`` or a dry run costs nothing);
concurrent first requests wait for the one read.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

from clinsum.errors import ClinsumError, ConfigError, FatalError, SetupError
from clinsum.providers.base import BaseProvider, Generation, ProviderOptions, Request
from clinsum.providers.common import timed
from clinsum.records import Summary


class ReplayOptions(ProviderOptions):
    system: str | None = None
    """Which system's summaries to serve when the file holds several."""


class ReplayProvider(BaseProvider):
    """Answers each note with the summary stored for it in a file."""

    options_model = ReplayOptions
    local = True
    cacheable = False
    options: ReplayOptions

    def __init__(self, spec: str, options: ProviderOptions | dict[str, Any] | None = None) -> None:
        super().__init__(spec, options)
        self.path = Path(self.model).expanduser()
        self.system: str | None = self.options.system
        """The label of the run's system: the replayed system's own name, when the option names it."""
        if not self.path.is_file():
            raise ConfigError(f"replay file not found: {self.path} (spec '{spec}')")
        self._lock = threading.Lock()
        self._by_note: dict[str, Summary] | None = None
        self._load_error: SetupError | None = None

    def _load(self) -> dict[str, Summary]:
        with self._lock:
            if self._load_error is not None:
                raise self._load_error
            if self._by_note is None:
                try:
                    self._by_note = self._read()
                except SetupError as exc:
                    self._load_error = exc
                    raise
            return self._by_note

    def _read(self) -> dict[str, Summary]:
        from clinsum.inputs import load_summaries

        try:
            summaries = load_summaries(self.path).records
        except ClinsumError as exc:
            raise SetupError(f"cannot replay {self.path}: {exc}") from exc
        systems = sorted({s.system for s in summaries})
        wanted = self.options.system
        if wanted is None:
            if len(systems) > 1:
                raise SetupError(f"{self.path} holds summaries of {len(systems)} systems "
                                 f"({', '.join(systems)}); choose one with the option system = \"...\"")
            wanted = systems[0]
        elif wanted not in systems:
            raise SetupError(f"{self.path} has no summaries of system '{wanted}'; "
                             f"it holds: {', '.join(systems)}")
        return {s.note_id: s for s in summaries if s.system == wanted}

    async def generate(self, request: Request) -> Generation:
        if request.note is None:
            raise FatalError(f"replay:{self.path} answers only requests for a note (the request has none)")
        with timed() as clock:
            by_note = self._by_note if self._by_note is not None else await asyncio.to_thread(self._load)
            stored = by_note.get(request.note.id)
        if stored is None:
            raise FatalError(f"no summary for note '{request.note.id}' in {self.path}")
        if stored.error is not None:
            raise FatalError(f"the stored summary of note '{request.note.id}' failed: {stored.error}")
        return Generation(
            text=stored.text,
            input_tokens=stored.usage.input_tokens,
            output_tokens=stored.usage.output_tokens,
            cost_usd=stored.usage.cost_usd,
            latency_s=stored.latency_s if stored.latency_s is not None else clock.seconds,
            request_id=stored.request_id,
            model=stored.system,
        )


def create(spec: str, options: dict[str, Any]) -> ReplayProvider:
    return ReplayProvider(spec, options)
