"""Validation 6: do planted status changes raise ``critical_flips``?

    .venv/bin/python benchmarks/planted_flips.py [--limit N] [--by-rule] [--misses N]

ACI-Bench train and valid encounters (fixtures/aci_trainvalid.jsonl.gz, 87
encounters): the clinician's visit note is scored by the coverage evaluator as a
summary of its dialogue (no reference, as a production summary would be
scored). Then every negation in the note is removed by the substitutions in
``PLANTS`` ("denies" -> "reports", "negative for" -> "positive for", "without" ->
"with", "no X" -> "X"...), and the changed note is scored again. Reported:

- caught: the share of changed notes whose ``critical_flips`` rose above the
  untouched note's;
- false flips: the mean ``critical_flips`` of the untouched notes, and the share
  of them with at least one (``has_critical_flip``).

``--issue-plants`` plants only the issue's substitutions. ``--by-rule`` also plants
each substitution alone (one rule, every occurrence) and reports its catch rate
over the notes it changes. tests/test_planted_flips.py runs
the same measurement on a fixed subset.
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "aci_trainvalid.jsonl.gz"


@dataclass(frozen=True)
class Plant:
    """One way of removing a negation: a pattern and what replaces it."""

    name: str
    pattern: re.Pattern[str]
    replacement: str | Callable[[re.Match[str]], str]


def _keep_case(word: str) -> Callable[[re.Match[str]], str]:
    def replace(match: re.Match[str]) -> str:
        found = match.group(0)
        return word.capitalize() if found[:1].isupper() else word
    return replace


def _drop_and_capitalise(match: re.Match[str]) -> str:
    """"No fever" -> "Fever", "has no fever" -> "has fever"."""
    following = match.group("next")
    return following.capitalize() if match.group(0)[:1].isupper() else following


PLANTS: tuple[Plant, ...] = (
    Plant("denies -> reports", re.compile(r"\bdenies\b", re.IGNORECASE), _keep_case("reports")),
    Plant("denied -> reported", re.compile(r"\bdenied\b", re.IGNORECASE), _keep_case("reported")),
    Plant("negative for -> positive for", re.compile(r"\bnegative for\b", re.IGNORECASE),
          _keep_case("positive for")),
    Plant("without -> with", re.compile(r"\bwithout\b", re.IGNORECASE), _keep_case("with")),
    Plant("no X -> X", re.compile(r"\bno\s+(?P<next>[a-z])", re.IGNORECASE), _drop_and_capitalise),
    Plant("not -> (removed)", re.compile(r"\b(?:does|do|did|is|was|has|have)\s+not\s+(?P<next>[a-z])",
                                         re.IGNORECASE),
          lambda m: m.group(0)[: m.group(0).lower().index(" not")] + " " + m.group("next")),
    Plant("never -> (removed)", re.compile(r"\bnever\s+(?P<next>[a-z])", re.IGNORECASE), _drop_and_capitalise),
    Plant("absence of -> presence of", re.compile(r"\babsence of\b", re.IGNORECASE), _keep_case("presence of")),
    Plant("free of -> with", re.compile(r"\bfree of\b", re.IGNORECASE), _keep_case("with")),
    Plant("non-tender -> tender", re.compile(r"\bnon-?tender\b", re.IGNORECASE), _keep_case("tender")),
)


ISSUE_PLANTS = PLANTS[:4]
"""The substitutions named in the issue ("denies", "negative for", "without"), with "denied" -> "reported"."""


def plant(text: str, plants: Sequence[Plant] = PLANTS) -> str:
    """The text with every negation the plants know removed."""
    for rule in plants:
        text = rule.pattern.sub(rule.replacement, text)
    return text


@dataclass(frozen=True)
class Encounter:
    id: str
    dialogue: str
    note: str


def load_encounters(path: Path = FIXTURE) -> list[Encounter]:
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle if line.strip()]
    return [Encounter(r["id"], r["dialogue"], r["note"]) for r in rows]


def critical_flips(dialogue: str, note: str) -> list[dict[str, object]]:
    """The critical flips of ``note`` scored as a summary of ``dialogue`` (no reference)."""
    from clinsum.evaluators.coverage import CoverageEvaluator
    from clinsum.records import Note, Summary

    scores = CoverageEvaluator().scores(Note(id="n", text=dialogue), Summary(note_id="n", system="s", text=note))
    found = next(s for s in scores if s.metric == "critical_flips")
    return list(found.detail["flips"])


@dataclass(frozen=True)
class Outcome:
    changed: int
    caught: int
    untouched_flips: int
    untouched_with_flip: int
    notes: int
    misses: list[str]
    unseen: int = 0
    """Missed notes whose planting changed only concepts the dialogue never mentions."""

    @property
    def catch_rate(self) -> float:
        return self.caught / self.changed if self.changed else 0.0

    @property
    def false_flips_per_note(self) -> float:
        return self.untouched_flips / self.notes if self.notes else 0.0


def measure(encounters: Sequence[Encounter], plants: Sequence[Plant] = PLANTS) -> Outcome:
    changed = caught = untouched_total = untouched_any = unseen = 0
    misses = []
    for encounter in encounters:
        before = len(critical_flips(encounter.dialogue, encounter.note))
        untouched_total += before
        untouched_any += before > 0
        planted = plant(encounter.note, plants)
        if planted == encounter.note:
            continue
        changed += 1
        if len(critical_flips(encounter.dialogue, planted)) > before:
            caught += 1
        else:
            misses.append(encounter.id)
            unseen += not _changes_a_dialogue_concept(encounter, planted)
    return Outcome(changed, caught, untouched_total, untouched_any, len(encounters), misses, unseen)


def _changes_a_dialogue_concept(encounter: Encounter, planted: str) -> bool:
    """Whether planting changed the statuses of a concept that the dialogue mentions at all (a concept
    the dialogue never mentions is unsupported, not flipped: no comparison with the source can flip it)."""
    from clinsum.evaluators.coverage import _extract_cached, concepts_of

    before = concepts_of(encounter.note, _extract_cached(encounter.note))
    after = concepts_of(planted, _extract_cached(planted))
    source = concepts_of(encounter.dialogue, _extract_cached(encounter.dialogue))
    return any(key in source and key in before and before[key].assertions != concept.assertions
               for key, concept in after.items())


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=0, help="only the first N encounters")
    parser.add_argument("--by-rule", action="store_true", help="also plant each substitution alone")
    parser.add_argument("--misses", type=int, default=0, help="show the diff of up to N missed notes")
    parser.add_argument("--issue-plants", action="store_true",
                        help="plant only the issue's substitutions (denies, negative for, without)")
    args = parser.parse_args(argv)
    plants = ISSUE_PLANTS if args.issue_plants else PLANTS
    encounters = load_encounters()
    if args.limit:
        encounters = encounters[: args.limit]
    started = time.perf_counter()
    outcome = measure(encounters, plants)
    print(f"plants: {', '.join(p.name for p in plants)}")
    print(f"{outcome.notes} encounters, {outcome.changed} notes changed by planting "
          f"({time.perf_counter() - started:.0f} s)")
    print(f"caught (critical_flips rose): {outcome.caught}/{outcome.changed} = {outcome.catch_rate:.3f}; "
          f"{outcome.unseen} of the {len(outcome.misses)} missed changed only concepts the dialogue never mentions")
    print(f"untouched notes: {outcome.untouched_flips} critical flips = {outcome.false_flips_per_note:.3f} per note; "
          f"has_critical_flip {outcome.untouched_with_flip}/{outcome.notes} = "
          f"{outcome.untouched_with_flip / outcome.notes:.3f}")
    if args.by_rule:
        for rule in PLANTS:
            alone = measure(encounters, [rule])
            print(f"  {rule.name:32s} caught {alone.caught}/{alone.changed} = {alone.catch_rate:.3f}")
    by_id = {e.id: e for e in encounters}
    for miss in outcome.misses[: args.misses]:
        encounter = by_id[miss]
        planted = plant(encounter.note, plants)
        print(f"\n## missed {miss}")
        for old, new in zip(encounter.note.splitlines(), planted.splitlines(), strict=True):
            if old != new:
                print(f"  - {old}\n  + {new}")


if __name__ == "__main__":
    main()
