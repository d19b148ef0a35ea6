"""Evaluators for the engine tests, importable by the worker processes they are sent to."""

from __future__ import annotations

import os

from clinsum.evaluators.base import score
from clinsum.records import Note, Score, Summary

DOOMED = "n03"
"""The note whose summaries break these evaluators."""


class Words:
    """Counts words, and says which process counted them."""

    name = "words"
    version = "1"

    async def evaluate(self, note: Note, summary: Summary) -> list[Score]:
        return [score(note, summary, self, "words", float(len(summary.text.split())), pid=os.getpid())]


class Raising:
    name = "raising"
    version = "1"

    async def evaluate(self, note: Note, summary: Summary) -> list[Score]:
        if note.id == DOOMED:
            raise ValueError(f"cannot score {note.id}")
        return [score(note, summary, self, "chars", float(len(summary.text)))]


class Dying:
    """Kills the worker process that runs it on the doomed note (as a crash in native code would)."""

    name = "dying"
    version = "1"

    async def evaluate(self, note: Note, summary: Summary) -> list[Score]:
        if note.id == DOOMED:
            os._exit(7)
        return [score(note, summary, self, "chars", float(len(summary.text)))]
