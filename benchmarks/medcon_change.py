"""Why the MEDCON rank agreement of benchmarks/aci_medcon.py moved between two versions of the code.

    git worktree add /tmp/medcon-old da6a0ef           # the version to compare with
    .venv/bin/python benchmarks/medcon_change.py dump /tmp/medcon-old.json --code /tmp/medcon-old
    .venv/bin/python benchmarks/medcon_change.py dump /tmp/medcon-new.json
    .venv/bin/python benchmarks/medcon_change.py compare /tmp/medcon-old.json /tmp/medcon-new.json
    .venv/bin/python benchmarks/medcon_change.py dump /tmp/no-limit.json --no-scope-limit   # one rule off
    .venv/bin/python benchmarks/medcon_change.py dump /tmp/old-rules.json \
        --rules /tmp/medcon-old/clinsum/concepts/context_rules.tsv

``dump`` scores ACI-Bench test1 (fixtures/aci_test1: 20 systems x 40 encounters) as aci_medcon.py
does, with the clinsum found in ``--code`` (a checkout of any commit; default: this one), and writes
every note's ``concept_f1_ref`` and the concepts of every reference and prediction with their
statuses. It uses only what every version of coverage has had (``concepts_of``, ``reference_f1``;
``statements`` where it exists), so it runs old code unchanged. ``--no-scope-limit`` (no word limit
on scopes in clauses of more than 40 words) and ``--rules FILE`` (another ConText rule table) switch
one change off in the current code, to attribute a move to it; they patch private names of
``clinsum.concepts.assertion`` and are for this diagnosis only.

``compare`` prints, from two dumps: each system's F1 and rank under both against MEDCON's rank,
the Spearman within the transcript baselines and within the note-writing systems, the Spearman with
one group scored as before, a paired bootstrap over the 40 notes and one over the 20 systems of the
difference, and the mentions whose status changed (``--examples N`` shows N of them in context).
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import os
import random
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "aci_test1"
TRANSCRIPT_BASELINES = ("transcript", "longest spearker turn", "longest doctor turn", "12 speaker turns",
                        "12 doctor turns")
"""ACI-Bench's baselines that copy the dialogue (the table's own spelling of "speaker")."""


def _predictions(file_name: str) -> dict[str, str]:
    # aci_medcon.load_predictions, repeated: importing aci_medcon needs the current coverage module
    path = FIXTURES / "predictions" / (file_name + ".gz")
    opener: Any = gzip.open if path.exists() else open
    with opener(path if path.exists() else FIXTURES / "predictions" / file_name, "rt", encoding="utf-8") as handle:
        return {row["id"]: row["prediction"] for row in map(json.loads, handle)}


def _systems() -> list[tuple[str, str]]:
    with (FIXTURES / "systems.csv").open(encoding="utf-8") as handle:
        return [(row["prediction_file"], row["table_model"]) for row in csv.DictReader(handle)]


def dump(path: Path, no_scope_limit: bool = False, rules: Path | None = None) -> None:
    from clinsum.concepts import assertion
    from clinsum.concepts.extract import extract
    from clinsum.evaluators import coverage

    if no_scope_limit:
        assertion._LONG_CLAUSE_WORDS = sys.maxsize
    if rules is not None:
        from clinsum.concepts.context_rules import PhraseMatcher, load_rules

        table = load_rules(rules.read_text("utf-8"))
        assertion._TRIGGERS = PhraseMatcher([r for r in table if r.direction != "terminate"])
        assertion._TERMINATIONS = PhraseMatcher([r for r in table if r.direction == "terminate"])

    def concepts(text: str, stated: bool) -> dict[str, Any]:
        mentions = extract(text) if text.strip() else []
        if stated and hasattr(coverage, "statements"):  # coverage logic 4 drops a dialogue's open questions
            mentions = coverage.statements(text, mentions)
        return coverage.concepts_of(text, mentions) if text.strip() else {}

    def plain(found: Mapping[str, Any]) -> dict[str, Any]:
        return {key: {"name": c.name, "group": c.group, "assertions": sorted(c.assertions),
                      "mentions": [[m.start, m.end, m.assertion] for m in c.mentions]} for key, c in found.items()}

    with (FIXTURES / "references.jsonl").open(encoding="utf-8") as handle:
        references = {row["id"]: concepts(row["reference"], False) for row in map(json.loads, handle)}
    options = coverage.CoverageOptions()
    out: dict[str, Any] = {"code": str(Path(coverage.__file__).resolve().parents[2]),
                           "references": {key: plain(c) for key, c in references.items()}, "systems": {}}
    for file_name, model in _systems():
        predictions = _predictions(file_name)
        notes = {}
        for key, reference in references.items():
            summary = concepts(predictions.get(key, ""), True)
            notes[key] = {"f1": coverage.reference_f1(reference, summary, options)[0], "concepts": plain(summary)}
        out["systems"][model] = notes
    path.write_text(json.dumps(out), "utf-8")
    print(f"{path}: clinsum from {out['code']}")


def _medcon() -> dict[str, float]:
    with (FIXTURES / "published_table.csv").open(encoding="utf-8") as handle:
        return {row["model"]: float(row["MEDCON(Fact)"]) for row in csv.DictReader(handle) if row["section"] == "ALL"}


def _means(dumped: Mapping[str, Any], notes: Sequence[str] | None = None) -> dict[str, float]:
    out = {}
    for model, scored in dumped["systems"].items():
        keys = notes if notes is not None else list(scored)
        out[model] = sum(scored[key]["f1"] for key in keys) / len(keys)
    return out


def _rho(scores: Mapping[str, float], medcon: Mapping[str, float], models: Sequence[str]) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr([scores[m] for m in models], [medcon[m] for m in models])[0])


def _quantiles(values: list[float]) -> str:
    values = sorted(values)
    at = lambda q: values[min(len(values) - 1, int(q * len(values)))]  # noqa: E731
    below = sum(v < 0 for v in values) / len(values)
    return f"median {at(0.5):+.3f}, 95% [{at(0.025):+.3f}, {at(0.975):+.3f}], share below 0: {below:.2f}"


def compare(old: Mapping[str, Any], new: Mapping[str, Any], examples: int, resamples: int) -> None:
    from scipy.stats import rankdata

    medcon = {m: v for m, v in _medcon().items() if m in new["systems"]}
    models = sorted(medcon, key=lambda m: -medcon[m])
    before, after = _means(old), _means(new)
    ranks = {name: dict(zip(models, rankdata([-s[m] for m in models]), strict=True))
             for name, s in (("medcon", medcon), ("old", before), ("new", after))}
    print("| system | MEDCON (rank) | old F1 (rank) | new F1 (rank) | d² old | d² new |")
    print("|---|---:|---:|---:|---:|---:|")
    d2 = {"old": 0.0, "new": 0.0}
    for m in models:
        cells = []
        for name in ("old", "new"):
            d2[name] += (ranks["medcon"][m] - ranks[name][m]) ** 2
            cells.append((ranks["medcon"][m] - ranks[name][m]) ** 2)
        print(f"| {m} | {medcon[m]:.2f} ({ranks['medcon'][m]:.0f}) | {100 * before[m]:.2f} ({ranks['old'][m]:.0f}) "
              f"| {100 * after[m]:.2f} ({ranks['new'][m]:.0f}) | {cells[0]:.0f} | {cells[1]:.0f} |")
    print(f"\nSpearman with MEDCON, 20 systems: old {_rho(before, medcon, models):.3f}, new "
          f"{_rho(after, medcon, models):.3f} (sum of squared rank differences {d2['old']:.0f} -> {d2['new']:.0f}; "
          f"one unit of it is {6 / (len(models) * (len(models) ** 2 - 1)):.5f} of rho)")
    transcripts = [m for m in models if m in TRANSCRIPT_BASELINES]
    writers = [m for m in models if m not in TRANSCRIPT_BASELINES]
    for label, group in (("transcript baselines", transcripts), ("note-writing systems", writers)):
        print(f"  within the {len(group)} {label}: old {_rho(before, medcon, group):.3f}, "
              f"new {_rho(after, medcon, group):.3f}")
        hybrid = {m: before[m] if m in group else after[m] for m in models}
        print(f"  new, with the {label} scored as before: {_rho(hybrid, medcon, models):.3f}")

    rng = random.Random(0)
    notes = list(new["references"])
    by_notes: list[float] = []
    for _ in range(resamples):
        sample = [rng.choice(notes) for _ in notes]
        by_notes.append(_rho(_means(new, sample), medcon, models) - _rho(_means(old, sample), medcon, models))
    print(f"\nnew - old, paired bootstrap over the {len(notes)} notes ({resamples}): {_quantiles(by_notes)}")
    by_systems: list[float] = []
    while len(by_systems) < resamples:
        sample = [rng.choice(models) for _ in models]
        if len(set(sample)) >= 4:
            by_systems.append(_rho(after, medcon, sample) - _rho(before, medcon, sample))
    print(f"new - old, bootstrap over the {len(models)} systems ({resamples}): {_quantiles(by_systems)}")
    _status_changes(old, new, models, examples)


def _status_changes(old: Mapping[str, Any], new: Mapping[str, Any], models: Sequence[str], examples: int) -> None:
    """Mentions found by both versions at the same span whose status differs, per system."""
    changes: list[tuple[str, str, int, int, str, str, str]] = []
    print("\n| system | mentions whose status changed |\n|---|---:|")
    for model in models:
        count = 0
        for key, scored in new["systems"][model].items():
            before = {(s, e): a for c in old["systems"][model][key]["concepts"].values() for s, e, a in c["mentions"]}
            for concept in scored["concepts"].values():
                for start, end, status in concept["mentions"]:
                    if (start, end) in before and before[start, end] != status:
                        count += 1
                        changes.append((model, key, start, end, before[start, end], status, concept["name"]))
        print(f"| {model} | {count} |")
    if examples:
        texts = {model: _predictions(file_name) for file_name, model in _systems()}
        for model, key, start, end, was, now, _name in random.Random(1).sample(changes, min(examples, len(changes))):
            text = texts[model][key]
            context = (text[max(0, start - 160):start] + "[[" + text[start:end] + "]]" + text[end:end + 40])
            print(f"- {model} {key} {was} -> {now}: ...{' / '.join(context.splitlines())}")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    dumping = commands.add_parser("dump", help="score test1 with one version of clinsum and write the details")
    dumping.add_argument("path", type=Path)
    dumping.add_argument("--code", type=Path, help="a checkout whose clinsum to use (default: this one)")
    dumping.add_argument("--no-scope-limit", action="store_true",
                         help="no word limit on scopes in clauses of more than 40 words")
    dumping.add_argument("--rules", type=Path, help="use this ConText rule table instead of the packaged one")
    comparing = commands.add_parser("compare", help="explain the change between two dumps")
    comparing.add_argument("old", type=Path)
    comparing.add_argument("new", type=Path)
    comparing.add_argument("--examples", type=int, default=0, help="show this many status changes in context")
    comparing.add_argument("--resamples", type=int, default=1000)
    args = parser.parse_args(argv)
    if args.command == "dump":
        if args.code is not None and os.environ.get("CLINSUM_MEDCON_CODE") != str(args.code.resolve()):
            # a fresh interpreter whose import path starts with the other checkout
            environment = {**os.environ, "PYTHONPATH": str(args.code.resolve()),
                           "CLINSUM_MEDCON_CODE": str(args.code.resolve())}
            raise SystemExit(subprocess.run([sys.executable, __file__, *sys.argv[1:]], env=environment).returncode)
        dump(args.path, args.no_scope_limit, args.rules)
    else:
        old, new = (json.loads(path.read_text("utf-8")) for path in (args.old, args.new))
        compare(old, new, args.examples, args.resamples)


if __name__ == "__main__":
    main()
