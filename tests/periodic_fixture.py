"""Six weeks of production, stored with the real CLI: the periodic report's tests and its README figures.

The 52 ACI-Bench visit notes of ``fixtures/`` (``simulate.fixture_sources``), summarized by
``extractive:centroid`` and scored with ``clinsum score`` (coverage, length):

- weeks 2025-W10..W12 (from Monday 2025-03-03): ``model_version`` v1, faithful summaries;
- weeks W13..W15 (from Monday 2025-03-24 at 09:00): ``model_version`` v2, and every summary
  with a negated finding has it flipped (a planted degradation: critical flips rise);
- one run outside the period (February and late April, ``model_version`` v0).

Physician reviews are imported with ``clinsum feedback import``: four summaries a week, by
two reviewers; a flipped summary is rejected with a negation error, a faithful one accepted,
except one faithful summary that ``dr-b`` rejects (a disagreement) so the agreement is not perfect.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from typer.testing import CliRunner

from clinsum.cli import app
from clinsum.monitoring import simulate as sim

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
START = datetime(2025, 3, 3, tzinfo=UTC)  # Monday of ISO week 2025-W10
CHANGE = datetime(2025, 3, 24, 9, tzinfo=UTC)  # Monday of 2025-W13: v2 goes live, and the flips begin
SINCE, UNTIL = "2025-03-03", "2025-04-14"
PER_WEEK = 17


@dataclass(frozen=True)
class Production:
    db: Path
    runs: dict[str, str]
    """Run name -> id."""
    flipped: set[str]
    """Note ids whose v2 summary had a negation flipped."""
    outside: int
    """Summaries made outside the period."""


def invoke(*args: object):
    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)


def build(folder: Path) -> Production:
    sources = [s for s in sim.fixture_sources(FIXTURES) if s.fields["note_type"] == "visit_note"][: 3 * PER_WEEK]
    notes = folder / "notes.jsonl"
    notes.write_text("".join(json.dumps({"id": s.note.id, "text": s.note.text, "meta": dict(s.note.meta)}) + "\n"
                             for s in sources))
    flipped: set[str] = set()
    files: dict[str, list[str]] = {"v1": [], "v2": [], "outside": []}
    reviews: list[dict[str, object]] = []
    for i, source in enumerate(sources):
        week, slot = divmod(i, PER_WEEK)
        for version, start in (("v1", START), ("v2", CHANGE)):
            made = start + timedelta(days=7 * week + slot % 5, hours=slot % 7)
            text = source.summary
            if version == "v2":
                changed = sim.flip_negated_finding(text)
                if changed is not None:
                    text = changed
                    flipped.add(source.note.id)
            files[version].append(json.dumps({
                "note_id": source.note.id, "system": "production", "text": text,
                "created_at": made.isoformat().replace("+00:00", "Z"),
                "metadata": {"model_version": version, "prompt_version": "p3", "site": "ab"[i % 2]}}))
            if slot < 4:
                bad = version == "v2" and source.note.id in flipped
                for reviewer in ("dr-a", "dr-b"):
                    reject = bad or (reviewer == "dr-b" and slot == 0 and version == "v1")
                    reviews.append({"run_id": version, "note_id": source.note.id, "system": "production",
                                    "reviewer": reviewer, "verdict": "reject" if reject else "accept",
                                    "errors": ["negation"] if bad else [], "accurate": 2 if reject else 4})
        if i < 8:  # outside the period: before it, and at or after its end
            made = (START - timedelta(days=10)) if i % 2 else datetime(2025, 4, 14, tzinfo=UTC) + timedelta(hours=i)
            files["outside"].append(json.dumps({
                "note_id": source.note.id, "system": "production", "text": source.summary,
                "created_at": made.isoformat(), "metadata": {"model_version": "v0"}}))
    db = folder / "production.db"
    runs: dict[str, str] = {}
    for name, lines in files.items():
        path = folder / f"{name}.jsonl"
        path.write_text("\n".join(lines) + "\n")
        result = invoke("score", path, "--notes", notes, "-e", "coverage", "-e", "length", "--db", db,
                        "--name", name, "--tag", "env=prod")
        assert result.exit_code == 0, result.output
        [listed] = json.loads(invoke("runs", "--db", db, "--name", name, "--format", "json").stdout)
        runs[name] = listed["id"]
    for review in reviews:
        review["run_id"] = runs[str(review["run_id"])]
    feedback = folder / "reviews.jsonl"
    feedback.write_text("".join(json.dumps(r) + "\n" for r in reviews))
    imported = invoke("feedback", "import", feedback, "--db", db)
    assert imported.exit_code == 0, imported.output
    return Production(db, runs, flipped, len(files["outside"]))


_BUILT: dict[str, Production] = {}


def production() -> Production:
    """The six weeks, built once per test session in a temporary folder (in a thread of its own: the
    browser tests' Playwright keeps an event loop in the test's thread, and `clinsum score` runs one)."""
    if "store" not in _BUILT:
        import atexit
        import shutil
        import tempfile

        from report_fixture import in_thread

        folder = tempfile.mkdtemp(prefix="clinsum-periodic-")
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        _BUILT["store"] = in_thread(build, Path(folder))
    return _BUILT["store"]
