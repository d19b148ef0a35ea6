"""The run configuration: a TOML file can say everything the flags say.

```toml
notes = "fixtures/aci_dialogues.jsonl"
metrics = ["overlap", "length", "coverage"]
offline = false

[[providers]]
spec = "extractive:lead"
options = { max_words = 150 }

[[providers]]
spec = "anthropic:claude-sonnet-4-5"
name = "claude"            # optional label shown as the system
options = { temperature = 0 }

[judge]
judges = ["ollama:llama3.1:8b"]
samples = 1

[gates]                    # exit 1 when a system misses one (clinsum.gates)
fail_under = { concept_recall = 0.7 }
max_critical_flips = 0
```

Relative paths in a config file are relative to the file. Flags override the
file (``apply_flags``).
"""

from __future__ import annotations

import json
import math
import tomllib
import typing
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from clinsum.errors import ConfigError

DEFAULT_METRICS = ["overlap", "length", "coverage"]


class ProviderConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    spec: str
    """``name:model``, for example ``ollama:llama3.1:8b``."""
    name: str | None = None
    """Label of the system in results; defaults to the spec."""
    options: dict[str, Any] = Field(default_factory=dict)


class JudgeConfig(BaseModel):
    """The judge's settings: the ``[judge]`` table of a run config, the ``--judge*`` flags, and
    the options of ``clinsum.evaluators.judge.create`` are this one schema."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    judges: list[str] = Field(default_factory=list)
    """Judge provider specs; two or more make a jury. The judge metric needs at least one."""
    provider_options: dict[str, dict[str, Any]] = Field(default_factory=dict)
    """Provider options by judge spec; the key ``"*"`` applies to every judge (a spec's own
    options override it), e.g. ``{"*": {"max_output_tokens": 2000}, "ollama:qwen2.5:7b": {...}}``."""
    samples: int = Field(default=1, ge=1, le=50)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    """Sampling temperature; None keeps each provider's own (0 by default)."""
    rubric: str | None = None
    """Path of a rubric file in the format of ``rubric_pdsqi9_v1.toml``; the packaged PDSQI-9 rubric by default."""
    attributes: list[str] | None = None
    """Rate only these attributes of the rubric (e.g. drop ``cited`` for uncited summaries)."""
    max_invalid_retries: int = Field(default=2, ge=0, le=5)
    """Invalid answers retried with the validation error fed back, then recorded as a failure."""
    target_reader: str | None = None
    """Who the summary is for; by default from the note's specialty, else the rubric's."""

    @field_validator("judges", mode="before")
    @classmethod
    def _one_spec_as_a_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


class GatesConfig(BaseModel):
    """``[gates]``: bars every system must clear, else the run exits 1 (see ``clinsum.gates``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    fail_under: dict[str, float] = Field(default_factory=dict)
    """Metric -> bar, compared in the metric's declared direction (below a higher-is-better bar fails)."""
    max_critical_flips: int | None = Field(default=None, ge=0)
    """Most critical flips allowed in one system's summaries, all together."""


class RunConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    notes: str | None = None
    providers: list[ProviderConfig] = Field(default_factory=list)
    metrics: list[str] = Field(default_factory=lambda: list(DEFAULT_METRICS))
    metric_options: dict[str, dict[str, Any]] = Field(default_factory=dict)
    """Options per metric, for example ``coverage = { weights = { drug = 3 } }``."""
    prompt_template: str | None = None
    out: str | None = None
    """Folder for summaries.jsonl, scores.jsonl and leaderboard.csv."""
    concurrency: int | None = Field(default=None, ge=1)
    """Calls in flight per provider; overrides each provider's own limit."""
    workers: int | None = Field(default=None, ge=1)
    """Processes that run the evaluators that ask no model (concepts, facts, ROUGE, length); None: one per
    core of this machine. With ``engine = "ray"``, the CPUs of the local Ray started for the run."""
    engine: Literal["local", "ray"] = "local"
    """Where those evaluators run: ``local`` (this machine) or ``ray`` (the cluster of ``RAY_ADDRESS``, or a
    local Ray); the scores are the same."""
    max_attempts: int = Field(default=4, ge=1, le=10)
    limit: int | None = Field(default=None, ge=1)
    """Only the first N notes."""
    offline: bool = False
    batch: bool = False
    """Send the summaries of providers that have a batch API (Anthropic, Vertex AI) as one batch, at batch prices."""
    batch_poll_s: float = Field(default=60.0, gt=0)
    """How often a batch's status is asked for."""
    batch_max_wait_s: float | None = Field(default=None, gt=0)
    """Stop waiting for a batch after this long (the run is interrupted; ``--resume`` collects the batch)."""
    skip_invalid: bool = False
    sample: int | None = Field(default=None, ge=1)
    """Evaluate a sample of N notes (``clinsum.sampling``); ``score`` keeps every summary of them."""
    sample_fraction: float | None = Field(default=None, gt=0, le=1)
    """Evaluate this fraction of the notes (0 < F <= 1) instead of N of them."""
    stratify_by: str | None = None
    """Metadata field whose values the sample keeps in proportion (the note's ``meta``)."""
    sample_seed: int = 0
    """The sample is the same for the same seed and note ids."""
    max_cost_usd: float | None = Field(default=None, ge=0)
    """Refuse to start a run that may cost more than this (``clinsum.costs``)."""
    store_notes: bool = True
    """Keep each note's text in the store (once, shared by runs). False keeps only a hash of each note
    (PHI minimisation): resuming the run then reads the notes file again, and must find the same notes."""
    judge: JudgeConfig | None = None
    prices: dict[str, dict[str, float]] = Field(default_factory=dict)
    """Price overrides: ``{"anthropic:claude-x": {"input_per_mtok": 3, "output_per_mtok": 15}}``."""
    gates: GatesConfig = Field(default_factory=GatesConfig)
    monitor: dict[str, Any] = Field(default_factory=dict)
    """The ``[monitor]`` table, read by ``clinsum monitor`` (``clinsum.monitoring.alerts.MonitorSettings``)."""
    report: dict[str, Any] = Field(default_factory=dict)
    """The ``[report]`` table, read by the periodic ``clinsum report --since`` (``clinsum.reporting.periodic``)."""

    @field_validator("providers", mode="before")
    @classmethod
    def _specs_as_strings(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [{"spec": v} if isinstance(v, str) else v for v in value]
        return value

    @model_validator(mode="after")
    def _one_sample_size(self) -> RunConfig:
        if self.sample is not None and self.sample_fraction is not None:
            raise ValueError("give --sample N or --sample-fraction F, not both")
        if self.stratify_by is not None and self.sample is None and self.sample_fraction is None:
            raise ValueError("--stratify-by needs --sample N or --sample-fraction F")
        return self


def load_config(path: str | Path) -> RunConfig:
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the config: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from exc
    base = path.parent
    for key in ("notes", "prompt_template", "out"):
        if isinstance(data.get(key), str):
            data[key] = str(_relative_to(base, data[key]))
    judge = data.get("judge")
    if isinstance(judge, dict) and isinstance(judge.get("rubric"), str):
        judge["rubric"] = str(_relative_to(base, judge["rubric"]))
    monitor = data.get("monitor")
    if isinstance(monitor, dict) and isinstance(monitor.get("anchors"), str):
        monitor["anchors"] = str(_relative_to(base, monitor["anchors"]))
    return _validate(data, str(path))


def _relative_to(base: Path, value: str) -> Path:
    candidate = Path(value)
    return candidate if candidate.is_absolute() else base / candidate


def _validate(data: dict[str, Any], where: str) -> RunConfig:
    infinite = _non_finite(data)
    if infinite is not None:  # TOML has nan and inf; a NaN price would make every cost NaN
        raise ConfigError(f"{where}: {infinite}: numbers must be finite")
    try:
        return RunConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{where}: {describe_validation(exc, RunConfig)}") from None


def _non_finite(value: Any, where: str = "") -> str | None:
    """The path of the first NaN or infinite number in a config structure, if any."""
    if isinstance(value, float) and not math.isfinite(value):
        return where or "value"
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        found = _non_finite(item, f"{where}[{key}]" if isinstance(key, int) else f"{where}.{key}" if where
                            else str(key))
        if found is not None:
            return found
    return None


def describe_validation(exc: ValidationError, model: type[BaseModel], noun: str = "key") -> str:
    """One line for a pydantic error: an unknown key is named with the valid ones, not dumped.

    ``noun`` is what the user calls the fields (``key`` in a config file, ``option``
    for provider and judge options).
    """
    problems = []
    for error in exc.errors():
        loc = tuple(error["loc"])
        where = _where(loc[:-1])
        if len(loc) == 2 and isinstance(loc[0], str):
            where = f"[{where}]"  # a table of the config file: [judge]
        if error["type"] == "extra_forbidden":
            owner = _model_at(model, loc[:-1])
            valid = (", ".join(f.alias or name for name, f in owner.model_fields.items())  # as written in a file
                     if owner is not None else "?")
            problems.append(f"unknown {noun} '{loc[-1]}'{f' in {where}' if where else ''}; "
                            f"valid {noun}s: {valid}")
        else:
            problems.append(f"{_where(loc) or 'value'}: {error['msg']}")
    more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
    return "; ".join(problems[:3]) + more


def _where(loc: tuple[Any, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _model_at(model: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The pydantic model that holds the fields at ``loc`` (list indexes and dict keys skipped)."""
    current: type[BaseModel] | None = model
    for part in loc:
        if current is None:
            return None
        if isinstance(part, int):
            continue
        field = current.model_fields.get(str(part))
        if field is None:
            return None  # a dict key, e.g. metric_options.coverage
        current = _inner_model(field.annotation)
    return current


def _inner_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for argument in typing.get_args(annotation):
        found = _inner_model(argument)
        if found is not None:
            return found
    return None


def parse_option(text: str, *, flag: str = "--provider-option", scoped: bool = True, typed: bool = True,
                 form: str | None = None) -> tuple[str | None, str, Any]:
    """``[SPEC.]KEY=VALUE`` → (spec or None for every provider, key, value).

    The one reader of every KEY=VALUE flag (``--provider-option``, ``--judge-option``,
    ``--same-scale``). Option keys never contain dots, so the spec is everything before
    the last dot (``ollama:llama3.1:8b.num_ctx=8192``); ``scoped=False`` reads plain
    ``KEY=VALUE`` (the spec is then always None). With ``typed`` the value is read as
    JSON when it parses (numbers, booleans, lists), else kept as a string; without,
    it is the stripped text. ``flag`` and ``form`` name the flag and its shape in the error.
    """
    target, sep, raw = text.partition("=")
    spec, dot, key = target.rpartition(".") if scoped else ("", "", target)
    key = key.strip()
    if not sep or not key or (not typed and not raw.strip()):
        shape = form or ("[SPEC.]KEY=VALUE" if scoped else "KEY=VALUE")
        raise ConfigError(f"invalid {flag} '{text}': expected {shape}")
    value: Any = raw.strip()
    if typed:
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
    return (spec if dot else None), key, value


def apply_flags(config: RunConfig, **flags: Any) -> RunConfig:
    """A copy of ``config`` with the given flags (those not None) taking precedence."""
    data = config.model_dump()
    specs: list[str] | None = flags.pop("providers", None)
    options: list[str] = flags.pop("provider_options", None) or []
    judges: list[str] | None = flags.pop("judges", None)
    judge_samples: int | None = flags.pop("judge_samples", None)
    for key, value in flags.items():
        if value is not None:
            data[key] = value
    if specs:
        data["providers"] = [{"spec": s} for s in specs]
    for text in options:
        spec, key, value = parse_option(text)
        targets = [p for p in data["providers"] if spec is None or spec in (p["spec"], p.get("name"))]
        if not targets:
            raise ConfigError(f"--provider-option '{text}': no provider '{spec}' in this run")
        for provider in targets:
            provider["options"] = {**provider.get("options", {}), key: value}
    if judges or judge_samples:
        judge = data.get("judge") or {}
        if judges:
            judge["judges"] = judges
        if judge_samples:
            judge["samples"] = judge_samples
        data["judge"] = judge
        if "judge" not in data["metrics"]:
            data["metrics"] = [*data["metrics"], "judge"]
    return _validate(data, "command line")
