"""Human ratings of summaries (physician feedback): reading them, and comparing scores with them.

``load_ratings`` reads the ratings; ``agreement_report`` joins them with stored
scores on (note_id, system) and measures agreement (statistics in
``clinsum.evaluators.agreement``).

Long format, one rating a row::

    {"note_id": "n1", "system": "production", "rater": "dr-a", "dimension": "accurate",
     "value": 4, "comment": "missed the penicillin allergy"}

Wide format (``dimension_columns``), one summary a row and one column per dimension::

    note_id,system,rater,accurate,thorough,unsafe
    n1,production,dr-a,4,3,false

``value`` is a number; ``true``/``false`` (JSON booleans, or those words in a CSV
cell) are read as 1 and 0, for binary judgements such as "unsafe". In the wide
format an empty cell means "not rated on this dimension". Every problem is an
``InputError`` naming the file, the line and the field; with ``skip_invalid`` bad
rows are collected in ``Loaded.skipped`` and the good ones kept.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ValidationError

from clinsum.errors import InputError
from clinsum.evaluators import agreement as ag
from clinsum.inputs import Loaded, raise_invalid, rows_or_errors
from clinsum.records import Rating, Score

RATING_FIELDS = ("note_id", "system", "rater", "dimension", "value", "comment", "schema_version")
_KEY_FIELDS = ("note_id", "system", "rater")
_TRUE, _FALSE = {"true", "yes"}, {"false", "no"}


class _BadField(Exception):
    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.message, self.field = message, field


def load_ratings(path: Path | str, *, skip_invalid: bool = False,
                 dimension_columns: Sequence[str] | None = None) -> Loaded[Rating]:
    """Read ratings from a JSONL or CSV file (long format, or wide with ``dimension_columns``).

    The same (note_id, system, rater, dimension) twice in one file is an error: the
    store keeps one rating per key, and a silent last-wins would hide a mistake.
    """
    path = Path(path)
    wide = list(dimension_columns or [])
    allowed = (*_KEY_FIELDS, "comment", "schema_version", *wide) if wide else RATING_FIELDS
    records: list[Rating] = []
    skipped: list[InputError] = []
    first_line: dict[tuple[str, str, str, str], int] = {}
    seen_rows = False
    for file, line, row in rows_or_errors(path, allowed):
        seen_rows = True
        try:
            if isinstance(row, InputError):
                raise row
            built = _wide_ratings(row, wide) if wide else [_rating(row)]
            for rating in built:
                key = (rating.note_id, rating.system, rating.rater, rating.dimension)
                if key in first_line:
                    raise _BadField(
                        f"duplicate rating for note_id {key[0]!r}, system {key[1]!r}, rater {key[2]!r}, "
                        f"dimension {key[3]!r}, first at line {first_line[key]}",
                        "dimension" if not wide else key[3])
        except _BadField as exc:
            skipped.append(InputError(exc.message, path=file, line=line, field=exc.field))
            continue
        except InputError as exc:
            skipped.append(exc)
            continue
        for rating in built:
            first_line[(rating.note_id, rating.system, rating.rater, rating.dimension)] = line
        records.extend(built)
    if not seen_rows:
        raise InputError("holds no ratings", path=str(path))
    if skipped and not skip_invalid:
        raise_invalid(path, "ratings", skipped)
    return Loaded(records=records, skipped=skipped)


def _rating(row: dict[str, Any]) -> Rating:
    unknown = [name for name in row if name not in RATING_FIELDS]
    if unknown:
        raise _BadField(f"unknown field {unknown[0]!r}; allowed fields: {', '.join(RATING_FIELDS)} "
                        "(for one column per dimension, use --dimension-columns)", unknown[0])
    fields = {name: _identifier(row, name) for name in (*_KEY_FIELDS, "dimension")}
    return _build(fields, _value(row.get("value"), "value"), _comment(row), "value")


def _wide_ratings(row: dict[str, Any], dimensions: Sequence[str]) -> list[Rating]:
    fields = {name: _identifier(row, name) for name in _KEY_FIELDS}
    comment = _comment(row)
    built = [_build({**fields, "dimension": dimension}, _value(row[dimension], dimension), comment, dimension)
             for dimension in dimensions if _present(row.get(dimension))]
    if not built:
        raise _BadField(f"no value in any of the dimension columns {', '.join(dimensions)}",
                        dimensions[0])
    return built


def _build(fields: dict[str, str], value: float, comment: str | None, field: str) -> Rating:
    _check_scale(fields["dimension"], value, field)
    try:
        return Rating(note_id=fields["note_id"], system=fields["system"], rater=fields["rater"],
                      dimension=fields["dimension"], value=value, comment=comment)
    except ValidationError as exc:  # unreachable with checked fields; kept as a clear error
        first = exc.errors()[0]
        raise _BadField(first["msg"], ".".join(str(p) for p in first["loc"])) from None


@cache
def _rubric_attributes() -> frozenset[str]:
    from clinsum.evaluators.judge.rubric import Rubric

    return frozenset(Rubric.load().names)


def _check_scale(dimension: str, value: float, field: str) -> None:
    """A dimension named like a rubric attribute is rated on the rubric's scale, 1 to 5.

    Not-applicable is no rating (the judge's 0 stays out of every mean, and so must a rater's).

    Other dimensions (``unsafe``, a team's own scale) take any finite number.
    """
    from clinsum.evaluators.judge.rubric import LEVELS

    if dimension not in _rubric_attributes():
        return
    low, high = min(LEVELS), max(LEVELS)
    if not low <= value <= high:
        raise _BadField(f"{dimension} is a rubric attribute rated {low} to {high}, "
                        f"got {value:g}; leave a not-applicable rating out", field)


def _present(value: Any) -> bool:
    return value is not None and not (isinstance(value, str) and not value.strip())


def _identifier(row: dict[str, Any], name: str) -> str:
    value = row.get(name)
    if not _present(value):
        raise _BadField(f"missing {name}" if value is None else f"{name} is empty", name)
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise _BadField(f"{name} must be a string, got {type(value).__name__}", name)
    return str(value).strip()


def _value(value: Any, field: str) -> float:
    if not _present(value):
        raise _BadField("missing value", field)
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE | _FALSE:
            return 1.0 if word in _TRUE else 0.0
        try:
            number = float(word)
        except ValueError:
            raise _BadField(f"value {value!r} is not a number (or true/false)", field) from None
    elif isinstance(value, int | float):
        number = float(value)
    else:
        raise _BadField(f"value must be a number, got {type(value).__name__}", field)
    if not math.isfinite(number):
        raise _BadField(f"value {value!r} is not a finite number", field)
    return number


def _comment(row: dict[str, Any]) -> str | None:
    comment = row.get("comment")
    if comment is None:
        return None
    if not isinstance(comment, str):
        raise _BadField(f"comment must be a string, got {type(comment).__name__}", "comment")
    return comment.strip() or None



# -- agreement of scores with the ratings ---------------------------------------------------------

_OPERATORS: dict[str, Callable[[float, float], bool]] = {
    ">=": lambda a, b: a >= b, "<=": lambda a, b: a <= b, ">": lambda a, b: a > b,
    "<": lambda a, b: a < b, "==": lambda a, b: a == b,
}


@dataclass(frozen=True)
class FlagRule:
    """A binary flag made from a number: ``unsupported_concepts>=1``, ``HallucinationRate>0``."""

    name: str
    operator: str
    threshold: float

    @classmethod
    def parse(cls, text: str) -> FlagRule:
        for operator in sorted(_OPERATORS, key=len, reverse=True):  # ">=" before ">"
            name, found, threshold = text.partition(operator)
            if found:
                try:
                    value = float(threshold)
                except ValueError:
                    break
                if name.strip() and math.isfinite(value):
                    return cls(name.strip(), operator, value)
                break
        raise ValueError(f"expected NAME>=NUMBER (or >, <=, <, ==), got {text!r}")

    def applies(self, value: float) -> bool:
        return _OPERATORS[self.operator](value, self.threshold)

    def __str__(self) -> str:
        return f"{self.name}{self.operator}{self.threshold:g}"


def agreement_report(ratings: Iterable[Rating], scores: Iterable[Score], *,
                     metrics: Sequence[str] | None = None, dimensions: Sequence[str] | None = None,
                     flags: Sequence[FlagRule] = (), human_flag: FlagRule | None = None,
                     same_scale: Iterable[tuple[str, str]] = (),
                     n_resamples: int = ag.DEFAULT_RESAMPLES, seed: int = ag.DEFAULT_SEED
                     ) -> dict[str, Any]:
    """Agreement of every scored metric with every rated dimension, joined on (note_id, system).

    A summary rated by several raters counts once, with the mean of their values;
    ``mean_difference`` is metric minus human. Rank correlations apply to any pair.
    The statistics that compare values (ICC, mean difference, limits of agreement,
    kappa) apply only where the two measure the same thing on the same scale: both
    on the 1-5 rating scale (a judge attribute against physicians' 1-5 ratings), both
    binary, or a (metric, dimension) pair the caller declares in ``same_scale``
    (a concept recall against a human fact recall, both proportions). Two proportions
    are not assumed comparable: ROUGE-1 and a fact precision are both in 0..1 and
    measure different things. The kappa needs the 1-5 scale. Raises ``InputError``
    when no rating joins any score.
    """
    declared = set(same_scale)
    ratings = list(ratings)
    if flags and human_flag is None:
        raise InputError("automatic flags need a human flag to compare with (--human-flag DIMENSION>=X)")
    by_dimension: dict[str, dict[tuple[str, str], dict[str, float]]] = defaultdict(dict)
    for r in ratings:
        by_dimension[r.dimension].setdefault((r.note_id, r.system), {})[r.rater] = r.value
    human = {d: {key: float(np.mean(list(v.values()))) for key, v in items.items()}
             for d, items in by_dimension.items()}
    by_metric: dict[str, dict[tuple[str, str], float]] = defaultdict(dict)
    for s in scores:
        if s.value is not None and math.isfinite(s.value):
            by_metric[s.metric][(s.note_id, s.system)] = s.value
    common = {"n_resamples": n_resamples, "seed": seed}

    compared = sorted(d for d in human if dimensions is None or d in dimensions)
    rows = []
    for dimension in compared:
        for metric in sorted(m for m in by_metric if metrics is None or m in metrics):
            keys = [k for k in human[dimension] if k in by_metric[metric]]
            if not keys:
                continue
            x = np.array([by_metric[metric][k] for k in keys])
            y = np.array([human[dimension][k] for k in keys])
            scales = ag.infer_scale(x), ag.infer_scale(y)
            rating_scale = scales[0] == scales[1] and scales[0] in ("1-5", "0/1")
            same = rating_scale or (metric, dimension) in declared
            stats = ag.paired_statistics(x, y, same_scale=same,
                                         kappa_scale=ag.LIKERT if same and scales == ("1-5", "1-5") else None,
                                         **common)
            rows.append({"dimension": dimension, "metric": metric, "n": len(keys),
                         "scale_metric": scales[0], "scale_human": scales[1], "same_scale": same,
                         "statistics": ag.summarize(stats)})
    if not rows:
        rated = {k for d in compared for k in human[d]}
        scored = {k for values in by_metric.values() for k in values}
        raise InputError(_nothing_joins(rated, scored))

    flag_rows = []
    if human_flag is not None:
        if human_flag.name not in human:
            raise InputError(f"no ratings on dimension {human_flag.name!r} for --human-flag; "
                             f"rated dimensions: {', '.join(sorted(human)) or 'none'}")
        truth_by_key = {k: human_flag.applies(v) for k, v in human[human_flag.name].items()}
        for rule in flags:
            keys = [k for k in truth_by_key if k in by_metric.get(rule.name, {})]
            if not keys:
                raise InputError(f"no score of metric {rule.name!r} joins the ratings of "
                                 f"{human_flag.name!r}; scored metrics: {', '.join(sorted(by_metric))}")
            pred = np.array([rule.applies(by_metric[rule.name][k]) for k in keys])
            truth = np.array([truth_by_key[k] for k in keys])
            flag_rows.append({
                "flag": str(rule), "human_flag": str(human_flag), "n": len(keys),
                "tp": int((pred & truth).sum()), "fp": int((pred & ~truth).sum()),
                "fn": int((~pred & truth).sum()), "tn": int((~pred & ~truth).sum()),
                "statistics": ag.summarize(ag.flag_statistics(pred, truth, **common))})

    return {"n_ratings": len(ratings), "resamples": n_resamples, "seed": seed,
            "metric_vs_human": rows, "inter_rater": _inter_rater({d: by_dimension[d] for d in compared}, **common),
            "flags": flag_rows}


def _inter_rater(by_dimension: dict[str, dict[tuple[str, str], dict[str, float]]],
                 **common: Any) -> list[dict[str, Any]]:
    """Agreement between raters of the same summaries: each pair, then ICC across all raters."""
    rows: list[dict[str, Any]] = []
    for dimension in sorted(by_dimension):
        items = by_dimension[dimension]
        raters = sorted({rater for values in items.values() for rater in values})
        for a, b in combinations(raters, 2):
            keys = [k for k, values in items.items() if a in values and b in values]
            if not keys:
                continue
            x = np.array([items[k][a] for k in keys])
            y = np.array([items[k][b] for k in keys])
            scale = ag.infer_scale(np.concatenate([x, y]))
            stats = ag.paired_statistics(x, y, same_scale=True,
                                         kappa_scale=ag.LIKERT if scale == "1-5" else None, **common)
            rows.append({"dimension": dimension, "raters": [a, b], "n": len(keys),
                         "statistics": ag.summarize(stats)})
        complete = [k for k, values in items.items() if all(r in values for r in raters)]
        if len(raters) > 2 and complete:
            table = np.array([[items[k][r] for r in raters] for k in complete])
            rows.append({"dimension": dimension, "raters": raters, "n": len(complete),
                         "statistics": ag.summarize(ag.rater_table_statistics(table, **common))})
    return rows


def _nothing_joins(rated: set[tuple[str, str]], scored: set[tuple[str, str]]) -> str:
    if not rated:
        return "no ratings to compare (import some with `clinsum feedback import FILE`)"
    if not scored:
        return "no scores to compare with the ratings (score summaries with `clinsum score` or `clinsum run`)"
    rated_systems = sorted({system for _, system in rated})
    scored_systems = sorted({system for _, system in scored})
    return (f"no rating joins a score on (note_id, system): {len(rated)} rated summaries "
            f"(systems {', '.join(rated_systems[:5])}), {len(scored)} scored summaries "
            f"(systems {', '.join(scored_systems[:5])})")
