from __future__ import annotations

import pytest
from pydantic import ValidationError

import clinsum
from clinsum.errors import ConfigError, InputError
from clinsum.records import Note


def test_evaluate_runs_the_whole_pipeline_in_memory():
    notes = [Note(id="1", text="Patient denies chest pain. She takes aspirin daily. Follow up in a week.",
                  reference="No chest pain. On aspirin."),
             Note(id="2", text="Cough for two days. No fever. Lungs clear.", reference="Two days of cough.")]
    result = clinsum.evaluate(notes, ["extractive:lead", {"spec": "extractive:lead", "name": "short",
                                                          "options": {"max_words": 5}}],
                              metrics=["overlap", "length"])
    assert {s.system for s in result.summaries} == {"extractive:lead", "short"}
    words = {r.system: r.mean for r in result.leaderboard if r.metric == "summary_words"}
    assert words["short"] is not None and words["extractive:lead"] is not None
    assert words["short"] < words["extractive:lead"]
    assert {s.metric for s in result.scores} >= {"rouge1", "summary_words", "failed"}


def test_a_price_table_in_the_config_does_not_break_local_providers():
    notes = [Note(id="1", text="Cough for two days. No fever.")]
    result = clinsum.evaluate(notes, ["extractive:lead"], metrics=["length"],
                              prices={"anthropic:claude-sonnet-5-5": {"input_per_mtok": 3, "output_per_mtok": 15}})
    assert [s.ok for s in result.summaries] == [True]


NOTES = [Note(id="1", text="Cough for two days. No fever.")]


@pytest.mark.parametrize(("arguments", "named"), [
    ({"concurrency": 0}, r"concurrency: .*greater than or equal to 1"),
    ({"engine": "gpu"}, r"engine: .*'local' or 'ray'"),
    ({"judge": {"samples": 0}}, r"judge\.samples: .*greater than or equal to 1"),
    ({"concurency": 4}, r"unknown argument 'concurency'; valid arguments: .*concurrency"),
])
def test_a_bad_keyword_is_a_config_error_naming_it_and_its_valid_values(arguments, named):
    with pytest.raises(ConfigError, match=named) as raised:
        clinsum.evaluate(NOTES, ["extractive:lead"], metrics=["length"], **arguments)
    assert not isinstance(raised.value.__cause__, ValidationError)  # no pydantic dump chained on


def test_a_bad_provider_table_or_a_lone_spec_is_a_config_error():
    with pytest.raises(ConfigError, match=r"unknown argument 'label' in providers\[0\]; valid .*: spec, name, "
                                          r"options"):
        clinsum.evaluate(NOTES, [{"spec": "extractive:lead", "label": "x"}], metrics=["length"])
    with pytest.raises(ConfigError, match=r"providers must be a list, got str; write \['extractive:lead'\]"):
        clinsum.evaluate(NOTES, "extractive:lead", metrics=["length"])


def test_notes_may_be_dicts_and_a_bad_one_is_an_input_error_naming_its_position_and_field():
    result = clinsum.evaluate([{"id": "a", "text": "Cough for two days. No fever."}], ["extractive:lead"],
                              metrics=["length"])
    assert [s.note_id for s in result.summaries] == ["a"]
    with pytest.raises(InputError, match=r"notes\[1\]: text: Field required") as raised:
        clinsum.evaluate([NOTES[0], {"id": "b"}], ["extractive:lead"], metrics=["length"])
    assert raised.value.field == "text"
    with pytest.raises(InputError, match=r"notes\[0\]: .*unknown field 'txt'; valid fields: .*text"):
        clinsum.evaluate([{"id": "b", "txt": "x"}], ["extractive:lead"], metrics=["length"])
