"""Prompt templates for summarization, versioned: the version is stored with every summary."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from clinsum.errors import ConfigError
from clinsum.records import Note

DEFAULT = "summarize_v1"
PLACEHOLDER = "{note}"


@dataclass(frozen=True)
class Template:
    text: str
    version: str
    """``summarize_v1`` for the packaged prompt; ``custom-<sha256[:10]>`` for a user's file."""

    def render(self, note: Note) -> str:
        return self.text.replace(PLACEHOLDER, note.text)


def load_template(path: str | Path | None = None) -> Template:
    """The packaged default prompt, or a user's template file containing ``{note}``."""
    if path is None:
        text = resources.files("clinsum.prompts").joinpath(f"{DEFAULT}.txt").read_text("utf-8")
        return Template(text, DEFAULT)
    try:
        text = Path(path).read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the prompt template: {exc}") from exc
    if PLACEHOLDER not in text:
        raise ConfigError(f"{path}: a prompt template must contain {PLACEHOLDER} where the note goes")
    digest = hashlib.sha256(text.encode()).hexdigest()[:10]
    return Template(text, f"custom-{digest}")
