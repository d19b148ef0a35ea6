"""What every command shares: the store option, error reporting, output formats."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape

if TYPE_CHECKING:
    from clinsum.store import Store

console = Console(stderr=True, soft_wrap=True)
"""Progress, messages and errors go to stderr; results (tables, CSV, JSON) to stdout."""
stdout = Console()

DbOption = Annotated[Path, typer.Option("--db", help="SQLite store to read and write.")]
DEFAULT_DB = Path("clinsum.db")


class Format(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"


class ListFormat(StrEnum):
    table = "table"
    json = "json"


EXIT_ERROR = 2
"""Bad input, configuration or store: nothing was evaluated."""
EXIT_GATE = 1
"""The evaluation ran but a gate (``--fail-on``) failed, or some summaries failed."""

@contextmanager
def reported_errors() -> Iterator[None]:
    """Turn clinsum's own errors into one red line and exit code 2, not a traceback."""
    from clinsum.errors import ClinsumError

    try:
        yield
    except ClinsumError as exc:
        console.print(f"[red]error:[/red] {shown(exc, multiline=True)}", highlight=False)
        raise typer.Exit(EXIT_ERROR) from None
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/yellow]")
        raise typer.Exit(130) from None


@contextmanager
def open_store(path: Path) -> Iterator[Store]:
    from clinsum.store import Store

    store = Store.open(path)
    try:
        yield store
    finally:
        store.close()


def write_stdout(text: str) -> None:
    sys.stdout.write(text if text.endswith("\n") else text + "\n")


_UNSAFE = re.compile(
    "\x1b\\[[0-?]*[ -/]*[@-~]"          # ANSI CSI sequences (colours, cursor moves, clear screen)
    "|\x1b\\][^\x07\x1b]*(?:\x07|\x1b\\\\)?"  # OSC sequences (window title, hyperlinks)
    "|[\x00-\x08\x0b-\x1f\x7f-\x9f]"     # other C0 and C1 control characters (ESC, BEL, CR...)
    "|[\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c]"  # bidirectional overrides ("Trojan Source")
    "|[\ud800-\udfff]"                   # lone surrogates: no terminal can print them
)
_UNSAFE_IN_ONE_LINE = re.compile(f"{_UNSAFE.pattern}|[\n\t]")


def shown(value: object, *, multiline: bool = False) -> str:
    """User data (ids, names, texts, errors) made safe to print with rich.

    Escape sequences and control characters are shown as visible escapes
    (``\\x1b[2J``), never sent to the terminal, so an id cannot clear the screen,
    retitle the window or fake a line of output; rich markup is escaped, so
    ``[red]`` and ``pip install 'clinsum[vertex]'`` print as written. Newlines
    and tabs are kept only with ``multiline`` (a multi-line error message).
    """
    pattern = _UNSAFE if multiline else _UNSAFE_IN_ONE_LINE
    text = pattern.sub(lambda match: match.group().encode("unicode_escape", "backslashreplace")
                       .decode("ascii"), str(value))
    return escape(text)


def print_skipped(problems: Sequence[object], what: str) -> None:
    """The records ``--skip-invalid`` skipped: the first ``SHOWN_PROBLEMS``, then the count."""
    from clinsum.inputs import SHOWN_PROBLEMS

    for problem in problems[:SHOWN_PROBLEMS]:
        console.print(f"[yellow]skipped:[/yellow] {shown(problem, multiline=True)}", highlight=False)
    if len(problems) > SHOWN_PROBLEMS:
        console.print(f"[yellow]  ... and {len(problems) - SHOWN_PROBLEMS} more[/yellow]")
    if problems:
        console.print(f"[yellow]{len(problems)} invalid {what} skipped[/yellow]")
