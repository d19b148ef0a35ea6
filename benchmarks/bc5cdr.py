"""Validation 1: concept extraction against the BioCreative V CDR development set.

    .venv/bin/python benchmarks/bc5cdr.py            # table of P/R/F1 for Disease and Chemical
    .venv/bin/python benchmarks/bc5cdr.py --errors 30   # also list frequent misses / false hits

Mention-level precision, recall and F1 with overlap matching: a predicted mention counts as
correct when it overlaps a gold mention of the same type; a gold mention counts as found when
some prediction of the same type overlaps it. Disease = our ``disorder`` + ``finding`` groups,
Chemical = our ``drug`` group. Our ``test``, ``procedure``, ``anatomy`` and ``device`` mentions
are not scored (the corpus does not annotate them).

Corpus: Li J et al. BioCreative V CDR task corpus: a resource for chemical disease relation
extraction. Database 2016 (baw068); fixtures/bc5cdr/ (see fixtures/README.md).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CORPUS = ROOT / "fixtures" / "bc5cdr" / "CDR_DevelopmentSet.PubTator.txt"
TYPES = {"Disease": {"disorder", "finding"}, "Chemical": {"drug"}}


@dataclass
class Abstract:
    pmid: str
    text: str = ""
    gold: list[tuple[int, int, str, str]] = field(default_factory=list)
    """(start, end, surface, type)"""


def read_pubtator(path: Path) -> list[Abstract]:
    abstracts: list[Abstract] = []
    current: Abstract | None = None
    title = ""
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            current = None
            continue
        if "|t|" in line[:20]:
            pmid, _, title = line.split("|", 2)
            current = Abstract(pmid)
            abstracts.append(current)
        elif "|a|" in line[:20] and current is not None:
            current.text = title + " " + line.split("|", 2)[2]
        elif current is not None:
            parts = line.split("\t")
            if len(parts) >= 5 and parts[4] in TYPES:
                current.gold.append((int(parts[1]), int(parts[2]), parts[3], parts[4]))
            elif len(parts) < 4:
                raise SystemExit(f"{path}:{number}: not a PubTator line")
    return abstracts


def overlaps(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def evaluate(abstracts: list[Abstract], show_errors: int = 0,
             lexicon: Path | None = None) -> dict[str, dict[str, float]]:
    from clinsum.concepts.extract import ConceptExtractor, extractor
    from clinsum.concepts.terminology import load_lexicon

    if lexicon is None:
        extract = extractor().extract
    else:
        import spacy

        extract = ConceptExtractor(load_lexicon(lexicon), spacy.blank("en")).extract

    counts: dict[str, Counter[str]] = {t: Counter() for t in TYPES}
    misses: dict[str, Counter[str]] = {t: Counter() for t in TYPES}
    false_hits: dict[str, Counter[str]] = {t: Counter() for t in TYPES}
    for abstract in abstracts:
        mentions = extract(abstract.text)
        for kind, groups in TYPES.items():
            predicted = [(m.start, m.end, m.text) for m in mentions if m.group in groups]
            gold = [(s, e, text) for s, e, text, t in abstract.gold if t == kind]
            for p in predicted:
                if any(overlaps(p[:2], g[:2]) for g in gold):
                    counts[kind]["tp_pred"] += 1
                else:
                    false_hits[kind][p[2].lower()] += 1
            for g in gold:
                if any(overlaps(g[:2], p[:2]) for p in predicted):
                    counts[kind]["tp_gold"] += 1
                else:
                    misses[kind][g[2].lower()] += 1
            counts[kind]["pred"] += len(predicted)
            counts[kind]["gold"] += len(gold)
    results = {}
    for kind, c in counts.items():
        precision = c["tp_pred"] / c["pred"] if c["pred"] else 0.0
        recall = c["tp_gold"] / c["gold"] if c["gold"] else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        results[kind] = {"precision": precision, "recall": recall, "f1": f1,
                         "gold": c["gold"], "predicted": c["pred"]}
        if show_errors:
            print(f"\n{kind}: most frequent misses: {misses[kind].most_common(show_errors)}")
            print(f"{kind}: most frequent false hits: {false_hits[kind].most_common(show_errors)}")
    return results


def notes_profile(path: Path, lexicon: Path | None) -> None:
    """Mentions per note by group on a JSONL of {"text"} (how much a lexicon finds in clinical notes)."""
    import json

    from clinsum.concepts.extract import ConceptExtractor, extractor
    from clinsum.concepts.terminology import load_lexicon

    if lexicon is None:
        extract = extractor().extract
    else:
        import spacy

        extract = ConceptExtractor(load_lexicon(lexicon), spacy.blank("en")).extract
    texts = [json.loads(line)["text"] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    groups: Counter[str] = Counter()
    concepts: set[str] = set()
    for text in texts:
        for m in extract(text):
            groups[m.group] += 1
            concepts.add(m.concept_id)
    per_note = ", ".join(f"{g} {n / len(texts):.1f}" for g, n in sorted(groups.items()))
    print(f"{path.name}: {sum(groups.values()) / len(texts):.1f} mentions per note ({per_note}); "
          f"{len(concepts)} distinct concepts in {len(texts)} notes")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--lexicon", type=Path, help="a lexicon built with scripts/build_lexicon.py -o")
    parser.add_argument("--notes", type=Path, help="also profile mentions on a JSONL of clinical notes")
    parser.add_argument("--errors", type=int, default=0, help="list the N most frequent errors per type")
    args = parser.parse_args()
    abstracts = read_pubtator(args.corpus)
    started = time.perf_counter()
    results = evaluate(abstracts, args.errors, args.lexicon)
    elapsed = time.perf_counter() - started
    label = args.lexicon or "packaged lexicon"
    print(f"\nBC5CDR development set, {label}: {len(abstracts)} abstracts, overlap matching "
          f"({elapsed:.1f} s)\n")
    print(f"{'type':10s} {'gold':>6s} {'pred':>6s} {'P':>6s} {'R':>6s} {'F1':>6s}   floor  goal")
    floors = {"Disease": (0.76, 0.85), "Chemical": (0.71, 0.80)}
    for kind, r in results.items():
        floor, goal = floors[kind]
        print(f"{kind:10s} {r['gold']:6.0f} {r['predicted']:6.0f} {r['precision']:6.3f} {r['recall']:6.3f} "
              f"{r['f1']:6.3f}   {floor:.2f}  {goal:.2f}")
    if args.notes:
        print()
        notes_profile(args.notes, args.lexicon)


if __name__ == "__main__":
    main()
