"""Where the evidence behind the scores sits in the texts: concept and quote spans to highlight.

Concepts come from the coverage scores' details: ``concept_recall`` lists the
source's key concepts as recalled (captured) or missed, ``concept_support``
lists the summary's concepts as supported or unsupported, ``assertion_flips``
lists each flip with its spans on both sides. A detail entry without a usable
span (an older score, or a span that no longer fits the stored text) is placed
again with ``clinsum.concepts.extract`` on that text at report time, never
guessed; an entry that still cannot be placed is counted as unplaced.

Unsupported facts (numbers, doses, sides, concepts with a status) come from the
``unsupported_facts`` detail of the facts evaluator, each with its summary span;
they are shown as unsupported in the summary.

Judge errors come from the verdicts kept in ``judge_overall`` details (a jury's
members keep theirs under ``judge_overall@SPEC``). Their quotes are located with
the judge's own normalisation (case, Unicode form, punctuation and whitespace
runs), fragment by fragment around an ellipsis.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from clinsum.records import Mention, Score

Highlight = tuple[int, int, str, str]
"""(start, end, kind, title): kind is captured, missed, unsupported, flipped or quote."""


@dataclass
class Evidence:
    """Highlights of one summary and of its source as seen by that summary's scores."""

    source: list[Highlight] = field(default_factory=list)
    summary: list[Highlight] = field(default_factory=list)
    judge_errors: list[dict[str, Any]] = field(default_factory=list)
    judge_ratings: list[tuple[str, float | None, str]] = field(default_factory=list)
    """(attribute metric, score, rationale of the first judge)."""
    unplaced: int = 0
    """Concepts whose position could not be found in their text."""


def _title(entry: Mapping[str, Any], status: str) -> str:
    assertions = entry.get("assertions") or ([entry["assertion"]] if entry.get("assertion") else [])
    parts = [status, str(entry.get("name", "")), str(entry.get("group", ""))]
    if assertions:
        parts.append("/".join(str(a) for a in assertions))
    return " · ".join(p for p in parts if p)


class Placer:
    """Finds concept spans in one text: the detail's span when it fits, else the extractor's mentions."""

    def __init__(self, text: str, extract: Callable[[str], Iterable[Mention]] | None) -> None:
        self.text = text
        self._extract = extract
        self._mentions: dict[str, list[tuple[int, int]]] | None = None

    def spans(self, entry: Mapping[str, Any]) -> list[tuple[int, int]]:
        span = entry.get("span")
        if isinstance(span, list | tuple) and len(span) >= 2 and self._fits(span[0], span[1], entry.get("text")):
            return [(int(span[0]), int(span[1]))]
        return self._recomputed(str(entry.get("name", "")))

    def confirm(self, spans: Iterable[tuple[int, int]], name: str) -> list[tuple[int, int]]:
        """The spans that the extractor finds as mentions of ``name`` here, else all its mentions here.

        A flip's source spans index the source (its reference spans are kept apart), but scores
        stored before coverage logic 4 mixed in spans of the reference summary, so they are only
        trusted where the extractor confirms them in this text.
        """
        mentions = self._recomputed(name)
        return [span for span in spans if span in mentions] or mentions

    def _fits(self, start: Any, end: Any, text: Any) -> bool:
        if not isinstance(start, int) or not isinstance(end, int) or not 0 <= start < end <= len(self.text):
            return False
        return text is None or self.text[start:end] == text

    def _recomputed(self, name: str) -> list[tuple[int, int]]:
        """Every mention of the concept ``name`` in this text, by the key coverage matches concepts on."""
        from clinsum.evaluators.coverage import normalise

        if self._extract is None or not name:
            return []
        if self._mentions is None:
            self._mentions = {}
            for mention in self._extract(self.text):
                self._mentions.setdefault(normalise(mention.name), []).append((mention.start, mention.end))
        return self._mentions.get(normalise(name), [])


def default_extractor() -> Callable[[str], Iterable[Mention]] | None:
    """The concept extractor, or None when the concepts extra is not installed."""
    try:
        import spacy  # noqa: F401
    except ImportError:
        return None
    from clinsum.concepts import extract

    return extract


def concept_evidence(source: Placer, summary: Placer, scores: Mapping[str, Score], evidence: Evidence) -> None:
    """Add the coverage highlights of one summary (``scores`` by metric) to ``evidence``."""

    def add(placer: Placer, target: list[Highlight], entry: Mapping[str, Any], kind: str, title: str) -> None:
        spans = placer.spans(entry)
        if not spans:
            evidence.unplaced += 1
        target.extend((start, end, kind, title) for start, end in spans)

    recall = scores.get("concept_recall")
    if recall is not None:
        for entry in recall.detail.get("recalled", []):
            add(source, evidence.source, entry, "captured", _title(entry, "captured"))
        for entry in recall.detail.get("missed", []):
            if entry.get("span") in (None, [0, 0]):  # a key-concept phrase found nowhere in the source
                continue
            add(source, evidence.source, entry, "missed", _title(entry, "missed"))
    support = scores.get("concept_support")
    if support is not None:
        for entry in support.detail.get("supported", []):
            add(summary, evidence.summary, entry, "captured", _title(entry, "supported"))
        for entry in support.detail.get("unsupported", []):
            add(summary, evidence.summary, entry, "unsupported", _title(entry, "unsupported"))
    flips = scores.get("assertion_flips")
    for flip in (flips.detail.get("flips", []) if flips is not None else []):
        was = "/".join(flip.get("source", {}).get("assertions", []))
        if not was:  # the concept is only in the reference summary
            was = "reference " + "/".join(flip.get("reference", {}).get("assertions", []))
        now = flip.get("summary", {}).get("assertion", "")
        title = f"flipped ({flip.get('severity', '')}) · {flip.get('name', '')}: source {was}, summary {now}"
        given = [(int(start), int(end)) for start, end, *_ in flip.get("source", {}).get("spans", [])]
        confirmed = source.confirm(given, str(flip.get("name", "")))
        if not confirmed:
            evidence.unplaced += 1
        evidence.source.extend((start, end, "flipped", title) for start, end in confirmed)
        said = flip.get("summary", {})
        add(summary, evidence.summary, {"span": said.get("span"), "text": said.get("text"),
                                        "name": flip.get("name")}, "flipped", title)


def fact_evidence(summary: Placer, scores: Mapping[str, Score], evidence: Evidence) -> None:
    """Add the facts evaluator's unsupported facts (numbers, doses, sides, concepts) to the summary's highlights."""
    facts = scores.get("unsupported_facts")
    for fact in (facts.detail.get("facts", []) if facts is not None else []):
        start, end = fact.get("start"), fact.get("end")
        if not summary._fits(start, end, fact.get("text")):
            evidence.unplaced += 1
            continue
        title = f"unsupported fact ({fact.get('kind', '')}): {fact.get('reason', '')}"
        evidence.summary.append((int(start), int(end), "unsupported", title))


# -- judge ---------------------------------------------------------------------------------------

_ELLIPSIS = re.compile(r"\.\.\.+|…")


def _normalised_with_offsets(text: str) -> tuple[str, list[int]]:
    """The judge's normalisation of ``text`` (see verdict.normalise), with the source offset of each char."""
    chars: list[str] = [" "]
    offsets: list[int] = [0]
    for index, char in enumerate(text):
        folded = unicodedata.normalize("NFKC", char).casefold()
        for piece in folded:
            if piece.isalnum():
                chars.append(piece)
                offsets.append(index)
            elif chars[-1] != " ":
                chars.append(" ")
                offsets.append(index)
    if chars[-1] != " ":
        chars.append(" ")
        offsets.append(len(text))
    return "".join(chars), offsets


def locate_quote(quote: str, text: str) -> list[tuple[int, int]]:
    """Spans of ``text`` that carry ``quote`` (each ellipsis-separated fragment, in order), or []."""
    haystack, offsets = _normalised_with_offsets(text)
    spans = []
    position = 0
    for fragment in _ELLIPSIS.split(quote):
        needle, _ = _normalised_with_offsets(fragment)
        if not needle.strip():
            continue
        at = haystack.find(needle, position)
        if at < 0:
            return []
        first, last = at + 1, at + len(needle) - 2  # the first and last word characters
        spans.append((offsets[first], offsets[last] + 1))
        position = at + len(needle) - 1
    return spans


def judge_evidence(source_text: str, summary_text: str, scores: Iterable[Score], evidence: Evidence) -> None:
    """Add the judge's errors (with their quotes highlighted) and attribute ratings to ``evidence``."""
    for score in scores:
        base, _, member = score.metric.partition("@")
        if base == "judge_overall":
            for spec, judge in score.detail.get("judges", {}).items():
                for sample, verdict in enumerate(judge.get("samples") or []):
                    for error in (verdict or {}).get("errors", []):
                        _add_error(error, spec, sample, source_text, summary_text, evidence)
        elif base.startswith("judge_") and not member and "judges" in score.detail:
            first: dict[str, Any] = next(iter(score.detail["judges"].values()), {})
            rationale = first.get("rationale", "")
            if isinstance(rationale, list):
                rationale = " | ".join(str(r) for r in rationale)
            evidence.judge_ratings.append((score.metric, score.value, str(rationale or "")))


def _add_error(error: Mapping[str, Any], spec: str, sample: int, source_text: str, summary_text: str,
               evidence: Evidence) -> None:
    index = len(evidence.judge_errors)
    title = f"judge error {index + 1}: {error.get('severity', '')} {error.get('type', '')}"
    located = {}
    for side, text, target in (("summary", summary_text, evidence.summary), ("source", source_text, evidence.source)):
        quote = str(error.get(f"{side}_quote") or "")
        spans = locate_quote(quote, text) if quote.strip() else []
        located[side] = bool(spans)
        target.extend((start, end, "quote", title) for start, end in spans)
    evidence.judge_errors.append({
        "judge": spec, "sample": sample, "type": error.get("type"), "severity": error.get("severity"),
        "summary_quote": error.get("summary_quote", ""), "source_quote": error.get("source_quote", ""),
        "explanation": error.get("explanation", ""), "verified": bool(error.get("verified")),
        "located": located,
    })
