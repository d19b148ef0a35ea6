"""The ``clinsum`` command line.

Each command group lives in its own module and registers itself on ``app``;
modules import their heavy dependencies (SDKs, spaCy, numpy) inside the
command functions, so ``clinsum --help`` stays fast whatever is installed.

Every command takes ``-h`` as well as ``--help`` (``help_option_names`` is
inherited by every sub-command and sub-group); ``--install-completion`` and
``--show-completion`` come from typer.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Annotated, Any, TextIO

import typer

from clinsum.cli.common import EXIT_CODES_HELP

app = typer.Typer(
    name="clinsum",
    help="Evaluate LLM summaries of clinical text.",
    epilog=EXIT_CODES_HELP,
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _print_version(value: bool) -> None:
    if value:
        from clinsum import __version__

        typer.echo(f"clinsum {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[bool, typer.Option(
        "--version", "-V", callback=_print_version, is_eager=True,
        help="Print clinsum's version and exit.")] = False,
) -> None:
    """Evaluate LLM summaries of clinical text."""


# Command modules: each does `from clinsum.cli import app` and decorates its commands.
from clinsum.cli import evaluation, history  # noqa: E402,F401  (registration by import)

# -- more command modules are imported below this line, one per line --
from clinsum.cli import judging  # noqa: E402,F401
from clinsum.cli import feedback  # noqa: E402,F401
from clinsum.cli import providers  # noqa: E402,F401
from clinsum.cli import concepts  # noqa: E402,F401
from clinsum.cli import report  # noqa: E402,F401
from clinsum.cli import export  # noqa: E402,F401
from clinsum.cli import compare  # noqa: E402,F401
from clinsum.cli import monitor  # noqa: E402,F401


def main() -> None:
    """Run the command; results that cannot reach standard output end it with exit 3, not 0 or a traceback.

    A table or CSV redirected to a full disk fails while it is written, or only when the
    buffered rest is flushed at exit, which Python would report after the command had
    already said it succeeded.
    """
    watched = _WatchedStdout(sys.stdout)
    sys.stdout = watched
    try:
        app()
    except SystemExit:
        with contextlib.suppress(OSError):
            watched.flush()  # a failure is recorded in watched.failure
        if watched.failure is not None:
            _stdout_failed(watched.failure)
        raise
    except OSError as exc:
        if exc is watched.failure:
            _stdout_failed(exc)
        raise  # not standard output's error: a bug, shown as it is


class _WatchedStdout:
    """``sys.stdout``, remembering the error of a write or flush that failed."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.failure: OSError | None = None

    def write(self, text: str) -> int:
        try:
            return self.stream.write(text)
        except OSError as exc:
            self.failure = exc
            raise

    def flush(self) -> None:
        try:
            self.stream.flush()
        except OSError as exc:
            self.failure = exc
            raise

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


def _stdout_failed(error: OSError) -> None:
    from clinsum.cli.common import EXIT_READER_GONE, EXIT_STORE, console, shown

    if isinstance(error, BrokenPipeError):  # `| head` has what it wanted: no message, the shell's code
        with contextlib.suppress(OSError):
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115
        raise SystemExit(EXIT_READER_GONE) from None
    console.print(f"[red]error:[/red] standard output: cannot write the results ({shown(error.strerror or error)}); "
                  "what the command stored is whole", highlight=False)
    with contextlib.suppress(OSError):  # nothing more can go there: keep Python from trying again at exit
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115
    raise SystemExit(EXIT_STORE) from None
