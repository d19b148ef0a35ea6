"""Where the CPU time of an all-cached re-run goes, phase by phase (``runner_overhead.py``'s set-up).

    .venv/bin/python benchmarks/rerun_phases.py [--notes 500] [--systems 3] [--repeat 3] [--announce]

Runs the simulated provider's first run, then ``--repeat`` all-cached re-runs, each on a copy of
the store as the first run left it (so every re-run finds what the benchmark's re-run finds), with
the functions below wrapped to add up their ``time.process_time``. A phase nested in another is
counted in both (``flush`` runs inside the event loop's turns, not inside the per-summary steps).
Printed: each phase's median over the re-runs, in ms and per summary. Wrapping costs a few µs
a call (about 35 ms in all here), so each phase reads a little high; compare phases, and take
the run's own CPU time from ``runner_overhead.py``. With ``PYTHONPATH`` set to a copy of an
older checkout, the same command profiles that one (the phases it lacks are skipped).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import functools
import json
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from runner_overhead import SleepingProvider

from clinsum import costs, evaluation, runner, store_runs, store_scores, store_texts
from clinsum.config import RunConfig
from clinsum.dispatch import Dispatcher
from clinsum.evaluators.generation import GenerationEvaluator
from clinsum.providers import registry
from clinsum.store import Store

PHASES: list[tuple[Any, str, str]] = [
    (evaluation, "check_run_notes", "set-up: read and check the notes file"),
    (costs, "estimate", "set-up: cost estimate (a cache lookup per call; only with --announce)"),
    (store_runs.RunRecords, "create_run", "set-up: record the run and its 500 notes"),
    (runner.Runner, "_prepared", "per summary: stored work, prompt, cache key, batch lookup"),
    (Dispatcher, "prepare", "  of which: cache keys and the batch lookup"),
    (Dispatcher, "generate", "per summary: Dispatcher.generate (before 2026-12-02: key and lookup per call)"),
    (runner.Runner, "summarize", "per summary: the Summary record from the cached answer"),
    (store_texts.TextRecords, "add_summary", "per summary: summary row (JSON, deflate with its note)"),
    (GenerationEvaluator, "evaluate", "per summary: the 4 generation Score records"),
    (store_scores.ScoreRecords, "add_scores", "per summary: score rows"),
    (store_scores.ScoreRecords, "replace_scores", "per summary: score rows replacing earlier ones (a resume)"),
    (Store, "flush", "store: executemany + commit (once per event-loop turn)"),
    (store_texts.TextRecords, "iter_notes", "the run's notes read back from the store"),
]


def _wrap(owner: Any, name: str, label: str, spent: collections.Counter[str]) -> Callable[[], None]:
    original = getattr(owner, name)
    if asyncio.iscoroutinefunction(original):
        @functools.wraps(original)
        async def timed_async(*args: Any, **kwargs: Any) -> Any:
            started = time.process_time()
            try:
                return await original(*args, **kwargs)  # no await waits in an all-cached run
            finally:
                spent[label] += time.process_time() - started
        setattr(owner, name, timed_async)
    elif name in ("_prepared", "iter_notes"):  # generators: time each step
        @functools.wraps(original)
        def timed_steps(*args: Any, **kwargs: Any) -> Any:
            items = original(*args, **kwargs)
            while True:
                started = time.process_time()
                try:
                    item = next(items)
                except StopIteration:
                    return
                finally:
                    spent[label] += time.process_time() - started
                yield item
        setattr(owner, name, timed_steps)
    else:
        @functools.wraps(original)
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.process_time()
            try:
                return original(*args, **kwargs)
            finally:
                spent[label] += time.process_time() - started
        setattr(owner, name, timed)
    return lambda: setattr(owner, name, original)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--notes", type=int, default=500)
    parser.add_argument("--systems", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--announce", action="store_true", help="estimate each run's cost first, as the CLI does")
    args = parser.parse_args()
    SleepingProvider.latency_s = 0.05
    registry.register("sleep", lambda spec, options: SleepingProvider(spec, options))
    announce = (lambda sample, cost: None) if args.announce else None
    per_run: list[collections.Counter[str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        notes = Path(tmp) / "notes.jsonl"
        notes.write_text("".join(json.dumps({"id": f"n{i}", "text": f"Note {i}: stable angina."}) + "\n"
                                 for i in range(args.notes)))
        config = RunConfig(notes=str(notes), metrics=[], concurrency=32,
                           providers=[{"spec": f"sleep:m{j}"} for j in range(args.systems)])  # type: ignore[misc]
        first = Store.open(Path(tmp) / "first.db")
        asyncio.run(evaluation.run(config, first, announce=announce))
        first.close()
        for i in range(args.repeat):
            copy = Path(tmp) / f"rerun{i}.db"
            shutil.copy(Path(tmp) / "first.db", copy)
            store = Store.open(copy)
            spent: collections.Counter[str] = collections.Counter()
            undo = [_wrap(owner, name, label, spent) for owner, name, label in PHASES
                    if hasattr(owner, name)]  # an older checkout lacks some (PYTHONPATH=its copy)
            started = time.process_time()
            asyncio.run(evaluation.run(config, store, announce=announce))
            spent["whole re-run (evaluation.run)"] = time.process_time() - started
            for restore in undo:
                restore()
            store.close()
            per_run.append(spent)
    summaries = args.notes * args.systems
    labels = ["whole re-run (evaluation.run)", *(label for _, _, label in PHASES)]
    print(f"all-cached re-run, N={args.notes} x M={args.systems} = {summaries} summaries, CPU time, "
          f"median of {args.repeat}{' (cost estimate announced)' if args.announce else ''}")
    for label in labels:
        ms = statistics.median(run[label] for run in per_run) * 1000
        print(f"{ms:8.1f} ms {ms * 1000 / summaries:7.1f} µs/summary  {label}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
