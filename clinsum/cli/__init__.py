"""The ``clinsum`` command line.

Each command group lives in its own module and registers itself on ``app``;
modules import their heavy dependencies (SDKs, spaCy, numpy) inside the
command functions, so ``clinsum --help`` stays fast whatever is installed.

Every command takes ``-h`` as well as ``--help`` (``help_option_names`` is
inherited by every sub-command and sub-group); ``--install-completion`` and
``--show-completion`` come from typer.
"""

from __future__ import annotations

from typing import Annotated

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
    app()
