"""Reading notes and summaries from files (writing outputs: ``clinsum.outputs``, re-exported here).

Three steps, one private module each, every public name re-exported here (import from
``clinsum.inputs``): ``_formats`` reads a file into rows, ``_fields`` checks a row's
fields and makes it a ``Note`` or ``Summary``, ``_loading`` loads, checks or streams a
file's records and finds every bad one.

Formats read:

- JSONL (``.jsonl``, ``.ndjson``, ``.json`` holding one object a line);
- CSV with a header row (``.csv``); empty cells mean "absent", and the cells
  ``meta``, ``metadata`` and ``usage`` hold a JSON object, ``key_concepts`` a JSON list or a
  ``;``-separated list;
- for notes only, a folder of ``.txt`` files (or one ``.txt`` file), the id
  being the file stem.

Every problem is an :class:`~clinsum.errors.InputError` that names the file, the
line as an editor shows it (the CSV header is line 1) and, where there is one,
the field. Without ``skip_invalid`` every bad record is found and one
:class:`InvalidRecords` lists them all (the first ``SHOWN_PROBLEMS`` in its
message, with the count) and nothing is returned; with it, bad records are
collected in ``Loaded.skipped`` and the good ones are kept. Problems with the
file as a whole (missing, unknown columns in a CSV header, broken CSV quoting)
always raise at once.

Text must be valid Unicode: a byte that is not UTF-8, or a lone surrogate
written as a JSON escape (``"\\ud800"``, which ``json.loads`` accepts but no
UTF-8 file, store or terminal can hold), is an error naming the field, never
replaced silently. Numbers must be finite: JSON's ``NaN`` and ``Infinity`` are
refused wherever they appear, and a summary's latency, cost and token counts
must not be negative. An empty or blank summary is data (models do return empty
text) and is kept; a note must have text, since there is nothing to summarize
without it.
"""

from __future__ import annotations

from clinsum.inputs._fields import NOTE_FIELDS, SUMMARY_FIELDS
from clinsum.inputs._formats import read_rows, rows_or_errors
from clinsum.inputs._loading import (
    SHOWN_PROBLEMS,
    Checked,
    InvalidRecords,
    Loaded,
    check_notes,
    check_summaries,
    iter_notes,
    iter_summaries,
    load_notes,
    load_summaries,
    raise_invalid,
)
from clinsum.outputs import atomic_output, format_csv, spreadsheet_safe, write_csv, write_jsonl

__all__ = [
    "NOTE_FIELDS",
    "SHOWN_PROBLEMS",
    "SUMMARY_FIELDS",
    "Checked",
    "InvalidRecords",
    "Loaded",
    "atomic_output",
    "check_notes",
    "check_summaries",
    "format_csv",
    "iter_notes",
    "iter_summaries",
    "load_notes",
    "load_summaries",
    "raise_invalid",
    "read_rows",
    "rows_or_errors",
    "spreadsheet_safe",
    "write_csv",
    "write_jsonl",
]
