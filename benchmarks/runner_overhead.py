"""Runner overhead and cache speed-up, with a simulated provider of fixed latency.

    .venv/bin/python benchmarks/runner_overhead.py [--notes 500] [--systems 3] [--latency 0.05]
                                                   [--concurrency 32] [--announce]

Each simulated call sleeps L seconds (asyncio.sleep) and answers. The run goes
through the real path: notes file → runner → dispatcher (cache, limits) →
SQLite store, with the generation scores written per summary. Reported:

- the first run's wall time against N·M·L/C (the issue's budget: ratio must be
  ≤ 1.10) and against the tighter bound ceil(N/C)·L that applies when the M
  providers run side by side, each with its own limit C;
- a second, identical run whose calls are all cache hits, as a share of the
  first run's time (goal: under 5%);
- the CPU time (``time.process_time``) of each run, steadier than wall time on a shared machine.

Like the Python API, the runs announce nothing, so no cost estimate is made; ``--announce``
makes each run announce its estimate (and ignore it) as ``clinsum run`` does, which adds a
response-cache lookup per call before the run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
import tempfile
import time
from pathlib import Path

from clinsum import evaluation
from clinsum.config import RunConfig
from clinsum.providers import registry
from clinsum.providers.base import BaseProvider, Generation, Request
from clinsum.store import Store


class SleepingProvider(BaseProvider):
    local = True
    latency_s = 0.05

    async def generate(self, request: Request) -> Generation:
        await asyncio.sleep(self.latency_s)
        return Generation(text="simulated summary", input_tokens=100, output_tokens=20, latency_s=self.latency_s)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--notes", type=int, default=500)
    parser.add_argument("--systems", type=int, default=3)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--announce", action="store_true", help="estimate each run's cost first, as the CLI does")
    args = parser.parse_args()
    SleepingProvider.latency_s = args.latency
    registry.register("sleep", lambda spec, options: SleepingProvider(spec, options))

    with tempfile.TemporaryDirectory() as tmp:
        notes = Path(tmp) / "notes.jsonl"
        notes.write_text("".join(json.dumps({"id": f"n{i}", "text": f"Note {i}: stable angina."}) + "\n"
                                 for i in range(args.notes)))
        config = RunConfig(notes=str(notes), metrics=[], concurrency=args.concurrency,
                           providers=[{"spec": f"sleep:m{j}"} for j in range(args.systems)])  # type: ignore[misc]
        store = Store.open(Path(tmp) / "bench.db")
        timings, cpu = [], []
        for _ in range(2):
            started, cpu_started = time.perf_counter(), time.process_time()
            asyncio.run(evaluation.run(config, store, announce=(lambda sample, cost: None) if args.announce else None))
            timings.append(time.perf_counter() - started)
            cpu.append(time.process_time() - cpu_started)
        store.close()

    first, cached = timings
    budget = args.notes * args.systems * args.latency / args.concurrency
    bound = math.ceil(args.notes / args.concurrency) * args.latency
    print(f"N={args.notes} M={args.systems} L={args.latency * 1000:.0f}ms C={args.concurrency} (per provider)"
          f"{', cost estimate announced' if args.announce else ''}")
    print(f"first run        {first:7.3f} s   ratio to N*M*L/C = {budget:.3f} s: {first / budget:.3f} (goal <= 1.10)")
    print(f"                            ratio to ceil(N/C)*L = {bound:.3f} s: {first / bound:.3f}")
    print(f"all-cached rerun {cached:7.3f} s   {cached / first:.1%} of the first run (goal < 5%)")
    print(f"CPU time         first run {cpu[0]:.3f} s, all-cached rerun {cpu[1]:.3f} s "
          f"(the rerun waits on nothing: its wall time is its CPU time on an idle machine)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
