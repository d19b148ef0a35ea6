"""Performance: clinsum's concept extraction against medspacy's default pipeline, side by side.

    .venv/bin/python benchmarks/concepts_speed.py                  # 1,000 notes, all lexicon rules
    .venv/bin/python benchmarks/concepts_speed.py --notes 200 --medspacy-rules 20000   # quicker

Notes: 1,000 texts of about 400 words made from the ACI-Bench visit notes in fixtures/ (each note's
paragraphs shuffled with a fixed seed, so texts differ while keeping clinical vocabulary).

clinsum: ``ConceptExtractor.extract`` (tokeniser, exact + fuzzy matching, text-defined
abbreviations, ConText-style assertion) note by note.
medspacy: ``medspacy.load()`` (PyRuSH sentencizer, TargetMatcher, ConText) with the same
lexicon's names as TargetRules (the lexicon stores normalised names: lowercase, plural-folded,
matched case-insensitively by medspacy's phrase matcher), run with ``nlp.pipe``.

Also reports loading the packaged lexicon in a fresh process, five times: the median CPU time
(``time.process_time``, which other jobs on a shared machine cannot inflate), the median wall time
with the load average beside it, and resident memory.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

NOTES = ROOT / "fixtures" / "aci_notes.jsonl"

LOAD_PROBE = """
import resource, sys, time
sys.path.insert(0, {root!r})
started, cpu_started = time.perf_counter(), time.process_time()
from clinsum.concepts.terminology import load_lexicon
lexicon = load_lexicon()
lexicon_s, lexicon_cpu_s = time.perf_counter() - started, time.process_time() - cpu_started
lexicon_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
from clinsum.concepts.extract import extractor
extractor().extract("warm-up: denies chest pain")
total_s = time.perf_counter() - started
total_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(lexicon_s, lexicon_cpu_s, lexicon_mb, total_s, total_mb, len(lexicon.keys))
"""
LOAD_RUNS = 5


def make_notes(count: int, seed: int = 0) -> list[str]:
    lines = NOTES.read_text(encoding="utf-8").splitlines()
    sources = [json.loads(line)["text"] for line in lines if line.strip()]
    rng = random.Random(seed)
    notes: list[str] = []
    while len(notes) < count:
        paragraphs: list[str] = []
        words = 0
        while words < 400:
            text = rng.choice(sources).split("\n\n")
            rng.shuffle(text)
            for paragraph in text:
                paragraphs.append(paragraph)
                words += len(paragraph.split())
                if words >= 400:
                    break
        notes.append("\n\n".join(paragraphs))
    return notes


@dataclass(frozen=True)
class Load:
    """Medians over ``LOAD_RUNS`` fresh processes; ``load_average`` is the 1-minute load while they ran."""

    wall_s: float
    cpu_s: float
    mb: float
    total_s: float
    total_mb: float
    names: int
    load_average: float


def probe_load() -> Load:
    runs, loads = [], []
    for _ in range(LOAD_RUNS):
        loads.append(os.getloadavg()[0])
        out = subprocess.run([sys.executable, "-c", LOAD_PROBE.format(root=str(ROOT))], capture_output=True,
                             text=True, check=True).stdout.split()
        runs.append([float(value) for value in out])
    wall_s, cpu_s, mb, total_s, total_mb, names = (statistics.median(column) for column in zip(*runs, strict=True))
    return Load(wall_s, cpu_s, mb, total_s, total_mb, int(names), statistics.median(loads))


def run_clinsum(notes: list[str]) -> tuple[float, int]:
    from clinsum.concepts.extract import extractor

    extract = extractor().extract
    extract("warm-up: denies chest pain")
    started = time.perf_counter()
    mentions = sum(len(extract(note)) for note in notes)
    return time.perf_counter() - started, mentions


def run_medspacy(notes: list[str], max_rules: int | None) -> tuple[float, int, float, int]:
    from loguru import logger

    logger.remove()  # PyRuSH logs every sentence boundary at DEBUG; silence it, it is not the pipeline
    import medspacy
    from medspacy.target_matcher import TargetRule

    from clinsum.concepts.terminology import load_lexicon

    lexicon = load_lexicon()
    started = time.perf_counter()
    nlp = medspacy.load()
    items = sorted(lexicon.keys.items())
    if max_rules is not None:
        items = random.Random(0).sample(items, min(max_rules, len(items)))
    rules = [TargetRule(key, lexicon.concepts[index].group.upper()) for key, index in items]
    rules += [TargetRule(form, lexicon.concepts[index].group.upper(), pattern=[{"TEXT": form}])
              for form, index in sorted(lexicon.acronyms.items())]
    nlp.get_pipe("medspacy_target_matcher").add(rules)
    load_s = time.perf_counter() - started
    nlp("warm-up: denies chest pain")
    started = time.perf_counter()
    mentions = sum(len(doc.ents) for doc in nlp.pipe(notes))
    return time.perf_counter() - started, mentions, load_s, len(rules)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--notes", type=int, default=1000)
    parser.add_argument("--medspacy-rules", type=int, default=None,
                        help="load only a random subset of this many names into medspacy")
    args = parser.parse_args()
    notes = make_notes(args.notes)
    words = sum(len(n.split()) for n in notes) / len(notes)
    load = probe_load()
    ours_s, ours_mentions = run_clinsum(notes)
    theirs_s, theirs_mentions, theirs_load_s, rules = run_medspacy(notes, args.medspacy_rules)
    ours_rate, theirs_rate = len(notes) / ours_s, len(notes) / theirs_s
    print(f"\n{len(notes)} notes, {words:.0f} words on average; lexicon of {load.names:,} names\n")
    print(f"{'pipeline':34s} {'notes/s':>9s} {'seconds':>9s} {'mentions':>9s}")
    print(f"{'clinsum extract':34s} {ours_rate:9.1f} {ours_s:9.1f} {ours_mentions:9d}")
    print(f"{f'medspacy ({rules:,} TargetRules+ConText)':34s} {theirs_rate:9.1f} {theirs_s:9.1f} "
          f"{theirs_mentions:9d}")
    print(f"\nspeed ratio clinsum / medspacy: {ours_rate / theirs_rate:.1f}x (goal >= 3x)")
    print(f"lexicon load (fresh process, median of {LOAD_RUNS}): {load.cpu_s:.2f} s CPU, {load.wall_s:.2f} s wall "
          f"at load average {load.load_average:.1f}, {load.mb:.0f} MB max RSS (goal < 2 s, < 500 MB)")
    print(f"extractor ready incl. spaCy and first note: {load.total_s:.2f} s wall, {load.total_mb:.0f} MB max RSS")
    print(f"medspacy load with the rules: {theirs_load_s:.1f} s")


if __name__ == "__main__":
    main()
