"""Memory, speed and store size of ``clinsum score`` / ``clinsum run`` as the number of summaries grows.

    .venv/bin/python benchmarks/scale.py [--sizes 1000 10000] [--command score|run]
                                         [--source notes|dialogues] [--checkout PATH]
                                         [--configs workers1 cores ray]

For each size N, makes N distinct synthetic notes from the fixtures (sentences of
``fixtures/aci_notes.jsonl`` or ``fixtures/aci_dialogues.jsonl`` recombined with a
seeded generator, each note numbered so that no two are equal) and, for ``score``,
one summary per note (a few of the note's sentences, as a summarizer would keep).
Then runs the CLI in a child process with its default metrics:

- ``score``: ``clinsum score summaries.jsonl --notes notes.jsonl --db store.db``;
- ``run``: ``clinsum run --notes notes.jsonl -p extractive:lead --db store.db``.

Each N is measured in each configuration of ``--configs``: ``workers1`` (``--workers
1``), ``cores`` (``--workers`` = this machine's cores) and ``ray`` (``--engine ray``, a
local Ray started for the run; needs ``clinsum[ray]``).

Printed per N and configuration: the child's peak RSS (``ru_maxrss`` from ``os.wait4``), wall time,
summaries per second, store bytes per summary (the SQLite file after the run, WAL
checkpointed) and the store's size over its input files (notes + summaries; for
``run``, the notes alone). Last, the ratio of the largest N's peak RSS to the
smallest's, per configuration (the issue's goal: at most 1.3 from 1,000 to 10,000),
and the load average of the machine when each measurement ended (wall times on a
shared machine are only comparable within one load). Peak RSS is the clinsum process
itself: worker processes and Ray's are not in it.

``--checkout PATH`` runs another source tree of clinsum (for example an export of
``main``) with this virtual environment, for before/after figures.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
SOURCES = {"notes": FIXTURES / "aci_notes.jsonl", "dialogues": FIXTURES / "aci_dialogues.jsonl"}


def sentences(path: Path) -> list[str]:
    """Every sentence (or dialogue turn) of a fixture file, in order."""
    found = []
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            text = json.loads(line)["text"]
            for part in re.split(r"(?<=[.?!])\s+|\n+", text):
                if len(part.split()) >= 3:
                    found.append(part.strip())
    return found


def write_inputs(folder: Path, n: int, source: Path, *, with_summaries: bool) -> tuple[Path, Path | None]:
    """``n`` distinct notes of about the fixtures' mean length, and one summary per note."""
    pool = sentences(source)
    with source.open(encoding="utf-8") as lines:
        texts = [json.loads(line)["text"] for line in lines]
    words = sum(len(t.split()) for t in texts) // len(texts)
    rng = random.Random(12)
    notes_path = folder / "notes.jsonl"
    summaries_path = folder / "summaries.jsonl" if with_summaries else None
    with notes_path.open("w", encoding="utf-8") as notes, \
            (summaries_path.open("w", encoding="utf-8") if summaries_path else open(os.devnull, "w")) as summaries:
        for i in range(n):
            chosen = [f"Visit {i}."]
            count = 2
            while count < words:
                sentence = pool[rng.randrange(len(pool))]
                chosen.append(sentence)
                count += len(sentence.split())
            note_id = f"syn-{i:07d}"
            notes.write(json.dumps({"id": note_id, "text": "\n".join(chosen),
                                    "meta": {"source": "synthetic from " + source.name}}) + "\n")
            if with_summaries:
                kept = chosen[:1] + rng.sample(chosen[1:], k=min(5, len(chosen) - 1))
                summaries.write(json.dumps({"note_id": note_id, "system": "synthetic-lead",
                                            "text": " ".join(kept)}) + "\n")
    return notes_path, summaries_path


CONFIGS = {"workers1": ["--workers", "1"], "cores": ["--workers", str(os.cpu_count() or 1)],
           "ray": ["--engine", "ray"]}


def measure(n: int, command: str, source: Path, checkout: Path | None, extra: list[str]) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="clinsum-scale-") as tmp:
        folder = Path(tmp)
        notes, summaries = write_inputs(folder, n, source, with_summaries=command == "score")
        db = folder / "store.db"
        if command == "score":
            assert summaries is not None
            args = ["score", str(summaries), "--notes", str(notes)]
        else:
            args = ["run", "--notes", str(notes), "-p", "extractive:lead"]
        env = dict(os.environ)
        if checkout is not None:
            env["PYTHONPATH"] = str(checkout)
        started = time.perf_counter()
        child = subprocess.Popen([sys.executable, "-m", "clinsum", *args, "--db", str(db), "--allow-errors", *extra],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, cwd=tmp)
        assert child.stderr is not None
        stderr = child.stderr.read()
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - started
        child.returncode = os.waitstatus_to_exitcode(status)
        if child.returncode != 0:
            sys.stderr.write(stderr.decode(errors="replace")[-3000:])
            raise SystemExit(f"clinsum {command} exited {child.returncode} at N={n}")
        store_bytes = sum(p.stat().st_size for p in folder.glob("store.db*"))
        input_bytes = notes.stat().st_size + (summaries.stat().st_size if summaries else 0)
    return {"n": n, "peak_rss_mb": usage.ru_maxrss / 1024, "wall_s": wall, "per_s": n / wall,
            "store_bytes_per_summary": store_bytes / n, "store_over_inputs": store_bytes / input_bytes,
            "load": os.getloadavg()[0]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--command", choices=["score", "run"], default="score")
    parser.add_argument("--source", choices=sorted(SOURCES), default="notes")
    parser.add_argument("--checkout", type=Path, help="Source tree of the clinsum to measure (default: this one).")
    parser.add_argument("--configs", nargs="+", choices=sorted(CONFIGS), default=["workers1", "cores", "ray"])
    parser.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="Further CLI flags, last.")
    args = parser.parse_args()

    version = subprocess.run([sys.executable, "-c", "import clinsum; print(clinsum.__file__)"], check=True,
                             capture_output=True, text=True, cwd=tempfile.gettempdir(),
                             env={**os.environ, **({"PYTHONPATH": str(args.checkout)} if args.checkout else {})})
    print(f"clinsum {args.command}, default metrics, {args.source} from {SOURCES[args.source].name}; "
          f"code: {version.stdout.strip()}")
    print(f"{'config':>9} {'N':>8} {'peak RSS MB':>12} {'wall s':>9} {'summaries/s':>12} "
          f"{'store B/summary':>16} {'store/inputs':>13} {'load avg':>9}")
    for config in args.configs:
        results = []
        for n in args.sizes:
            r = measure(n, args.command, SOURCES[args.source], args.checkout, [*CONFIGS[config], *args.extra])
            results.append(r)
            print(f"{config:>9} {n:>8,} {r['peak_rss_mb']:>12.0f} {r['wall_s']:>9.1f} {r['per_s']:>12.1f} "
                  f"{r['store_bytes_per_summary']:>16,.0f} {r['store_over_inputs']:>13.2f} {r['load']:>9.1f}",
                  flush=True)
        if len(results) > 1:
            print(f"{config:>9} peak RSS at N={results[-1]['n']:,} / at N={results[0]['n']:,}: "
                  f"{results[-1]['peak_rss_mb'] / results[0]['peak_rss_mb']:.2f} (goal <= 1.3)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
