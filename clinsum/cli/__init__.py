"""The ``clinsum`` command line.

Each command group lives in its own module and registers itself on ``app``;
modules import their heavy dependencies (SDKs, spaCy, numpy) inside the
command functions, so ``clinsum --help`` stays fast whatever is installed.
"""

from __future__ import annotations

import typer

from clinsum.cli.common import EXIT_CODES_HELP

app = typer.Typer(
    name="clinsum",
    help="Evaluate LLM summaries of clinical text.",
    epilog=EXIT_CODES_HELP,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Command modules: each does `from clinsum.cli import app` and decorates its commands.
from clinsum.cli import evaluation, history  # noqa: E402,F401  (registration by import)

# -- more command modules are imported below this line, one per line --
from clinsum.cli import judging  # noqa: E402,F401
from clinsum.cli import feedback  # noqa: E402,F401
from clinsum.cli import providers  # noqa: E402,F401
from clinsum.cli import concepts  # noqa: E402,F401
from clinsum.cli import report  # noqa: E402,F401
from clinsum.cli import export  # noqa: E402,F401


def main() -> None:
    app()
