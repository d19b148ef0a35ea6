from __future__ import annotations

import clinsum
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
