"""``clinsum concepts``: the medical concepts of a text, with their assertions.

    clinsum concepts note.txt              # a table of mentions
    echo "Denies chest pain." | clinsum concepts -
    clinsum concepts --jsonl-in notes.jsonl > mentions.jsonl
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from clinsum.cli import app
from clinsum.cli.common import EXIT_ERROR, EXIT_GATE, ListFormat, console, reported_errors, shown, stdout, write_stdout

MENTION_FIELDS = ("start", "end", "text", "concept_id", "name", "group", "assertion")


@app.command("concepts")
def concepts(
    file: Annotated[str | None, typer.Argument(metavar="[FILE|-]",
                                               help="A text file, or - for standard input.")] = None,
    jsonl_in: Annotated[Path | None, typer.Option(
        "--jsonl-in", help='JSONL of {"id", "text"}; writes one {"id", "mentions"} line per input.')] = None,
    format: Annotated[ListFormat, typer.Option(
        "--format", "-f", help="table or json (a list of mentions) for FILE; --jsonl-in always writes JSONL.")
    ] = ListFormat.table,
) -> None:
    """Print the medical concepts of a text (span, concept id, name, group, assertion)."""
    if (file is None) == (jsonl_in is None):
        console.print("[red]error:[/red] give either FILE (or -) or --jsonl-in FILE")
        raise typer.Exit(EXIT_ERROR)
    with reported_errors():
        from clinsum.evaluators.coverage import require_concepts_extra

        require_concepts_extra("`clinsum concepts`")
        if jsonl_in is not None:
            failures = _jsonl(jsonl_in)
            if failures:
                console.print(f"[yellow]{failures} line(s) of {shown(jsonl_in)} failed[/yellow]")
                raise typer.Exit(EXIT_GATE)
            return
        assert file is not None
        text = _read_text(file)
        if format is ListFormat.json:
            write_stdout(json.dumps(_mentions(text), ensure_ascii=False, indent=2))
        else:
            _table(file, text)


def _read_text(file: str) -> str:
    from clinsum.errors import InputError

    try:
        data = sys.stdin.buffer.read() if file == "-" else Path(file).read_bytes()
    except OSError as error:
        raise InputError(f"cannot read: {error.strerror or error}", path=file) from None
    return data.decode("utf-8", errors="replace")


def _as_dicts(mentions: list[Any]) -> list[dict[str, Any]]:
    return [{field: getattr(m, field) for field in MENTION_FIELDS} for m in mentions]


def _mentions(text: str) -> list[dict[str, Any]]:
    from clinsum.concepts import extract

    return _as_dicts(extract(text))


def _table(label: str, text: str) -> None:
    from rich.table import Table

    from clinsum.concepts import extract

    mentions = extract(text)
    table = Table(title=f"{len(mentions)} concept mention(s) in {shown(label)}", title_justify="left")
    for column in MENTION_FIELDS:
        table.add_column(column.replace("_", " "), justify="right" if column in ("start", "end") else "left",
                         no_wrap=column in ("start", "end", "concept_id", "assertion"))
    for m in mentions:
        table.add_row(str(m.start), str(m.end), shown(m.text), shown(m.concept_id), shown(m.name), shown(m.group),
                      shown(m.assertion))
    stdout.print(table)


def _jsonl(path: Path) -> int:
    """Write one line per good input line; report each bad one (file, line, field). Returns failures."""
    from clinsum.concepts import extract
    from clinsum.errors import ClinsumError, InputError

    failures = 0
    try:
        handle = path.open("rb")
    except OSError as error:
        raise InputError(f"cannot read: {error.strerror or error}", path=str(path)) from None
    with handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                row = _row(raw, str(path), number)
                mentions = extract(row["text"])
            except ClinsumError as error:
                where = "" if isinstance(error, InputError) and error.path else f"{path}:{number}: "
                console.print(f"[red]error:[/red] {shown(where + str(error))}", highlight=False)
                failures += 1
                continue
            write_stdout(json.dumps({"id": row["id"], "mentions": _as_dicts(mentions)}, ensure_ascii=False))
    return failures


def _row(raw: bytes, path: str, line: int) -> dict[str, Any]:
    from clinsum.errors import InputError

    try:
        row = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise InputError("not UTF-8 text", path=path, line=line) from None
    except json.JSONDecodeError as error:
        raise InputError(f"invalid JSON ({error.msg})", path=path, line=line) from None
    if not isinstance(row, dict):
        raise InputError("expected a JSON object", path=path, line=line)
    if not isinstance(row.get("id"), str | int) or str(row["id"]) == "":
        raise InputError("missing or empty", path=path, line=line, field="id")
    if not isinstance(row.get("text"), str):
        raise InputError("missing or not a string", path=path, line=line, field="text")
    for field in ("id", "text"):
        surrogate = _SURROGATE.search(str(row[field]))
        if surrogate:  # a "\ud800" escape: valid JSON, but no UTF-8 text (nor the tokenizer) can hold it
            raise InputError(f"invalid Unicode: a lone surrogate \\u{ord(surrogate.group()):04x}",
                             path=path, line=line, field=field)
    return row


_SURROGATE = re.compile("[\ud800-\udfff]")
