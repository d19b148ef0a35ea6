"""Prompt templates, versioned: one mechanism for the summarizer's prompt and the judge's.

A template file has an optional header of ``#`` comment lines, one of which is
``# version: NAME`` (a header is read as such only in a file with a version line
or sections, so a user's prompt may start with a Markdown heading), then the
prompt. A prompt with a system part is split by the lines ``--- system ---`` and
``--- user ---`` (in that order); without them the whole text (after the
header) is the user prompt. Placeholders are ``$name``
(``string.Template``; ``$$`` is a literal dollar sign): values are inserted
verbatim and never re-interpreted, whatever braces or dollars they contain.

**Data is always fenced by code, never by the template.** A placeholder that
carries data (``$note``, ``$summary``...) is replaced by the data between two
marker lines, ``<<<BEGIN NOTE-<boundary>>>`` and ``<<<END NOTE-<boundary>>>``,
whose boundary is derived from a hash of everything the prompt carries (the
note's id and text, the summaries). A text cannot contain a hash of itself, so
it cannot close its fence early and smuggle an instruction outside it; the
note's id, which a user chose too, goes inside the note's fence. ``$boundary``
lets the instructions name the markers. The boundary is deterministic: the
same inputs give the same prompt and hit the response cache.

Versions: a packaged template's version is its declared name (``summarize_v2``),
recorded with every summary (and in the judge's evaluator version); a change of
a packaged prompt is a new file with a new name. A user's file is
``<declared or "custom">-<sha256[:10]>`` of its text, so an edit always changes
the recorded version.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from string import Template as Text

from clinsum.errors import ConfigError
from clinsum.records import Note

__all__ = ["DEFAULT", "PromptTemplate", "Template", "boundary", "fence", "load_template"]

DEFAULT = "summarize_v2"
"""The packaged summarization prompt (``summarize_v2.txt``)."""
SUMMARY_PLACEHOLDERS = ("note", "boundary")
"""What a summarization template may use: ``$note`` (required, fenced) and ``$boundary``."""

_SECTION = re.compile(r"^--- (system|user) ---[ \t]*$", re.MULTILINE)
_VERSION = re.compile(r"^#\s*version:\s*(\S+)\s*$")


def boundary(*texts: str) -> str:
    """12 hex digits of a SHA-256 of the texts: a marker none of them can contain."""
    digest = hashlib.sha256("\x00".join(texts).encode("utf-8", errors="surrogatepass")).hexdigest()
    return digest[:12]


def fence(label: str, marker: str, text: str) -> str:
    """``text`` between the marker lines ``<<<BEGIN label-marker>>>`` and ``<<<END label-marker>>>``."""
    return f"<<<BEGIN {label}-{marker}>>>\n{text}\n<<<END {label}-{marker}>>>"


@dataclass(frozen=True)
class PromptTemplate:
    """A parsed template file: its version, optional system part and user part."""

    version: str
    user: Text
    system: Text | None = None

    @property
    def text(self) -> str:
        """The template as written (system part, if any, then user part)."""
        parts = [self.system.template] if self.system is not None else []
        return "\n".join([*parts, self.user.template])

    @classmethod
    def parse(cls, text: str, *, where: str, version: str | None = None) -> PromptTemplate:
        """Parse a template; ``version`` (packaged files) overrides the content-derived one."""
        header, body = _split_header(text)
        declared = next((m.group(1) for line in header if (m := _VERSION.match(line))), None)
        if version is None:
            digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:10]
            version = f"{declared or 'custom'}-{digest}"
        parts = _SECTION.split(body)
        if len(parts) == 1:
            return cls(version=version, user=Text(body.strip("\n")))
        # parts: [before, name, body, name, body...]
        names = parts[1::2]
        if parts[0].strip() or names not in (["system", "user"], ["user"]):
            raise ConfigError(f"{where}: a prompt template with sections has '--- system ---' (optional) "
                              "then '--- user ---', each once, in that order, and nothing before them "
                              "but '#' comment lines")
        sections = dict(zip(names, (p.strip("\n") for p in parts[2::2]), strict=True))
        system = Text(sections["system"]) if "system" in sections else None
        return cls(version=version, user=Text(sections["user"]), system=system)

    @classmethod
    def load(cls, path: str | Path, *, version: str | None = None) -> PromptTemplate:
        try:
            text = Path(path).read_text("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: cannot read the prompt template: {exc}") from exc
        return cls.parse(text, where=str(path), version=version)

    @classmethod
    def packaged(cls, path: Path) -> PromptTemplate:
        """A template shipped with clinsum: its version is the one the file declares."""
        template = cls.load(path)
        declared = template.version.rpartition("-")[0]
        if declared == "custom":
            raise ConfigError(f"{path}: a packaged prompt template must declare '# version: NAME'")
        return cls(version=declared, user=template.user, system=template.system)

    def check(self, allowed: tuple[str, ...], required: tuple[str, ...], *, where: str) -> PromptTemplate:
        """Refuse a template that uses an unknown placeholder or lacks a required one, at load time."""
        used = set()
        for part in (self.system, self.user):
            if part is None:
                continue
            for match in part.pattern.finditer(part.template):
                name = match.group("named") or match.group("braced")
                if match.group("invalid") is not None:
                    raise ConfigError(f"{where}: a lone '$' in the template; write $$ for a dollar sign")
                if name:
                    used.add(name)
        unknown = sorted(used - set(allowed))
        if unknown:
            raise ConfigError(f"{where}: unknown placeholder(s) {', '.join('$' + n for n in unknown)}; "
                              f"this template may use {', '.join('$' + n for n in allowed)} "
                              "(write $$ for a dollar sign)")
        missing = [name for name in required if name not in used]
        if missing:
            hint = " ({note} was the placeholder of clinsum 0.x templates)" if "{note}" in self.text else ""
            raise ConfigError(f"{where}: the template must contain {', '.join('$' + n for n in missing)} "
                              f"where the data goes{hint}")
        return self

    def fill(self, values: dict[str, str]) -> tuple[str | None, str]:
        """(system, user) with the placeholders replaced; data values must come fenced."""
        system = self.system.substitute(values) if self.system is not None else None
        return system, self.user.substitute(values)

    def render(self, note: Note) -> str:
        """The summarization prompt for one note (a summarization template has no system part)."""
        marker = boundary(note.id, note.text)
        _, user = self.fill({"note": fence("NOTE", marker, note.text), "boundary": marker})
        return user


Template = PromptTemplate
"""The name the runner knows the summarization template by."""


def _split_header(text: str) -> tuple[list[str], str]:
    """Leading ``#`` comment lines (and blank lines among them), and the rest."""
    lines = text.split("\n")
    position = 0
    while position < len(lines) and (lines[position].startswith("#") or not lines[position].strip()):
        position += 1
    header = lines[:position]
    # A user's prompt may start with a Markdown heading: '#' lines are a header only in a file
    # that declares a version or has sections, as packaged templates do.
    if not (any(_VERSION.match(line) for line in header) or _SECTION.search(text)):
        return [], text
    return header, "\n".join(lines[position:])


def load_template(path: str | Path | None = None) -> PromptTemplate:
    """The packaged summarization prompt, or a user's template file containing ``$note``."""
    if path is None:
        packaged = Path(str(resources.files("clinsum.prompts").joinpath(f"{DEFAULT}.txt")))
        template = PromptTemplate.packaged(packaged)
    else:
        template = PromptTemplate.load(path)
    if template.system is not None:
        raise ConfigError(f"{path or DEFAULT}: a summarization template has no system part; "
                          "write the whole prompt (or only a '--- user ---' section)")
    return template.check(SUMMARY_PLACEHOLDERS, ("note",), where=str(path or DEFAULT))
