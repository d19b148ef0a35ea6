"""What every command shares: the store option, error reporting, output formats."""

from __future__ import annotations

import asyncio
import re
import signal
import sys
from collections.abc import Coroutine, Iterator, Sequence
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

if TYPE_CHECKING:
    from clinsum.store import Store

T = TypeVar("T")

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


NameOption = Annotated[str | None, typer.Option("--name", help="Name of the run, to select it later.")]
TagOption = Annotated[list[str] | None, typer.Option(
    "--tag", metavar="KEY=VALUE", help="Label the run (repeatable), e.g. --tag env=prod.")]


def parse_tags(items: list[str] | None) -> dict[str, str]:
    """``["env=prod", "site=a"]`` -> ``{"env": "prod", "site": "a"}``; a malformed item is a ConfigError."""
    from clinsum.errors import ConfigError

    tags: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"invalid --tag '{item}': expected KEY=VALUE")
        tags[key.strip()] = value.strip()
    return tags


EXIT_OK = 0
"""Success: everything asked for was done, nothing failed."""
EXIT_FAILED = 1
"""The command finished but something failed (a summary, an evaluation, a line of input) or a
gate (``--fail-on``) or monitor condition was hit. What finished is stored."""
EXIT_GATE = EXIT_FAILED
"""Old name of ``EXIT_FAILED``, kept for the commands that gate."""
EXIT_ERROR = 2
"""Usage or input error: bad flags, input file, configuration or store; nothing was run."""
EXIT_STORE = 3
"""The store (or an ``--out`` file) could not be written mid-run: the run stopped; what the
store holds is whole and ``--resume`` continues from it."""
EXIT_INTERRUPTED = 130
"""Stopped by SIGINT (Ctrl-C) or SIGTERM: in-flight calls cancelled, finished work stored,
the run marked ``interrupted``; ``--resume`` completes it."""
EXIT_READER_GONE = 141
"""The reader of standard output closed it (``clinsum runs | head``): 128 + SIGPIPE, what a
shell reports for a command killed by a broken pipe; nothing more is printed, what the
command stored is whole."""

EXIT_CODES_HELP = (
    f"Exit codes: {EXIT_OK} success; {EXIT_FAILED} finished but something failed (a summary, an "
    f"evaluation such as a judge answer) or a gate was hit; {EXIT_ERROR} usage or input error, nothing "
    f"run; {EXIT_STORE} the store or an output could not be written, the run stopped (resumable); "
    f"{EXIT_INTERRUPTED} interrupted by SIGINT or SIGTERM (resumable)."
)
"""The epilog of ``--help``: the same text as the README's "Exit codes" section."""


class Interrupted(BaseException):
    """A signal stopped the command (raised in place of the cancelled work).

    A ``BaseException``, like ``KeyboardInterrupt``: SIGTERM outside the event loop raises it
    wherever the command is, often inside a library's ``except Exception`` (MLflow's HTTP
    client, an SDK) that would turn it into that library's failure, or into a failed
    evaluation, and the command would go on or end as something else than interrupted.
    """

    def __init__(self, signal_name: str) -> None:
        super().__init__(f"interrupted by {signal_name}")


@contextmanager
def reported_errors(resumable: str | None = None) -> Iterator[None]:
    """Turn clinsum's own errors into one red line and their exit code, never a traceback.

    ``resumable`` names the command whose ``--resume RUN_ID`` completes the work after a
    signal or a store failure (``run``, ``score``); any other command is run again.
    """
    from clinsum.errors import ClinsumError, OutputWriteError, StoreWriteError

    again = (f"`clinsum {resumable} --resume RUN_ID` completes the run (see `clinsum runs`)"
             if resumable else "run the command again")

    try:
        with _sigterm_interrupts():
            yield
    except StoreWriteError as exc:
        console.print(f"[red]error:[/red] {shown(exc, multiline=True)}", highlight=False)
        console.print(f"{'the run' if resumable else 'the command'} stopped; what the store holds is whole: "
                      f"free space or fix the file, then {again}", highlight=False)
        raise typer.Exit(EXIT_STORE) from None
    except OutputWriteError as exc:
        console.print(f"[red]error:[/red] {shown(exc, multiline=True)}", highlight=False)
        raise typer.Exit(EXIT_STORE) from None
    except ClinsumError as exc:
        console.print(f"[red]error:[/red] {shown(exc, multiline=True)}", highlight=False)
        raise typer.Exit(EXIT_ERROR) from None
    except (KeyboardInterrupt, Interrupted) as exc:
        what = str(exc) if isinstance(exc, Interrupted) else "interrupted"
        done = "finished work is stored" if resumable else "stopped before it finished"
        console.print(f"[yellow]{escape(what)}[/yellow]: {done}; {again}", highlight=False)
        raise typer.Exit(EXIT_INTERRUPTED) from None


def _raise_interrupted(signum: int, _frame: object) -> None:
    raise Interrupted(signal.Signals(signum).name)


@contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """SIGTERM outside the event loop (loading notes, writing outputs) ends the command like
    Ctrl-C does, with exit 130, instead of killing it; inside the loop ``run_interruptible``
    takes over."""
    try:
        previous = signal.signal(signal.SIGTERM, _raise_interrupted)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_interruptible(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)``, with SIGINT and SIGTERM cancelling it cleanly.

    The signal cancels the main task: in-flight provider calls are cancelled, the
    store flushes what finished, the run is marked ``interrupted``; then
    ``Interrupted`` is raised (exit 130 through ``reported_errors``).
    """
    received: list[str] = []

    async def guarded() -> T:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        installed = []
        previous = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}
        for number in (signal.SIGINT, signal.SIGTERM):
            def stop(name: str = number.name) -> None:
                received.append(name)
                task.cancel()
            try:
                loop.add_signal_handler(number, stop)
                installed.append(number)
            except (NotImplementedError, RuntimeError, ValueError):  # no signals here (not main thread)
                pass
        try:
            return await main
        except asyncio.CancelledError:
            if received:
                raise Interrupted(received[0]) from None
            raise
        finally:
            for number in installed:
                loop.remove_signal_handler(number)  # resets to the default handler...
                signal.signal(number, previous[number])  # ...so put back the one before

    return asyncio.run(guarded())


@contextmanager
def open_store(path: Path, *, must_exist: bool = False) -> Iterator[Store]:
    """The store at ``path``; read-only commands pass ``must_exist`` so a typo never creates one."""
    from clinsum.store import Store

    store = Store.open(path, must_exist=must_exist)
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
