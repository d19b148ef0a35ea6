from __future__ import annotations

import pytest

from clinsum.config import RunConfig, apply_flags, load_config, parse_option
from clinsum.errors import ConfigError
from clinsum.prompts import load_template
from clinsum.records import Note


def test_a_config_file_says_what_the_flags_say(tmp_path):
    (tmp_path / "conf").mkdir()
    path = tmp_path / "conf" / "eval.toml"
    path.write_text(
        'notes = "notes.jsonl"\nout = "results"\nmetrics = ["overlap"]\nconcurrency = 4\noffline = true\n'
        'providers = ["extractive:lead"]\n'
        '[[providers]]\nspec = "ollama:llama3.1:8b"\nname = "llama"\noptions = { temperature = 0.2 }\n'
        '[judge]\njudges = ["ollama:llama3.1:8b"]\nsamples = 3\n')
    with pytest.raises(ConfigError):  # providers given twice is a TOML error
        load_config(path)
    path.write_text(path.read_text().replace('providers = ["extractive:lead"]\n', ""))
    config = load_config(path)
    assert config.notes == str(tmp_path / "conf" / "notes.jsonl")  # relative to the file
    assert config.out == str(tmp_path / "conf" / "results")
    assert config.providers[0].name == "llama" and config.providers[0].options == {"temperature": 0.2}
    assert config.judge is not None and config.judge.samples == 3
    assert config.offline and config.concurrency == 4


def test_unknown_keys_are_refused_with_their_path(tmp_path):
    path = tmp_path / "eval.toml"
    path.write_text('notes = "n.jsonl"\n[[providers]]\nspec = "extractive:lead"\ntemprature = 0\n')
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value) == (f"{path}: unknown key 'temprature' in providers[0]; "
                                 "valid keys: spec, name, options")


@pytest.mark.parametrize(("toml", "expected"), [
    ('notse = "n.jsonl"\n', "unknown key 'notse'; valid keys: notes, providers, metrics,"),
    ('[judge]\njudgs = ["x:y"]\n', "unknown key 'judgs' in [judge]; valid keys: judges,"),
    ('concurrency = 0\n', "concurrency: Input should be greater than or equal to 1"),
])
def test_config_errors_are_one_line_naming_the_key(tmp_path, toml, expected):
    path = tmp_path / "eval.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert "\n" not in message and "pydantic" not in message and "For further information" not in message
    assert expected in message


def test_unknown_provider_option_names_the_valid_ones():
    from clinsum.providers.registry import create

    with pytest.raises(ConfigError) as caught:
        create("extractive:lead", {"temprature": 0})
    message = str(caught.value)
    assert message.startswith("invalid options for provider 'extractive:lead': unknown option 'temprature'; "
                              "valid options: temperature, max_output_tokens,")
    assert "max_words" in message and "\n" not in message


def test_flags_override_the_file_and_options_target_one_provider():
    config = RunConfig(notes="a.jsonl", providers=[{"spec": "ollama:llama3.1:8b"}, {"spec": "extractive:lead"}])  # type: ignore[list-item]
    changed = apply_flags(config, notes="b.jsonl", limit=5,
                          provider_options=["ollama:llama3.1:8b.num_ctx=8192", "temperature=0.5"])
    assert changed.notes == "b.jsonl" and changed.limit == 5
    ollama, lead = changed.providers
    assert ollama.options == {"num_ctx": 8192, "temperature": 0.5}
    assert lead.options == {"temperature": 0.5}
    with pytest.raises(ConfigError, match="no provider 'vertex:x'"):
        apply_flags(config, provider_options=["vertex:x.temperature=1"])


def test_judge_flags_add_the_judge_metric():
    config = apply_flags(RunConfig(), judges=["ollama:m"], judge_samples=2)
    assert config.metrics[-1] == "judge" and config.judge is not None and config.judge.samples == 2


def test_parse_option_reads_json_values():
    assert parse_option("seed=7") == (None, "seed", 7)
    assert parse_option("x:y.system_prompt=be brief") == ("x:y", "system_prompt", "be brief")
    with pytest.raises(ConfigError):
        parse_option("novalue")


def test_prompt_templates_are_versioned(tmp_path):
    default = load_template()
    assert default.version == "summarize_v2" and "$note" in default.text
    note = Note(id="n", text="Denies chest pain.")
    assert "Denies chest pain." in default.render(note)
    custom = tmp_path / "t.txt"
    custom.write_text("Summarize: $note")
    first = load_template(custom)
    custom.write_text("Summarize briefly: $note")
    assert first.version.startswith("custom-") and load_template(custom).version != first.version
    custom.write_text("no placeholder")
    with pytest.raises(ConfigError, match=r"must contain \$note"):
        load_template(custom)


@pytest.mark.parametrize(("toml", "where"), [
    ('[prices."extractive:*"]\ninput_per_mtok = nan\n', "prices.extractive:*.input_per_mtok"),
    ("batch_poll_s = inf\n", "batch_poll_s"),
    ('[[providers]]\nspec = "extractive:lead"\noptions = { temperature = -inf }\n',
     "providers[0].options.temperature"),
])
def test_nan_and_infinity_in_a_config_are_refused_by_path(tmp_path, toml, where):
    path = tmp_path / "eval.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value) == f"{path}: {where}: numbers must be finite"


def test_a_nan_provider_option_flag_is_refused():
    config = RunConfig(providers=[{"spec": "extractive:lead"}])  # type: ignore[list-item]
    with pytest.raises(ConfigError, match=r"providers\[0\]\.options\.temperature: numbers must be finite"):
        apply_flags(config, provider_options=["temperature=NaN"])
