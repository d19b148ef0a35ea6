"""The offline providers: extractive baselines (lead, centroid) and replay of stored summaries."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import pytest

import clinsum.inputs
from clinsum.dispatch import Dispatcher
from clinsum.errors import ConfigError, FatalError, SetupError
from clinsum.providers import Request, create
from clinsum.providers.extractive import ExtractiveProvider, centroid, lead, sentences
from clinsum.providers.replay import ReplayProvider
from clinsum.records import Note

NOTES = Path(__file__).resolve().parent.parent / "fixtures" / "aci_notes.jsonl"


def _request(note_id: str = "n1", text: str = "Some text.") -> Request:
    return Request(prompt=f"Summarize:\n{text}", note=Note(id=note_id, text=text))


# --- sentence splitting ------------------------------------------------------------------------


def test_sentences_split_lines_and_drop_section_headers() -> None:
    text = "CHIEF COMPLAINT\n\nKnee pain.\n\nHISTORY OF PRESENT ILLNESS\nShe fell. She limps.\nA/P:\nIce."
    assert sentences(text) == ["Knee pain.", "She fell.", "She limps.", "Ice."]
    # Upper-case lines with values or a full stop are content, not headers.
    assert sentences("VITALS\nBP 130/85. HR 72.\nCBC WNL.\nPLAN:\nRecheck.") == [
        "BP 130/85.", "HR 72.", "CBC WNL.", "Recheck."]


def test_sentences_keep_titles_initials_and_lowercase_continuations_together() -> None:
    text = ("Seen by Dr. Smith and Mr. J. Brown today. Metformin 500 mg b.i.d. for 2 weeks, e.g. with "
            "meals. Temperature 37.5 C. Take aspirin 81 mg p.o. Follow up in 2 weeks.")
    assert sentences(text) == [
        "Seen by Dr. Smith and Mr. J. Brown today.",
        "Metformin 500 mg b.i.d. for 2 weeks, e.g. with meals.",
        "Temperature 37.5 C.",
        "Take aspirin 81 mg p.o.",
        "Follow up in 2 weeks.",
    ]


def test_sentences_keep_list_markers_and_strip_inline_headers() -> None:
    text = "ASSESSMENT AND PLAN\n1. Hypertension.\n2. Diabetes. Check A1c.\nHPI: Chest pain for 2 days."
    assert sentences(text) == ["1. Hypertension.", "2. Diabetes.", "Check A1c.", "Chest pain for 2 days."]


def test_sentences_split_tokenized_dialogue_turns() -> None:
    text = "[doctor] hi , anna . how are you ?\n[patient] fine , thanks ."
    assert sentences(text) == ["[doctor] hi , anna .", "how are you ?", "[patient] fine , thanks ."]


# --- selection ---------------------------------------------------------------------------------


def test_lead_takes_the_first_sentences_that_fit_and_cuts_an_overlong_first_one() -> None:
    candidates = ["one two three.", "four five.", "six seven eight nine.", "ten."]
    assert lead(candidates, 5) == ["one two three.", "four five."]
    assert lead(candidates, 6) == ["one two three.", "four five."]  # a prefix: "ten." is not added
    assert lead(["a b c d e f g h"], 3) == ["a b c"]
    assert lead([], 10) == []


def test_centroid_prefers_central_sentences_skips_duplicates_and_keeps_source_order() -> None:
    candidates = [
        "The weather was sunny and the parking lot was full today.",
        "Patient reports chest pain radiating to the left arm.",
        "Chest pain started two days ago with exertion.",
        "Patient reports chest pain radiating to his left arm.",
        "An ECG shows no acute changes; chest pain likely angina.",
    ]
    chosen = centroid(candidates, 30)
    assert candidates[0] not in chosen
    assert (candidates[1] in chosen) != (candidates[3] in chosen)  # near-duplicates: one, not both
    assert chosen == [c for c in candidates if c in chosen]  # source order
    assert sum(len(c.split()) for c in chosen) <= 30
    assert centroid(candidates, 30) == chosen  # deterministic


@pytest.mark.parametrize("method", ["lead", "centroid"])
@pytest.mark.parametrize("budget", [15, 60, 120])
async def test_real_notes_stay_within_the_budget_and_copy_the_note(method: str, budget: int) -> None:
    provider = create(f"extractive:{method}", {"max_words": budget})
    for line in NOTES.read_text(encoding="utf-8").splitlines():
        note = Note(**json.loads(line))
        generation = await provider.generate(Request(prompt="ignored", note=note))
        assert 0 < len(generation.text.split()) <= budget
        source = " ".join(note.text.split())
        for sentence in generation.text.split("\n"):
            assert " ".join(sentence.split()) in source  # copied (a cut first sentence too)


# --- extractive provider -----------------------------------------------------------------------


async def test_extractive_generation_is_free_local_and_has_no_token_counts() -> None:
    provider = create("extractive:lead", {"max_words": 6})
    assert provider.local and not ExtractiveProvider.cacheable
    generation = await provider.generate(_request(text="Knee pain. Fell on ice. Ice and rest."))
    assert generation.text == "Knee pain.\nFell on ice."
    assert generation.cost_usd == 0.0
    assert generation.input_tokens is None and generation.output_tokens is None
    assert generation.latency_s is not None and generation.latency_s >= 0
    assert generation.model == "lead"


async def test_extractive_reads_the_prompt_when_the_request_has_no_note() -> None:
    provider = create("extractive:lead", {"max_words": 3})
    generation = await provider.generate(Request(prompt="Cough for a week. No fever."))
    assert generation.text == "Cough for a"  # the first sentence, cut to the budget


def test_extractive_refuses_bad_methods_and_options() -> None:
    with pytest.raises(ConfigError, match="known methods: lead, centroid"):
        create("extractive:textrank")
    with pytest.raises(ConfigError, match="max_words"):
        create("extractive:lead", {"max_words": 0})
    with pytest.raises(ConfigError, match="max_wrods"):
        create("extractive:lead", {"max_wrods": 50})


# --- replay ------------------------------------------------------------------------------------


def _write(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def production(tmp_path: Path) -> Path:
    return _write(tmp_path / "production.jsonl", [
        {"note_id": "n1", "system": "prod", "text": "Knee sprain; ice.",
         "usage": {"input_tokens": 900, "output_tokens": 40, "cost_usd": 0.002}, "latency_s": 2.5,
         "request_id": "req-1"},
        {"note_id": "n2", "system": "prod", "text": "", "error": "RateLimited: quota exhausted"},
        {"note_id": "n3", "system": "prod", "text": "Cough, no fever."},
    ])


async def test_replay_serves_the_stored_summary_with_its_usage(production: Path) -> None:
    provider = create(f"replay:{production}")
    assert provider.local and not ReplayProvider.cacheable
    generation = await provider.generate(_request("n1"))
    assert generation.text == "Knee sprain; ice."
    assert (generation.input_tokens, generation.output_tokens, generation.cost_usd) == (900, 40, 0.002)
    assert (generation.latency_s, generation.request_id, generation.model) == (2.5, "req-1", "prod")
    assert (await provider.generate(_request("n3"))).text == "Cough, no fever."


async def test_replay_fails_a_missing_note_or_a_stored_error_naming_it(production: Path) -> None:
    provider = create(f"replay:{production}")
    with pytest.raises(FatalError, match=re.escape(f"note 'n9' in {production}")):
        await provider.generate(_request("n9"))
    with pytest.raises(FatalError, match=r"n2.*RateLimited: quota exhausted"):
        await provider.generate(_request("n2"))


async def test_replay_failures_are_not_retried_by_the_dispatcher(production: Path) -> None:
    dispatcher = Dispatcher(None, base_delay_s=0)
    provider = create(f"replay:{production}")
    with pytest.raises(FatalError):
        await dispatcher.generate(provider, _request("n9"))
    assert dispatcher.calls == 1


async def test_replay_needs_a_system_when_the_file_holds_several(tmp_path: Path) -> None:
    path = _write(tmp_path / "two.jsonl", [{"note_id": "n1", "system": "a", "text": "from a"},
                                           {"note_id": "n1", "system": "b", "text": "from b"}])
    with pytest.raises(SetupError, match=r"2 systems \(a, b\).*option system"):
        await create(f"replay:{path}").generate(_request())
    assert (await create(f"replay:{path}", {"system": "b"}).generate(_request())).text == "from b"
    with pytest.raises(SetupError, match="no summaries of system 'c'; it holds: a, b"):
        await create(f"replay:{path}", {"system": "c"}).generate(_request())


def test_replay_of_a_missing_file_fails_when_built(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="replay file not found"):
        create(f"replay:{tmp_path / 'absent.jsonl'}")


async def test_replay_of_a_bad_file_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"note_id": "n1", "system": "a", "text": "ok"}\n{"note_id": "n2", "text": "x"}\n')
    provider = create(f"replay:{path}")
    for _ in range(2):  # the same clear error for every note, read once
        with pytest.raises(SetupError, match=r"bad.jsonl:2.*system"):
            await provider.generate(_request())


async def test_replay_reads_the_file_once_even_under_concurrent_first_requests(
        production: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reads = []
    original = clinsum.inputs.load_summaries

    def counting(path: Any, **kwargs: Any) -> Any:
        reads.append(path)
        return original(path, **kwargs)

    monkeypatch.setattr(clinsum.inputs, "load_summaries", counting)
    provider = create(f"replay:{production}")
    texts = await asyncio.gather(*(provider.generate(_request("n1" if i % 2 else "n3")) for i in range(20)))
    assert len(reads) == 1
    assert {g.text for g in texts} == {"Knee sprain; ice.", "Cough, no fever."}
    production.write_text("")  # later requests are served from memory
    assert (await provider.generate(_request("n1"))).text == "Knee sprain; ice."
