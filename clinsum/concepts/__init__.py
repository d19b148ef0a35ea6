"""Medical concept extraction: terminology, matching, abbreviation resolution and assertion.

    >>> from clinsum.concepts import extract
    >>> [(m.text, m.concept_id, m.assertion) for m in extract("Denies chest pain. Hx of HTN.")]

Nothing heavy is imported until the first call: the lexicon and spaCy load once per process.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from clinsum.concepts.assertion import assertion_of

if TYPE_CHECKING:
    from clinsum.records import Mention

__all__ = ["assertion_of", "extract"]


def extract(text: str) -> list[Mention]:
    """The concept mentions of ``text`` in order of position, each with its assertion."""
    from clinsum.concepts.extract import extract as _extract

    return _extract(text)

