"""Fit and check the ``facts`` evaluator on ACI-Bench train/valid: false positives and planted fabrications.

    .venv/bin/python benchmarks/facts_fit.py            # fit on train, report train and valid
    .venv/bin/python benchmarks/facts_fit.py --no-fit   # the packaged defaults only

Each clinician visit note is scored as a summary of its own dialogue
(fixtures/aci_bench_train_valid.jsonl.gz, 67 train + 20 valid encounters). The
notes are faithful, so every fact flagged there is a false positive, or a fact
the clinician added from outside the conversation (the floor). Then one
fabrication at a time is planted into each note and the planted note scored:

``number``       a supported number (vital, lab value, age, duration, dose) changed by 40 % or more
``side``         a supported left/right swapped
``medication``   a sentence starting a drug (with dose and frequency) the encounter never mentions
``disorder``     a sentence giving a history of a disorder the encounter never mentions
``denial``       a sentence denying a symptom the encounter never mentions
``status``       a negation removed ("denies" -> "reports", "negative for" -> "positive for",
                 "no" -> "has"): the planted span runs to the end of its sentence

A plant is detected when an unsupported fact overlaps the planted text. The fit
chooses the number tolerance, the concept groups and the status changes that
count, maximising (mean detection rate − false-positive rate per fact) on train;
valid is reported with the chosen options, never used to choose.

Then the statement check (``grounding``): the faithful notes give its false-positive
rate per statement, and three more plants its sensitivity:

``moved``        a sentence of another encounter's note (same split, six content words or more)
``social``       an invented social-history sentence whose words the encounter never uses
                 ("He works as a bus driver.", "She lives with her sister in Ohio.")
``changed``      one word of the note replaced by another of its kind the encounter never uses
                 (a body part, a relative, a place, a weekday or month: "knee" -> "elbow")

Its threshold, window and content-word weight are chosen on train by (mean detection over
these three − statements flagged per faithful statement); valid is reported with them, and
the combined check (``unsupported_claim_rate``: a statement's words or a fact in it) over
all nine plant kinds.
"""

from __future__ import annotations

import argparse
import gzip
import itertools
import json
import random
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from clinsum.evaluators.facts import FactsOptions
from clinsum.evaluators.facts.compare import claims, evidence_of, mentions_of, unsupported_facts
from clinsum.evaluators.facts.statements import Fact, facts_of
from clinsum.evaluators.facts.support import check

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "aci_bench_train_valid.jsonl.gz"
DRUGS = ["atorvastatin", "warfarin", "prednisone", "amlodipine", "gabapentin", "sertraline", "levothyroxine",
         "omeprazole", "metoprolol", "clopidogrel", "allopurinol", "tamsulosin"]
DISORDERS = ["atrial fibrillation", "chronic kidney disease", "hypothyroidism", "asthma", "epilepsy", "gout",
             "hepatitis C", "osteoporosis", "multiple sclerosis", "sarcoidosis"]
SYMPTOMS = ["hemoptysis", "syncope", "dysuria", "hematuria", "melena", "diplopia", "tinnitus", "dysphagia"]
PLANTS = ("number", "side", "medication", "disorder", "denial", "status")
NEGATIONS = {"denies": "reports", "negative for": "positive for", "no": "has", "without": "with"}
_NEGATION = re.compile(r"\b(denies|negative for|no|without)\b(?= [a-z])", re.IGNORECASE)


@dataclass
class Plant:
    kind: str
    text: str
    start: int
    end: int


def load(split: str | None = None) -> list[dict[str, str]]:
    with gzip.open(FIXTURE, "rt", encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle if line.strip()]
    return [r for r in rows if split is None or r["split"] == split]


def _supported(dialogue: str, note: str, kinds: set[str]) -> list[Fact]:
    evidence = [evidence_of(dialogue)]
    return [f for f in facts_of(note, mentions_of(note)) if f.kind in kinds and check(f, evidence, 0.0) is None]


def _changed(value: float) -> str:
    new = value + max(1.0, round(value * 0.4 + 0.5)) if value >= 1 else value * 2 + 0.1
    return f"{new:g}" if new != int(new) else str(int(new))


def plant_number(dialogue: str, note: str, rng: random.Random) -> Plant | None:
    candidates = [f for f in _supported(dialogue, note, {"measurement", "age", "duration", "dose"})
                  if f.number is not None and not f.number.spoken and re.match(r"\d", f.text)]
    if not candidates:
        return None
    fact = rng.choice(candidates)
    digits = re.match(r"[\d,]+(?:\.\d+)?", note[fact.start:])
    assert digits is not None
    new = _changed(float(digits.group(0).replace(",", "")))
    end = fact.start + digits.end()
    return Plant("number", note[:fact.start] + new + note[end:], fact.start, fact.start + len(new))


def plant_side(dialogue: str, note: str, rng: random.Random) -> Plant | None:
    candidates = [f for f in _supported(dialogue, note, {"laterality"}) if f.side in {"left", "right"}]
    if not candidates:
        return None
    fact = rng.choice(candidates)
    word = note[fact.start:fact.start + len(fact.side or "")]
    swapped = {"left": "right", "right": "left"}[word.lower()]
    swapped = swapped.capitalize() if word[0].isupper() else swapped
    return Plant("side", note[:fact.start] + swapped + note[fact.start + len(word):], fact.start, fact.end)


def _insert(note: str, sentence: str, kind: str, rng: random.Random) -> Plant:
    stops = [m.end() for m in re.finditer(r"\.(?= [A-Z])", note)] or [len(note)]
    at = rng.choice(stops[: max(1, len(stops) * 2 // 3)])
    text = note[:at] + " " + sentence + note[at:]
    return Plant(kind, text, at + 1, at + 1 + len(sentence))


def _absent(words: Sequence[str], *texts: str, rng: random.Random) -> str | None:
    lowered = " ".join(texts).lower()
    choices = [w for w in words if w.lower() not in lowered]
    return rng.choice(choices) if choices else None


def plant_medication(dialogue: str, note: str, rng: random.Random) -> Plant | None:
    drug = _absent(DRUGS, dialogue, note, rng=rng)
    if drug is None:
        return None
    dose = rng.choice([5, 10, 20, 25, 40, 50])
    frequency = rng.choice(["once daily", "twice daily", "at bedtime"])
    return _insert(note, f"He was started on {drug} {dose} mg {frequency}.", "medication", rng)


def plant_disorder(dialogue: str, note: str, rng: random.Random) -> Plant | None:
    disorder = _absent(DISORDERS, dialogue, note, rng=rng)
    return None if disorder is None else _insert(note, f"The patient also has a history of {disorder}.",
                                                 "disorder", rng)


def plant_denial(dialogue: str, note: str, rng: random.Random) -> Plant | None:
    symptom = _absent(SYMPTOMS, dialogue, note, rng=rng)
    return None if symptom is None else _insert(note, f"The patient denies {symptom}.", "denial", rng)


def plant_status(dialogue: str, note: str, rng: random.Random) -> Plant | None:
    candidates = list(_NEGATION.finditer(note))
    if not candidates:
        return None
    match = rng.choice(candidates)
    word = match.group(1)
    new = NEGATIONS[word.lower()]
    new = new.capitalize() if word[0].isupper() else new
    text = note[:match.start()] + new + note[match.end():]
    stop = re.search(r"[.\n]", text[match.start():])
    end = match.start() + (stop.start() if stop else len(text) - match.start())
    return Plant("status", text, match.start(), end)


PLANTERS: dict[str, Callable[[str, str, random.Random], Plant | None]] = {
    "number": plant_number, "side": plant_side, "medication": plant_medication, "disorder": plant_disorder,
    "denial": plant_denial, "status": plant_status,
}


def plants_for(row: dict[str, str], seed: int = 13) -> list[Plant]:
    """One plant of each kind (where the note allows it), reproducible per encounter."""
    out = []
    for kind, planter in PLANTERS.items():
        rng = random.Random(f"{seed}:{row['id']}:{kind}")
        plant = planter(row["dialogue"], row["note"], rng)
        if plant is not None:
            out.append(plant)
    return out


SOCIAL = [
    ("He works as a bus driver for the city.", {"bus", "driver"}),
    ("She lives with her sister in Ohio.", {"sister", "ohio"}),
    ("He is originally from Portugal and moved here as a teenager.", {"portugal", "teenager"}),
    ("She completed the tenth grade and works at a bakery.", {"tenth", "grade", "bakery"}),
    ("He lives alone in an apartment with his two cats.", {"apartment", "cats", "cat"}),
    ("She volunteers at the library on weekends.", {"volunteer", "volunteers", "library"}),
    ("He is a retired carpenter who enjoys fishing.", {"carpenter", "fishing"}),
    ("She is married and has three grandchildren.", {"grandchildren", "married"}),
    ("He attends church every Sunday with his neighbor.", {"church", "neighbor"}),
    ("She recently returned from a trip to Mexico.", {"mexico", "trip"}),
]
KINDS_OF_WORD = [
    ["knee", "elbow", "shoulder", "ankle", "wrist", "hip", "neck", "thumb", "heel", "jaw"],
    ["mother", "father", "sister", "brother", "daughter", "son", "wife", "husband", "grandmother", "uncle"],
    ["home", "work", "school", "gym", "church", "garden", "kitchen", "garage", "office", "basement"],
    ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"],
    ["january", "february", "march", "april", "june", "july", "august", "september", "october", "november",
     "december"],
    ["running", "swimming", "golf", "tennis", "hiking", "cycling", "basketball", "soccer", "skiing", "yoga"],
]
STATEMENT_PLANTS = ("moved", "social", "changed")


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z]+", text.lower()))


def plant_moved(row: dict[str, str], pool: Sequence[dict[str, str]], rng: random.Random) -> Plant | None:
    from clinsum.evaluators.facts.grounding import statements_of, words_of

    others = [r for r in pool if r["id"] != row["id"]]
    for other in rng.sample(others, len(others)):
        sentences = [other["note"][s:e] for s, e in statements_of(other["note"])]
        sentences = [t for t in sentences if len(words_of(t)) >= 6 and t[-1] in ".!?" and "\n" not in t]
        if sentences:
            return _insert(row["note"], rng.choice(sentences), "moved", rng)
    return None


def plant_social(row: dict[str, str], pool: Sequence[dict[str, str]], rng: random.Random) -> Plant | None:
    used = _words(row["dialogue"]) | _words(row["note"])
    choices = [sentence for sentence, keys in SOCIAL if not keys & used]
    return _insert(row["note"], rng.choice(choices), "social", rng) if choices else None


def plant_changed(row: dict[str, str], pool: Sequence[dict[str, str]], rng: random.Random) -> Plant | None:
    used = _words(row["dialogue"]) | _words(row["note"])
    candidates = []
    for kind in KINDS_OF_WORD:
        unused = [w for w in kind if w not in used]
        for word in kind:
            for match in re.finditer(rf"\b{word}\b", row["note"], re.IGNORECASE):
                if unused:
                    candidates.append((match, unused))
    if not candidates:
        return None
    match, unused = rng.choice(candidates)
    new = rng.choice(unused)
    new = new.capitalize() if match.group(0)[0].isupper() else new
    text = row["note"][:match.start()] + new + row["note"][match.end():]
    return Plant("changed", text, match.start(), match.start() + len(new))


STATEMENT_PLANTERS = {"moved": plant_moved, "social": plant_social, "changed": plant_changed}


def statement_plants_for(row: dict[str, str], pool: Sequence[dict[str, str]], seed: int = 13) -> list[Plant]:
    """One statement plant of each kind (where the note allows it), reproducible per encounter."""
    out = []
    for kind, planter in STATEMENT_PLANTERS.items():
        plant = planter(row, pool, random.Random(f"{seed}:{row['id']}:{kind}"))
        if plant is not None:
            out.append(plant)
    return out


@dataclass
class Figures:
    notes: int
    facts: int
    flagged: int
    notes_flagged: int
    detected: dict[str, tuple[int, int]]

    @property
    def false_positive_rate(self) -> float:
        return self.flagged / self.facts if self.facts else 0.0

    @property
    def detection(self) -> float:
        rates = [d / n for d, n in self.detected.values() if n]
        return sum(rates) / len(rates) if rates else 0.0


def measure(rows: Sequence[dict[str, str]], options: FactsOptions,
            plants: dict[str, list[Plant]]) -> Figures:
    facts = flagged = notes_flagged = 0
    detected = {kind: [0, 0] for kind in PLANTS}
    for row in rows:
        found = unsupported_facts(row["dialogue"], row["note"], options)
        facts += found.total
        flagged += len(found.unsupported)
        notes_flagged += bool(found.unsupported)
        for plant in plants[row["id"]]:
            planted = unsupported_facts(row["dialogue"], plant.text, options)
            hit = any(f["start"] < plant.end and plant.start < f["end"] for f in planted.unsupported)
            detected[plant.kind][0] += hit
            detected[plant.kind][1] += 1
    return Figures(len(rows), facts, flagged, notes_flagged, {k: (v[0], v[1]) for k, v in detected.items()})


GRID_TOLERANCE = (0.0, 0.05)
GRID_CONTEXT = (False, True)
GRID_GROUPS = (
    ("disorder", "finding", "drug", "procedure", "test", "anatomy", "device"),
    ("disorder", "finding", "drug", "procedure", "test", "device"),
    ("disorder", "finding", "drug", "procedure"),
    ("disorder", "finding", "drug"),
    ("disorder", "drug"),
)
GRID_STATUSES = ("critical", "all", "none")


def fit(rows: Sequence[dict[str, str]], plants: dict[str, list[Plant]]) -> tuple[FactsOptions, list[str]]:
    best: tuple[float, FactsOptions] | None = None
    lines = ["| tolerance | number context | concept groups | statuses | FP rate / fact | detection | objective |",
             "|---:|---|---|---|---:|---:|---:|"]
    for tolerance, context, groups, statuses in itertools.product(GRID_TOLERANCE, GRID_CONTEXT, GRID_GROUPS,
                                                                  GRID_STATUSES):
        options = FactsOptions(tolerance=tolerance, concept_groups=groups, statuses=statuses,
                               number_context=context)
        figures = measure(rows, options, plants)
        objective = figures.detection - figures.false_positive_rate
        lines.append(f"| {tolerance:g} | {context} | {', '.join(groups)} | {statuses} | "
                     f"{figures.false_positive_rate:.3f} | "
                     f"{figures.detection:.3f} | {objective:.3f} |")
        if best is None or objective > best[0] + 1e-9:
            best = (objective, options)
    assert best is not None
    return best[1], lines


def report(name: str, figures: Figures) -> None:
    print(f"\n{name}: {figures.notes} faithful notes, {figures.facts} facts, {figures.flagged} flagged "
          f"(false-positive rate {figures.false_positive_rate:.3f} per fact, "
          f"{figures.flagged / figures.notes:.2f} per note; {figures.notes_flagged} notes with any)")
    print("| planted | detected | of | rate |\n|---|---:|---:|---:|")
    for kind, (hit, total) in figures.detected.items():
        print(f"| {kind} | {hit} | {total} | {hit / total if total else float('nan'):.3f} |")
    print(f"| mean over kinds | | | {figures.detection:.3f} |")


@dataclass
class StatementFigures:
    notes: int
    statements: int
    flagged: int
    """Faithful statements flagged by the statement check."""
    claimed: int
    """Faithful statements flagged by the combined check (their words or a fact in them)."""
    detected: dict[str, tuple[int, int]]
    """Per plant kind: detected by the statement check, of planted."""
    combined: dict[str, tuple[int, int]]
    """Per plant kind: detected by the combined check, of planted."""
    facts: dict[str, tuple[int, int]]
    """Per plant kind: detected by the facts alone, of planted."""

    @property
    def false_positive_rate(self) -> float:
        return self.flagged / self.statements if self.statements else 0.0

    @property
    def detection(self) -> float:
        rates = [d / n for kind, (d, n) in self.detected.items() if n and kind in STATEMENT_PLANTS]
        return sum(rates) / len(rates) if rates else 0.0


def measure_statements(rows: Sequence[dict[str, str]], options: FactsOptions, plants: dict[str, list[Plant]],
                       *, combined: bool = True) -> StatementFigures:
    empty = unsupported_facts("", "", options)
    statements = flagged = claimed = 0
    detected = {kind: [0, 0] for kind in (*STATEMENT_PLANTS, *PLANTS)}
    both = {kind: [0, 0] for kind in detected}
    alone = {kind: [0, 0] for kind in detected}
    for row in rows:
        facts = unsupported_facts(row["dialogue"], row["note"], options) if combined else empty
        found, count = claims(row["dialogue"], row["note"], options, facts)
        statements += found.total
        flagged += len(found.flagged)
        claimed += count
        for plant in plants[row["id"]]:
            planted_facts = unsupported_facts(row["dialogue"], plant.text, options) if combined else empty
            planted, _count = claims(row["dialogue"], plant.text, options, planted_facts)
            hit = any(f["start"] < plant.end and plant.start < f["end"] for f in planted.unsupported)
            detected[plant.kind][0] += hit
            detected[plant.kind][1] += 1
            hit_fact = any(f["start"] < plant.end and plant.start < f["end"] for f in planted_facts.unsupported)
            both[plant.kind][0] += hit or hit_fact
            both[plant.kind][1] += 1
            alone[plant.kind][0] += hit_fact
            alone[plant.kind][1] += 1
    return StatementFigures(len(rows), statements, flagged, claimed, {k: (v[0], v[1]) for k, v in detected.items()},
                            {k: (v[0], v[1]) for k, v in both.items()}, {k: (v[0], v[1]) for k, v in alone.items()})


GRID_THRESHOLD = (0.3, 0.4, 0.5, 0.6)
GRID_WINDOW = (0, 1, 2)
GRID_ELSEWHERE = (0.0, 0.25, 0.5)
GRID_MISSING = (1.0, 1.5, 2.0, 2.5)
GRID_CONTENT = (None, 0.7, 0.8, 0.9)


def fit_statements(rows: Sequence[dict[str, str]], plants: dict[str, list[Plant]],
                   base: FactsOptions) -> tuple[FactsOptions, list[str]]:
    """Two stages: the statement options with no word flags, then the word flags' weight with those."""
    lines = ["| threshold | window | elsewhere | missing | content weight | FP rate / statement | detection | "
             "objective |", "|---:|---:|---:|---:|---|---:|---:|---:|"]
    only = {row["id"]: [p for p in plants[row["id"]] if p.kind in STATEMENT_PLANTS] for row in rows}

    def best_of(candidates: Sequence[FactsOptions]) -> FactsOptions:
        best: tuple[float, FactsOptions] | None = None
        for options in candidates:
            figures = measure_statements(rows, options, only, combined=False)
            objective = figures.detection - figures.false_positive_rate
            lines.append(f"| {options.statement_threshold:g} | {options.statement_window} | "
                         f"{options.statement_elsewhere:g} | {options.statement_missing:g} | "
                         f"{options.content_weight} | {figures.false_positive_rate:.3f} | "
                         f"{figures.detection:.3f} | {objective:.3f} |")
            if best is None or objective > best[0] + 1e-9:
                best = (objective, options)
        assert best is not None
        return best[1]

    stage = best_of([replace(base, statement_threshold=t, statement_window=w, statement_elsewhere=e,
                             statement_missing=m, content_weight=None)
                     for t, w, e, m in itertools.product(GRID_THRESHOLD, GRID_WINDOW, GRID_ELSEWHERE, GRID_MISSING)])
    return best_of([replace(stage, content_weight=c) for c in GRID_CONTENT]), lines


def report_statements(name: str, figures: StatementFigures) -> None:
    print(f"\n{name}: {figures.notes} faithful notes, {figures.statements} statements; flagged by the statement "
          f"check {figures.flagged} (false-positive rate {figures.false_positive_rate:.3f} per statement, "
          f"{figures.flagged / figures.notes:.2f} per note); by the combined check {figures.claimed} "
          f"({figures.claimed / figures.statements if figures.statements else 0:.3f} per statement)")
    print("| planted | statement check | facts alone | combined (statement or fact) | of |\n|---|---:|---:|---:|---:|")
    for kind, (hit, total) in figures.detected.items():
        if total:
            print(f"| {kind} | {hit / total:.3f} | {figures.facts[kind][0] / total:.3f} | "
                  f"{figures.combined[kind][0] / total:.3f} | {total} |")
    print(f"| mean over moved, social, changed | {figures.detection:.3f} | | | |")


def _section_starts(text: str) -> list[int]:
    """Where the sections of a note start (its header lines: "HISTORY OF PRESENT ILLNESS", "PLAN")."""
    from clinsum.evaluators.facts.grounding import _HEADER

    starts = [0]
    position = 0
    for line in text.splitlines(keepends=True):
        stripped = line.strip()
        if stripped and _HEADER.match(stripped) and len(stripped.split()) <= 6 and re.search(r"[A-Z]{3}", stripped):
            starts.append(position)
        position += len(line)
    return [*sorted(set(starts)), len(text)]


@dataclass
class Scored:
    """One note (faithful, or with one plant) scored statement by statement."""

    kind: str
    plant: Plant | None
    sections: list[int]
    statements: list[tuple[tuple[int, int], dict[str, float], bool]]
    """Each statement's span, its ``confidence`` features, and whether the combined check flags it."""


def score_statements(rows: Sequence[dict[str, str]], options: FactsOptions,
                     plants: dict[str, list[Plant]]) -> list[Scored]:
    from clinsum.evaluators.facts.confidence import features

    out = []
    for row in rows:
        for plant in [None, *plants[row["id"]]]:
            text = row["note"] if plant is None else plant.text
            found = unsupported_facts(row["dialogue"], text, options)
            statements, _count = claims(row["dialogue"], text, options, found)
            flagged = set(statements.flagged)
            scored = [(span, features(span, statements.unsupported, found.unsupported, found.supported),
                       span in flagged or any(span[0] <= f["start"] < span[1] for f in found.unsupported))
                      for span in statements.spans]
            out.append(Scored("faithful" if plant is None else plant.kind, plant, _section_starts(text), scored))
    return out


def fit_confidence(scored: Sequence[Scored]) -> dict[str, float]:
    """Logistic regression of planted (1) against faithful (0) flagged statements (C = 1)."""
    from sklearn.linear_model import LogisticRegression

    from clinsum.evaluators.facts.confidence import FEATURES, flagged

    x, y = [], []
    for note in scored:
        for (start, end), values, _claimed in note.statements:
            if not flagged(values):
                continue
            if note.plant is None:
                label = 0
            elif start < note.plant.end and note.plant.start < end:
                label = 1
            else:
                continue  # the rest of a planted note is the faithful note again
            x.append([values[name] for name in FEATURES])
            y.append(label)
    model = LogisticRegression(C=1.0, max_iter=1000).fit(x, y)
    print(f"\nconfidence fit: {len(y)} flagged statements, {sum(y)} planted")
    return {"intercept": round(float(model.intercept_[0]), 3),
            **{name: round(float(c), 3) for name, c in zip(FEATURES, model.coef_[0], strict=True)}}


def section_auc(scored: Sequence[Scored], scorer: Callable[[list[tuple[dict[str, float], bool]]], float]
                ) -> dict[str, float]:
    """Per plant kind, the AUC of a section score: planted sections against every faithful section.

    A note's sections (history, examination, plan...) are the size of the section summaries
    human raters score (MTS-Dialog): a planted section is the one holding the plant.
    """
    from sklearn.metrics import roc_auc_score

    faithful: list[float] = []
    planted: dict[str, list[float]] = {}
    for note in scored:
        for start, end in itertools.pairwise(note.sections):
            if note.plant is not None and not start <= note.plant.start < end:
                continue
            inside = [(values, claimed) for (s, _e), values, claimed in note.statements if start <= s < end]
            if not inside:
                continue
            (faithful if note.plant is None else planted.setdefault(note.kind, [])).append(scorer(inside))
    aucs = {kind: float(roc_auc_score([0] * len(faithful) + [1] * len(values), faithful + values))
            for kind, values in planted.items()}
    aucs["mean"] = sum(aucs.values()) / len(aucs)
    return aucs


def report_confidence(name: str, scored: Sequence[Scored], coefficients: dict[str, float]) -> None:
    from clinsum.evaluators.facts.confidence import likelihood, summary_likelihood

    scorers: dict[str, Callable[[list[tuple[dict[str, float], bool]]], float]] = {
        "unsupported_claim_rate": lambda s: sum(c for _v, c in s) / len(s),
        "unsupported_statement_rate": lambda s: sum(1 for v, _c in s if v["statement"] or v["content"]) / len(s),
        "mean statement likelihood (a rate)": lambda s: sum(likelihood(v, coefficients) for v, _c in s) / len(s),
        "unsupported_likelihood": lambda s: summary_likelihood([likelihood(v, coefficients) for v, _c in s]),
    }
    table = {label: section_auc(scored, scorer) for label, scorer in scorers.items()}
    kinds = [k for k in next(iter(table.values())) if k != "mean"]
    print(f"\n{name}: AUC of planted sections against faithful sections, per plant kind")
    print("| score | " + " | ".join(kinds) + " | mean |\n|---|" + "---:|" * (len(kinds) + 1))
    for label, aucs in table.items():
        print(f"| {label} | " + " | ".join(f"{aucs[k]:.3f}" for k in kinds) + f" | {aucs['mean']:.3f} |")


NOTE_WORDS = Path(__file__).resolve().parents[1] / "clinsum" / "evaluators" / "facts" / "note_words.tsv.gz"


def write_note_words(rows: Sequence[dict[str, str]], path: Path = NOTE_WORDS) -> None:
    """The statement check's word weights: in how many ACI-Bench train notes each content word occurs.

    Only words of at least two notes are kept (a word of one note would weigh its own note's words
    down); an unlisted word has the highest weight. Deterministic: sorted, gzip without a timestamp.
    """
    from clinsum.evaluators.facts.grounding import words_of

    counts: dict[str, int] = {}
    for row in rows:
        for key in {w.keys[0] for w in words_of(row["note"]) if not w.keys[0].startswith("n:")}:
            counts[key] = counts.get(key, 0) + 1
    lines = [f"#note_words documents={len(rows)} source=ACI-Bench train clinician notes (CC BY 4.0), "
             "document frequency of each content word; made by benchmarks/facts_fit.py --write-note-words\n"]
    lines += [f"{word}\t{df}\n" for word, df in sorted(counts.items()) if df >= 2]
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", filename="", mtime=0) as handle:
        handle.write("".join(lines).encode("utf-8"))
    print(f"wrote {path} ({len(lines) - 1} words from {len(rows)} notes)")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--no-fit", action="store_true", help="only report the packaged defaults")
    parser.add_argument("--statements-only", action="store_true",
                        help="fit only the statement check (the facts options stay the packaged ones)")
    parser.add_argument("--fit-confidence", action="store_true",
                        help="fit the flags' confidence weights on train with the packaged options, report both splits")
    parser.add_argument("--write-note-words", action="store_true",
                        help="rebuild the statement check's word weights from the train notes, then stop")
    args = parser.parse_args(argv)
    if args.write_note_words:
        write_note_words(load("train"))
        return
    train, valid = load("train"), load("valid")
    plants = {row["id"]: plants_for(row) for row in [*train, *valid]}
    if args.fit_confidence:
        from clinsum.evaluators.facts.confidence import COEFFICIENTS

        for rows in (train, valid):
            for row in rows:
                plants[row["id"]] = plants[row["id"]] + statement_plants_for(row, rows)
        scored = {split: score_statements(rows, FactsOptions(), plants)
                  for split, rows in (("train", train), ("valid", valid))}
        fitted = fit_confidence(scored["train"])
        print(f"fitted on train: {fitted}\npackaged:        {dict(COEFFICIENTS)}")
        for split in ("train", "valid"):
            report_confidence(f"{split}, packaged coefficients", scored[split], dict(COEFFICIENTS))
        return
    chosen = FactsOptions()
    if not args.no_fit and not args.statements_only:
        chosen, lines = fit(train, plants)
        print("Fit on ACI-Bench train (objective = mean detection − false-positive rate per fact):\n")
        print("\n".join(lines))
        print(f"\nchosen: {chosen}  (packaged defaults: {FactsOptions()})")
    report("train", measure(train, chosen, plants))
    report("valid (held out from the fit)", measure(valid, chosen, plants))
    for rows in (train, valid):
        for row in rows:
            plants[row["id"]] = plants[row["id"]] + statement_plants_for(row, rows)
    if not args.no_fit:
        chosen, lines = fit_statements(train, plants, chosen)
        print("\nStatement check, fit on ACI-Bench train (objective = mean detection of moved, social, changed "
              "− false-positive rate per statement):\n")
        print("\n".join(lines))
        print(f"\nchosen: {chosen}")
    report_statements("statements, train", measure_statements(train, chosen, plants))
    report_statements("statements, valid (held out from the fit)", measure_statements(valid, chosen, plants))
    started = time.perf_counter()
    for row in valid:
        claims(row["dialogue"], row["note"], chosen, unsupported_facts(row["dialogue"], row["note"], chosen))
    print(f"\ncost: {(time.perf_counter() - started) / len(valid) * 1000:.1f} ms per note (facts and statements, "
          "sources already prepared)")


if __name__ == "__main__":
    main()
