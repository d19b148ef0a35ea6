"""One place builds providers and judges from specs: prices, offline, labels and one judge schema."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clinsum.config import RunConfig, load_config
from clinsum.dispatch import Dispatcher
from clinsum.errors import ConfigError
from clinsum.evaluation import build_evaluators, build_systems
from clinsum.evaluators.judge import JudgeEvaluator

PRICES = {"extractive:*": {"input_per_mtok": 1.0, "output_per_mtok": 2.0}}


def _judge(evaluators: list[object]) -> JudgeEvaluator:
    (judge,) = [e for e in evaluators if isinstance(e, JudgeEvaluator)]
    return judge


def test_judges_get_the_run_prices_like_providers() -> None:
    config = RunConfig(providers=["extractive:lead"], metrics=["judge"], prices=PRICES,  # type: ignore[list-item]
                       judge={"judges": ["extractive:centroid"]})  # type: ignore[arg-type]
    (system,) = build_systems(config)
    judge = _judge(build_evaluators(config, Dispatcher(None)))
    assert system.provider.options.prices == PRICES
    assert judge.providers[0].options.prices == PRICES


def test_a_judge_own_prices_option_wins_over_the_run_table() -> None:
    own = {"input_per_mtok": 9.0, "output_per_mtok": 9.0}
    config = RunConfig(metrics=["judge"], prices=PRICES, judge={  # type: ignore[arg-type]
        "judges": ["extractive:lead"], "provider_options": {"extractive:lead": {"prices": own}}})
    assert _judge(build_evaluators(config, Dispatcher(None))).providers[0].options.prices == own


def test_the_judge_table_accepts_every_judge_option(tmp_path: Path) -> None:
    path = tmp_path / "eval.toml"
    path.write_text('[judge]\njudges = ["extractive:lead", "extractive:centroid"]\nsamples = 2\n'
                    'temperature = 0.5\nattributes = ["accurate", "thorough"]\nmax_invalid_retries = 1\n'
                    'target_reader = "a nephrologist"\n'
                    '[judge.provider_options]\n"*" = { max_output_tokens = 300 }\n'
                    '"extractive:centroid" = { max_output_tokens = 200 }\n')
    config = load_config(path)
    judge = _judge(build_evaluators(config.model_copy(update={"metrics": ["judge"]}), Dispatcher(None)))
    assert judge.rubric.names == ["accurate", "thorough"]
    assert (judge.samples, judge.temperature, judge.max_invalid_retries) == (2, 0.5, 1)
    assert judge.target_reader == "a nephrologist"
    assert [p.options.max_output_tokens for p in judge.providers] == [300, 200]


def test_a_judge_table_typo_names_the_valid_options(tmp_path: Path) -> None:
    path = tmp_path / "eval.toml"
    path.write_text('[judge]\njudges = ["extractive:lead"]\nsample = 2\n')
    with pytest.raises(ConfigError, match=r"unknown key 'sample' in \[judge\]; valid keys: judges, "
                                          r"provider_options, samples,"):
        load_config(path)


def test_replay_keeps_the_replayed_system_name_as_its_label(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    path.write_text("".join(json.dumps({"note_id": "n1", "system": name, "text": "t"}) + "\n"
                            for name in ("production", "candidate")))
    config = RunConfig(providers=[{"spec": f"replay:{path}", "options": {"system": "production"}},  # type: ignore[list-item]
                                  {"spec": f"replay:{path}", "options": {"system": "candidate"}, "name": "new"}])
    assert [s.label for s in build_systems(config)] == ["production", "new"]


def test_offline_refuses_a_remote_summarizer_in_build_systems(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    config = RunConfig(providers=["anthropic:claude-sonnet-4-5"], offline=True)  # type: ignore[list-item]
    with pytest.raises(ConfigError, match=r"^offline mode: 'anthropic:claude-sonnet-4-5'"):
        build_systems(config)


def test_a_judge_option_typo_names_the_valid_options() -> None:
    from clinsum.evaluators.judge import create

    with pytest.raises(ConfigError) as caught:
        create({"judges": ["extractive:lead"], "sampels": 2}, Dispatcher(None))
    assert str(caught.value).startswith("invalid judge options: unknown option 'sampels'; valid options: "
                                        "judges, provider_options, samples,")
