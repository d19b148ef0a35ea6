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
```

Relative paths in a config file are relative to the file. Flags override the
file (``apply_flags``).
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

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
    model_config = ConfigDict(extra="forbid", frozen=True)

    judges: list[str] = Field(default_factory=list)
    """Judge provider specs; several make a jury."""
    provider_options: dict[str, dict[str, Any]] = Field(default_factory=dict)
    """Options per judge spec."""
    samples: int = Field(default=1, ge=1)
    temperature: float | None = None
    rubric: str | None = None
    """Path of a rubric file; the packaged PDSQI-9 rubric by default."""


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
    max_attempts: int = Field(default=4, ge=1, le=10)
    limit: int | None = Field(default=None, ge=1)
    """Only the first N notes."""
    offline: bool = False
    batch: bool = False
    """Send the summaries of providers that have a batch API (Anthropic) as one batch, at batch prices."""
    batch_poll_s: float = Field(default=60.0, gt=0)
    """How often a batch's status is asked for."""
    batch_max_wait_s: float | None = Field(default=None, gt=0)
    """Stop waiting for a batch after this long (the run is interrupted; ``--resume`` collects the batch)."""
    skip_invalid: bool = False
    judge: JudgeConfig | None = None
    prices: dict[str, dict[str, float]] = Field(default_factory=dict)
    """Price overrides: ``{"anthropic:claude-x": {"input_per_mtok": 3, "output_per_mtok": 15}}``."""

    @field_validator("providers", mode="before")
    @classmethod
    def _specs_as_strings(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [{"spec": v} if isinstance(v, str) else v for v in value]
        return value


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
    return _validate(data, str(path))


def _relative_to(base: Path, value: str) -> Path:
    candidate = Path(value)
    return candidate if candidate.is_absolute() else base / candidate


def _validate(data: dict[str, Any], where: str) -> RunConfig:
    try:
        return RunConfig.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors())
        raise ConfigError(f"{where}: {problems}") from exc


def parse_option(text: str) -> tuple[str | None, str, Any]:
    """``[SPEC.]KEY=VALUE`` → (spec or None for every provider, key, value).

    Option keys never contain dots, so the spec is everything before the last
    dot (``ollama:llama3.1:8b.num_ctx=8192``). The value is read as JSON when it
    parses (numbers, booleans, lists), else kept as a string.
    """
    target, sep, raw = text.partition("=")
    if not sep or not target:
        raise ConfigError(f"invalid --provider-option '{text}': expected [SPEC.]KEY=VALUE")
    spec, dot, key = target.rpartition(".")
    try:
        value: Any = json.loads(raw)
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
