"""Build the preset dictionary that the store compresses note texts with (``clinsum/store_notes_v1.zdict``).

    .venv/bin/python scripts/build_note_dictionary.py PATH/TO/aci-bench/train.jsonl [--out FILE]

Input: the ``train`` split of ACI-Bench (Yim et al., Scientific Data 10:586, 2023;
github.com/wyim/aci-bench, CC BY 4.0): 67 role-played visit notes, none of which is
among the fixtures (``fixtures/aci_notes.jsonl`` holds notes of the ``valid`` split),
so the benchmark's synthetic notes, made from the fixtures, are not in the dictionary.

The dictionary is the content of a zstd dictionary trained on those notes
(``zstandard.train_dictionary``, the COVER algorithm: the segments of text that recur
across notes, most valuable last), used by zlib as a raw preset dictionary, so that
reading a store needs only the standard library; ``zstandard`` (extra
``dictionary-build``, pinned in ``constraints.txt``) is needed to rebuild it only.
Measured on the 8 ``valid`` notes that are not fixtures (mean 2,724 bytes): raw deflate
alone 1,296 bytes a note, with a dictionary of frequent word n-grams 957, with this one
754 (on the benchmark's synthetic notes: 1,292, 1,016, 852).
Training may not give the same bytes twice: the shipped file, whose SHA-256 the
store checks, is the one that counts. A shipped dictionary is frozen: stored notes
can only be read with the exact bytes they were compressed with, so a new dictionary
is a new file and a new codec marker (``clinsum.store_codec``), never an edit.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "clinsum" / "store_notes_v1.zdict"


def build(texts: list[str], size: int) -> bytes:
    import zstandard

    # COVER wants many samples; each note given three times weighs it as one, with enough samples
    trained = zstandard.train_dictionary(size + 2000, [t.encode("utf-8") for t in texts] * 3, threads=1)
    return trained.as_bytes()[-size:]  # the content, after the header and entropy tables


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("train", type=Path, help="ACI-Bench train.jsonl (rows with a 'note' field)")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--size", type=int, default=30000,
                        help="Bytes (deflate's window is 32 KiB, and the note needs some of it).")
    args = parser.parse_args()
    with args.train.open(encoding="utf-8") as lines:
        texts = [json.loads(line)["note"] for line in lines if line.strip()]
    data = build(texts, args.size)
    args.out.write_bytes(data)
    print(f"{args.out}: {len(data):,} bytes from {len(texts)} notes")


if __name__ == "__main__":
    main()
