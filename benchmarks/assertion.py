"""Validation 4: assertion status on labelled sets, clinsum's ConText vs medspaCy's.

    .venv/bin/python benchmarks/assertion.py [--set sentences|aci] [--split dev|test|all] [--no-medspacy] [--errors]
    .venv/bin/python benchmarks/assertion.py --speed 10

Two labelled sets, each with a ``dev`` split (rules developed on it) and a held-out
``test`` split: ``sentences`` (fixtures/assertion_sentences.tsv, sentences written
for clinsum) and ``aci`` (fixtures/assertion_aci.tsv, findings in ACI-Bench
dialogues and visit notes, each scored in its whole document, so a "no" in the next
speaker turn or a section header counts). Prints per-class precision, recall and
F1 and overall accuracy for each split. medspaCy runs with its default ConText
rules (and its default sentence splitter) on the same gold spans; its boolean
attributes are mapped to one status with the same priority clinsum uses.
"""

from __future__ import annotations

import argparse
import csv
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from clinsum.concepts.assertion import PRIORITY, RULES_VERSION, assertion_of

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "assertion_sentences.tsv"
ACI_FIXTURE = FIXTURE.parent / "assertion_aci.tsv"
ACI_DOCUMENTS = FIXTURE.parent / "aci_trainvalid.jsonl.gz"
CLASSES = ("present", "negated", "possible", "historical", "family", "hypothetical")


@dataclass(frozen=True)
class Example:
    id: str
    split: str
    text: str
    phrase: str
    start: int
    end: int
    gold: str
    phenomenon: str


def load_examples(path: Path = FIXTURE) -> list[Example]:
    lines = [line for line in path.read_text("utf-8").splitlines() if not line.startswith("#")]
    examples = []
    for row in csv.DictReader(lines, delimiter="\t", quoting=csv.QUOTE_NONE):
        text = row["text"].replace("\\n", "\n")
        start, end = int(row["start"]), int(row["end"])
        if text[start:end] != row["phrase"]:
            raise ValueError(f"{path}: row {row['id']}: span does not match phrase {row['phrase']!r}")
        examples.append(Example(row["id"], row["split"], text, row["phrase"], start, end,
                                row["assertion"], row["phenomenon"]))
    return examples


def load_aci_examples(path: Path = ACI_FIXTURE, documents: Path = ACI_DOCUMENTS) -> list[Example]:
    """The ACI-Bench findings, each located in its whole dialogue or note.

    A row names its document, a passage that occurs once in it and the phrase inside that passage
    (its first occurrence there); the example's text is the whole document.
    """
    import gzip
    import json

    texts: dict[str, str] = {}
    with gzip.open(documents, "rt", encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            key = row["id"].removeprefix("acibench-")
            texts[f"{key}/dialogue"], texts[f"{key}/note"] = row["dialogue"], row["note"]
    lines = [line for line in path.read_text("utf-8").splitlines() if not line.startswith("#")]
    examples = []
    for row in csv.DictReader(lines, delimiter="\t", quoting=csv.QUOTE_NONE):
        text = texts[row["doc"]]
        context = row["context"].replace("\\n", "\n")
        found = [m.start() for m in re.finditer(re.escape(context), text, re.IGNORECASE)]
        if len(found) != 1:
            raise ValueError(f"{path}: row {row['id']}: context occurs {len(found)} times in {row['doc']}")
        inside = context.lower().find(row["phrase"].lower())
        if inside < 0:
            raise ValueError(f"{path}: row {row['id']}: phrase {row['phrase']!r} not in its context")
        start = found[0] + inside
        examples.append(Example(row["id"], row["split"], text, row["phrase"], start, start + len(row["phrase"]),
                                row["assertion"], row["phenomenon"]))
    return examples


def per_class(gold: Sequence[str], predicted: Sequence[str]) -> dict[str, tuple[float, float, float, int]]:
    """class -> (precision, recall, F1, support)."""
    table = {}
    for label in CLASSES:
        tp = sum(g == p == label for g, p in zip(gold, predicted, strict=True))
        n_pred = sum(p == label for p in predicted)
        n_gold = sum(g == label for g in gold)
        precision = tp / n_pred if n_pred else 0.0
        recall = tp / n_gold if n_gold else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        table[label] = (precision, recall, f1, n_gold)
    return table


def accuracy(gold: Sequence[str], predicted: Sequence[str]) -> float:
    return sum(g == p for g, p in zip(gold, predicted, strict=True)) / len(gold) if gold else 0.0


def clinsum_predict(examples: Sequence[Example]) -> list[str]:
    return [assertion_of(e.text, e.start, e.end) for e in examples]


def medspacy_predictor() -> Callable[[Sequence[Example]], list[str]]:
    import medspacy
    from spacy.tokens import Span

    try:  # PyRuSH logs every sentence at DEBUG level through loguru
        from loguru import logger

        logger.remove()
    except ImportError:
        pass

    nlp = medspacy.load(medspacy_enable=["medspacy_pyrush", "medspacy_context"])

    def predict(examples: Sequence[Example]) -> list[str]:
        out = []
        for example in examples:
            doc = nlp.make_doc(example.text)
            span = doc.char_span(example.start, example.end, label="CONCEPT", alignment_mode="expand")
            doc.ents = [Span(doc, span.start, span.end, label="CONCEPT")] if span is not None else []
            for _name, component in nlp.pipeline:
                doc = component(doc)
            ent = doc.ents[0] if doc.ents else None
            flags = set()
            if ent is not None:
                for status, attr in (("negated", "is_negated"), ("family", "is_family"),
                                     ("hypothetical", "is_hypothetical"), ("possible", "is_uncertain"),
                                     ("historical", "is_historical")):
                    if getattr(ent._, attr):
                        flags.add(status)
            out.append(next((s for s in PRIORITY if s in flags), "present"))
        return out

    return predict


def speed(repeat: int) -> None:
    """Assertion time alone on the fixture visit notes: clinsum vs medspaCy (sentence splitting + ConText).

    Both get the same mention spans (from clinsum's extractor, found once beforehand).
    """
    import json

    import medspacy
    from spacy.tokens import Span

    from clinsum.concepts import assertion
    from clinsum.concepts.extract import extract

    try:
        from loguru import logger

        logger.remove()
    except ImportError:
        pass
    notes_path = FIXTURE.parent / "aci_notes.jsonl"
    texts = [json.loads(line)["text"] for line in notes_path.read_text("utf-8").splitlines() if line.strip()]
    spans = [[(m.start, m.end) for m in extract(text)] for text in texts]
    words = sum(len(t.split()) for t in texts) * repeat
    mentions = sum(len(s) for s in spans) * repeat

    started = time.perf_counter()
    for _ in range(repeat):
        for text, text_spans in zip(texts, spans, strict=True):
            assertion._analyse.cache_clear()
            assertion.assertions_for(text, text_spans)
    ours = time.perf_counter() - started

    nlp = medspacy.load(medspacy_enable=["medspacy_pyrush", "medspacy_context"])
    started = time.perf_counter()
    for _ in range(repeat):
        for text, text_spans in zip(texts, spans, strict=True):
            doc = nlp.make_doc(text)
            ents: list[Span] = []
            for start, end in text_spans:
                span = doc.char_span(start, end, label="CONCEPT", alignment_mode="expand")
                if span is not None and all(span.start >= e.end or span.end <= e.start for e in ents):
                    ents.append(Span(doc, span.start, span.end, label="CONCEPT"))
            doc.ents = ents
            for _name, component in nlp.pipeline:
                doc = component(doc)
    theirs = time.perf_counter() - started
    notes = len(texts) * repeat
    print(f"{notes} notes, {words} words, {mentions} mentions")
    print(f"clinsum assertion:  {ours:.2f} s ({notes / ours:.0f} notes/s)")
    print(f"medspaCy ConText:   {theirs:.2f} s ({notes / theirs:.0f} notes/s)  -> {theirs / ours:.1f}x")


def report(name: str, examples: Sequence[Example], predicted: Sequence[str]) -> list[str]:
    gold = [e.gold for e in examples]
    lines = [f"{name}: accuracy {accuracy(gold, predicted):.3f} on {len(gold)} spans",
             "| class | n | precision | recall | F1 |", "|---|---:|---:|---:|---:|"]
    for label, (p, r, f, n) in per_class(gold, predicted).items():
        lines.append(f"| {label} | {n} | {p:.2f} | {r:.2f} | {f:.2f} |")
    return lines


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--set", dest="labelled_set", choices=("sentences", "aci"), default="sentences",
                        help="sentences: fixtures/assertion_sentences.tsv; aci: fixtures/assertion_aci.tsv")
    parser.add_argument("--split", choices=("dev", "test", "all"), default="all")
    parser.add_argument("--no-medspacy", action="store_true")
    parser.add_argument("--errors", action="store_true", help="list the misclassified dev examples")
    parser.add_argument("--speed", type=int, metavar="N", default=0,
                        help="also time assertion alone on the fixture notes, repeated N times")
    args = parser.parse_args(argv)
    if args.speed:
        speed(args.speed)
        return
    examples = load_examples() if args.labelled_set == "sentences" else load_aci_examples()
    splits = ("dev", "test") if args.split == "all" else (args.split,)
    systems: list[tuple[str, Callable[[Sequence[Example]], list[str]]]] = [
        (f"clinsum ConText (rules {RULES_VERSION})", clinsum_predict)]
    if not args.no_medspacy:
        systems.append(("medspaCy ConText (default rules)", medspacy_predictor()))
    for split in splits:
        subset = [e for e in examples if e.split == split]
        for name, predict in systems:
            started = time.perf_counter()
            predicted = predict(subset)
            elapsed = time.perf_counter() - started
            print(f"\n## {split} split")
            print("\n".join(report(name, subset, predicted)))
            print(f"({elapsed * 1000:.0f} ms)")
            if args.errors and split == "dev":
                for example, guess in zip(subset, predicted, strict=True):
                    if guess != example.gold:
                        context = example.text[max(0, example.start - 120):example.end + 80]
                        print(f"  {example.id} gold={example.gold} got={guess} [{example.phrase}] {context!r}")


if __name__ == "__main__":
    main()
