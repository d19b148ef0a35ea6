"""Pairwise comparison: which of two systems' summaries of the same note is better.

Each judge sees the pair twice, once in each order (system A shown first, then
system B shown first). A judge whose verdict follows the position rather than
the summary (it names "A" both times, or "tie" one time only) casts a tie: a
preference that flips with the order is not a preference. A jury's outcome is
the choice of more than half of the judges that answered; otherwise a tie.

Stored as ``Score``s, one per system and comparison (see ``outcome_scores``):
metric ``pairwise_win@<opponent>``, evaluator ``pairwise``, value 1 (win),
0.5 (tie) or 0 (loss), so the mean of a system's ``pairwise_win@B`` over notes
is its win rate against B with ties counted half. The opponent is in the metric
name, not only in the detail, because one summary is compared with several
opponents and the store keeps one score per note, system, evaluator and metric.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from clinsum.errors import ConfigError
from clinsum.evaluators.judge.prompt import (
    PAIRWISE_TEMPLATE,
    PromptTemplate,
    load_judge_template,
    pairwise_prompt,
)
from clinsum.evaluators.judge.structured import Answer, CallCost, ask
from clinsum.evaluators.judge.verdict import RATIONALE_MAX, VerdictError, describe_validation, parse_json
from clinsum.providers.base import Provider
from clinsum.records import Note, Score, Summary

NAME = "pairwise"
Side = Literal["a", "b", "tie"]

PAIRWISE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "rationale": {"type": "string", "description": "Short reason, citing the texts (1-3 sentences)."},
        "winner": {"type": "string", "enum": ["A", "B", "tie"]},
    },
    "required": ["rationale", "winner"],
    "additionalProperties": False,
}


class Choice(BaseModel):
    """One pairwise answer, by position as the judge saw it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rationale: str = Field(max_length=RATIONALE_MAX)
    winner: Literal["A", "B", "tie"]


def parse_choice(raw: str) -> Choice:
    data = parse_json(raw)
    try:
        return Choice.model_validate(data)
    except ValidationError as exc:
        raise VerdictError(f"the answer does not fit the schema: {describe_validation(exc)}") from exc


class JudgeVote(BaseModel):
    """What one judge said about one pair, in both orders, mapped back to the systems."""

    model_config = ConfigDict(frozen=True)

    a_first: Side | None
    """The winner when system A was shown first (None: no valid answer)."""
    b_first: Side | None
    vote: Side | None
    """The judge's vote: the common winner when both orders agree, else a tie; None if it failed."""
    consistent: bool | None
    rationales: list[str] = Field(default_factory=list)
    error: str | None = None
    attempts: list[dict[str, Any]] = Field(default_factory=list)
    """Raw answers and errors of a failed order, kept for inspection."""
    usage: dict[str, Any] = Field(default_factory=dict)


class PairwiseOutcome(BaseModel):
    """The jury's outcome for one note and one pair of systems."""

    model_config = ConfigDict(frozen=True)

    note_id: str
    system_a: str
    system_b: str
    winner: Side | None
    """``a``, ``b``, ``tie``, or None when every judge failed."""
    votes: dict[str, JudgeVote]


def _by_system(choice: Choice | None, *, a_shown_first: bool) -> Side | None:
    if choice is None:
        return None
    if choice.winner == "tie":
        return "tie"
    first_won = choice.winner == "A"
    return "a" if first_won == a_shown_first else "b"


def majority(votes: Iterable[Side | None]) -> Side | None:
    """The side more than half of the answering judges chose; a tie otherwise; None if none answered."""
    cast = [v for v in votes if v is not None]
    if not cast:
        return None
    sides: tuple[Side, ...] = ("a", "b", "tie")
    for side in sides:
        if cast.count(side) * 2 > len(cast):
            return side
    return "tie"


class PairwiseJudge:
    """Compares two summaries of one note with one judge or a jury, in both orders."""

    name = NAME

    def __init__(self, providers: Sequence[Provider], dispatcher: Any, *, max_invalid_retries: int = 2,
                 temperature: float | None = None, template: PromptTemplate | None = None,
                 target_reader: str = "a clinician who will take over the care of this patient") -> None:
        if not providers:
            raise ConfigError("pairwise comparison needs at least one --judge SPEC")
        specs = [p.spec for p in providers]
        if len(set(specs)) != len(specs):
            raise ConfigError(f"the same judge is listed twice: {', '.join(specs)}")
        self.providers = list(providers)
        self.dispatcher = dispatcher
        self.max_invalid_retries = max_invalid_retries
        self.temperature = temperature
        self.template = template or load_judge_template(PAIRWISE_TEMPLATE, pairwise=True)
        self.target_reader = target_reader
        self.version = f"{self.template.version}+{'|'.join(specs)}"

    async def compare(self, note: Note, a: Summary, b: Summary) -> PairwiseOutcome:
        if a.note_id != note.id or b.note_id != note.id:
            raise ValueError(f"summaries of notes {a.note_id!r} and {b.note_id!r} "
                             f"compared on note {note.id!r}")
        votes = await asyncio.gather(*(self._vote(p, note, a, b) for p in self.providers))
        by_spec = {p.spec: v for p, v in zip(self.providers, votes, strict=True)}
        return PairwiseOutcome(note_id=note.id, system_a=a.system, system_b=b.system,
                               winner=majority(v.vote for v in votes), votes=by_spec)

    async def _vote(self, provider: Provider, note: Note, a: Summary, b: Summary) -> JudgeVote:
        async def ask_order(first: Summary, second: Summary) -> Answer[Choice]:
            system, user = pairwise_prompt(self.template, note_id=note.id, note_text=note.text,
                                           summary_a=first.text, summary_b=second.text,
                                           target_reader=self.target_reader)
            return await ask(self.dispatcher, provider, system=system, user=user, schema=PAIRWISE_SCHEMA,
                             parse=parse_choice, temperature=self.temperature,
                             max_invalid_retries=self.max_invalid_retries)

        a_first, b_first = await asyncio.gather(ask_order(a, b), ask_order(b, a))
        cost = CallCost()
        cost.merge(a_first.cost)
        cost.merge(b_first.cost)
        side_a_first = _by_system(a_first.value, a_shown_first=True)
        side_b_first = _by_system(b_first.value, a_shown_first=False)
        failed = [x for x in (a_first, b_first) if x.value is None]
        if failed:
            return JudgeVote(a_first=side_a_first, b_first=side_b_first, vote=None, consistent=None,
                             error="; ".join(x.error or "no answer" for x in failed),
                             attempts=[t for x in failed for t in x.attempts], usage=cost.as_dict())
        consistent = side_a_first == side_b_first
        return JudgeVote(a_first=side_a_first, b_first=side_b_first,
                         vote=side_a_first if consistent else "tie", consistent=consistent,
                         rationales=[x.value.rationale for x in (a_first, b_first) if x.value is not None],
                         usage=cost.as_dict())


_VALUE = {"win": 1.0, "tie": 0.5, "loss": 0.0}


def outcome_scores(outcome: PairwiseOutcome, version: str) -> list[Score]:
    """Two scores, one per system: ``pairwise_win@<opponent>`` = 1 win, 0.5 tie, 0 loss, None failed."""
    scores = []
    sides = ((outcome.system_a, outcome.system_b, "a"), (outcome.system_b, outcome.system_a, "b"))
    for me, other, side in sides:
        if outcome.winner is None:
            result = None
        elif outcome.winner == "tie":
            result = "tie"
        else:
            result = "win" if outcome.winner == side else "loss"
        detail: dict[str, Any] = {
            "opponent": other, "outcome": result, "position": side,
            "votes": {spec: vote.model_dump() for spec, vote in outcome.votes.items()},
        }
        if result is None:
            detail["failed"] = True
        scores.append(Score(note_id=outcome.note_id, system=me, metric=f"pairwise_win@{other}",
                            value=None if result is None else _VALUE[result], evaluator=NAME,
                            version=version, detail=detail))
    return scores


@dataclass(frozen=True)
class WinRate:
    """How often ``system_a`` beat ``system_b``; the Wilson 95% interval is for ``win_rate``."""

    system_a: str
    system_b: str
    n: int
    """Comparisons with an outcome (failed ones are counted in ``failed`` only)."""
    wins: int
    losses: int
    ties: int
    failed: int
    win_rate: float | None
    """wins / n: ties are not wins."""
    ci_low: float | None
    ci_high: float | None
    score: float | None
    """(wins + ties / 2) / n: the mean of the stored ``pairwise_win`` values."""
    inconsistent: int
    """Judge votes that flipped with the order (became ties): a measure of position bias."""

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def wilson(successes: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (95% by default)."""
    if n == 0:
        raise ValueError("wilson interval of zero trials")
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def win_rates(outcomes: Iterable[PairwiseOutcome]) -> list[WinRate]:
    """Wins, losses, ties and win rate (Wilson 95% CI) per pair of systems, in first-seen order.

    An outcome for (B, A) counts for the pair (A, B) when (A, B) was seen first.
    """
    tallies: dict[tuple[str, str], dict[str, int]] = {}
    for outcome in outcomes:
        pair, flip = (outcome.system_a, outcome.system_b), False
        if pair not in tallies and (outcome.system_b, outcome.system_a) in tallies:
            pair, flip = (outcome.system_b, outcome.system_a), True
        tally = tallies.setdefault(pair, {"win": 0, "loss": 0, "tie": 0, "failed": 0, "inconsistent": 0})
        tally["inconsistent"] += sum(1 for v in outcome.votes.values() if v.consistent is False)
        if outcome.winner is None:
            tally["failed"] += 1
        elif outcome.winner == "tie":
            tally["tie"] += 1
        else:
            tally["win" if (outcome.winner == "a") != flip else "loss"] += 1
    rates = []
    for (system_a, system_b), t in tallies.items():
        n = t["win"] + t["loss"] + t["tie"]
        low, high = wilson(t["win"], n) if n else (None, None)
        rates.append(WinRate(
            system_a=system_a, system_b=system_b, n=n, wins=t["win"], losses=t["loss"], ties=t["tie"],
            failed=t["failed"], win_rate=t["win"] / n if n else None, ci_low=low, ci_high=high,
            score=(t["win"] + t["tie"] / 2) / n if n else None, inconsistent=t["inconsistent"]))
    return rates
