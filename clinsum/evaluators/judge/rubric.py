"""The judge's rubric: attributes rated 1-5, each level with a written anchor.

A rubric is a TOML file (``rubric_pdsqi9_v1.toml`` is the packaged default and
documents the format). Users can pass their own file; it is validated here and
every problem is reported with the file and the attribute it concerns. The
rubric's ``version`` becomes part of the judge's evaluator version, so scores
made under different rubrics are never mixed silently.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from clinsum.errors import ConfigError

DEFAULT_RUBRIC = Path(__file__).with_name("rubric_pdsqi9_v1.toml")
LEVELS = (1, 2, 3, 4, 5)
NOT_APPLICABLE = 0
"""The score an optional attribute gets when it does not apply (kept out of every mean)."""

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class Attribute(BaseModel):
    """One rubric attribute and the anchor of each of its five levels."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    """lower_snake_case; the metric is ``judge_<name>``."""
    question: str = Field(min_length=1)
    """What the attribute asks, in one sentence."""
    levels: dict[int, str]
    """Anchor text for each level 1..5."""
    optional: bool = False
    """True when the attribute may not apply; the judge then answers 0 (not applicable)."""
    not_applicable_when: str | None = None
    """When an optional attribute does not apply (shown to the judge)."""
    higher_is_better: bool = True
    """False only for attributes where 5 is worst; ``judge_overall`` flips them (6 - score)."""
    scale_note: str | None = None
    """A reminder of the direction of the scale, shown to the judge."""

    @field_validator("name")
    @classmethod
    def _name_is_snake_case(cls, name: str) -> str:
        if not _NAME.match(name):
            raise ValueError(f"attribute name '{name}' must be lower_snake_case (letters, digits, _)")
        return name

    @field_validator("levels", mode="before")
    @classmethod
    def _levels_are_one_to_five(cls, levels: object) -> object:
        if not isinstance(levels, dict):
            raise ValueError("levels must be a table with keys 1 to 5")
        keys = sorted(str(k) for k in levels)
        if keys != [str(level) for level in LEVELS]:
            raise ValueError(f"levels must have exactly the keys 1, 2, 3, 4, 5 (found {', '.join(keys)})")
        for key, text in levels.items():
            if not isinstance(text, str) or not text.strip():
                raise ValueError(f"level {key} needs a written anchor (non-empty text)")
        return {int(k): v for k, v in levels.items()}

    @model_validator(mode="after")
    def _optional_says_when(self) -> Attribute:
        if self.optional and not (self.not_applicable_when or "").strip():
            raise ValueError(f"optional attribute '{self.name}' needs not_applicable_when")
        if not self.optional and self.not_applicable_when:
            raise ValueError(f"attribute '{self.name}' has not_applicable_when but is not optional")
        return self

    def oriented(self, score: int) -> int:
        """The score on a higher-is-better scale (for means across attributes)."""
        return score if self.higher_is_better else 6 - score


class Rubric(BaseModel):
    """A named, versioned set of attributes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    version: str = Field(min_length=1, pattern=r"^[A-Za-z0-9._-]+$")
    """Recorded in the evaluator version of every judge score."""
    description: str = ""
    target_reader: str = "a clinician who will take over the care of this patient"
    """Who the summary is for (the ``useful`` and ``comprehensible`` anchors refer to it)."""
    attributes: tuple[Attribute, ...]

    @model_validator(mode="after")
    def _unique_names(self) -> Rubric:
        if not self.attributes:
            raise ValueError("a rubric needs at least one [[attributes]] entry")
        seen: set[str] = set()
        for attribute in self.attributes:
            if attribute.name in seen:
                raise ValueError(f"attribute '{attribute.name}' is defined twice")
            seen.add(attribute.name)
        return self

    @property
    def names(self) -> list[str]:
        return [a.name for a in self.attributes]

    def attribute(self, name: str) -> Attribute:
        for attribute in self.attributes:
            if attribute.name == name:
                return attribute
        raise KeyError(name)

    def only(self, names: list[str]) -> Rubric:
        """The same rubric restricted to ``names`` (for tasks where some attributes never apply)."""
        unknown = sorted(set(names) - set(self.names))
        if unknown:
            raise ConfigError(f"rubric '{self.version}' has no attribute(s) {', '.join(unknown)}; "
                              f"known: {', '.join(self.names)}")
        kept = tuple(a for a in self.attributes if a.name in names)
        return self.model_copy(update={"attributes": kept,
                                       "version": f"{self.version}-{'.'.join(a.name for a in kept)}"})

    @classmethod
    def load(cls, path: str | Path | None = None) -> Rubric:
        """Read and validate a rubric file (the packaged PDSQI-9 rubric when ``path`` is None)."""
        path = Path(path) if path is not None else DEFAULT_RUBRIC
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read rubric: {exc.strerror or exc}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
        header = data.get("rubric")
        if not isinstance(header, dict):
            raise ConfigError(f"{path}: missing [rubric] table (name, version)")
        try:
            return cls(**header, attributes=data.get("attributes", ()))
        except ValidationError as exc:
            raise ConfigError(f"{path}: invalid rubric:\n{_describe(exc, data)}") from exc
        except TypeError as exc:
            raise ConfigError(f"{path}: invalid rubric: {exc}") from exc


def _describe(exc: ValidationError, data: dict[str, object]) -> str:
    """One line per problem, naming the attribute by name rather than by list index."""
    attributes = data.get("attributes")
    lines = []
    for error in exc.errors():
        loc = list(error["loc"])
        if len(loc) >= 2 and loc[0] == "attributes" and isinstance(loc[1], int) \
                and isinstance(attributes, list) and loc[1] < len(attributes):
            entry = attributes[loc[1]]
            name = entry.get("name", f"#{loc[1] + 1}") if isinstance(entry, dict) else f"#{loc[1] + 1}"
            loc = [f"attribute '{name}'", *loc[2:]]
        where = ".".join(str(p) for p in loc) or "rubric"
        lines.append(f"  {where}: {error['msg']}")
    return "\n".join(lines)
