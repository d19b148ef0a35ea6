"""Reading notes and summaries: every format, every bad-input case, atomic writes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from clinsum.errors import InputError
from clinsum.inputs import (
    InvalidRecords,
    Loaded,
    atomic_output,
    load_notes,
    load_summaries,
    read_rows,
    write_csv,
    write_jsonl,
)
from clinsum.records import Note, Summary, Usage


def jsonl(tmp_path: Path, *lines: str | dict[str, Any], name: str = "notes.jsonl") -> Path:
    path = tmp_path / name
    path.write_text("".join((json.dumps(x) if isinstance(x, dict) else x) + "\n" for x in lines),
                    encoding="utf-8")
    return path


def assert_located(exc: InputError, path: Path, line: int | None, field: str | None) -> None:
    """The error names the file, the line and the field, in its attributes and its message."""
    assert exc.path == str(path)
    assert exc.line == line
    assert exc.field == field
    message = str(exc)
    assert message.startswith(f"{path}:{line}:" if line else f"{path}:")
    if field:
        assert f"'{field}'" in message


def load_error(path: Path, loader: Any = load_notes) -> InputError:
    with pytest.raises(InputError) as caught:
        loader(path)
    return caught.value


# -- notes: good input -------------------------------------------------------------------


def test_jsonl_notes_with_every_field(tmp_path: Path) -> None:
    path = jsonl(tmp_path,
                 {"id": "n1", "text": "Chest pain.", "reference": "CP.", "key_concepts": ["chest pain"],
                  "meta": {"specialty": "cardiology"}},
                 "",
                 "   ",
                 {"id": 7, "text": "Cough."})
    loaded = load_notes(path)
    assert loaded.skipped == []
    assert loaded.records == [
        Note(id="n1", text="Chest pain.", reference="CP.", key_concepts=["chest pain"],
             meta={"specialty": "cardiology"}),
        Note(id="7", text="Cough."),
    ]


def test_jsonl_accepts_bom_crlf_and_null_optionals(tmp_path: Path) -> None:
    path = tmp_path / "notes.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"id": "a", "text": "x", "meta": null, "reference": null}\r\n'
                     b'{"id": "b", "text": "y"}\r\n')
    assert [(n.id, n.meta, n.reference) for n in load_notes(path).records] == [("a", {}, None),
                                                                               ("b", {}, None)]


def test_csv_notes_structured_cells_and_editor_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "notes.csv"
    path.write_bytes(
        b"\xef\xbb\xbfid,text,reference,key_concepts,meta\n"
        b'a,"two\nlines",,asthma; inhaler ;,"{""site"": ""er""}"\n'
        b'b,plain,ref,"[""copd""]",\n'
        b",,,,\n"
        b"c,  ,,,\n")
    rows = list(read_rows(path))
    assert [line for line, _ in rows] == [2, 4, 6]
    assert rows[0][1] == {"id": "a", "text": "two\nlines", "reference": None,
                          "key_concepts": ["asthma", "inhaler"], "meta": {"site": "er"}}
    loaded = load_notes(path, skip_invalid=True)
    assert loaded.records == [
        Note(id="a", text="two\nlines", key_concepts=["asthma", "inhaler"], meta={"site": "er"}),
        Note(id="b", text="plain", reference="ref", key_concepts=["copd"]),
    ]
    assert len(loaded.skipped) == 1
    assert_located(loaded.skipped[0], path, 6, "text")


def test_folder_of_txt_notes(tmp_path: Path) -> None:
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "b-visit.txt").write_text("Second note.", encoding="utf-8")
    (folder / "a-visit.txt").write_text("First note.\nLine two.", encoding="utf-8")
    (folder / ".hidden.txt").write_text("editor swap", encoding="utf-8")
    (folder / "readme.md").write_text("not a note", encoding="utf-8")
    loaded = load_notes(folder)
    assert [(n.id, n.text) for n in loaded.records] == [("a-visit", "First note.\nLine two."),
                                                        ("b-visit", "Second note.")]
    assert load_notes(folder / "b-visit.txt").records == [Note(id="b-visit", text="Second note.")]


def test_folder_bad_files_name_the_file(tmp_path: Path) -> None:
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "empty.txt").write_text("  \n", encoding="utf-8")
    (folder / "latin1.txt").write_bytes(b"ok line\nfi\xe8vre\n")
    (folder / "good.txt").write_text("Fever.", encoding="utf-8")
    loaded = load_notes(folder, skip_invalid=True)
    assert [n.id for n in loaded.records] == ["good"]
    empty, latin1 = loaded.skipped
    assert_located(empty, folder / "empty.txt", 1, "text")
    assert_located(latin1, folder / "latin1.txt", 2, "text")
    assert "byte 0xe8 at byte offset 10" in str(latin1)
    (tmp_path / "none").mkdir()
    with pytest.raises(InputError, match=r"no \.txt notes"):
        load_notes(tmp_path / "none")


# -- notes: bad input --------------------------------------------------------------------


@pytest.mark.parametrize(("bad_line", "field", "words"), [
    ({"text": "no id"}, "id", "missing id"),
    ({"id": "", "text": "blank id"}, "id", "missing id"),
    ({"id": "x"}, "text", "missing text"),
    ({"id": "x", "text": " \n "}, "text", "text is empty"),
    ({"id": "x", "text": 5}, "text", "must be a string"),
    ({"id": 1.5, "text": "t"}, "id", "must be a string or an integer"),
    ({"id": True, "text": "t"}, "id", "must be a string or an integer"),
    ({"id": "x", "text": "t", "meta": [1]}, "meta", "dictionary"),
    ({"id": "x", "text": "t", "key_concepts": "fever"}, "key_concepts", "list"),
    ({"id": "x", "text": "t", "key_concepts": ["ok", 3]}, "key_concepts.1", "string"),
    ({"id": "x", "text": "t", "summary": "?"}, "summary", "allowed fields: id, text, reference"),
])
def test_bad_note_names_file_line_and_field(tmp_path: Path, bad_line: dict[str, Any], field: str,
                                            words: str) -> None:
    path = jsonl(tmp_path, {"id": "ok", "text": "fine"}, bad_line)
    error = load_error(path)
    assert_located(error, path, 2, field)
    assert words in str(error)


def test_duplicate_id_names_both_lines(tmp_path: Path) -> None:
    path = jsonl(tmp_path, {"id": "a", "text": "1"}, {"id": "b", "text": "2"}, "", {"id": "a", "text": "3"})
    error = load_error(path)
    assert_located(error, path, 4, "id")
    assert "duplicate id 'a', first at line 1" in str(error)


def test_int_and_string_ids_collide(tmp_path: Path) -> None:
    path = jsonl(tmp_path, {"id": 3, "text": "1"}, {"id": "3", "text": "2"})
    assert "duplicate id '3'" in str(load_error(path))


@pytest.mark.parametrize(("line", "words"), [
    ('{"id": "x", "text": "t"', "invalid JSON: Expecting ',' delimiter (column 24)"),
    ('["x", "t"]', "expected a JSON object, got a list"),
    ('"just text"', "expected a JSON object, got a string"),
])
def test_bad_jsonl_line(tmp_path: Path, line: str, words: str) -> None:
    path = jsonl(tmp_path, {"id": "ok", "text": "fine"}, line)
    error = load_error(path)
    assert_located(error, path, 2, None)
    assert words in str(error)


def test_json_array_file_is_refused_with_a_hint(tmp_path: Path) -> None:
    path = tmp_path / "notes.json"
    path.write_text('[{"id": "a", "text": "t"}]\n', encoding="utf-8")
    with pytest.raises(InputError, match="JSON array; clinsum reads JSONL"):
        load_notes(path, skip_invalid=True)


def test_non_utf8_byte_gives_line_offset_and_field(tmp_path: Path) -> None:
    path = tmp_path / "notes.jsonl"
    first = b'{"id": "a", "text": "ok"}\n'
    path.write_bytes(first + b'{"id": "b", "text": "caf\xe9"}\n{"id": "c", "text": "fine"}\n')
    error = load_error(path)
    assert_located(error, path, 2, "text")
    offset = len(first) + len(b'{"id": "b", "text": "caf')
    assert f"byte 0xe9 at byte offset {offset} (line 2, column 25) is not valid UTF-8" in str(error)
    loaded = load_notes(path, skip_invalid=True)
    assert [n.id for n in loaded.records] == ["a", "c"]


def test_non_utf8_offset_counts_the_bom(tmp_path: Path) -> None:
    path = tmp_path / "notes.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"id": "\xff", "text": "t"}\n')
    error = load_error(path)
    assert_located(error, path, 1, "id")
    assert "byte 0xff at byte offset 11" in str(error)


def test_skip_invalid_keeps_good_records_and_counts_bad_ones(tmp_path: Path) -> None:
    path = jsonl(tmp_path,
                 {"id": "a", "text": "1"},
                 "{broken",
                 {"id": "b", "text": ""},
                 {"id": "c", "text": "3"},
                 {"id": "a", "text": "again"},
                 {"text": "anonymous"},
                 {"id": "d", "text": "4"})
    loaded = load_notes(path, skip_invalid=True)
    assert isinstance(loaded, Loaded)
    assert [n.id for n in loaded.records] == ["a", "c", "d"]
    assert [n.text for n in loaded.records if n.id == "a"] == ["1"]  # the first of a duplicate wins
    assert [(e.line, e.field) for e in loaded.skipped] == [(2, None), (3, "text"), (5, "id"), (6, "id")]
    with pytest.raises(InputError) as caught:
        load_notes(path)
    assert caught.value.line == 2  # without the flag, the first bad record stops the load


def test_empty_file_and_missing_file(tmp_path: Path) -> None:
    empty = jsonl(tmp_path, "", "  ")
    assert_located(load_error(empty), empty, None, None)
    assert "holds no notes" in str(load_error(empty))
    for name in ("nope.jsonl", "nope.csv", "nope.txt"):  # streamed, read whole, one .txt note
        missing = tmp_path / name
        assert_located(load_error(missing), missing, None, None)
        assert "file not found" in str(load_error(missing))
    other = tmp_path / "notes.xlsx"
    other.write_bytes(b"PK")
    assert "unsupported file type '.xlsx'; use .jsonl or .csv" in str(load_error(other))


# -- CSV specifics -----------------------------------------------------------------------


def csv_file(tmp_path: Path, content: bytes, name: str = "notes.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(content)
    return path


def test_csv_unknown_column_is_refused_even_when_skipping(tmp_path: Path) -> None:
    path = csv_file(tmp_path, b"id,text,summary\na,t,s\n")
    with pytest.raises(InputError) as caught:
        load_notes(path, skip_invalid=True)
    assert_located(caught.value, path, 1, "summary")
    assert "allowed fields: id, text, reference, key_concepts, meta" in str(caught.value)


@pytest.mark.parametrize(("content", "line", "field", "words"), [
    (b"id,text\na,t,extra\n", 2, None, "row has 3 cells, the header has 2"),
    (b"id,text,meta\na,t,{not json}\n", 2, "meta", "expected a JSON object"),
    (b'id,text,meta\na,t,"[1, 2]"\n', 2, "meta", "got a list"),
    (b'id,text,key_concepts\na,t,"[""unclosed"""\n', 2, "key_concepts", "invalid JSON list"),
    (b"id,text\na,t\n,orphan\n", 3, "id", "missing id"),
    (b"id,text\na,t\nb,na\xefve\n", 3, "text", "byte 0xef at byte offset 16 (line 3, column 5)"),
    (b"id,text\na,t\nb,u\na,again\n", 4, "id", "duplicate id 'a', first at line 2"),
])
def test_bad_csv_row(tmp_path: Path, content: bytes, line: int, field: str | None, words: str) -> None:
    path = csv_file(tmp_path, content)
    error = load_error(path)
    assert_located(error, path, line, field)
    assert words in str(error)
    assert len(load_notes(path, skip_invalid=True).skipped) == 1


@pytest.mark.parametrize(("content", "words"), [
    (b"id,text,id\na,t,b\n", "duplicate column(s) in header: id"),
    (b"id,text,\na,t,\n", "column 3 of the header has no name"),
    (b'id,text\na,"never closed\nb,t\n', "invalid CSV"),
])
def test_broken_csv_file_is_refused(tmp_path: Path, content: bytes, words: str) -> None:
    path = csv_file(tmp_path, content)
    with pytest.raises(InputError, match=words.replace("(", r"\(").replace(")", r"\)")) as caught:
        load_notes(path, skip_invalid=True)
    assert caught.value.path == str(path)


# -- summaries ---------------------------------------------------------------------------


def test_summaries_with_optional_fields(tmp_path: Path) -> None:
    path = jsonl(tmp_path,
                 {"note_id": 1, "system": "extractive:lead", "text": "Lead."},
                 {"note_id": "1", "system": "anthropic:claude", "text": "LLM.", "latency_s": 1.25,
                  "usage": {"input_tokens": 900, "output_tokens": 80, "cost_usd": 0.004},
                  "request_id": "req_1", "prompt_version": "v2", "schema_version": 1},
                 {"note_id": "2", "system": "anthropic:claude", "text": "", "error": "rate limited"},
                 {"note_id": "3", "system": "production", "error": "timeout"},
                 name="summaries.jsonl")
    loaded = load_summaries(path)
    assert loaded.records[0] == Summary(note_id="1", system="extractive:lead", text="Lead.")
    assert loaded.records[1].usage == Usage(input_tokens=900, output_tokens=80, cost_usd=0.004)
    assert loaded.records[1].latency_s == 1.25
    assert [(s.text, s.ok) for s in loaded.records[2:]] == [("", False), ("", False)]


@pytest.mark.parametrize(("bad_line", "field", "words"), [
    ({"system": "s", "text": "t"}, "note_id", "missing note_id"),
    ({"note_id": "n", "text": "t"}, "system", "missing system"),
    ({"note_id": "n", "system": 4, "text": "t"}, "system", "must be a string"),
    ({"note_id": "n", "system": "s", "text": 3}, "text", "text must be a string"),
    ({"note_id": "n", "system": "s", "text": "t", "latency_s": -0.5}, "latency_s", "must not be negative"),
    ({"note_id": "n", "system": "s", "text": "t", "usage": {"cost_usd": -1}}, "usage.cost_usd",
     "must not be negative"),
    ({"note_id": "n", "system": "s", "text": "t", "usage": {"output_tokens": -3}}, "usage.output_tokens",
     "must not be negative"),
    ({"note_id": "n", "system": "s", "text": "t", "latency_s": "slow"}, "latency_s", "valid number"),
    ({"note_id": "n", "system": "s", "text": "t", "usage": {"tokens": 3}}, "usage.tokens", "Extra inputs"),
    ({"note_id": "n", "system": "s", "text": "t", "score": 3}, "score", "allowed fields: note_id, system"),
    ({"note_id": "a", "system": "s", "text": "again"}, "note_id",
     "duplicate summary for note_id 'a' and system 's', first at line 1"),
])
def test_bad_summary_names_file_line_and_field(tmp_path: Path, bad_line: dict[str, Any], field: str,
                                               words: str) -> None:
    path = jsonl(tmp_path, {"note_id": "a", "system": "s", "text": "fine"}, bad_line, name="s.jsonl")
    error = load_error(path, load_summaries)
    assert_located(error, path, 2, field)
    assert words in str(error)
    loaded = load_summaries(path, skip_invalid=True)
    assert (len(loaded.records), len(loaded.skipped)) == (1, 1)


def test_summaries_from_csv_and_a_folder_is_refused(tmp_path: Path) -> None:
    path = csv_file(tmp_path, b"note_id,system,text,usage,latency_s\n"
                              b'1,lead,Text.,"{""input_tokens"": 5}",0.5\n'
                              b"2,lead,,,\n", name="s.csv")
    loaded = load_summaries(path)
    assert loaded.records == [Summary(note_id="1", system="lead", text="Text.",
                                      usage=Usage(input_tokens=5), latency_s=0.5),
                              Summary(note_id="2", system="lead", text="")]  # an empty cell: empty summary
    with pytest.raises(InputError, match="is a folder"):
        load_summaries(tmp_path)


def test_an_empty_or_blank_production_summary_is_data_not_an_error(tmp_path: Path) -> None:
    path = jsonl(tmp_path, {"note_id": "a", "system": "prod", "text": ""},
                 {"note_id": "b", "system": "prod", "text": "  \n "},
                 {"note_id": "c", "system": "prod", "text": None},
                 {"note_id": "d", "system": "prod"}, name="s.jsonl")
    loaded = load_summaries(path)
    assert loaded.skipped == []
    assert [(s.note_id, s.text, s.ok) for s in loaded.records] == [
        ("a", "", True), ("b", "  \n ", True), ("c", "", True), ("d", "", True)]


def test_a_note_still_needs_text(tmp_path: Path) -> None:
    path = jsonl(tmp_path, {"id": "a", "text": " "})
    assert_located(load_error(path), path, 1, "text")


@pytest.mark.parametrize("line", [
    '{"note_id": "a", "system": "s", "text": "t", "latency_s": NaN}',
    '{"note_id": "a", "system": "s", "text": "t", "usage": {"cost_usd": Infinity}}',
    '{"note_id": "a", "system": "s", "text": "t", "latency_s": -Infinity}',
])
def test_nan_and_infinity_are_refused_in_json(tmp_path: Path, line: str) -> None:
    path = jsonl(tmp_path, line, name="s.jsonl")
    error = load_error(path, load_summaries)
    assert_located(error, path, 1, None)
    assert "values must be finite" in str(error)


def test_nan_in_a_csv_json_cell_is_refused(tmp_path: Path) -> None:
    path = csv_file(tmp_path, b'id,text,meta\na,t,"{""score"": NaN}"\n')
    error = load_error(path)
    assert_located(error, path, 2, "meta")
    assert "values must be finite" in str(error)


@pytest.mark.parametrize(("cell", "words"), [("nan", "finite"), ("inf", "finite"), ("-1", "negative")])
def test_non_finite_or_negative_latency_in_csv(tmp_path: Path, cell: str, words: str) -> None:
    path = csv_file(tmp_path, f"note_id,system,text,latency_s\na,s,t,{cell}\n".encode(), name="s.csv")
    error = load_error(path, load_summaries)
    assert_located(error, path, 2, "latency_s")
    assert words in str(error)


@pytest.mark.parametrize(("line", "field"), [
    ('{"id": "a", "text": "pain \\ud800 here"}', "text"),
    ('{"id": "a", "text": "t", "meta": {"site": "\\udfff"}}', "meta.site"),
    ('{"id": "a", "text": "t", "key_concepts": ["ok", "x\\udc80"]}', "key_concepts.1"),
])
def test_a_lone_surrogate_is_invalid_unicode_named_by_line_and_field(tmp_path: Path, line: str,
                                                                       field: str) -> None:
    path = jsonl(tmp_path, '{"id": "ok", "text": "fine \\ud83d\\ude00"}', line)
    error = load_error(path)
    assert_located(error, path, 2, field)
    assert "lone surrogate" in str(error)
    loaded = load_notes(path, skip_invalid=True)
    assert [n.text for n in loaded.records] == ["fine \U0001f600"]  # a surrogate *pair* is a character


def test_a_lone_surrogate_in_a_summary(tmp_path: Path) -> None:
    path = jsonl(tmp_path, '{"note_id": "a", "system": "s", "text": "x \\ud800"}', name="s.jsonl")
    assert_located(load_error(path, load_summaries), path, 1, "text")


def test_every_bad_record_is_reported_not_only_the_first(tmp_path: Path) -> None:
    bad = [{"id": f"n{i}", "text": ""} for i in range(25)]
    path = jsonl(tmp_path, {"id": "ok", "text": "fine"}, *bad, "{broken")
    with pytest.raises(InvalidRecords) as caught:
        load_notes(path)
    error = caught.value
    assert len(error.problems) == 26
    assert [p.line for p in error.problems] == list(range(2, 28))
    assert (error.path, error.line, error.field) == (str(path), 2, "text")  # those of the first
    message = str(error)
    assert message.startswith(f"{path}: 26 invalid notes")
    assert f"{path}:21: text is empty" in message  # the 20th problem is shown...
    assert f"{path}:22:" not in message  # ...the 21st is not, but counted
    assert "... and 6 more" in message
    assert len(load_notes(path, skip_invalid=True).skipped) == 26


def test_one_bad_record_is_raised_as_itself(tmp_path: Path) -> None:
    path = jsonl(tmp_path, {"id": "ok", "text": "fine"}, {"id": "b", "text": ""})
    error = load_error(path)
    assert not isinstance(error, InvalidRecords)
    assert str(error) == f"{path}:2: text is empty (field 'text')"


def test_read_rows_stops_at_the_first_bad_row(tmp_path: Path) -> None:
    path = jsonl(tmp_path, {"a": 1}, "", {"b": 2}, "nope", {"c": 3})
    rows: list[tuple[int, dict[str, Any]]] = []
    with pytest.raises(InputError) as caught:
        rows.extend(read_rows(path))
    assert rows == [(1, {"a": 1}), (3, {"b": 2})]
    assert_located(caught.value, path, 4, None)


# -- writing -----------------------------------------------------------------------------


def test_write_jsonl_round_trips_records(tmp_path: Path) -> None:
    summaries = [Summary(note_id="n1", system="lead", text="Fièvre.", usage=Usage(input_tokens=3)),
                 Summary(note_id="n2", system="lead", error="boom")]
    out = tmp_path / "out" / "summaries.jsonl"
    assert write_jsonl(out, summaries) == 2
    assert "Fièvre" in out.read_text(encoding="utf-8")  # readable, not \\u-escaped
    assert load_summaries(out).records == summaries
    assert write_jsonl(tmp_path / "d.jsonl", [{"id": "x", "text": "y"}]) == 1
    assert load_notes(tmp_path / "d.jsonl").records == [Note(id="x", text="y")]


def failing_after_one() -> Iterator[dict[str, str]]:
    yield {"id": "new", "text": "new"}
    raise RuntimeError("disk full")


def test_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    out = tmp_path / "notes.jsonl"
    write_jsonl(out, [{"id": "old", "text": "old"}])
    before = out.read_bytes()
    with pytest.raises(RuntimeError, match="disk full"):
        write_jsonl(out, failing_after_one())
    assert out.read_bytes() == before
    fresh = tmp_path / "fresh.csv"
    with pytest.raises(RuntimeError):
        write_csv(fresh, ["id", "text"], ([r["id"], r["text"]] for r in failing_after_one()))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.jsonl"]


def test_write_csv_round_trips_through_read_rows(tmp_path: Path) -> None:
    out = tmp_path / "notes.csv"
    header = ["id", "text", "key_concepts", "meta"]
    rows: list[list[Any] | dict[str, Any]] = [["a", 'quote " and, comma\nnewline', ["x", "y"], {"k": 1}],
                                              {"id": "b", "text": "t", "key_concepts": None}]
    assert write_csv(out, header, rows) == 2
    assert load_notes(out).records == [
        Note(id="a", text='quote " and, comma\nnewline', key_concepts=["x", "y"], meta={"k": 1}),
        Note(id="b", text="t"),
    ]
    with pytest.raises(ValueError, match="row 1 has 1 cells"):
        write_csv(tmp_path / "bad.csv", header, [["only"]])
    assert not (tmp_path / "bad.csv").exists()


def test_atomic_output_is_invisible_until_done(tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    with atomic_output(out) as handle:
        handle.write("<p>")
        assert not out.exists()
    assert out.read_text(encoding="utf-8") == "<p>"
    plain = tmp_path / "plain.txt"
    plain.write_text("x", encoding="utf-8")
    assert out.stat().st_mode & 0o777 == plain.stat().st_mode & 0o777  # same permissions as open() gives


# -- bundled fixtures --------------------------------------------------------------------

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def test_aci_fixtures_load_as_two_shapes_of_the_same_encounters() -> None:
    notes = load_notes(FIXTURES / "aci_notes.jsonl").records
    dialogues = load_notes(FIXTURES / "aci_dialogues.jsonl").records
    assert len(notes) == len(dialogues) == 12
    assert [n.id for n in notes] == [d.id for d in dialogues]
    assert {n.meta["subset"] for n in notes} == {"aci", "virtassist", "virtscribe"}
    assert all(n.reference is None and n.meta["task"] == "note" for n in notes)
    # dialogue -> note: the visit note of the first shape is the reference of the second
    assert [d.reference for d in dialogues] == [n.text for n in notes]
    assert all(d.text.startswith("[doctor]") and d.meta["task"] == "dialogue" for d in dialogues)


# -- the package ---------------------------------------------------------------------------

def test_inputs_is_split_by_step_under_the_size_ceiling_and_keeps_every_public_name() -> None:
    import clinsum.inputs as inputs
    from clinsum import outputs
    from clinsum.inputs import _fields, _formats, _loading

    folder = Path(inputs.__file__).parent
    sizes = {p.name: len(p.read_text(encoding="utf-8").splitlines()) for p in folder.glob("*.py")}
    assert set(sizes) == {"__init__.py", "_formats.py", "_fields.py", "_loading.py"}
    assert max(sizes.values()) <= 500, sizes  # the soft ceiling of STYLE.md
    for name in inputs.__all__:  # each public name is the object of the module that defines it
        home = next(m for m in (_formats, _fields, _loading, outputs) if hasattr(m, name))
        assert getattr(inputs, name) is getattr(home, name), name
    assert inputs.rows_or_errors is _formats.rows_or_errors  # used by clinsum.ratings and monitoring
