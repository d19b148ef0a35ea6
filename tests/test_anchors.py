"""Judge drift on fixed anchors: a scripted judge re-judges unchanged (note, summary) pairs."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from judge_fakes import ScriptedJudge, verdict
from scipy import stats

from clinsum.config import RunConfig
from clinsum.dispatch import Dispatcher
from clinsum.errors import ConfigError, InputError
from clinsum.evaluators.judge import JudgeEvaluator
from clinsum.monitoring.anchors import (
    anchor_judge,
    compare_with_reference,
    judge_anchors,
    load_anchors,
)
from clinsum.providers.base import Request

N_ANCHORS = 20


def anchors_file(tmp_path: Path) -> Path:
    path = tmp_path / "anchors.jsonl"
    path.write_text("".join(json.dumps({"id": f"anchor-{k:02d}", "note": f"Case {k}: denies chest pain.",
                                        "summary": f"Case {k}: no chest pain."}) + "\n"
                            for k in range(N_ANCHORS)))
    return path


def judge_with(shift: Callable[[int], int]) -> Callable[[Request], str]:
    """A judge whose 'accurate' for anchor k is its usual 2 + k % 3, plus ``shift(k)``."""
    def answer(request: Request) -> str:
        k = int(re.search(r"Case (\d+): denies", request.prompt).group(1))  # type: ignore[union-attr]
        return verdict(4, accurate=min(5, max(1, 2 + k % 3 + shift(k))))
    return answer


async def judged(path: Path, shift: Callable[[int], int]) -> dict[str, dict[str, float]]:
    judge = ScriptedJudge("fake:judge", [judge_with(shift)], repeat_last=True)
    evaluator = JudgeEvaluator([judge], Dispatcher(None, base_delay_s=0))
    scores = await judge_anchors(load_anchors(path), evaluator)
    assert len(judge.requests) == N_ANCHORS
    return scores


async def test_a_stable_judge_shows_no_drift(tmp_path: Path) -> None:
    path = anchors_file(tmp_path)
    reference = await judged(path, lambda k: 0)
    assert reference["anchor-04"]["judge_accurate"] == 3  # 2 + 4 % 3
    assert "judge_cost_usd" not in reference["anchor-04"]  # what judging cost is not a judgement
    drift = compare_with_reference(reference, await judged(path, lambda k: 0), n_resamples=200)
    assert not drift.drifted and drift.n_anchors == N_ANCHORS
    assert all(m.p_value == 1.0 and m.shift == 0 for m in drift.metrics)
    assert not drift.excuses("judge_accurate") and drift.message == f"judge stable on {N_ANCHORS} anchors"


async def test_a_planted_drift_is_reported_and_excuses_judge_metrics_only(tmp_path: Path) -> None:
    path = anchors_file(tmp_path)
    reference = await judged(path, lambda k: 0)
    current = await judged(path, lambda k: 1 if k % 4 else 0)  # the judge turned lenient on 3 anchors in 4
    drift = compare_with_reference(reference, current, n_resamples=200)
    assert drift.drifted
    by_metric = {m.metric: m for m in drift.metrics}
    accurate = by_metric["judge_accurate"]
    before = [reference[a]["judge_accurate"] for a in sorted(reference)]
    after = [current[a]["judge_accurate"] for a in sorted(reference)]
    differences = [b - a for a, b in zip(before, after, strict=True)]
    assert accurate.shift == pytest.approx(sum(differences) / N_ANCHORS)
    assert accurate.p_value == pytest.approx(stats.wilcoxon(differences).pvalue)
    assert accurate.drifted and not by_metric["judge_thorough"].drifted
    assert drift.excuses("judge_accurate") and drift.excuses("judge_overall")
    assert not drift.excuses("concept_recall") and not drift.excuses("critical_flips")
    assert "judge drift on 20 unchanged anchors" in drift.message and "judge_accurate +" in drift.message


async def test_noise_without_a_direction_and_a_tiny_shift_are_not_drift(tmp_path: Path) -> None:
    path = anchors_file(tmp_path)
    reference = await judged(path, lambda k: 0)
    noisy = compare_with_reference(reference, await judged(path, lambda k: 1 if k in (1, 4, 7, 10) else
                                                            -1 if k in (0, 3, 6, 9) else 0), n_resamples=200)
    assert not noisy.drifted
    tiny = compare_with_reference(reference, await judged(path, lambda k: 1 if k in (0, 3) else 0),
                                  n_resamples=200)
    assert not tiny.drifted


@pytest.mark.parametrize(("row", "field", "message"), [
    ({"id": "a2", "note": "text"}, "summary", "missing or empty summary"),
    ({"id": "a2", "note": " ", "summary": "s"}, "note", "missing or empty note"),
    ({"id": "a1", "note": "n", "summary": "s"}, "id", "duplicate id 'a1', first at line 1"),
    ({"id": "a2", "note": "n", "summary": "s", "score": 3}, "score", "unknown field"),
])
def test_bad_anchor_lines_name_file_line_and_field(tmp_path: Path, row: dict[str, Any], field: str,
                                                   message: str) -> None:
    path = tmp_path / "anchors.jsonl"
    path.write_text(json.dumps({"id": "a1", "note": "n", "summary": "s"}) + "\n" + json.dumps(row) + "\n")
    with pytest.raises(InputError) as caught:
        load_anchors(path)
    assert (caught.value.line, caught.value.field) == (2, field) and message in str(caught.value)


def test_no_shared_anchor_is_an_error() -> None:
    with pytest.raises(InputError, match="no anchor was judged both"):
        compare_with_reference({"a": {"judge_accurate": 3.0}}, {"b": {"judge_accurate": 3.0}})


def test_the_anchor_judge_is_the_configured_judge_without_the_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("clinsum.providers.registry.create",
                        lambda spec, options=None: ScriptedJudge(spec))
    judge = anchor_judge(RunConfig.model_validate({"judge": {"judges": ["fake:judge"]},
                                                   "metrics": ["overlap", "judge"]}))
    assert isinstance(judge, JudgeEvaluator) and judge.dispatcher.use_cache is False
    with pytest.raises(ConfigError, match="needs a judge"):
        anchor_judge(RunConfig())


async def test_an_anchor_whose_judge_lost_samples_is_a_failed_judging(tmp_path: Path) -> None:
    """A judge that lost some of its samples on an anchor still gives a score from the others, but the
    project counts that as a failed evaluation; compared with a reference judged whole, what moved would
    not be known, so the judging is refused rather than stored."""
    from clinsum.evaluators.base import Evaluator
    from clinsum.monitoring.anchors import AnchorJudgingError, judge_every_anchor
    from clinsum.records import Note, Score, Summary

    class LosingJudge(Evaluator):
        name, version = "judge", "test"

        async def evaluate(self, note: Note, summary: Summary) -> list[Score]:
            lost = {"failures": ["sample 2: invalid JSON"]} if note.id == "anchor-03" else {}
            detail = {"judges": {"fake:judge": {"model": "m", **lost}}}
            return [Score(note_id=note.id, system=summary.system, metric=metric, value=4.0, evaluator="judge",
                          version="test", detail=detail) for metric in ("judge_overall", "judge_accurate")]

    anchors = load_anchors(anchors_file(tmp_path))
    with pytest.raises(AnchorJudgingError, match=r"1 of 20 anchors.*anchor-03: judge_overall failed"):
        await judge_every_anchor(anchors, LosingJudge())
