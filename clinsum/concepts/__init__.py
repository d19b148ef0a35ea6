"""Medical concept extraction: terminology, matching, abbreviation resolution and assertion.

    >>> from clinsum.concepts import extract
    >>> [(m.text, m.concept_id, m.assertion) for m in extract("Denies chest pain. Hx of HTN.")]

Nothing heavy is imported until the first call: the lexicon and spaCy load once per process
(``extract`` is thread-safe).
"""

from __future__ import annotations

from clinsum.concepts.assertion import assertion_of

# Importing the submodule binds ``clinsum.concepts.extract`` to it; the function import right after
# rebinds the name to the function, for good. The module is light: spaCy loads on the first call.
from clinsum.concepts.extract import extract

__all__ = ["assertion_of", "extract"]

