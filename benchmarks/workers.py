"""Scoring speed by number of worker processes: ``clinsum score`` with --workers 1 against --workers N.

    .venv/bin/python benchmarks/workers.py [--summaries 1000] [--systems 2] [--workers 1 2] [--engine local]

Synthetic data made from the fixtures (``fixtures/aci_dialogues.jsonl``: ACI-Bench
doctor-patient dialogues of ~1,100 words with their clinician notes as references):
``summaries / systems`` notes, each distinct (a dialogue whose lines are rotated and
whose numbers are shifted, so no cache can serve one note for another), and for each
note one summary per system (its reference note with sentences dropped, a different
share per system). Each configuration is one subprocess run of

    clinsum score summaries.jsonl --notes notes.jsonl --db DB --workers N --allow-errors

with the default metrics (overlap, length, coverage), timed from process start to
exit (start-up, loading, scoring, storing, the leaderboard). Printed: wall time,
summaries/s, summaries/s per worker, the CPU time of clinsum and its workers (and how
many cores that kept busy on average), and the speed-up of each run over the first.
The load average of the machine before and after is printed too: on a shared machine
the other jobs take their share of the cores, and the speed-up shrinks with it.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DIALOGUES = REPO / "fixtures" / "aci_dialogues.jsonl"
_NUMBER = re.compile(r"\b\d+\b")


def synthetic(count: int, systems: int, seed: int = 0) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    """``count`` summaries of ``count // systems`` distinct notes, one per system per note."""
    rng = random.Random(seed)
    sources = [json.loads(line) for line in DIALOGUES.read_text("utf-8").splitlines() if line.strip()]
    notes: list[dict[str, object]] = []
    summaries: list[dict[str, object]] = []
    for i in range(max(1, count // systems)):
        source = sources[i % len(sources)]
        lines = str(source["text"]).split("\n")
        cut = rng.randrange(len(lines))
        shift = 1 + i // len(sources)
        text = "\n".join(lines[cut:] + lines[:cut])
        text = _NUMBER.sub(lambda m, s=shift: str(int(m.group()) + s), text)
        reference = str(source["reference"])
        note_id = f"n{i:06d}"
        notes.append({"id": note_id, "text": text, "reference": reference})
        sentences = [s for s in re.split(r"(?<=[.!?])\s+|\n+", reference) if s.strip()]
        for system in range(systems):
            keep = 0.4 + 0.5 * system / max(1, systems - 1)
            kept = [s for s in sentences if rng.random() < keep] or sentences[:1]
            summaries.append({"note_id": note_id, "system": f"system-{system}", "text": "\n".join(kept)})
    return notes, summaries


def write_jsonl(path: Path, rows: list[dict[str, object]]) -> None:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), "utf-8")


def load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--summaries", type=int, default=1000)
    parser.add_argument("--systems", type=int, default=2)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--engine", default="local", help="local or ray")
    parser.add_argument("--metric", action="append", help="metrics (default: clinsum's defaults)")
    args = parser.parse_args()

    clinsum = Path(sys.executable).with_name("clinsum")
    with tempfile.TemporaryDirectory() as tmp:
        notes, summaries = synthetic(args.summaries, args.systems)
        notes_path, summaries_path = Path(tmp) / "notes.jsonl", Path(tmp) / "summaries.jsonl"
        write_jsonl(notes_path, notes)
        write_jsonl(summaries_path, summaries)
        print(f"{len(summaries)} summaries of {len(notes)} notes ({args.systems} systems); "
              f"{os.cpu_count()} cores; load average before: {load()}")
        results = []
        for workers in args.workers:
            db = Path(tmp) / f"w{workers}.db"
            command = [str(clinsum), "score", str(summaries_path), "--notes", str(notes_path), "--db", str(db),
                       "--workers", str(workers), "--engine", args.engine, "--allow-errors"]
            for metric in args.metric or []:
                command += ["--evaluator", metric]
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            started = time.perf_counter()
            done = subprocess.run(command, capture_output=True, text=True, check=False)
            wall = time.perf_counter() - started
            after = resource.getrusage(resource.RUSAGE_CHILDREN)  # clinsum and its workers, once reaped
            cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
            if done.returncode != 0:
                print(done.stderr[-3000:], file=sys.stderr)
                return done.returncode
            rate = len(summaries) / wall
            results.append((workers, wall, rate))
            print(f"--workers {workers}: {wall:.1f} s, {rate:.1f} summaries/s, {rate / workers:.1f} per worker; "
                  f"CPU {cpu:.1f} s ({1000 * cpu / len(summaries):.1f} ms per summary, {cpu / wall:.2f} cores busy) "
                  f"(load average after: {load()})", flush=True)
        base = results[0][1]
        for workers, wall, _ in results[1:]:
            print(f"speed-up of --workers {workers} over --workers {results[0][0]}: {base / wall:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
