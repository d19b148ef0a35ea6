"""The report's templates, stylesheet and script, as files beside the code that renders them."""

from __future__ import annotations

from functools import cache
from importlib.resources import files

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape


def read(name: str) -> str:
    """A packaged asset (stylesheet or script) as text."""
    return files(__package__).joinpath(name).read_text("utf-8")


@cache
def environment() -> Environment:
    """HTML and SVG templates escape every value; the Markdown template escapes with its own filter."""
    env = Environment(loader=PackageLoader("clinsum.reporting", "templates"),
                      autoescape=select_autoescape(enabled_extensions=("html", "svg", "html.j2", "svg.j2"),
                                                   default_for_string=True, default=True),
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    return env
