"""``output_set``: the files of ``--out`` replace the previous ones together or not at all; ``output_files``:
the same for files of different folders (``report --html PATH --md PATH``).

The failures are real: a folder standing where a file must be renamed (the rename fails
after the first file was put in place), an error raised while the set is written. The
full disk, with a real ``clinsum`` process, is in tests/test_faults.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from clinsum.outputs import output_files, output_set
from clinsum.records import Score, Summary
from clinsum.reports import write_outputs


def contents(folder: Path) -> dict[str, bytes]:
    """Every entry of the folder, hidden ones included (a temporary left behind shows here)."""
    return {p.name: (p.read_bytes() if p.is_file() else b"<folder>") for p in sorted(folder.iterdir())}


def previous_set(folder: Path) -> dict[str, bytes]:
    folder.mkdir()
    for name in ("summaries.jsonl", "scores.jsonl", "leaderboard.csv"):
        (folder / name).write_text(f"previous {name}\n", encoding="utf-8")
    return contents(folder)


def records() -> tuple[list[Summary], list[Score]]:
    summaries = [Summary(note_id="n1", system="lead", text="Hypertension, no chest pain.")]
    scores = [Score(note_id="n1", system="lead", metric="summary_words", value=4.0, evaluator="length",
                    version="1")]
    return summaries, scores


def test_the_set_replaces_the_previous_files_together(tmp_path: Path) -> None:
    out = tmp_path / "out"
    before = previous_set(out)
    paths = write_outputs(out, *records())
    after = contents(out)
    assert sorted(after) == sorted(before)  # the same three files, no temporary or backup left
    assert all(after[name] != before[name] for name in before)
    assert [Summary.model_validate_json(line) for line in paths["summaries"].read_text("utf-8").splitlines()] \
        == records()[0]
    assert paths["leaderboard"].read_text(encoding="utf-8").splitlines()[0] == "system,metric,n,mean,ci_low,ci_high"


def test_a_rename_that_fails_half_way_puts_the_files_renamed_before_it_back(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "summaries.jsonl").write_text("previous summaries\n", encoding="utf-8")
    (out / "scores.jsonl").mkdir()  # a folder in the way: renaming the second file over it fails
    (out / "scores.jsonl" / "keep").write_text("x", encoding="utf-8")
    before = contents(out)
    with pytest.raises(OSError):
        write_outputs(out, *records())
    assert contents(out) == before  # summaries.jsonl is the previous one again; no leaderboard.csv appeared
    assert (out / "scores.jsonl" / "keep").read_text(encoding="utf-8") == "x"


def test_a_rename_that_fails_removes_files_that_did_not_exist_before(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "leaderboard.csv").mkdir()  # the third rename fails; the first two files are new
    (out / "leaderboard.csv" / "keep").write_text("x", encoding="utf-8")
    with pytest.raises(OSError):
        write_outputs(out, *records())
    assert contents(out) == {"leaderboard.csv": b"<folder>"}


def test_an_error_while_the_set_is_written_changes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out"
    before = previous_set(out)

    def scores_then_a_crash() -> Iterator[Score]:
        yield from records()[1]
        raise RuntimeError("the store went away")

    with pytest.raises(RuntimeError, match="went away"):
        write_outputs(out, records()[0], scores_then_a_crash(), rows=[])
    assert contents(out) == before


def test_a_set_names_each_file_once_and_only_in_its_folder(tmp_path: Path) -> None:
    with output_set(tmp_path) as files:
        files.write_jsonl("a.jsonl", [])
        with pytest.raises(ValueError, match="not a new file name"):
            files.write_jsonl("a.jsonl", [])
        with pytest.raises(ValueError, match="not a new file name"):
            files.write_jsonl("sub/b.jsonl", [])
    assert contents(tmp_path) == {"a.jsonl": b""}


def two_folders(tmp_path: Path) -> tuple[Path, Path]:
    html, md = tmp_path / "pages" / "report.html", tmp_path / "notes" / "summary.md"
    for path in (html, md):
        path.parent.mkdir()
        path.write_text(f"previous {path.name}\n", encoding="utf-8")
    return html, md


def test_files_of_two_folders_replace_the_previous_ones_together(tmp_path: Path) -> None:
    html, md = two_folders(tmp_path)
    with output_files() as files:
        with files.open(html) as handle:
            handle.write("<p>new</p>\n")
        with files.open(md) as handle:
            handle.write("new\n")
        assert html.read_text(encoding="utf-8") == "previous report.html\n"  # nothing in place before the end
    assert contents(html.parent) == {"report.html": b"<p>new</p>\n"}  # no temporary or backup left
    assert contents(md.parent) == {"summary.md": b"new\n"}


def test_a_rename_that_fails_in_the_second_folder_puts_the_first_folders_file_back(tmp_path: Path) -> None:
    html, md = two_folders(tmp_path)
    md.unlink()
    md.mkdir()  # a folder in the way: the second rename fails after the first file was put in place
    new_file = tmp_path / "pages" / "new.csv"  # no such file before: removed again
    before = {folder.name: contents(folder) for folder in (html.parent, md.parent)}
    with pytest.raises(OSError), output_files() as files:
        files.write_csv(new_file, ["a"], [["1"]])
        with files.open(html) as handle:
            handle.write("<p>new</p>\n")
        with files.open(md) as handle:
            handle.write("new\n")
    assert {folder.name: contents(folder) for folder in (html.parent, md.parent)} == before


def test_an_error_while_the_files_of_two_folders_are_written_changes_neither(tmp_path: Path) -> None:
    html, md = two_folders(tmp_path)
    before = {folder.name: contents(folder) for folder in (html.parent, md.parent)}
    with pytest.raises(RuntimeError, match="rendering failed"), output_files() as files:
        with files.open(html) as handle:
            handle.write("<p>new</p>\n")
        raise RuntimeError("rendering failed")
    assert {folder.name: contents(folder) for folder in (html.parent, md.parent)} == before


def test_a_file_named_twice_by_two_spellings_is_refused(tmp_path: Path) -> None:
    with output_files() as files:
        files.write_jsonl(tmp_path / "a" / "x.jsonl", [])
        with pytest.raises(ValueError, match="not a new file name"):
            files.write_jsonl(tmp_path / "a" / ".." / "a" / "x.jsonl", [])
    assert contents(tmp_path / "a") == {"x.jsonl": b""}
