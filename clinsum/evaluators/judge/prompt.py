"""Prompt templates of the judge, read from the ``*.txt`` files beside this module.

A template file has comment lines (``#``), one of which is ``# version: NAME``,
then a ``--- system ---`` section and a ``--- user ---`` section. Placeholders
are ``$name`` (``string.Template``): the note and summary are inserted
verbatim and never re-interpreted, whatever braces or dollars they contain.

The note and summaries are fenced by marker lines that carry a boundary derived
from a hash of the texts: a note cannot contain its own hash, so it cannot
close its fence early and smuggle text outside it. The boundary is
deterministic, so the same inputs give the same prompt and hit the cache.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from string import Template

from clinsum.errors import ConfigError
from clinsum.evaluators.judge.rubric import Rubric

HERE = Path(__file__).parent
JUDGE_TEMPLATE = HERE / "prompt_v1.txt"
PAIRWISE_TEMPLATE = HERE / "pairwise_prompt_v1.txt"

_SECTION = re.compile(r"^--- (system|user) ---$", re.MULTILINE)
_VERSION = re.compile(r"^#\s*version:\s*(\S+)\s*$", re.MULTILINE)


@dataclass(frozen=True)
class PromptTemplate:
    version: str
    system: Template
    user: Template

    @classmethod
    def load(cls, path: Path) -> PromptTemplate:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read prompt template: {exc}") from exc
        version = _VERSION.search(text)
        parts = _SECTION.split(text)
        # parts: [header, "system", body, "user", body]
        if version is None or len(parts) != 5 or parts[1] != "system" or parts[3] != "user":
            raise ConfigError(f"{path}: a prompt template needs '# version: NAME', then "
                              "'--- system ---' and '--- user ---' sections, in that order")
        return cls(version=version.group(1), system=Template(parts[2].strip("\n")),
                   user=Template(parts[4].strip("\n")))


def boundary(*texts: str) -> str:
    digest = hashlib.sha256("\x00".join(texts).encode("utf-8")).hexdigest()
    return digest[:12]


def rubric_text(rubric: Rubric) -> str:
    """The rubric as the judge reads it: every attribute, every anchored level."""
    blocks = []
    for attribute in rubric.attributes:
        lines = [f"## {attribute.name}", attribute.question]
        if attribute.scale_note:
            lines.append(f"Scale: {attribute.scale_note}")
        for level in sorted(attribute.levels, reverse=True):
            lines.append(f"  {level} = {attribute.levels[level]}")
        if attribute.optional:
            lines.append(f"  0 = not applicable: only when {attribute.not_applicable_when}.")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def judge_prompt(template: PromptTemplate, rubric: Rubric, *, note_id: str, note_text: str,
                 summary_text: str, target_reader: str | None = None) -> tuple[str, str]:
    """(system, user) prompt to rate one summary."""
    values = {
        "rubric_name": rubric.name,
        "target_reader": target_reader or rubric.target_reader,
        "rubric_text": rubric_text(rubric),
        "attribute_names": ", ".join(rubric.names),
        "note_id": note_id,
        "note_text": note_text,
        "summary_text": summary_text,
        "boundary": boundary(note_text, summary_text),
    }
    return template.system.substitute(values), template.user.substitute(values)


def pairwise_prompt(template: PromptTemplate, *, note_id: str, note_text: str, summary_a: str,
                    summary_b: str, target_reader: str) -> tuple[str, str]:
    """(system, user) prompt to compare summary A (shown first) with summary B."""
    values = {
        "target_reader": target_reader,
        "note_id": note_id,
        "note_text": note_text,
        "summary_a": summary_a,
        "summary_b": summary_b,
        "boundary": boundary(note_text, summary_a, summary_b),
    }
    return template.system.substitute(values), template.user.substitute(values)


def feedback_prompt(user_prompt: str, previous_answer: str, problem: str) -> str:
    """The user prompt again, with the rejected answer and the reason it was rejected."""
    return (
        f"{user_prompt}\n\n"
        "Your previous answer was rejected.\n"
        f"<<<BEGIN PREVIOUS ANSWER>>>\n{previous_answer}\n<<<END PREVIOUS ANSWER>>>\n"
        f"Validation error: {problem}\n"
        "Answer again with a single corrected JSON object that matches the schema, and nothing else."
    )
