"""Every span in a coverage detail names the text it indexes, and slices that text to the mention.

The report highlights these spans in the source and the summary; a span taken from another text
(a flip's reference mention shown in the dialogue: "ht knee pain and yo") misleads the reader.
Scored on the ACI-Bench dialogues of ``fixtures/`` with their reference notes, against summaries
that reach every detail: the reference note itself, another encounter's note (fabrications),
the dialogue's opening (a transcript-like summary) and the report fixture's production summaries,
each with and without clinician key concepts (one of them found nowhere in the source).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from report_fixture import DIALOGUES, PRODUCTION

from clinsum.evaluators.coverage import create
from clinsum.inputs import load_notes
from clinsum.records import Note, Score, Summary

TEXTS = ("source", "summary", "reference")


def spans(detail: Any, where: str | None = None) -> Iterator[tuple[str | None, Any, str]]:
    """(text name, span, surface text) of every span in a detail, at any depth.

    An entry with ``span`` names its text in ``in``; a flip's sides hold ``spans`` of
    ``[start, end, status, text]`` under the name of their text (``source``, ``reference``).
    """
    if isinstance(detail, dict):
        if "span" in detail:
            yield detail.get("in", where), detail["span"], detail.get("text")
        if "spans" in detail:
            for start, end, _status, text in detail["spans"]:
                yield where, [start, end], text
        for key, value in detail.items():
            yield from spans(value, key if key in TEXTS else where)
    elif isinstance(detail, list):
        for value in detail:
            yield from spans(value, where)


def cases() -> Iterator[tuple[Note, Summary]]:
    notes = load_notes(DIALOGUES).records
    for i, note in enumerate(notes):
        other = notes[(i + 1) % len(notes)]
        keyed = note.model_copy(update={"key_concepts": [
            note.reference.split(".")[0][-30:].strip(), "knee pain", "chest pain", "likes gardening"]})
        for source in (note, keyed):
            for name, text in (("reference", note.reference), ("other note", other.reference),
                               ("opening", note.text[:1500])):
                yield source, Summary(note_id=note.id, system=name, text=text or "")
            for summary in PRODUCTION:
                if summary.note_id == note.id and summary.ok:
                    yield source, summary


@pytest.fixture(scope="module")
def scored() -> list[tuple[Note, Summary, Score]]:
    evaluator = create({}, None)
    return [(note, summary, score) for note, summary in cases() for score in evaluator.scores(note, summary)]


def test_every_span_slices_the_text_it_names_to_its_mention(scored: list[tuple[Note, Summary, Score]]) -> None:
    checked: Counter[str] = Counter()
    for note, summary, score in scored:
        texts = {"source": note.text, "summary": summary.text, "reference": note.reference or ""}
        for where, span, surface in spans(score.detail):
            assert where in TEXTS, f"{score.metric}: a span without its text: {span} {surface!r}"
            if span is None:  # a key-concept phrase found nowhere in the source
                assert score.metric == "concept_recall" and where == "source"
                assert surface and surface.lower() not in note.text.lower()
                continue
            start, end = span
            assert texts[where][start:end] == surface, (score.metric, summary.system, where, span, surface)
            checked[where] += 1
    # every kind of span was met, so the check above could fail on each
    assert min(checked[where] for where in TEXTS) > 0, checked


def test_flips_keep_the_reference_spans_apart_from_the_source(scored: list[tuple[Note, Summary, Score]]) -> None:
    flips = [flip for _note, _summary, score in scored if score.metric == "assertion_flips"
             for flip in score.detail["flips"]]
    with_reference = [f for f in flips if "reference" in f]
    assert with_reference and any(f["source"]["spans"] for f in with_reference)
    for flip in flips:
        for side in ("source", "reference"):
            if side in flip:
                assert set(flip[side]["assertions"]) == {s[2] for s in flip[side]["spans"]}
