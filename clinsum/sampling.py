"""A reproducible sample of the notes of a run: ``--sample N`` or ``--sample-fraction F``.

The unit is the note: ``run`` summarizes the sampled notes, and ``score`` scores every
summary of the sampled notes, so the systems of a run are always compared on the same
notes. With ``stratify_by`` the notes are grouped by that metadata field (the note's
``meta``, else, for ``score``, the ``metadata`` of its summaries when they carry one);
notes without the field form their own stratum, ``(missing)``.

Allocation is proportional (largest remainder), with at least one note for every
non-empty stratum when N is at least the number of strata. Within a stratum the notes
kept are those with the smallest ``sha256(seed:note id)``: the sample depends only on
the seed and the note ids, not on the order of the file, and the sample of N is part
of the sample of N+1 in each stratum.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

MISSING = "(missing)"
"""The stratum of notes that lack the stratification field."""


@dataclass(frozen=True)
class Stratum:
    value: str
    population: int
    sampled: int


@dataclass(frozen=True)
class Sample:
    """Which notes were kept, and how the sample is made up."""

    note_ids: frozenset[str]
    population: int
    seed: int
    stratify_by: str | None
    strata: tuple[Stratum, ...]

    def describe(self) -> list[str]:
        """The sample's composition, as printed before a run starts."""
        head = f"sample: {len(self.note_ids)} of {self.population} notes (seed {self.seed})"
        if self.stratify_by is None:
            return [head]
        lines = [f"{head}, stratified by {self.stratify_by}"]
        width = max(len(s.value) for s in self.strata)
        for s in self.strata:
            share = s.sampled / s.population
            lines.append(f"  {s.value:<{width}}  {s.sampled:>6} of {s.population:<6} ({share:.1%})")
        return lines


def sample_size(population: int, size: int | None, fraction: float | None) -> int:
    """N from ``--sample N`` or ``--sample-fraction F`` (F × population, rounded, at least 1)."""
    if size is not None:
        return min(size, population)
    assert fraction is not None
    return min(population, max(1, math.floor(fraction * population + 0.5)))


def allocate(sizes: Mapping[str, int], n: int) -> dict[str, int]:
    """Notes to draw from each stratum: proportional to its size, largest remainder, and at
    least one per non-empty stratum when ``n`` allows; never more than a stratum holds."""
    total = sum(sizes.values())
    strata = sorted(k for k, v in sizes.items() if v > 0)
    if n >= total:
        return {k: sizes[k] for k in strata}
    quota = {k: n * sizes[k] / total for k in strata}
    floor = 1 if n >= len(strata) else 0
    given = {k: min(sizes[k], max(floor, math.floor(quota[k]))) for k in strata}
    while sum(given.values()) > n:  # the minimum of one overshot: take from the most over quota
        k = max((k for k in strata if given[k] > floor), key=lambda k: (given[k] - quota[k], k))
        given[k] -= 1
    while sum(given.values()) < n:  # largest remainder first; ties by the larger stratum, then name
        k = max((k for k in strata if given[k] < sizes[k]),
                key=lambda k: (quota[k] - given[k], sizes[k], [-ord(c) for c in k]))
        given[k] += 1
    return given


def _rank(seed: int, note_id: str) -> str:
    return hashlib.sha256(f"{seed}:{note_id}".encode()).hexdigest()


def _label(value: object) -> str:
    if value is None:
        return MISSING
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def choose(notes: Iterable[tuple[str, object]], *, size: int | None = None, fraction: float | None = None,
           seed: int = 0, stratify_by: str | None = None) -> Sample:
    """Draw the sample from ``(note id, stratum value)`` pairs (the value is ignored unless
    ``stratify_by`` is given; None means the note lacks the field)."""
    if (size is None) == (fraction is None):
        raise ValueError("give exactly one of size and fraction")
    groups: dict[str, list[str]] = {}
    for note_id, value in notes:
        groups.setdefault(_label(value) if stratify_by else "", []).append(note_id)
    population = sum(len(ids) for ids in groups.values())
    n = sample_size(population, size, fraction)
    given = allocate({k: len(v) for k, v in groups.items()}, n)
    chosen: set[str] = set()
    strata = []
    for value in sorted(groups):
        ids = sorted(groups[value], key=lambda note_id: _rank(seed, note_id))[: given.get(value, 0)]
        chosen.update(ids)
        strata.append(Stratum(value, len(groups[value]), len(ids)))
    return Sample(frozenset(chosen), population, seed, stratify_by, tuple(strata))
