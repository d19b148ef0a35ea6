"""The all-cached re-run's fast paths return what the per-call paths returned and store the same.

Cache lookups in one query per batch (``Dispatcher.prepare``, ``Store.cached_responses``), the
cache key written a part at a time, scores written by name ids the store has committed, and a
flush that groups its writes: each is checked against the slower path it replaced.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3

import pytest
from fakes import ScriptedProvider

from clinsum import evaluation
from clinsum.config import RunConfig
from clinsum.costs import estimate
from clinsum.dispatch import _ENDPOINT_OPTIONS, _NOT_IN_CACHE_KEY, Dispatcher, cache_key
from clinsum.errors import StoreWriteError
from clinsum.prompts import load_template
from clinsum.providers import registry
from clinsum.providers.base import Request
from clinsum.records import Note, Score, Summary, Usage
from clinsum.runner import System
from clinsum.store import CACHE_LOOKUP, Store


def reference_key(provider, request) -> str:
    """The cache key as clinsum computed it before it was written a part at a time."""
    endpoint = getattr(provider, "endpoint", None)
    excluded = _NOT_IN_CACHE_KEY | (_ENDPOINT_OPTIONS if endpoint is not None else set())
    payload = {"spec": provider.spec, "endpoint": endpoint,
               "options": provider.options.model_dump(mode="json", exclude=excluded),
               "request": request.model_dump(mode="json", exclude={"note"})}
    if request.note is not None:
        payload["note"] = {"id": request.note.id, "text": hashlib.sha256(request.note.text.encode()).hexdigest()}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


NOTE = Note(id="n-é1", text="Pt denies chest pain; BP 150/90 — “stable”.\n")
REQUESTS = [
    Request(prompt="p"),
    Request(prompt="Summarize ünïcode ✓ and \"quotes\"\n", note=NOTE),
    Request(prompt="q", system="be brief", temperature=0.7, sample=2,
            json_schema={"type": "object", "required": ["b", "a"], "properties": {"z": {}, "a": {"type": "number"}}}),
    Request(prompt="r", note=Note(id="n2", text="x", meta={"site": "a"})),
]


def test_the_cache_key_is_byte_for_byte_the_key_of_earlier_versions():
    plain = ScriptedProvider("fake:a", {"temperature": 0.3, "concurrency": 7, "prices": {"x": 1}})
    served = ScriptedProvider("fake:b", {"seed": 4})
    served.endpoint = "http://host:1/v1"
    for provider in (plain, served):
        dispatcher = Dispatcher(None)
        for request in REQUESTS:
            assert cache_key(provider, request) == reference_key(provider, request)
            assert dispatcher.key(provider, request) == reference_key(provider, request)


async def test_prepare_answers_what_generate_answered_in_one_lookup_per_batch(tmp_path):
    store = Store.open(tmp_path / "s.db")
    provider = ScriptedProvider("fake:a")
    notes = [Note(id=f"n{i}", text=f"note {i}") for i in range(CACHE_LOOKUP + 203)]  # two queries
    requests = [Request(prompt=f"summarize {n.id}", note=n) for n in notes]
    for request in requests[::3]:  # a third of them cached
        await Dispatcher(store).generate(provider, request)
    calls_before = len(provider.calls)

    dispatcher = Dispatcher(store)
    prepared = dispatcher.prepare([(provider, r) for r in requests])
    per_call = Dispatcher(store)
    for i, (request, ready) in enumerate(zip(requests, prepared, strict=True)):
        assert ready.request is request and ready.key == cache_key(provider, request)
        if i % 3 == 0:
            assert ready.hit == await per_call.generate(provider, request)  # the same Generation, cached=True
            assert ready.hit is not None and ready.hit.cached
        else:
            assert ready.hit is None
    assert len(provider.calls) == calls_before  # the per-call path answered the hits from the cache too

    hit, miss = prepared[0], prepared[1]
    assert (await dispatcher.generate(provider, hit.request, prepared=hit)) is hit.hit
    assert dispatcher.cache_hits == 1 and len(provider.calls) == calls_before
    answer = await dispatcher.generate(provider, miss.request, prepared=miss)
    assert len(provider.calls) == calls_before + 1 and not answer.cached
    assert store.cached_response(miss.key) is not None  # cached under the key it was prepared with


async def test_a_miss_cached_since_it_was_prepared_is_not_asked_again(tmp_path):
    store = Store.open(tmp_path / "s.db")
    provider = ScriptedProvider("fake:a")
    request = Request(prompt="p", note=NOTE)
    [ready] = Dispatcher(store).prepare([(provider, request)])
    assert ready.hit is None
    await Dispatcher(store).generate(provider, request)  # another task answers it meanwhile
    again = await Dispatcher(store).generate(provider, request, prepared=ready)
    assert len(provider.calls) == 1 and again.cached


def test_an_uncached_provider_is_never_looked_up(tmp_path):
    store = Store.open(tmp_path / "s.db")
    provider = ScriptedProvider("fake:a")
    provider.cacheable = False  # type: ignore[misc]
    [ready] = Dispatcher(store).prepare([(provider, Request(prompt="p"))])
    assert ready.key == "" and ready.hit is None
    [ready] = Dispatcher(store, use_cache=False).prepare([(ScriptedProvider(), Request(prompt="p"))])
    assert ready.key == "" and ready.hit is None


def test_cached_responses_finds_exactly_what_cached_response_finds(tmp_path):
    store = Store.open(tmp_path / "s.db")
    keys = [f"k{i}" for i in range(2 * CACHE_LOOKUP + 7)]
    for key in keys[::2]:
        store.cache_response(key, "fake:a", f"answer {key}")
    asked = [*keys, "absent"]
    assert store.cached_responses(asked) == {k: v for k in asked if (v := store.cached_response(k)) is not None}
    assert store.cached_responses([]) == {}


@pytest.fixture
def counting_provider():
    made: list[ScriptedProvider] = []

    def create(spec, options):
        made.append(ScriptedProvider(spec, options))
        return made[-1]

    registry.register("rerunfake", create)
    return made


def _notes_file(tmp_path, count: int):
    path = tmp_path / "notes.jsonl"
    path.write_text("".join(json.dumps({"id": f"n{i}", "text": f"Patient {i} denies chest pain; takes aspirin.",
                                        "reference": "No chest pain. On aspirin."})
                            + "\n" for i in range(count)))
    return path


def _stored(store: Store, run_id: str) -> tuple[list[Summary], list[Score]]:
    scores = sorted(store.scores(run_id), key=lambda s: (s.note_id, s.system, s.evaluator, s.metric))
    return store.summaries(run_id), scores


def test_an_all_cached_rerun_stores_what_the_first_run_stored_without_a_call(tmp_path, counting_provider):
    notes = _notes_file(tmp_path, 70)  # more than one batch of prepared calls (64 in flight)
    config = RunConfig(notes=str(notes), metrics=["length", "overlap"],
                       providers=[{"spec": "rerunfake:a"}, {"spec": "rerunfake:b"}])  # type: ignore[list-item]
    store = Store.open(tmp_path / "s.db")
    first = asyncio.run(evaluation.run(config, store))
    assert sum(len(p.calls) for p in counting_provider) == 140
    texts = store.db.execute("SELECT COUNT(*) FROM note_texts").fetchone()[0]
    second = asyncio.run(evaluation.run(config, store))
    assert sum(len(p.calls) for p in counting_provider) == 140  # every answer from the cache
    summaries, scores = _stored(store, second)
    assert (summaries, scores) == _stored(store, first) and len(summaries) == 140
    assert {s.evaluator for s in scores} == {"generation", "length", "overlap"}
    assert store.run(second)["status"] == "finished"
    assert store.db.execute("SELECT COUNT(*) FROM note_texts").fetchone()[0] == texts  # notes stored once
    store.close()
    reopened = Store.open(tmp_path / "s.db")  # what a fresh process reads
    assert _stored(reopened, second) == _stored(reopened, first)


def test_the_estimate_counts_cached_calls_across_lookup_batches(tmp_path):
    store = Store.open(tmp_path / "s.db")
    template = load_template()
    notes = [Note(id=f"n{i}", text=f"note {i} text") for i in range(CACHE_LOOKUP + 101)]
    a, b = ScriptedProvider("fake:a"), ScriptedProvider("fake:b")
    for note in notes[::4]:
        store.cache_response(cache_key(a, Request(prompt=template.render(note), note=note)), "fake:a", "{}")
    store.cache_response(cache_key(b, Request(prompt=template.render(notes[-1]), note=notes[-1])), "fake:b", "{}")
    config = RunConfig(providers=[{"spec": "fake:a"}, {"spec": "fake:b"}])  # type: ignore[list-item]
    result = estimate(config, iter(notes), systems=[System("a", a), System("b", b)], template=template, store=store)
    line_a, line_b = result.lines
    assert (line_a.cached, line_a.calls) == (len(notes[::4]), len(notes) - len(notes[::4]))
    assert (line_b.cached, line_b.calls) == (1, len(notes) - 1)


def _score(note_id: str, metric: str, value: float, detail: dict | None = None) -> Score:
    return Score(note_id=note_id, system="x", metric=metric, value=value, evaluator="length", version="1",
                 detail=detail or {})


def test_names_are_remembered_only_once_their_transaction_has_committed(tmp_path):
    store = Store.open(tmp_path / "s.db")
    store.create_run("r", {}, kind="run", version="0", notes=[Note(id="n1", text="t")])
    store.db.execute("CREATE TRIGGER refuse BEFORE INSERT ON score_rows BEGIN SELECT RAISE(ABORT, 'full'); END")
    with pytest.raises(StoreWriteError):
        asyncio.run(_add_batched(store, [_score("n1", "words", 3.0)]))
    assert store.db.execute("SELECT COUNT(*) FROM score_rows").fetchone()[0] == 0
    assert "words" not in store._name_ids  # rolled back with the failed flush: never used as an id
    store.close()

    store = Store.open(tmp_path / "s.db")
    store.db.execute("DROP TRIGGER refuse")
    asyncio.run(_add_batched(store, [_score("n1", "words", 3.0)]))  # names inserted, then remembered
    assert {"r", "n1", "x", "length", "words", "1"} <= set(store._name_ids)
    asyncio.run(_add_batched(store, [_score("n1", "words", 4.0, {"why": "again"}), _score("n1", "chars", 9.0)]))
    by_ids = store.scores("r")

    plain = Store.open(tmp_path / "plain.db")  # the same scores, every name looked up in SQL
    plain.create_run("r", {}, kind="run", version="0", notes=[Note(id="n1", text="t")])
    plain.add_scores("r", [_score("n1", "words", 4.0, {"why": "again"}), _score("n1", "chars", 9.0)])
    assert sorted(by_ids, key=lambda s: s.metric) == sorted(plain.scores("r"), key=lambda s: s.metric)


async def _add_batched(store: Store, scores: list[Score]) -> None:
    with store.batched_writes():
        store.add_scores("r", scores)
        await asyncio.sleep(0)  # the scheduled flush runs


async def test_a_flush_keeps_the_order_of_writes_to_the_same_record(tmp_path):
    store = Store.open(tmp_path / "s.db")
    store.create_run("r", {}, kind="run", version="0", notes=[Note(id="n1", text="t"), Note(id="n2", text="u")])
    with store.batched_writes():  # all in one turn of the loop: one flush, its writes grouped
        store.add_summary("r", Summary(note_id="n1", system="x", error="FatalError: down"))
        store.replace_scores("r", "n1", "x", "length", [_score("n1", "words", 1.0), _score("n1", "chars", 2.0)])
        store.add_summary("r", Summary(note_id="n2", system="x", text="b"))
        store.add_scores("r", [_score("n2", "words", 5.0)])
        store.add_summary("r", Summary(note_id="n1", system="x", text="a", usage=Usage(output_tokens=1)))
        store.replace_scores("r", "n1", "x", "length", [_score("n1", "words", 3.0)])
        await asyncio.sleep(0)
    assert [(s.note_id, s.text, s.ok) for s in store.summaries("r")] == [("n1", "a", True), ("n2", "b", True)]
    assert sorted((s.note_id, s.metric, s.value) for s in store.scores("r")) == [
        ("n1", "words", 3.0), ("n2", "words", 5.0)]  # the later replace removed n1's chars


def test_the_cache_lookup_query_fits_sqlites_oldest_parameter_limit():
    assert CACHE_LOOKUP < 999
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE t (k TEXT)")
    db.execute(f"SELECT k FROM t WHERE k IN ({', '.join('?' * CACHE_LOOKUP)})", ["x"] * CACHE_LOOKUP)


async def test_a_resumed_run_prepares_only_the_pairs_without_a_good_summary(tmp_path):
    from clinsum.errors import FatalError
    from clinsum.runner import Runner

    store = Store.open(tmp_path / "s.db")
    notes = [Note(id=f"n{i}", text=f"note {i}") for i in range(6)]
    store.create_run("r", {}, kind="run", version="0", notes=notes)
    broken = ScriptedProvider("fake:a", default=lambda r: FatalError("down")  # type: ignore[arg-type, return-value]
                              if r.note is not None and r.note.id in ("n1", "n4") else "ok")
    await Runner(store, Dispatcher(store), [], load_template()).generate_and_score("r", notes, [System("a", broken)])
    assert sorted(s.note_id for s in store.summaries("r") if not s.ok) == ["n1", "n4"]

    dispatcher = Dispatcher(store)
    asked: list[str] = []
    prepare = dispatcher.prepare

    def spy(calls):
        asked.extend(r.note.id for _, r in calls)
        return prepare(calls)

    dispatcher.prepare = spy  # type: ignore[method-assign]
    fixed = ScriptedProvider("fake:a")
    await Runner(store, dispatcher, [], load_template()).generate_and_score("r", notes, [System("a", fixed)])
    assert asked == ["n1", "n4"] and [r.note and r.note.id for r in fixed.calls] == ["n1", "n4"]
    assert all(s.ok for s in store.summaries("r"))


def test_output_tokens_reads_what_the_validated_records_hold(tmp_path):
    store = Store.open(tmp_path / "s.db")
    notes = [Note(id=f"n{i}", text=f"note {i}") for i in range(4)]
    store.create_run("r", {}, kind="run", version="0", notes=notes)
    for i, tokens in enumerate([7, None, 0]):
        store.add_summary("r", Summary(note_id=f"n{i}", system="x", text="s", usage=Usage(output_tokens=tokens)))
    store.add_summary("r", Summary(note_id="n3", system="x", error="FatalError: down", usage=Usage(output_tokens=9)))
    validated = [s.usage.output_tokens for s in store.summaries("r") if s.ok and s.usage.output_tokens is not None]
    assert sorted(store.output_tokens("x", 10)) == sorted(validated) == [0, 7]


def test_the_estimate_is_made_only_when_announced_or_capped(tmp_path, counting_provider, monkeypatch):
    import clinsum.costs
    from clinsum.errors import ConfigError

    made: list[int] = []
    real = clinsum.costs.estimate

    def counted(*args, **kwargs):
        made.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(clinsum.costs, "estimate", counted)
    config = RunConfig(notes=str(_notes_file(tmp_path, 3)), metrics=[],
                       providers=[{"spec": "rerunfake:a"}])  # type: ignore[list-item]
    store = Store.open(tmp_path / "s.db")
    asyncio.run(evaluation.run(config, store))  # the API: nothing reads an estimate
    assert made == []
    announced: list[object] = []
    asyncio.run(evaluation.run(config, store, announce=lambda sample, cost: announced.append(cost)))
    assert made == [1] and len(announced) == 1
    capped = config.model_copy(update={"max_cost_usd": 1.0})
    with pytest.raises(ConfigError, match="no price for summarizer rerunfake:a"):  # the cap is still checked
        asyncio.run(evaluation.run(capped, store))
    assert made == [1, 1] and len(store.runs()) == 2
