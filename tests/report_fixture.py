"""The bundled fixtures run that the report tests, the README screenshot and the benchmark render.

Two stored runs over the 12 ACI-Bench dialogues of ``fixtures/``:

- a ``run`` of the offline baselines ``extractive:lead`` and ``extractive:centroid``
  (overlap, length, coverage), then rated by a scripted judge through the real
  ``JudgeEvaluator`` (one critical fabrication whose quotes are in the texts);
- a ``score`` run of hand-written "production" summaries of three notes: one turns
  a denied symptom into a present one (a critical flip) and names a drug the
  dialogue never mentions (unsupported); one failed.

Physician ratings of two summaries are imported into the store.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from judge_fakes import ScriptedJudge, error, verdict

from clinsum import evaluation
from clinsum.config import RunConfig
from clinsum.dispatch import Dispatcher
from clinsum.evaluators.judge.judge import JudgeEvaluator
from clinsum.inputs import load_notes
from clinsum.providers.base import Request
from clinsum.records import Rating, Summary
from clinsum.store import Store

T = TypeVar("T")
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
DIALOGUES = FIXTURES / "aci_dialogues.jsonl"
FLIPPED_NOTE = "acibench-valid-D2N078"
PRODUCTION = [
    Summary(note_id=FLIPPED_NOTE, system="production",
            text="The patient has shortness of breath. Started on metformin 500 mg twice daily. "
                 "Follow-up in two weeks.", latency_s=1.2),
    Summary(note_id="acibench-valid-D2N068", system="production",
            text="Knee pain after a fall; x-rays ordered. Ibuprofen as needed.", latency_s=0.9),
    Summary(note_id="acibench-valid-D2N069", system="production", error="provider timed out after 3 attempts"),
]


def _judge_answer(request: Request) -> str:
    """Rate 3-4 and report the summary's first words as a critical fabrication (quotes found in the texts)."""
    summary = re.search(r"<<<BEGIN SUMMARY-\w+>>>\n(.*?)\n<<<END SUMMARY-", request.prompt, re.S)
    words = summary.group(1).split() if summary else []
    quote = " ".join(words[2:7]) if len(words) > 7 else ""
    errors = [error("fabrication", "critical", summary_quote=quote)] if quote else []
    return verdict(4, errors=errors, succinct=3)


def build(db: Path) -> list[str]:
    """Create the two runs in a new store at ``db``; returns their ids (baselines first)."""
    notes = load_notes(DIALOGUES).records
    store = Store.open(db)
    try:
        config = RunConfig(notes=str(DIALOGUES), providers=["extractive:lead", "extractive:centroid"],  # type: ignore[list-item]
                           metrics=["overlap", "length", "coverage"], offline=True)
        baseline = asyncio.run(evaluation.run(config, store, notes=notes))
        judge = JudgeEvaluator([ScriptedJudge("scripted:judge", [_judge_answer], repeat_last=True)],
                               Dispatcher(None, base_delay_s=0))
        by_id = {n.id: n for n in notes}

        async def rate() -> None:
            for summary in store.summaries(baseline):
                store.add_scores(baseline, await judge.evaluate(by_id[summary.note_id], summary))

        asyncio.run(rate())
        production = asyncio.run(evaluation.score(
            RunConfig(notes=str(DIALOGUES), metrics=["length", "coverage", "facts"]), store,
            [by_id[s.note_id] for s in PRODUCTION], PRODUCTION))
        store.add_ratings([
            Rating(note_id=FLIPPED_NOTE, system="production", rater="dr-a", dimension="accurate", value=1,
                   comment="says shortness of breath; the patient denied it"),
            Rating(note_id=FLIPPED_NOTE, system="extractive:lead", rater="dr-a", dimension="accurate", value=4),
        ], source="report fixture")
        return [baseline, production]
    finally:
        store.close()


_BUILT: dict[str, tuple[Path, list[str]]] = {}


def in_thread(function: Callable[..., T], *args: Any) -> T:
    """Call ``function`` in a thread of its own: Playwright's sync API keeps an event loop in the test's."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(function, *args).result()


def fixture_store() -> tuple[Path, list[str]]:
    """The fixtures store, built once per test session in a temporary folder."""
    if "store" not in _BUILT:
        import atexit
        import shutil
        import tempfile

        folder = tempfile.mkdtemp(prefix="clinsum-report-")
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        db = Path(folder) / "fixtures.db"
        _BUILT["store"] = (db, in_thread(build, db))
    return _BUILT["store"]
