"""The cost estimate printed before a run, and --max-cost refusing to start above it."""

from __future__ import annotations

import json
import math

import pytest
from fakes import ScriptedProvider
from judge_fakes import ScriptedJudge, verdict
from typer.testing import CliRunner

from clinsum.cli import app
from clinsum.cli.common import EXIT_ERROR
from clinsum.config import RunConfig
from clinsum.costs import CHARS_PER_TOKEN, check_max_cost, estimate, tokens
from clinsum.errors import ConfigError
from clinsum.prompts import load_template
from clinsum.providers import registry
from clinsum.records import Note, Summary
from clinsum.runner import System
from clinsum.store import Store

NOTES = [Note(id=f"n{i}", text=f"Patient {i} reports cough for {i} days. Denies fever. " * (i + 1))
         for i in range(4)]
PRICE = {"input_per_mtok": 3.0, "output_per_mtok": 15.0}
CALLS: list[str] = []


@pytest.fixture(autouse=True)
def fakes():
    """`priced:m` summarizes (and counts its calls); `judgefake:m` judges, always with a verdict."""
    CALLS.clear()

    def summarizer(spec, options):
        def answer(request):
            CALLS.append(request.note.id)
            return "Cough, no fever."
        return ScriptedProvider(spec, options, default=answer)

    registry.register("priced", summarizer)
    registry.register("judgefake", lambda spec, options: ScriptedJudge(spec, [verdict(4)], repeat_last=True))


def by_hand(notes, price=PRICE, output=1024):
    template = load_template(None)
    return sum((tokens(template.render(n)) * price["input_per_mtok"] + output * price["output_per_mtok"]) / 1e6
               for n in notes)


def test_tokens_are_characters_over_the_stated_ratio():
    assert tokens("x" * 35) == math.ceil(35 / CHARS_PER_TOKEN) == 10
    assert tokens("x" * 36) == 11


def test_a_summarizer_costs_its_prompts_and_max_output_tokens_at_its_price(tmp_path):
    config = RunConfig(prices={"priced:m": PRICE})
    provider = registry.build("priced:m", {}, prices=config.prices)
    store = Store.open(tmp_path / "c.db")
    cost = estimate(config, NOTES, systems=[System("priced:m", provider)], template=load_template(None), store=store)
    store.close()
    [line] = cost.lines
    assert (line.calls, line.cached, line.output_tokens) == (4, 0, 4 * 1024)
    assert cost.total == pytest.approx(by_hand(NOTES))
    assert cost.at_most == pytest.approx(cost.total)  # no judge: nothing to retry


def test_batch_halves_the_price_where_the_batch_api_does(monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test")
    pytest.importorskip("anthropic")
    provider = registry.build("anthropic:claude-haiku-4-5", {})
    systems, template = [System("claude", provider)], load_template(None)
    live = estimate(RunConfig(), NOTES, systems=systems, template=template).total
    batch = estimate(RunConfig(batch=True), NOTES, systems=systems, template=template).total
    assert live is not None and batch == pytest.approx(live / 2)
    assert live == pytest.approx(by_hand(NOTES, {"input_per_mtok": 1.0, "output_per_mtok": 5.0},
                                         output=provider.options.max_output_tokens))


def test_judge_calls_are_summaries_times_samples_and_retries_bound_the_upper_figure():
    config = RunConfig(prices={"judgefake:m": PRICE})
    from clinsum.dispatch import Dispatcher
    from clinsum.evaluators.judge import create

    summaries = [Summary(note_id=n.id, system="prod", text="Cough without fever.") for n in NOTES]
    summaries.append(Summary(note_id="n0", system="empty", text="  "))  # not judged
    summaries.append(Summary(note_id="n1", system="failed", error="boom"))  # not judged
    judge = create({"judges": ["judgefake:m"], "samples": 2, "temperature": 0.7}, Dispatcher(None),
                   prices=config.prices)
    cost = estimate(config, NOTES, summaries=summaries, evaluators=[judge])
    [line] = cost.lines
    assert line.calls == 4 * 2 and line.most_calls == 4 * 2 * 3  # two invalid-answer retries allowed
    assert cost.total is not None and cost.at_most is not None and cost.at_most > 2 * cost.total
    judge = create({"judges": ["judgefake:m"], "max_invalid_retries": 0}, Dispatcher(None), prices=config.prices)
    cost = estimate(config, NOTES, summaries=summaries, evaluators=[judge])
    assert cost.lines[0].calls == 4 and cost.at_most == pytest.approx(cost.total)


def test_an_unknown_price_is_unknown_and_max_cost_refuses_it():
    provider = registry.build("priced:m", {})
    cost = estimate(RunConfig(), NOTES, systems=[System("priced:m", provider)], template=load_template(None))
    assert cost.total is None and cost.unknown == ["summarizer priced:m"]
    assert "unknown" in "\n".join(cost.describe())
    check_max_cost(cost, None)  # without a cap the run may go ahead
    with pytest.raises(ConfigError, match=r"no price for summarizer priced:m.*\[prices"):
        check_max_cost(cost, 100.0)


def test_extractive_baselines_cost_nothing():
    provider = registry.build("extractive:lead", {})
    cost = estimate(RunConfig(), NOTES, systems=[System("lead", provider)], template=load_template(None))
    assert cost.total == 0 and not cost.unknown
    check_max_cost(cost, 0.0)


# -- the commands -------------------------------------------------------------------


@pytest.fixture
def run_files(tmp_path):
    notes = tmp_path / "notes.jsonl"
    notes.write_text("".join(n.model_dump_json() + "\n" for n in NOTES))
    config = tmp_path / "run.toml"
    config.write_text('[prices."priced:m"]\ninput_per_mtok = 3.0\noutput_per_mtok = 15.0\n'
                      '[prices."judgefake:m"]\ninput_per_mtok = 3.0\noutput_per_mtok = 15.0\n')
    return notes, config


def invoke(*args: str):
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def runs(db):
    store = Store.open(db)
    try:
        return store.runs()
    finally:
        store.close()


def test_max_cost_below_the_estimate_exits_2_and_runs_nothing(tmp_path, run_files):
    notes, config = run_files
    db = tmp_path / "c.db"
    cap = by_hand(NOTES) * 0.9
    result = invoke("run", str(config), "--notes", str(notes), "-p", "priced:m", "-m", "length", "--db", str(db),
                    "--max-cost", f"{cap:.6f}")
    assert result.exit_code == EXIT_ERROR, result.output
    assert f"may cost up to ${by_hand(NOTES):,.2f}" in result.output and "nothing was run" in result.output
    assert "--sample" in result.output  # how to lower it
    assert CALLS == [] and runs(db) == []
    result = invoke("run", str(config), "--notes", str(notes), "-p", "priced:m", "-m", "length", "--db", str(db),
                    "--max-cost", f"{by_hand(NOTES) * 1.1:.6f}")
    assert result.exit_code == 0, result.output
    assert sorted(CALLS) == [n.id for n in NOTES] and len(runs(db)) == 1


def test_the_estimate_is_printed_and_counts_cached_answers_and_stored_output(tmp_path, run_files):
    notes, config = run_files
    db = tmp_path / "c.db"
    first = invoke("run", str(config), "--notes", str(notes), "-p", "priced:m", "-m", "length", "--db", str(db))
    assert first.exit_code == 0, first.output
    assert "estimated cost" in first.output and f"${by_hand(NOTES):,.2f}" in first.output
    assert "output max_output_tokens (1024)" in first.output
    again = invoke("run", str(config), "--notes", str(notes), "-p", "priced:m", "-m", "length", "--db", str(db))
    assert again.exit_code == 0
    row = next(line for line in again.output.splitlines() if line.strip().startswith("summarizer priced:m"))
    assert row.split()[2:4] == ["0", "4"] and "$0.00" in row  # no call to make: 4 answered by the cache
    # new notes: not cached, and the output is expected at the mean of the stored summaries (5 tokens)
    other = tmp_path / "other.jsonl"
    other.write_text(json.dumps({"id": "x", "text": "Rash on the left arm."}) + "\n")
    third = invoke("run", str(config), "--notes", str(other), "-p", "priced:m", "-m", "length", "--db", str(db))
    assert "output mean of 8 stored summaries (5 tokens)" in third.output


def test_score_with_a_judge_prints_the_judge_and_max_cost_applies(tmp_path, run_files):
    notes, config = run_files
    summaries = tmp_path / "prod.jsonl"
    summaries.write_text("".join(json.dumps({"note_id": n.id, "system": "production", "text": "Cough."}) + "\n"
                                 for n in NOTES))
    db = tmp_path / "c.db"
    result = invoke("score", str(summaries), "--notes", str(notes), "--config", str(config), "-m", "length",
                    "--judge", "judgefake:m", "--db", str(db), "--max-cost", "0.0001")
    assert result.exit_code == EXIT_ERROR, result.output
    assert "judge judgefake:m" in result.output and runs(db) == []
    result = invoke("score", str(summaries), "--notes", str(notes), "-m", "length", "--judge", "judgefake:m",
                    "--db", str(db), "--max-cost", "1000")
    assert result.exit_code == EXIT_ERROR and "no price for judge judgefake:m" in result.output
    result = invoke("score", str(summaries), "--notes", str(notes), "--config", str(config), "-m", "length",
                    "--judge", "judgefake:m", "--db", str(db), "--max-cost", "1000", "--sample", "2")
    assert result.exit_code == 0, result.output
    row = next(line for line in result.output.splitlines() if line.strip().startswith("judge judgefake:m"))
    assert row.split()[2] == "2"  # two sampled summaries, one call each


class CachedJudge(ScriptedJudge):
    cacheable = True


def test_a_second_score_finds_the_judge_answers_in_the_cache(tmp_path, run_files):
    notes, config = run_files
    config.write_text(config.read_text() + '[prices."cjudge:m"]\ninput_per_mtok = 3.0\noutput_per_mtok = 15.0\n')
    registry.register("cjudge", lambda spec, options: CachedJudge(spec, [verdict(4)], repeat_last=True))
    summaries = tmp_path / "prod.jsonl"
    summaries.write_text("".join(json.dumps({"note_id": n.id, "system": "production", "text": "Cough."}) + "\n"
                                 for n in NOTES))
    db = tmp_path / "c.db"
    args = ("score", str(summaries), "--notes", str(notes), "--config", str(config), "-m", "length",
            "--judge", "cjudge:m", "--db", str(db))
    first = invoke(*args)
    assert first.exit_code == 0, first.output
    row = next(line for line in first.output.splitlines() if line.strip().startswith("judge cjudge:m"))
    assert row.split()[2:4] == ["4", "0"]
    again = invoke(*args, "--max-cost", "0")
    assert again.exit_code == 0, again.output
    row = next(line for line in again.output.splitlines() if line.strip().startswith("judge cjudge:m"))
    assert row.split()[2:4] == ["0", "4"] and "$0.00" in row
