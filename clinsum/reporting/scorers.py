"""clinsum's concept coverage and LLM judge as MLflow GenAI scorers, for teams on ``mlflow.genai.evaluate``.

    from clinsum.reporting.scorers import concept_coverage

    mlflow.genai.evaluate(
        data=[{"inputs": {"note": note_text}, "outputs": summary_text}],
        scorers=[concept_coverage()],
    )

Each row gives one ``Feedback`` per coverage metric (``concept_recall``,
``concept_support``, ``concept_f1``, ``assertion_flips``, ``critical_flips``,
``unsupported_concepts``; the ``_ref`` metrics too when ``expectations`` hold a
``reference`` summary), named exactly as clinsum names them, with the concepts
missed, unsupported or flipped as the rationale. The note is ``inputs["note"]``
(or ``inputs["text"]``, or the only string in ``inputs``); the summary is
``outputs`` as a string or ``outputs["summary"]``. ``mlflow.genai.evaluate``
itself needs the full ``mlflow`` package (it imports pandas); the scorer needs
only ``clinsum[mlflow,concepts]``.

``judge(["anthropic:claude-sonnet-5-5"])`` is the anchored-rubric judge the same
way: one ``Feedback`` per rubric attribute (``judge_accurate``...), plus
``judge_overall`` and ``judge_errors_critical`` (the verified critical errors,
with every error the judge found, quotes and verification, as the rationale).
A judge that fails gives ``judge_overall`` with the error, never a guessed score.
Calls go through clinsum's dispatcher (bounded retries), without the store's cache.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping, Sequence
from typing import Any

from clinsum.errors import ClinsumError
from clinsum.evaluators.coverage import CoverageEvaluator, CoverageOptions
from clinsum.records import Note, Score, Summary
from clinsum.reporting.export import MissingExtra


def _text(value: Any, keys: tuple[str, ...], what: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        for key in keys:
            if isinstance(value.get(key), str):
                return str(value[key])
        strings = [v for v in value.values() if isinstance(v, str)]
        if len(strings) == 1:
            return strings[0]
    raise ClinsumError(f"concept_coverage: cannot find the {what}; give a string or a dict with one of "
                       f"{', '.join(keys)}")


def _rationale(score: Score) -> str | None:
    detail = score.detail
    names = {
        "concept_recall": ("missed", detail.get("missed", [])),
        "concept_support": ("unsupported", detail.get("unsupported", [])),
        "unsupported_concepts": ("unsupported", detail.get("concepts", [])),
        "assertion_flips": ("flipped", detail.get("flips", [])),
        "critical_flips": ("flipped", detail.get("flips", [])),
    }.get(score.metric)
    if not names or not names[1]:
        return None
    label, entries = names
    return f"{label}: " + "; ".join(str(e.get("name", e)) if isinstance(e, Mapping) else str(e) for e in entries)


def concept_coverage(options: Mapping[str, Any] | None = None, name: str = "clinsum_concept_coverage") -> Any:
    """An MLflow scorer that runs clinsum's coverage evaluator on (note, summary) pairs."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    try:
        from mlflow.entities import Feedback
        from mlflow.genai.scorers import scorer
    except ImportError as exc:
        raise MissingExtra("the MLflow scorer needs mlflow: pip install 'clinsum[mlflow]'") from exc
    evaluator = CoverageEvaluator(CoverageOptions.from_dict(options or {}))

    @scorer(name=name)
    def coverage(inputs: Any, outputs: Any, expectations: Any = None) -> list[Any]:
        note_text = _text(inputs, ("note", "text", "source"), "note in inputs")
        summary_text = _text(outputs, ("summary", "text", "output"), "summary in outputs")
        reference = expectations.get("reference") if isinstance(expectations, Mapping) else None
        note = Note(id="mlflow", text=note_text, reference=reference if isinstance(reference, str) else None)
        scores = evaluator.scores(note, Summary(note_id="mlflow", system="mlflow", text=summary_text))
        return [Feedback(name=s.metric, value=s.value, rationale=_rationale(s),
                         metadata={"evaluator": f"{s.evaluator} {s.version}"}) for s in scores]

    return coverage


def _run(coroutine: Any) -> Any:
    """Run a coroutine to completion, also from code that already runs an event loop (a notebook)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def _judge_rationale(score: Score) -> str | None:
    detail = score.detail
    if score.metric == "judge_errors_critical":
        return None
    if score.metric == "judge_overall":
        errors = [e for judge in detail.get("judges", {}).values() for verdict in judge.get("samples") or []
                  for e in (verdict or {}).get("errors", [])]
        if not errors:
            return "no errors found"
        return "; ".join(f"{e['severity']} {e['type']}{'' if e.get('verified') else ' (quotes not verified)'}: "
                         f"summary {e.get('summary_quote', '')!r}, source {e.get('source_quote', '')!r}"
                         for e in errors)
    rationales = [str(j.get("rationale")) for j in detail.get("judges", {}).values() if j.get("rationale")]
    return " | ".join(rationales) or None


def judge(judges: Sequence[Any], *, options: Mapping[str, Any] | None = None, samples: int = 1,
          name: str = "clinsum_judge") -> Any:
    """An MLflow scorer that rates (note, summary) pairs with clinsum's judge (specs or built providers)."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    try:
        from mlflow.entities import Feedback
        from mlflow.genai.scorers import scorer
    except ImportError as exc:
        raise MissingExtra("the MLflow scorer needs mlflow: pip install 'clinsum[mlflow]'") from exc
    from clinsum.dispatch import Dispatcher
    from clinsum.evaluators.judge.judge import JudgeEvaluator
    from clinsum.providers.registry import create

    providers = [create(j, dict(options or {})) if isinstance(j, str) else j for j in judges]
    evaluator = JudgeEvaluator(providers, Dispatcher(None), samples=samples)

    @scorer(name=name)
    def rate(inputs: Any, outputs: Any) -> list[Any]:
        note = Note(id="mlflow", text=_text(inputs, ("note", "text", "source"), "note in inputs"))
        summary = Summary(note_id="mlflow", system="mlflow",
                          text=_text(outputs, ("summary", "text", "output"), "summary in outputs"))
        scores = _run(evaluator.evaluate(note, summary))
        return [Feedback(name=s.metric, value=s.value, rationale=_judge_rationale(s),
                         error=s.detail.get("error") if s.value is None and s.detail.get("failed") else None,
                         metadata={"evaluator": f"{s.evaluator} {s.version}"})
                for s in scores if s.metric != "judge_cost_usd"]

    return rate
