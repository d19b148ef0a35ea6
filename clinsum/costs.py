"""What a run will cost, estimated before it starts; ``--max-cost`` refuses a run above it.

An estimate, not a bill. Its assumptions, printed with it:

- Input tokens are counted from the prompts the run will send (the summarization prompt
  of each note; the judge's system prompt, rubric, note, summary and answer schema) as
  characters / ``CHARS_PER_TOKEN``. No provider offers a token count that works offline,
  so this is a heuristic: 3.5 characters a token is the providers' own rule of thumb for
  English, and clinical text with its drug names and abbreviations tends to need more
  tokens, so treat the figure as approximate (±30%).
- Output tokens are each call's ``max_output_tokens`` (an upper bound), except that a
  summarizer whose summaries the store already holds (same system label, the latest
  ``RECENT`` successful ones, any run) is estimated at their mean.
- The judge's estimate is one call per sample and judge; "at most" adds every retry its
  ``max_invalid_retries`` allows, each resending the prompt with a rejected answer of
  ``max_output_tokens``. Retries after provider errors are not billed and not counted.
- A call whose answer is already in the response cache costs nothing: summarization
  requests are looked up (``CACHE_LOOKUP`` notes a query, the notes read once for every
  summarizer), and so are the judge's first requests when the
  summaries are known (``score``); for ``run`` the judge's estimate ignores the cache.
- ``--batch`` halves the summarizers' prices where the provider's batch API does
  (Anthropic Message Batches, Vertex AI batch prediction); judges are never batched.
- The extractive baselines and replay make no model call and cost nothing. Any other
  model without a price (packaged in ``providers/prices.toml`` or set in the run config's
  ``[prices]``) is "unknown": it is shown as such, and ``--max-cost`` refuses to start,
  because a cap that ignores part of the run would not be a cap.

``--max-cost USD`` compares the "at most" figure (the upper bound on output and retries)
with the cap: a run it lets start cannot cost more than the cap unless the token
heuristic itself is off.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from clinsum.config import RunConfig
from clinsum.dispatch import cache_key, request_keys
from clinsum.errors import ConfigError
from clinsum.evaluators.generation import is_empty
from clinsum.prompts import PromptTemplate
from clinsum.providers.base import BatchCapable, Provider, Request, parse_spec
from clinsum.providers.common import Price, price_for, price_overrides
from clinsum.records import Note, Summary
from clinsum.runner import System
from clinsum.store import CACHE_LOOKUP, Store

CHARS_PER_TOKEN = 3.5
"""Characters per token assumed for every prompt (see the module docstring)."""
FEEDBACK_TOKENS = 100
"""Tokens a judge retry adds besides the rejected answer (the validation error, the instruction)."""
RECENT = 1000
"""Stored summaries of a system whose mean output sets its expected output."""
FREE = frozenset({"extractive", "replay"})
"""Providers that make no model call: they cost nothing whatever the price table says."""


def tokens(text: str) -> int:
    """Estimated tokens of ``text`` (characters / ``CHARS_PER_TOKEN``, rounded up)."""
    return math.ceil(len(text) / CHARS_PER_TOKEN)


@dataclass
class Line:
    """The estimate for one summarizer or one judge."""

    role: str
    """``summarizer`` or ``judge``."""
    name: str
    price: Price | None
    free: bool = False
    discount: float = 1.0
    calls: int = 0
    cached: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0
    most_calls: int = 0
    most: float = 0.0
    """Upper bound: every output at ``max_output_tokens``, every allowed judge retry made."""
    basis: str = ""
    """Where the output figure comes from."""

    @property
    def known(self) -> bool:
        return self.free or self.price is not None

    def add(self, input_tokens: int, output_tokens: int, most_output: int, *, retries: int = 0,
            retry_input: int = 0) -> None:
        """One call to make, with its expected output and its upper bound (and judge retries)."""
        self.calls += 1
        self.most_calls += 1 + retries
        self.input_tokens += input_tokens
        self.output_tokens += output_tokens
        if self.price is not None and not self.free:
            self.cost += self.price.cost(input_tokens, output_tokens) * self.discount
            self.most += (self.price.cost(input_tokens, most_output)
                          + retries * self.price.cost(retry_input, most_output)) * self.discount

    def usd(self, value: float) -> str:
        if self.free:
            return "$0 (no model)"
        return "unknown" if self.price is None else f"${value:,.2f}"


@dataclass
class CostEstimate:
    lines: list[Line] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    """What the estimate leaves out, beyond the module's assumptions."""

    @property
    def unknown(self) -> list[str]:
        return [f"{line.role} {line.name}" for line in self.lines if not line.known]

    @property
    def total(self) -> float | None:
        """Expected cost in USD; None when a price is unknown."""
        return None if self.unknown else sum(line.cost for line in self.lines)

    @property
    def at_most(self) -> float | None:
        return None if self.unknown else sum(line.most for line in self.lines)

    def describe(self) -> list[str]:
        """The estimate as printed before a run starts."""
        rows = [("", "calls", "cached", "input tok", "output tok", "estimate", "at most")]
        for line in self.lines:
            rows.append((f"{line.role} {line.name}", f"{line.calls:,}", f"{line.cached:,}",
                         f"{line.input_tokens:,}", f"{line.output_tokens:,}", line.usd(line.cost),
                         line.usd(line.most)))
        total, most = self.total, self.at_most
        rows.append(("total", "", "", "", "", "unknown" if total is None else f"${total:,.2f}",
                     "unknown" if most is None else f"${most:,.2f}"))
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        out = [f"estimated cost (input tokens ~ characters / {CHARS_PER_TOKEN:g}; "
               "\"at most\": every output at max_output_tokens and every judge retry):"]
        for row in rows:
            out.append("  " + "  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                                        for i, (c, w) in enumerate(zip(row, widths, strict=True))).rstrip())
        out += [f"  {line.role} {line.name}: output {line.basis}" for line in self.lines if line.basis]
        out += [f"  {note}" for note in self.notes]
        return out


def _price(provider: Provider, config: RunConfig) -> Price | None:
    name, model = parse_spec(provider.spec)
    overrides = price_overrides(provider.spec, provider.options.prices, config.prices)
    return price_for(name, model, overrides)


def _line(role: str, name: str, provider: Provider, config: RunConfig, *, batch: bool = False) -> Line:
    free = parse_spec(provider.spec)[0] in FREE
    line = Line(role, name, None if free else _price(provider, config), free=free)
    if batch and config.batch and isinstance(provider, BatchCapable):
        line.discount = _batch_discount(provider)
    return line


def _batch_discount(provider: Provider) -> float:
    """What a provider's batch API bills, as a share of its standard price."""
    name = parse_spec(provider.spec)[0]
    if name == "anthropic":
        from clinsum.providers.anthropic_batch import BATCH_DISCOUNT
        return BATCH_DISCOUNT
    if name == "vertex":
        from clinsum.providers.vertex_batch import BATCH_DISCOUNT as VERTEX_DISCOUNT
        return VERTEX_DISCOUNT
    return 1.0  # a plugin's batch API: no discount assumed


def _cache_of(store: Store | None, provider: Provider) -> Store | None:
    """The store to look ``provider``'s requests up in; None when none of them can be cached
    (a provider never cached, or with no answer in the cache), which spares a key per request."""
    if store is None or not getattr(provider, "cacheable", True) or not store.has_cached(provider.spec):
        return None
    return store


def _cached(cache: Store | None, provider: Provider, request: Request) -> bool:
    return cache is not None and cache.cached_response(cache_key(provider, request)) is not None


def _cached_among(cache: Store | None, provider: Provider, requests: Sequence[Request]) -> list[bool]:
    """Whether each request's answer is cached, looked up in one query (``Store.cached_responses``)."""
    if cache is None:
        return [False] * len(requests)
    key_of = request_keys(provider)
    keys = [key_of(request) for request in requests]
    found = cache.cached_responses(keys)
    return [key in found for key in keys]


def _max_output(provider: Provider) -> int:
    return int(getattr(provider.options, "max_output_tokens", 0) or 0)


def estimate(config: RunConfig, notes: Iterable[Note], *, systems: Sequence[System] = (),
             template: PromptTemplate | None = None, summaries: Iterable[Summary] | None = None,
             evaluators: Iterable[Any] = (), store: Store | None = None) -> CostEstimate:
    """The estimated cost of a new run: ``systems`` summarizing ``notes`` with ``template``
    (``run``), or the ``summaries`` given (``score``), then each judge among ``evaluators``."""
    result = CostEstimate()
    expected_summary: dict[str, tuple[int, int]] = {}  # label -> (expected, at most) output tokens
    summarizers = []
    for system in systems:
        assert template is not None
        line = _line("summarizer", system.label, system.provider, config, batch=True)
        most = _max_output(system.provider)
        stored = store.output_tokens(system.label, RECENT) if store is not None else []
        expected = math.ceil(sum(stored) / len(stored)) if stored else most
        line.basis = (f"mean of {len(stored)} stored summaries ({expected} tokens)" if stored
                      else f"max_output_tokens ({most})")
        if line.free:
            line.basis = ""
        expected_summary[system.label] = (expected, most)
        summarizers.append((system, line, _cache_of(store, system.provider), expected, most))
        result.lines.append(line)
    if summarizers:  # the notes read once, a chunk at a time, each prompt rendered once for every system
        assert template is not None
        note_chunks = iter(notes)
        while chunk := list(itertools.islice(note_chunks, CACHE_LOOKUP)):
            prompts = [template.render(note) for note in chunk]
            for system, line, cache, expected, most in summarizers:
                requests = [Request(prompt=prompt, note=note) for prompt, note in zip(prompts, chunk, strict=True)]
                cached = _cached_among(cache, system.provider, requests)
                for request, hit in zip(requests, cached, strict=True):
                    if hit:
                        line.cached += 1
                        continue
                    line.add(tokens(request.prompt + (system.provider.options.system_prompt or "")), expected, most)
    for evaluator in evaluators:
        if not getattr(evaluator, "providers", None):
            continue
        from clinsum.evaluators.judge.judge import JudgeEvaluator

        if not isinstance(evaluator, JudgeEvaluator):
            result.notes.append(f"{evaluator.name}: asks a model, not estimated")
            continue
        _judge_lines(result, evaluator, config, notes, summaries, expected_summary, store)
    return result


def _judge_lines(result: CostEstimate, judge: Any, config: RunConfig, notes: Iterable[Note],
                 summaries: Iterable[Summary] | None, expected_summary: dict[str, tuple[int, int]],
                 store: Store | None) -> None:
    from clinsum.evaluators.judge.judge import _reader_from
    from clinsum.evaluators.judge.prompt import judge_prompt

    by_id = {note.id: note for note in notes}
    schema = json.dumps(judge.schema)
    retries = judge.max_invalid_retries
    if summaries is not None:  # score: the summaries are known, so are the prompts
        work = [(by_id[s.note_id], s.text, 0, 0) for s in summaries
                if s.note_id in by_id and s.ok and not is_empty(s)]
    else:  # run: one summary per system, of the size its summarizer is expected to write
        work = [(note, "", *expected_summary[label]) for note in notes for label in expected_summary]
        result.notes.append("judge: the response cache is not looked up for summaries not yet written")
    for provider in judge.providers:
        line = _line("judge", provider.spec, provider, config)
        most = _max_output(provider)
        line.basis = f"max_output_tokens ({most}); at most {1 + retries} calls a sample"
        cache = _cache_of(store, provider) if summaries is not None else None
        for note, text, summary_tokens, summary_most in work:
            system, user = judge_prompt(judge.template, judge.rubric, note_id=note.id, note_text=note.text,
                                        summary_text=text, target_reader=judge.target_reader or _reader_from(note))
            prompt = tokens(system + user + schema)
            for sample in range(judge.samples):
                request = Request(prompt=user, system=system, json_schema=judge.schema, sample=sample,
                                  temperature=judge.temperature)
                if _cached(cache, provider, request):
                    line.cached += 1
                    continue
                line.add(prompt + summary_tokens, most, most, retries=retries,
                         retry_input=prompt + summary_most + most + FEEDBACK_TOKENS)
        result.lines.append(line)


def check_max_cost(estimate: CostEstimate, max_cost_usd: float | None) -> None:
    """Refuse to start a run whose cost is unknown or may exceed ``max_cost_usd`` (a ConfigError:
    nothing was run)."""
    if max_cost_usd is None:
        return
    if estimate.unknown:
        specs = ", ".join(estimate.unknown)
        raise ConfigError(
            f"--max-cost {max_cost_usd:g}: no price for {specs}, so the run's cost cannot be checked; "
            "nothing was run. Set the price in the run config, e.g. [prices.\"SPEC\"] input_per_mtok = 3.0, "
            "output_per_mtok = 15.0 (0 and 0 for a local model that costs nothing), or drop --max-cost")
    most = estimate.at_most
    assert most is not None
    if most > max_cost_usd:
        total = estimate.total or 0.0
        raise ConfigError(
            f"--max-cost {max_cost_usd:g}: this run may cost up to ${most:,.2f} (estimate ${total:,.2f}); "
            "nothing was run. To lower it: score a sample (--sample N or --sample-fraction F), fewer "
            "judge samples (--judge-samples), --batch for Anthropic or Vertex AI summarizers (half price), "
            "a lower max_output_tokens (-o max_output_tokens=N for summarizers, [judge] provider_options "
            "for judges), fewer judge retries ([judge] max_invalid_retries) or a cheaper model; "
            "or raise --max-cost")
