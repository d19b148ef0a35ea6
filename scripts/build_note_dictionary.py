"""Build the preset dictionary that the store compresses note texts with (``clinsum/store_notes_v1.zdict``).

    .venv/bin/python scripts/build_note_dictionary.py PATH/TO/aci-bench/train.jsonl [--out FILE]

Input: the ``train`` split of ACI-Bench (Yim et al., Scientific Data 10:586, 2023;
github.com/wyim/aci-bench, CC BY 4.0): 67 role-played visit notes, none of which is
among the fixtures (``fixtures/aci_notes.jsonl`` holds notes of the ``valid`` split),
so the benchmark's synthetic notes, made from the fixtures, are not in the dictionary.

The dictionary is the word n-grams (3 to 8 words) that occur in at least ``--min-count``
notes' worth of text, ranked by the characters they would save (count × length), most
valuable last (deflate reaches nearer bytes with shorter distance codes). A shipped
dictionary is frozen: stored notes can only be read with the exact bytes they were
compressed with, so a new dictionary is a new file and a new codec marker
(``clinsum.store_codec``), never an edit of this one.
"""

from __future__ import annotations

import argparse
import collections
import json
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "clinsum" / "store_notes_v1.zdict"


def build(texts: list[str], size: int, min_count: int) -> bytes:
    counts: collections.Counter[str] = collections.Counter()
    for text in texts:
        words = text.split(" ")
        for n in (3, 4, 5, 6, 8):
            for i in range(len(words) - n + 1):
                counts[" ".join(words[i:i + n])] += 1
    picked: list[str] = []
    total = 0
    for gram, count in sorted(counts.items(), key=lambda kv: (-kv[1] * len(kv[0]), kv[0])):
        if total + len(gram) + 1 > size:
            break
        if count < min_count or any(gram in kept for kept in picked[-200:]):
            continue
        picked.append(gram)
        total += len(gram) + 1
    return " ".join(reversed(picked)).encode("utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("train", type=Path, help="ACI-Bench train.jsonl (rows with a 'note' field)")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--size", type=int, default=32000,
                        help="Characters at most (deflate's window is 32 KiB, and the note needs some of it).")
    parser.add_argument("--min-count", type=int, default=3)
    args = parser.parse_args()
    with args.train.open(encoding="utf-8") as lines:
        texts = [json.loads(line)["note"] for line in lines if line.strip()]
    data = build(texts, args.size, args.min_count)
    args.out.write_bytes(data)
    print(f"{args.out}: {len(data):,} bytes from {len(texts)} notes")


if __name__ == "__main__":
    main()
