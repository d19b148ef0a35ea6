"""The packaged terminology: normalisation of names and text, and the compiled lexicon.

A concept has a source-prefixed id (``mesh:D003924``, ``icd10cm:E11.9``, ``drugbank:DB00331``,
``clinsum:htn``), a preferred name and one semantic group. Its names are stored in two forms:

* normalised keys (lowercase, accents folded, punctuation and hyphens dropped, simple plural
  folding), matched against the same normalisation of the text;
* case-sensitive surface forms for short all-capital abbreviations (``MI``, ``PE``, ``ALL``), which
  would collide with ordinary words if lowercased ("mi", "pe", "all").

The artifact ``lexicon.tsv.gz`` is built by ``scripts/build_lexicon.py`` from the source vocabularies
(see ``SOURCES.md``); loading it needs nothing but the standard library.
"""

from __future__ import annotations

import gzip
import io
import os
import re
import threading
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from clinsum.errors import ClinsumError

LEXICON_PATH = Path(__file__).with_name("lexicon.tsv.gz")
LEXICON_FORMAT = "clinsum-lexicon/1"

GROUPS = ("disorder", "finding", "drug", "procedure", "test", "anatomy", "device")

# Punctuation that ends a phrase: a name never matches across it.
BARRIER_CHARS = frozenset(".,;:()[]{}!?\n\"")
_ALNUM_RUN = re.compile(r"[^\W_]+")
_POSSESSIVE = frozenset({"'s", "’s", "s'", "'", "’"})


def fold(text: str) -> str:
    """Lowercase and strip accents (``Sjögren`` → ``sjogren``)."""
    decomposed = unicodedata.normalize("NFKD", text.lower())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def stem(word: str) -> str:
    """Fold simple English plurals, identically for names and text (``injuries`` → ``injury``).

    Deliberately crude: words of three letters or fewer and Greek/Latin endings (-is, -us, -ss,
    -as but not the plural -ias of "arrhythmias") are left alone, so ``diabetes`` → ``diabete``
    on both sides and still matches itself.
    """
    if len(word) <= 3 or not word.isalpha():
        return word
    if word.endswith("ies") and len(word) > 5:
        return word[:-3] + "y"
    if word.endswith(("ss", "us", "is", "as")) and not word.endswith("ias"):
        return word
    if word.endswith(("ches", "shes", "xes", "sses")):
        return word[:-2]
    if word.endswith("s"):
        return word[:-1]
    return word


def token_words(token_text: str, token_start: int) -> Iterator[tuple[str, int, int]]:
    """The words of one tokenizer token: alphanumeric runs, folded and stemmed, with char offsets."""
    for norm, start, end in token_parts(token_text):
        yield norm, token_start + start, token_start + end


@lru_cache(maxsize=200_000)
def token_parts(token_text: str) -> tuple[tuple[str, int, int], ...]:
    """``token_words`` relative to the token, cached (tokens repeat a lot in clinical text)."""
    if token_text in _POSSESSIVE:
        return ()
    return tuple((stem(fold(run.group())), run.start(), run.end()) for run in _ALNUM_RUN.finditer(token_text))


def is_barrier(token_text: str) -> bool:
    return token_text in BARRIER_CHARS or (not token_text.strip() and "\n" in token_text)


def is_acronym(name: str) -> bool:
    """A short all-capital abbreviation that must match case-sensitively (``MI``, ``ALL``)."""
    letters = name.replace("-", "").replace("/", "")
    return 1 <= len(letters) <= 6 and letters.isalnum() and letters.upper() == letters \
        and any(c.isalpha() for c in letters)


def write_gzip_text(path: Path) -> io.TextIOWrapper:
    """A UTF-8 text writer to a gzip file with no timestamp, so that rebuilds are byte-identical."""
    raw = gzip.GzipFile(filename="", mode="wb", fileobj=path.open("wb"), compresslevel=9, mtime=0)
    return _ClosingWriter(raw, encoding="utf-8", newline="\n")


class _ClosingWriter(io.TextIOWrapper):
    """Closes the underlying file that GzipFile was given, as well as the gzip stream."""

    def close(self) -> None:
        raw = self.buffer
        super().close()
        fileobj = getattr(raw, "fileobj", None)
        if fileobj is not None:
            fileobj.close()


@dataclass(frozen=True, slots=True)
class Concept:
    id: str
    name: str
    group: str


@dataclass
class Lexicon:
    """Compiled lookup tables (read-only once loaded, so safe to share between threads)."""

    concepts: list[Concept] = field(default_factory=list)
    keys: dict[str, int] = field(default_factory=dict)
    """Normalised name (words joined by one space) → index into ``concepts``."""
    acronyms: dict[str, int] = field(default_factory=dict)
    """Case-sensitive surface form → index into ``concepts``."""
    first_word_span: dict[str, int] = field(default_factory=dict)
    """First word of a key → the longest key length (in words) starting with it."""
    vocabulary: frozenset[str] = frozenset()
    """Every word occurring in some key (for fuzzy correction of misspelt words)."""
    known_words: frozenset[str] = frozenset()
    """Ordinary (normalised) words of medical English that fuzzy matching must not "correct"."""
    meta: dict[str, str] = field(default_factory=dict)

    def add(self, concept: Concept, names: Iterable[str], surface_acronyms: Iterable[str] = ()) -> int:
        index = len(self.concepts)
        self.concepts.append(concept)
        for key in names:
            self.keys.setdefault(key, index)
        for acronym in surface_acronyms:
            self.acronyms.setdefault(acronym, index)
        return index

    def finish(self) -> None:
        spans: dict[str, int] = {}
        vocabulary: set[str] = set()
        for key in self.keys:
            words = key.split(" ")
            if spans.get(words[0], 0) < len(words):
                spans[words[0]] = len(words)
            vocabulary.update(words)
        self.first_word_span = spans
        self.vocabulary = frozenset(vocabulary)

    def by_id(self, concept_id: str) -> Concept | None:
        for concept in self.concepts:
            if concept.id == concept_id:
                return concept
        return None

    # -- the artifact -------------------------------------------------------------------------

    def write(self, path: Path) -> None:
        """One concept per line: id, group, preferred name, keys (``|``), case-sensitive forms (``|``)."""
        keys_of: dict[int, list[str]] = {}
        for key, index in self.keys.items():
            keys_of.setdefault(index, []).append(key)
        acronyms_of: dict[int, list[str]] = {}
        for form, index in self.acronyms.items():
            acronyms_of.setdefault(index, []).append(form)
        with write_gzip_text(path) as out:
            out.write(f"#{LEXICON_FORMAT}\t" + "\t".join(f"{k}={v}" for k, v in self.meta.items()) + "\n")
            for index, concept in enumerate(self.concepts):
                keys = keys_of.get(index, [])
                forms = acronyms_of.get(index, [])
                if not keys and not forms:
                    continue
                out.write("\t".join((concept.id, concept.group, concept.name,
                                     "|".join(sorted(keys)), "|".join(sorted(forms)))) + "\n")

    @classmethod
    def read(cls, path: Path) -> Lexicon:
        lexicon = cls()
        try:
            with gzip.open(path, "rt", encoding="utf-8") as lines:
                header = next(lines).rstrip("\n").split("\t")
                if header[0] != "#" + LEXICON_FORMAT:
                    raise ClinsumError(f"{path}: not a {LEXICON_FORMAT} lexicon (header {header[0]!r})")
                lexicon.meta = dict(item.split("=", 1) for item in header[1:] if "=" in item)
                for number, line in enumerate(lines, start=2):
                    parts = line.rstrip("\n").split("\t")
                    if len(parts) != 5 or parts[1] not in GROUPS:
                        raise ClinsumError(f"{path}:{number}: malformed lexicon row")
                    concept_id, group, name, keys, forms = parts
                    lexicon.add(Concept(concept_id, name, group),
                                keys.split("|") if keys else (), forms.split("|") if forms else ())
        except (OSError, EOFError, StopIteration, UnicodeDecodeError) as error:
            raise ClinsumError(f"cannot read the lexicon {path}: {error}. "
                               "Rebuild it with: python scripts/build_lexicon.py") from error
        words_path = path.with_name(path.name.replace(".tsv.gz", ".words.gz"))
        if words_path.exists():
            with gzip.open(words_path, "rt", encoding="utf-8") as words:
                lexicon.known_words = frozenset(words.read().split())
        lexicon.finish()
        return lexicon


_lexicon: Lexicon | None = None
_lexicon_lock = threading.Lock()


def load_lexicon(path: Path | None = None) -> Lexicon:
    """The process-wide lexicon, loaded once (or a lexicon file given explicitly).

    The packaged artifact, unless ``CLINSUM_LEXICON`` names another file built by
    ``scripts/build_lexicon.py -o`` (for example a local build ``--with-hpo``, which may not be
    redistributed; see SOURCES.md).
    """
    global _lexicon
    if path is not None:
        return Lexicon.read(path)
    with _lexicon_lock:
        if _lexicon is None:
            configured = os.environ.get("CLINSUM_LEXICON")
            _lexicon = Lexicon.read(Path(configured) if configured else LEXICON_PATH)
        return _lexicon
