"""Prompt templates of the judge, read from the ``*.txt`` files beside this module.

The files use the one template mechanism of ``clinsum.prompts`` (``# version:``
header, ``--- system ---`` and ``--- user ---`` sections, ``$name``
placeholders). The note and the summaries come to the template already fenced
by marker lines whose boundary is a hash of everything the prompt carries,
including the note's id, which sits inside the note's fence: no text can close
its fence early and smuggle an instruction outside it.
"""

from __future__ import annotations

from pathlib import Path

from clinsum.errors import ConfigError
from clinsum.evaluators.judge.rubric import Rubric
from clinsum.prompts import PromptTemplate, boundary, fence

__all__ = ["JUDGE_TEMPLATE", "PAIRWISE_TEMPLATE", "PromptTemplate", "boundary", "feedback_prompt",
           "judge_prompt", "load_judge_template", "pairwise_prompt", "rubric_text"]

HERE = Path(__file__).parent
JUDGE_TEMPLATE = HERE / "prompt_v2.txt"
PAIRWISE_TEMPLATE = HERE / "pairwise_prompt_v2.txt"

JUDGE_PLACEHOLDERS = ("rubric_name", "target_reader", "rubric_text", "attribute_names", "note", "summary",
                      "boundary")
PAIRWISE_PLACEHOLDERS = ("target_reader", "note", "summary_a", "summary_b", "boundary")


def load_judge_template(path: Path, *, pairwise: bool = False) -> PromptTemplate:
    """A judge (or pairwise) template, packaged or a user's, checked for its placeholders."""
    template = PromptTemplate.packaged(path) if path.parent == HERE else PromptTemplate.load(path)
    if template.system is None:
        raise ConfigError(f"{path}: a judge prompt template needs '--- system ---' and '--- user ---' sections")
    allowed = PAIRWISE_PLACEHOLDERS if pairwise else JUDGE_PLACEHOLDERS
    required = ("note", "summary_a", "summary_b") if pairwise else ("note", "summary")
    return template.check(allowed, required, where=str(path))


def _note_block(marker: str, note_id: str, note_text: str) -> str:
    return fence("NOTE", marker, f"id: {note_id}\n{note_text}")


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
    marker = boundary(note_id, note_text, summary_text)
    system, user = template.fill({
        "rubric_name": rubric.name,
        "target_reader": target_reader or rubric.target_reader,
        "rubric_text": rubric_text(rubric),
        "attribute_names": ", ".join(rubric.names),
        "note": _note_block(marker, note_id, note_text),
        "summary": fence("SUMMARY", marker, summary_text),
        "boundary": marker,
    })
    return system or "", user


def pairwise_prompt(template: PromptTemplate, *, note_id: str, note_text: str, summary_a: str,
                    summary_b: str, target_reader: str) -> tuple[str, str]:
    """(system, user) prompt to compare summary A (shown first) with summary B."""
    marker = boundary(note_id, note_text, summary_a, summary_b)
    system, user = template.fill({
        "target_reader": target_reader,
        "note": _note_block(marker, note_id, note_text),
        "summary_a": fence("SUMMARY-A", marker, summary_a),
        "summary_b": fence("SUMMARY-B", marker, summary_b),
        "boundary": marker,
    })
    return system or "", user


def feedback_prompt(user_prompt: str, previous_answer: str, problem: str) -> str:
    """The user prompt again, with the rejected answer (fenced: it may echo the note) and the reason."""
    marker = boundary(user_prompt, previous_answer, problem)
    return (
        f"{user_prompt}\n\n"
        f"Your previous answer was rejected. It is between the two lines marked PREVIOUS-ANSWER-{marker}.\n"
        f"{fence('PREVIOUS-ANSWER', marker, previous_answer)}\n"
        f"Validation error: {problem}\n"
        "Answer again with a single corrected JSON object that matches the schema, and nothing else."
    )
