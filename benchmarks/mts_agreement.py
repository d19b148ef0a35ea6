"""Turn the MTS-Dialog correlation study into clinsum inputs, to measure metrics against humans.

The fixture ``fixtures/mts_dialog_ratings.jsonl`` (Ben Abacha et al., EACL 2023,
CC BY 4.0) holds four systems' section summaries of the same 50 doctor-patient
dialogues, each with manual fact-based scores. This script writes:

- ``notes.jsonl``: one note per dialogue (the dialogue as ``text``, the human
  section summary as ``reference``, the section header in ``meta``);
- ``summaries.jsonl``: the 200 system summaries (``system`` = ``system_1`` ..
  ``system_4``, ``note_id`` = the dialogue id);
- ``ratings.jsonl``: one rating per summary and score, rater ``mts-annotators``,
  dimension = the study's own score name (FactualRecall, HallucinationRate, ...).

Then (see docs/agreement.md for the measured output)::

    python benchmarks/mts_agreement.py mts-agreement/
    clinsum score mts-agreement/summaries.jsonl --notes mts-agreement/notes.jsonl --db mts.db
    clinsum feedback import mts-agreement/ratings.jsonl --db mts.db
    clinsum agreement --db mts.db --flag 'unsupported_concepts>=1' --human-flag 'HallucinationRate>0'
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from clinsum.inputs import write_jsonl
from clinsum.records import Note, Rating, Summary

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "mts_dialog_ratings.jsonl"
RATER = "mts-annotators"


def convert(rows: list[dict]) -> tuple[list[Note], list[Summary], list[Rating]]:
    """Notes (one per dialogue, first seen order), summaries and ratings of the study's rows."""
    notes: dict[str, Note] = {}
    summaries: list[Summary] = []
    ratings: list[Rating] = []
    for row in rows:
        note_id = row["dialogue_id"]
        note = Note(id=note_id, text=row["dialogue"], reference=row["reference"],
                    meta={"source": "mts-dialog", "section_header": row["section_header"]})
        if notes.setdefault(note_id, note) != note:
            raise ValueError(f"{row['id']}: dialogue {note_id} differs from its first occurrence")
        summaries.append(Summary(note_id=note_id, system=row["system"], text=row["summary"]))
        ratings.extend(Rating(note_id=note_id, system=row["system"], rater=RATER, dimension=name,
                              value=float(value), comment=f"MTS-Dialog correlation study row {row['id']}")
                       for name, value in row["ratings"].items())
    return list(notes.values()), summaries, ratings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="Folder for notes.jsonl, summaries.jsonl, ratings.jsonl.")
    parser.add_argument("--ratings", type=Path, default=FIXTURE, help="The study's ratings.jsonl.")
    args = parser.parse_args()
    rows = [json.loads(line) for line in args.ratings.read_text(encoding="utf-8").splitlines() if line]
    notes, summaries, ratings = convert(rows)
    for name, records in (("notes", notes), ("summaries", summaries), ("ratings", ratings)):
        count = write_jsonl(args.out / f"{name}.jsonl", records)
        print(f"wrote {count} {name} to {args.out / f'{name}.jsonl'}")


if __name__ == "__main__":
    main()
