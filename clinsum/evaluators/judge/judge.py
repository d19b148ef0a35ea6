"""The LLM judge: rate a summary against its note with an anchored rubric.

Scores, for each summary (``A`` is any rubric attribute):

==============================  ===================  ==========================================
metric                          evaluator            value
==============================  ===================  ==========================================
``judge_A``                     ``judge``            mean over samples (and over judges)
``judge_overall``               ``judge``            mean of the applicable attributes
``judge_errors_critical``       ``judge``            verified critical errors (mean over samples
                                                     and judges); unverified ones in its detail
``judge_A@SPEC`` (and the       ``judge:SPEC``       the same for one judge of a jury; written
overall / errors metrics)                            only when there are several judges
==============================  ===================  ==========================================

The individual judges of a jury get their own metric names, not only their own
evaluator name, so that a table grouped by metric never averages a jury with its
members. A judge that fails (invalid answers after the bounded retries, or a
provider error) gives ``value=None`` with the raw answers and the error in the
detail of its ``judge_overall``; a score is never guessed. Each judge's detail
holds its verdicts (rationales, errors with the quote check), per-sample scores,
their mean and spread when sampling, and the calls' usage, cost and latency.
Every ``judge_A`` and ``judge_overall`` detail also has ``spread``: n, mean,
std (n-1), min and max of all the sample values behind the number (every sample
of every judge), which is what a report shows as the judge's spread.
"""

from __future__ import annotations

import asyncio
import logging
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from clinsum.config import JudgeConfig, describe_validation
from clinsum.errors import ConfigError
from clinsum.evaluators.judge.prompt import JUDGE_TEMPLATE, PromptTemplate, judge_prompt, load_judge_template
from clinsum.evaluators.judge.rubric import Rubric
from clinsum.evaluators.judge.structured import Answer, CallCost, ask
from clinsum.evaluators.judge.verdict import Verdict, check_quotes, parse_verdict, verdict_json_schema
from clinsum.providers.base import Provider
from clinsum.records import Note, Score, Summary

NAME = "judge"
log = logging.getLogger(__name__)


def spread(values: Sequence[float]) -> dict[str, float | int | None]:
    """Mean, sample standard deviation (n-1; 0 for one value), min and max."""
    if not values:
        return {"n": 0, "mean": None, "std": None, "min": None, "max": None}
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return {"n": len(values), "mean": statistics.fmean(values), "std": std,
            "min": min(values), "max": max(values)}


def overall(verdict: Verdict, rubric: Rubric) -> float | None:
    """Mean of the applicable attributes, each oriented so that higher is better."""
    values = [rubric.attribute(name).oriented(rating.score)
              for name, rating in verdict.attributes.items() if rating.score is not None]
    return statistics.fmean(values) if values else None


@dataclass
class JudgeOutcome:
    """What one judge said about one summary, over all its samples."""

    spec: str
    samples: list[Answer[Verdict]]

    @property
    def verdicts(self) -> list[Verdict]:
        return [a.value for a in self.samples if a.value is not None]

    @property
    def failed(self) -> bool:
        return not self.verdicts

    def cost(self) -> CallCost:
        total = CallCost()
        for answer in self.samples:
            total.merge(answer.cost)
        return total

    def attribute_values(self, name: str) -> list[float]:
        return [float(s) for v in self.verdicts if (s := v.attributes[name].score) is not None]

    def overall_values(self, rubric: Rubric) -> list[float]:
        return [o for v in self.verdicts if (o := overall(v, rubric)) is not None]

    def critical_values(self, *, verified: bool) -> list[float]:
        return [float(v.critical(verified=verified)) for v in self.verdicts]

    def failures(self) -> list[dict[str, Any]]:
        return [{"sample": k, "error": a.error, "attempts": a.attempts}
                for k, a in enumerate(self.samples) if a.value is None]


@dataclass(frozen=True)
class _ScoreMaker:
    """Makes the ``Score``s of one summary for one judge (or the jury): ``make(metric, value, detail)``."""

    note: Note
    summary: Summary
    evaluator: str
    version: str
    suffix: str
    """``@SPEC`` for one judge of a jury, empty for the judge or the jury as a whole."""

    def __call__(self, metric: str, value: float | None, detail: dict[str, Any]) -> Score:
        return Score(note_id=self.note.id, system=self.summary.system, metric=f"{metric}{self.suffix}",
                     value=value, evaluator=self.evaluator, version=self.version, detail=detail)


class JudgeEvaluator:
    """Rates summaries with one judge or a jury; see the module docstring for the scores."""

    name = NAME

    def __init__(self, providers: Sequence[Provider], dispatcher: Any, rubric: Rubric | None = None, *,
                 samples: int = 1, temperature: float | None = None, max_invalid_retries: int = 2,
                 template: PromptTemplate | None = None, target_reader: str | None = None) -> None:
        if not providers:
            raise ConfigError("the judge needs at least one judge provider (--judge SPEC)")
        specs = [p.spec for p in providers]
        if len(set(specs)) != len(specs):
            raise ConfigError(f"the same judge is listed twice: {', '.join(specs)}")
        if samples < 1:
            raise ConfigError(f"judge samples must be at least 1, not {samples}")
        if max_invalid_retries < 0:
            raise ConfigError("max_invalid_retries must be 0 or more")
        self.providers = list(providers)
        self.dispatcher = dispatcher
        self.rubric = rubric or Rubric.load()
        self.samples = samples
        self.temperature = temperature
        self.max_invalid_retries = max_invalid_retries
        self.template = template or load_judge_template(JUDGE_TEMPLATE)
        self.target_reader = target_reader
        self.schema = verdict_json_schema(self.rubric)
        self.version = self._version(specs)
        if samples > 1 and not temperature:
            log.warning("judge samples=%d at temperature %s: samples of a deterministic judge are "
                        "near-identical and their spread means little; set a temperature (e.g. 0.7)",
                        samples, temperature)

    def _version(self, specs: Sequence[str]) -> str:
        version = f"{self.rubric.version}+{self.template.version}+{'|'.join(specs)}"
        if self.samples > 1:
            version += f"+k{self.samples}"
        if self.temperature is not None:
            version += f"+t{self.temperature:g}"
        return version

    @property
    def jury(self) -> bool:
        return len(self.providers) > 1

    async def evaluate(self, note: Note, summary: Summary) -> list[Score]:
        if not summary.ok:
            return []
        target = self.target_reader or _reader_from(note) or None
        system, user = judge_prompt(self.template, self.rubric, note_id=note.id, note_text=note.text,
                                    summary_text=summary.text, target_reader=target)
        outcomes = await asyncio.gather(*(self._judge(p, system, user, note, summary)
                                          for p in self.providers))
        scores: list[Score] = []
        if self.jury:
            for outcome in outcomes:
                scores += self._scores(note, summary, [outcome], evaluator=f"{NAME}:{outcome.spec}",
                                       version=self._version([outcome.spec]), suffix=f"@{outcome.spec}")
        scores += self._scores(note, summary, outcomes, evaluator=NAME, version=self.version, suffix="")
        return scores

    async def _judge(self, provider: Provider, system: str, user: str, note: Note,
                     summary: Summary) -> JudgeOutcome:
        def parse(raw: str) -> Verdict:
            return check_quotes(parse_verdict(raw, self.rubric), note.text, summary.text)

        answers = await asyncio.gather(*(
            ask(self.dispatcher, provider, system=system, user=user, schema=self.schema, parse=parse,
                sample=k, temperature=self.temperature, max_invalid_retries=self.max_invalid_retries)
            for k in range(self.samples)))
        return JudgeOutcome(provider.spec, list(answers))

    # -- scores -------------------------------------------------------------------

    def _scores(self, note: Note, summary: Summary, outcomes: Sequence[JudgeOutcome], *,
                evaluator: str, version: str, suffix: str) -> list[Score]:
        """Scores of ``outcomes`` combined: the mean over judges of each judge's mean over samples.

        In this order: one score per rubric attribute, the overall score, the spread of
        repeated samples and the judge's own cost (when they apply), the critical errors.
        """
        make = _ScoreMaker(note, summary, evaluator, version, suffix)
        alive = [o for o in outcomes if not o.failed]
        scores = [make(f"judge_{attribute.name}", *self._attribute(attribute.name, outcomes, alive))
                  for attribute in self.rubric.attributes]
        overall_value, overall_detail = self._overall(outcomes, alive, evaluator)
        scores.append(make("judge_overall", overall_value, overall_detail))
        scores += self._judging_costs(make, alive, overall_detail)
        scores.append(make("judge_errors_critical", *self._critical_errors(alive)))
        return scores

    def _attribute(self, name: str, outcomes: Sequence[JudgeOutcome], alive: Sequence[JudgeOutcome]
                   ) -> tuple[float | None, dict[str, Any]]:
        """One attribute: the mean of the judges' means, each judge's ratings, the pooled spread."""
        per_judge = {o.spec: self._attribute_detail(o, name) for o in outcomes}
        means = [d["mean"] for d in per_judge.values() if d.get("mean") is not None]
        pooled = [x for o in alive for x in o.attribute_values(name)]
        detail: dict[str, Any] = {"judges": per_judge, "spread": spread(pooled)}
        if alive and not means:
            detail["not_applicable"] = True
        if len(outcomes) > 1:
            detail["across_judges"] = spread(means)
        if not alive:
            detail["failed"] = True
        return (statistics.fmean(means) if means else None), detail

    def _overall(self, outcomes: Sequence[JudgeOutcome], alive: Sequence[JudgeOutcome], evaluator: str
                 ) -> tuple[float | None, dict[str, Any]]:
        """The overall score (mean over judges of their mean overall) and the detail that explains it."""
        overall_means = [statistics.fmean(v) for o in alive if (v := o.overall_values(self.rubric))]
        failed = {o.spec: o.failures() for o in outcomes if o.failed}
        # a jury's own detail does not repeat the verdicts its members' scores already hold
        with_verdicts = not (self.jury and evaluator == NAME)
        detail = self._overall_detail(outcomes, failed, with_verdicts=with_verdicts)
        return (statistics.fmean(overall_means) if overall_means else None), detail

    def _judging_costs(self, make: _ScoreMaker, alive: Sequence[JudgeOutcome],
                       overall_detail: dict[str, Any]) -> list[Score]:
        """The spread of repeated samples and the judge's own cost, as metrics, so that the
        leaderboard shows them with confidence intervals beside the scores they qualify."""
        scores = []
        if self.samples > 1 and alive:
            sds = [std for o in alive if (std := spread(o.overall_values(self.rubric))["std"]) is not None]
            scores.append(make("judge_overall_sd", statistics.fmean(sds) if sds else None,
                               {"rule": "standard deviation of judge_overall across samples, mean over judges"}))
        if overall_detail["usage"].get("cost_usd") is not None and not overall_detail.get("failed"):
            scores.append(make("judge_cost_usd", overall_detail["usage"]["cost_usd"], {}))
        return scores

    @staticmethod
    def _critical_errors(alive: Sequence[JudgeOutcome]) -> tuple[float | None, dict[str, Any]]:
        """Verified critical errors counted; unverified ones (quotes not found) only reported."""
        verified = [statistics.fmean(o.critical_values(verified=True)) for o in alive]
        unverified = [statistics.fmean(o.critical_values(verified=False)) for o in alive]
        return (statistics.fmean(verified) if verified else None), {
            "rule": "counts critical errors whose quotes were found in the texts; unverified ones "
                    "are reported here and never counted",
            "verified_by_judge": {o.spec: o.critical_values(verified=True) for o in alive},
            "unverified": statistics.fmean(unverified) if unverified else None,
            "unverified_by_judge": {o.spec: o.critical_values(verified=False) for o in alive},
            **({"failed": True} if not alive else {}),
        }

    def _attribute_detail(self, outcome: JudgeOutcome, name: str) -> dict[str, Any]:
        if outcome.failed:
            return {"failed": True}
        values = outcome.attribute_values(name)
        ratings = [v.attributes[name] for v in outcome.verdicts]
        detail: dict[str, Any] = {
            "samples": [r.score for r in ratings],
            "rationale": [r.rationale for r in ratings] if len(ratings) > 1 else ratings[0].rationale,
            "mean": statistics.fmean(values) if values else None,
        }
        if self.samples > 1:
            detail["spread"] = spread(values)
        return detail

    def _overall_detail(self, outcomes: Sequence[JudgeOutcome], failed: dict[str, list[dict[str, Any]]],
                        *, with_verdicts: bool) -> dict[str, Any]:
        pooled = [x for o in outcomes for x in o.overall_values(self.rubric)]
        judges: dict[str, Any] = {}
        for outcome in outcomes:
            entry: dict[str, Any] = {
                "model": next((a.model for a in outcome.samples if a.model), None),
                "usage": outcome.cost().as_dict(),
                "retries": sum(max(0, len(a.attempts) - 1) for a in outcome.samples),
            }
            if with_verdicts:
                entry["samples"] = [a.value.model_dump() if a.value is not None else None
                                    for a in outcome.samples]
            else:
                entry["verdicts_in"] = f"judge_overall@{outcome.spec}"
            if not outcome.failed:
                entry["overall"] = spread(outcome.overall_values(self.rubric))
            if outcome.spec in failed or any(a.value is None for a in outcome.samples):
                entry["failures"] = outcome.failures()
            judges[outcome.spec] = entry
        total = CallCost()
        for outcome in outcomes:
            total.merge(outcome.cost())
        detail: dict[str, Any] = {
            "rubric": self.rubric.version, "prompt": self.template.version,
            "samples": self.samples, "temperature": self.temperature,
            "judges": judges, "usage": total.as_dict(), "spread": spread(pooled),
        }
        if failed:
            detail["failed_judges"] = sorted(failed)
        if len(failed) == len(outcomes):
            detail["failed"] = True
            detail["error"] = "; ".join(f"{spec}: {f[-1]['error']}" for spec, f in failed.items() if f)
        return detail


def _reader_from(note: Note) -> str | None:
    specialty = note.meta.get("specialty") if note.meta else None
    return f"a {specialty} clinician who will take over the care of this patient" if specialty else None


JudgeOptions = JudgeConfig
"""The judge's options are the run config's ``[judge]`` schema (one schema, ``clinsum.config``)."""


def parse_options(options: JudgeConfig | dict[str, Any]) -> JudgeConfig:
    if isinstance(options, JudgeConfig):
        return options
    try:
        return JudgeConfig.model_validate(options)
    except ValidationError as exc:
        raise ConfigError(f"invalid judge options: {describe_validation(exc, JudgeConfig, 'option')}") from None


def build_judges(options: JudgeConfig | dict[str, Any], *, prices: dict[str, Any] | None = None,
                 offline: bool = False) -> list[Provider]:
    """The judge providers the options name, each with the shared (``"*"``) and its own options.

    Built through ``providers.registry.build``, like every summarizer: the run's prices
    apply and offline mode refuses a remote judge before it is built.
    """
    from clinsum.providers.registry import build

    parsed = parse_options(options)
    if not parsed.judges:
        raise ConfigError("the judge needs at least one spec in judges (--judge SPEC)")
    unknown = sorted(set(parsed.provider_options) - set(parsed.judges) - {"*"})
    if unknown:
        raise ConfigError(f"judge provider_options for judges that are not listed in judges: "
                          f"{', '.join(unknown)} (judges: {', '.join(parsed.judges)}; '*' means all)")
    shared = parsed.provider_options.get("*", {})
    return [build(spec, {**shared, **parsed.provider_options.get(spec, {})}, prices=prices, offline=offline)
            for spec in parsed.judges]


def create(options: dict[str, Any], dispatcher: Any, *, prices: dict[str, Any] | None = None,
           offline: bool = False) -> JudgeEvaluator:
    """Build the judge from options (the ``[judge]`` schema, ``JudgeConfig``) and the run's dispatcher."""
    parsed = parse_options(options)
    providers = build_judges(parsed, prices=prices, offline=offline)
    rubric = Rubric.load(Path(parsed.rubric) if parsed.rubric else None)
    if parsed.attributes:
        rubric = rubric.only(parsed.attributes)
    return JudgeEvaluator(providers, dispatcher, rubric, samples=parsed.samples,
                          temperature=parsed.temperature, max_invalid_retries=parsed.max_invalid_retries,
                          target_reader=parsed.target_reader)
