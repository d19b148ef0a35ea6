"""Options that several commands share, so that a flag means the same everywhere.

``--evaluator/-e`` names an evaluator (``overlap``, ``length``, ``coverage``,
``facts``, ``judge``) in ``run`` and ``score``; ``--metric/-m`` names a metric
(``judge_accurate``, ``rouge1``) wherever it appears (``agreement``). ``run`` and
``score`` once took ``--metric/-m`` for evaluators: it still works there, as a
hidden alias that warns.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated

import typer

from clinsum.cli.common import console, shown

EvaluatorOption = Annotated[list[str] | None, typer.Option(
    "--evaluator", "-e", help="overlap, length, coverage, facts, judge; repeat for several "
                              "(default: overlap, length, coverage).")]
DeprecatedMetricOption = Annotated[list[str] | None, typer.Option(
    "--metric", "-m", hidden=True, help="Deprecated alias of --evaluator/-e.")]

DEPRECATED_METRIC = ("--metric/-m names an evaluator here, which is deprecated: use --evaluator/-e "
                     "(--metric names a metric, as in `clinsum agreement -m judge_accurate`)")


def evaluators(given: list[str] | None, deprecated: list[str] | None) -> list[str] | None:
    """The evaluators asked for by ``--evaluator`` and the deprecated ``--metric`` together."""
    if deprecated:
        console.print(f"[yellow]warning:[/yellow] {shown(DEPRECATED_METRIC)}", highlight=False)
    chosen = [*(given or []), *(deprecated or [])]
    return chosen or None


def check_choices(flag: str, given: Iterable[str] | None, available: Iterable[str], *, noun: str,
                  where: str) -> None:
    """Refuse a repeated flag's value that names nothing in ``available`` (when there is anything):
    a typo is an error naming the valid values, never a silently smaller report."""
    from clinsum.errors import unknown_choice
    from clinsum.evaluators.metrics import display_key

    valid = sorted(set(available), key=display_key)
    for value in given or []:
        if valid and value not in valid:
            raise unknown_choice(flag, value, valid, noun=noun, where=where)
