"""What every command shares: the store option, error reporting, output formats."""

from __future__ import annotations

import sys
from collections.abc import Iterator
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
        console.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False)
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
