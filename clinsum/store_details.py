"""Score details recomputed from the stored note and summary instead of being stored.

Concept coverage and facts are deterministic: the same note, summary, reference,
evaluator version (which pins their logic, options and assertion rules) and concept
lexicon give the same detail, byte for byte. So the store keeps their values and
drops their details (``clinsum.store_scores``), and ``Recomputer`` makes them again
when a reader asks: the report's drill-down, ``clinsum export``, ``score --out``,
the Python API. Recomputing costs one evaluation per summary (concept extraction of
the note and the summary), paid by readers of details only; readers of values
(leaderboards, gates, compare, the monitor) never pay it.

When this machine's evaluator differs from the one that scored the run (another
version, other options, another lexicon), recomputation does not pass its details
off as the stored ones: each recomputed detail then carries ``recomputed_with``
(the version that made it, with its lexicon) beside ``scored_with`` (the version
of the stored value), so a reader sees that the evidence may not match the value.
The value itself is always the stored one. Where the concept extractor is not
installed, reading such details is an error that names the extra to install.
"""

from __future__ import annotations

import functools
import hashlib
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from clinsum.errors import StoreError
from clinsum.records import Score

if TYPE_CHECKING:
    from clinsum.store import Store

RECOMPUTED = frozenset({"coverage", "facts"})
"""Evaluators whose details are a deterministic function of note, summary and evaluator version."""


@functools.cache
def lexicon_id() -> str:
    """The concept lexicon in use: the first 16 hex digits of its file's SHA-256."""
    from clinsum.concepts.terminology import LEXICON_PATH

    return hashlib.sha256(LEXICON_PATH.read_bytes()).hexdigest()[:16] if LEXICON_PATH.exists() else "none"


def kept(score: Score) -> dict[str, Any]:
    """What the store keeps of a detail it drops: the source's concept count behind
    ``concept_recall`` (the monitor reads it for every summary of a window), or that the recall
    was over the note's given key concepts, where there is no such count."""
    if score.metric != "concept_recall":
        return {}
    count = source_concepts(score.detail)
    # recall over the note's given key concepts says nothing of the source's: kept as such, not as 0
    return {"key_concepts": "note"} if count is None else {"source_concepts": count}


def source_concepts(detail: dict[str, Any]) -> int | None:
    """The number of source concepts a ``concept_recall`` detail (full or kept) stands for; None when
    recall was over the note's given key concepts (not a property of the source)."""
    if "source_concepts" in detail:
        return int(detail["source_concepts"])
    if detail.get("key_concepts") == "note":
        return None
    return len(detail.get("recalled", [])) + len(detail.get("missed", []))


class Recomputer:
    """Recomputes the dropped details of one run, one summary's evaluation at a time."""

    def __init__(self, store: Store, run_id: str, sources: dict[tuple[str, str], str]) -> None:
        self.store = store
        self.run_id = run_id
        self.sources = sources
        """(evaluator, version) -> the lexicon its dropped details were made with."""
        self._options: dict[str, Any] | None = None
        self._evaluators: dict[str, Any] = {}
        self._recent: OrderedDict[tuple[str, str, str], dict[str, dict[str, Any]]] = OrderedDict()

    def detail(self, score: Score) -> dict[str, Any]:
        """The detail of ``score`` as its evaluator makes it for the stored note and summary."""
        key = (score.note_id, score.system, score.evaluator)
        details = self._recent.get(key)
        if details is None:
            details = self._evaluate(score)
            self._recent[key] = details
            if len(self._recent) > 8:
                self._recent.popitem(last=False)
        detail = dict(details.get(score.metric, {}))
        evaluator = self._evaluator(score.evaluator)
        lexicon = self.sources.get((score.evaluator, score.version))
        if evaluator.version != score.version or lexicon != lexicon_id():
            detail["recomputed_with"] = f"{evaluator.version} (lexicon {lexicon_id()})"
            detail["scored_with"] = f"{score.version} (lexicon {lexicon or 'unknown'})"
        return detail

    def _evaluate(self, score: Score) -> dict[str, dict[str, Any]]:
        note = self.store.note(self.run_id, score.note_id)
        summary = self.store.summary(self.run_id, score.note_id, score.system)
        if summary is None:
            raise StoreError(f"{self.store.path}: run '{self.run_id}' has no summary of note '{score.note_id}' "
                             f"by '{score.system}' to recompute the {score.metric} detail from")
        return {s.metric: s.detail for s in self._evaluator(score.evaluator).scores(note, summary)}

    def _evaluator(self, name: str) -> Any:
        if name not in self._evaluators:
            from clinsum.errors import ConfigError
            from clinsum.evaluators.registry import create

            if self._options is None:
                self._options = self.store.run(self.run_id)["config"].get("metric_options") or {}
            try:
                self._evaluators[name] = create(name, dict(self._options.get(name) or {}), None)
            except ConfigError as exc:
                raise StoreError(f"{self.store.path}: the {name} details of run '{self.run_id}' are recomputed "
                                 f"when read, and cannot be here: {exc}") from exc
        return self._evaluators[name]
