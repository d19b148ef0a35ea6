"""One way to do each thing: one bootstrap, one KEY=VALUE reader, one retry-after reader,
and a provider registry that tests cannot leak into each other."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from fakes import ScriptedProvider
from scipy import stats
from typer.testing import CliRunner

from clinsum.cli import app
from clinsum.cli.common import EXIT_ERROR
from clinsum.config import parse_option
from clinsum.errors import ConfigError
from clinsum.evaluators import agreement as ag
from clinsum.evaluators.aggregate import bootstrap_ci, paired_difference
from clinsum.evaluators.bootstrap import percentile_interval
from clinsum.providers import registry
from clinsum.providers.common import retry_after_in, retry_after_of
from clinsum.records import Score

# -- one bootstrap -----------------------------------------------------------------------------------


def test_aggregator_and_agreement_give_the_same_interval_for_the_same_statistic() -> None:
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=40), rng.normal(size=40)
    for confidence in (0.8, 0.95):
        agreement = ag.paired_statistics(x, y, same_scale=True, n_resamples=500, seed=4,
                                         confidence=confidence)["mean_difference"]
        aggregator = bootstrap_ci(x - y, n_resamples=500, seed=4, confidence=confidence)
        assert (agreement.ci_low, agreement.ci_high) == pytest.approx(aggregator, abs=1e-12)
        reference = stats.bootstrap((x - y,), np.mean, n_resamples=500, confidence_level=confidence,
                                    method="percentile", vectorized=True,
                                    rng=np.random.default_rng(4)).confidence_interval
        assert aggregator == pytest.approx((reference.low, reference.high), abs=1e-12)


def test_paired_difference_takes_the_confidence_level() -> None:
    scores = [Score(note_id=f"n{i}", system=s, metric="m", value=v, evaluator="e", version="1")
              for i in range(30) for s, v in (("a", 0.5 + 0.01 * i), ("b", 0.5 - 0.013 * (i % 7)))]
    narrow = paired_difference(scores, "m", "a", "b", confidence=0.5)
    wide = paired_difference(scores, "m", "a", "b", confidence=0.99)
    assert wide.ci_low < narrow.ci_low < narrow.ci_high < wide.ci_high  # type: ignore[operator]


def test_agreement_confidence_level_changes_every_interval() -> None:
    rng = np.random.default_rng(8)
    truth = rng.random(60) < 0.4
    pred = np.where(rng.random(60) < 0.8, truth, ~truth)
    at_80 = ag.flag_statistics(pred, truth, n_resamples=300, confidence=0.8)["f1"]
    at_99 = ag.flag_statistics(pred, truth, n_resamples=300, confidence=0.99)["f1"]
    assert at_80.value == at_99.value
    assert at_99.ci_low < at_80.ci_low < at_80.ci_high < at_99.ci_high  # type: ignore[operator]
    table = rng.integers(1, 6, size=(20, 3)).astype(float)
    assert ag.rater_table_statistics(table, confidence=0.5)["icc_2_1"].ci_high \
        < ag.rater_table_statistics(table, confidence=0.99)["icc_2_1"].ci_high  # type: ignore[operator]


def test_undefined_resamples_are_left_out_and_counted() -> None:
    values = np.array([0.0, 0.0, 0.0, 1.0])

    def share_of_ones_or_nan(indices: np.ndarray) -> np.ndarray:
        picked = values[indices]
        return np.where(picked.sum(axis=1) == 0, np.nan, picked.mean(axis=1))

    interval = percentile_interval(share_of_ones_or_nan, 4, n_resamples=1000, seed=1)
    draws = np.random.default_rng(1).integers(0, 4, (1000, 4))
    no_one = int((values[draws].sum(axis=1) == 0).sum())
    assert interval.undefined == no_one > 0
    finite = values[draws].mean(axis=1)[values[draws].sum(axis=1) > 0]
    assert (interval.low, interval.high) == pytest.approx(tuple(np.percentile(finite, [2.5, 97.5])))
    with pytest.raises(ValueError, match="confidence"):
        percentile_interval(share_of_ones_or_nan, 4, confidence=1.0)


# -- one KEY=VALUE reader ------------------------------------------------------------------------------

def test_one_reader_for_every_key_value_flag() -> None:
    assert parse_option("ollama:llama3.1:8b.num_ctx=8192") == ("ollama:llama3.1:8b", "num_ctx", 8192)
    assert parse_option("temperature=0", flag="--judge-option", scoped=False) == (None, "temperature", 0)
    assert parse_option("a.b=x", scoped=False) == (None, "a.b", "x")
    assert parse_option("judge_accurate@x:m1.5=Accurate", flag="--same-scale", scoped=False, typed=False) == (
        None, "judge_accurate@x:m1.5", "Accurate")
    assert parse_option(" seed = 7", scoped=False) == (None, "seed", 7)
    for text, kwargs, message in [
        ("novalue", {}, "invalid --provider-option 'novalue': expected [SPEC.]KEY=VALUE"),
        ("spec.=3", {}, "invalid --provider-option 'spec.=3'"),
        ("=3", {"flag": "--judge-option", "scoped": False}, "invalid --judge-option '=3': expected KEY=VALUE"),
        ("m=", {"flag": "--same-scale", "scoped": False, "typed": False, "form": "METRIC=DIMENSION"},
         "invalid --same-scale 'm=': expected METRIC=DIMENSION"),
    ]:
        with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace(".]", r".\]")):
            parse_option(text, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(("args", "message"), [
    (["compare-judge", "--judge", "x:y", "--judge-option", "temperature"],
     "invalid --judge-option 'temperature': expected KEY=VALUE"),
    (["agreement", "--same-scale", "concept_recall"],
     "invalid --same-scale 'concept_recall': expected METRIC=DIMENSION"),
])
def test_commands_report_a_bad_key_value_the_same_way(tmp_path, args: list[str], message: str) -> None:
    from clinsum.records import Note, Summary
    from clinsum.store import Store

    db = tmp_path / "c.db"
    store = Store.open(db)
    store.create_run("r1", {}, kind="run", version="t", notes=[Note(id="n", text="x")])
    for system in ("a", "b"):
        store.add_summary("r1", Summary(note_id="n", system=system, text="x"))
    store.close()
    result = CliRunner().invoke(app, [*args, "--db", str(db)])
    assert result.exit_code == EXIT_ERROR, result.output
    assert message in result.output


# -- one retry-after reader ----------------------------------------------------------------------------

def _error(headers: dict[str, str] | None = None, details: object = None) -> Exception:
    exc = Exception("429")
    exc.response = SimpleNamespace(headers=headers) if headers is not None else None  # type: ignore[attr-defined]
    exc.details = details  # type: ignore[attr-defined]
    return exc


def test_one_retry_after_reader_for_every_adapter() -> None:
    assert retry_after_of(_error({"retry-after": "17"})) == 17.0
    assert retry_after_of(_error({"retry-after-ms": "1500", "retry-after": "9"})) == 1.5
    assert retry_after_of(_error({"retry-after-ms": "soon", "retry-after": "9"})) == 9.0
    assert retry_after_of(_error({"retry-after": "-5"})) == 0.0
    assert retry_after_of(_error({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"})) == 0.0  # in the past
    retry_info = {"error": {"details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo",
                                         "retryDelay": "31s"}]}}
    assert retry_after_of(_error({}, retry_info)) == 31.0
    assert retry_after_of(_error(None, retry_info["error"])) == 31.0
    assert retry_after_of(_error({"retry-after": "nonsense"})) is None
    assert retry_after_of(Exception("no response at all")) is None
    # the same reader for a plain HTTP response (Vertex batch calls the REST API with requests)
    assert retry_after_in({"retry-after": "5"}) == 5.0
    assert retry_after_in({}, retry_info) == 31.0 and retry_after_in(None, None) is None


def test_the_adapters_have_no_retry_after_reader_of_their_own() -> None:
    from pathlib import Path

    import clinsum.providers as package

    for module in Path(package.__file__).parent.glob("*.py"):
        if module.name != "common.py":
            text = module.read_text().lower()
            assert '"retry-after' not in text and "retrydelay" not in text, module.name


# -- the provider registry does not leak between tests ------------------------------------------------
# The autouse fixture in conftest.py restores registry._REGISTERED after every test; these two run in
# file order and the second sees nothing of the first.

def test_registering_a_provider_here() -> None:
    registry.register("leaky", lambda spec, options: ScriptedProvider(spec, options))
    assert "leaky" in registry.available()


def test_does_not_leak_into_the_next_test() -> None:
    assert "leaky" not in registry.available()
    with pytest.raises(ConfigError, match="unknown provider 'leaky'"):
        registry.create("leaky:m")
