"""Profiles: validated YAML files (``suites/*.yaml``) that set every suite's parameters.

A profile is the single definition of what a run measures; the CLI and the asv benchmarks both
load it through :func:`load_profile`.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from harness.attention import list_attentions, load_plugins
from harness.records import canonical_json
from harness.suites import get_suite, list_suites
from harness.suites.base import AttentionSpec, DataOptions, SuiteParams
from harness.suites.predictions import PredictionOptions

__all__ = [
    "PROFILE_DIR",
    "Profile",
    "ProfileError",
    "list_profiles",
    "load_profile",
    "parse_bytes",
]

PROFILE_DIR = Path(__file__).resolve().parents[2] / "suites"


class ProfileError(ValueError):
    """A profile is unusable: names the file, the key and the allowed values."""


_UNITS = {"": 1, "b": 1, "k": 2**10, "kb": 2**10, "kib": 2**10, "m": 2**20, "mb": 2**20,
          "mib": 2**20, "g": 2**30, "gb": 2**30, "gib": 2**30, "t": 2**40, "tb": 2**40,
          "tib": 2**40}


def parse_bytes(value: int | float | str) -> int:
    """``"6GiB"``, ``"512MB"``, ``1e9`` -> bytes (binary units: 1 GB = 1 GiB here)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        if value <= 0:
            raise ValueError(f"a memory size must be positive, got {value}")
        return int(value)
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][+]?[0-9]+)?)\s*([a-zA-Z]*)\s*",
                         str(value))
    if not match or match.group(2).lower() not in _UNITS:
        raise ValueError(f"cannot read {value!r} as a memory size; write e.g. 6GiB, 512MiB, 1e9")
    size = int(float(match.group(1)) * _UNITS[match.group(2).lower()])
    if size <= 0:
        raise ValueError(f"a memory size must be positive, got {value!r}")
    return size


class AttentionEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    options: dict[str, Any] = Field(default_factory=dict)
    label: str | None = None
    #: Only these suites run this configuration (default: every suite), e.g. a kernel variant
    #: that computes the same function as another entry needs timing and memory, not training.
    suites: list[str] | None = None

    @field_validator("suites")
    @classmethod
    def _suites(cls, v: list[str] | None) -> list[str] | None:
        if v is not None and (not v or len(set(v)) != len(v)):
            raise ValueError(f"suites: list each suite once, at least one; got {v}")
        return v

    @field_validator("name")
    @classmethod
    def _known(cls, name: str) -> str:
        if name not in list_attentions():
            known = ", ".join(list_attentions())
            raise ValueError(f"unknown attention {name!r}; registered: {known}")
        return name

    def spec(self) -> AttentionSpec:
        return AttentionSpec(self.name, dict(self.options), self.label or "",
                             tuple(self.suites) if self.suites is not None else None)


class Profile(BaseModel):
    """A validated profile. ``suites`` maps suite name to its parameter model."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)
    name: str = "custom"
    description: str = ""
    seeds: list[int] = Field(default_factory=lambda: [0])
    device: str = "auto"
    threads: int | None = None
    memory_budget: int = 8 * 2**30
    plugins: list[str] = Field(default_factory=list)
    attentions: list[AttentionEntry] | None = None
    variants: list[AttentionEntry] = Field(default_factory=list)
    data: DataOptions = Field(default_factory=DataOptions)
    predictions: PredictionOptions = Field(default_factory=PredictionOptions)
    #: Label of the attention every suite and the report compare with; unset: ``standard``
    #: when the run has it (else no comparisons).
    reference: str | None = None
    #: A user's transformers model (a save_pretrained folder or a hub name) that the suites run
    #: with each attention swapped in (``harness.models.user``); None: the harness encoder.
    model: str | None = None
    #: With ``model``: fine-tune it per attention and task (true), or evaluate it as given with
    #: each attention swapped in, no retraining (false: its head is used as saved).
    finetune: bool = True
    suites: dict[str, SuiteParams]
    source: str | None = None

    @field_validator("memory_budget", mode="before")
    @classmethod
    def _bytes(cls, v: Any) -> int:
        return parse_bytes(v)

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, v: list[int]) -> list[int]:
        if not v:
            raise ValueError("at least one seed is needed")
        if any(s < 0 for s in v):
            raise ValueError(f"seeds must be non-negative, got {v}")
        return v

    @field_validator("device")
    @classmethod
    def _device(cls, v: str) -> str:
        if v not in ("auto", "cpu", "cuda"):
            raise ValueError(f"device must be one of auto, cpu, cuda; got {v!r}")
        return v

    @field_validator("threads")
    @classmethod
    def _threads(cls, v: int | None) -> int | None:
        if v is not None and v < 1:
            raise ValueError(f"threads must be >= 1, got {v}")
        return v

    def attention_specs(self, suite: str | None = None) -> list[AttentionSpec]:
        """The attention configurations to run: listed ones, or every registered one + variants;
        given ``suite``, those that run in it (an entry's ``suites``)."""
        if suite is not None:
            return [s for s in self.attention_specs() if s.runs_in(suite)]
        if self.attentions is not None:
            specs = [a.spec() for a in self.attentions]
        else:
            specs = [AttentionSpec(n) for n in list_attentions()]
            specs += [v.spec() for v in self.variants]
        labels = [s.label for s in specs]
        dupes = sorted({x for x in labels if labels.count(x) > 1})
        if dupes:
            raise ProfileError(f"attention labels must be unique; repeated: {', '.join(dupes)}")
        for s in specs:
            try:
                s.build()
            except ValueError as err:
                raise ProfileError(f"attention {s.label!r}: {err}") from None
        return specs

    def reference_label(self, specs: list[AttentionSpec] | None = None) -> str | None:
        """The reference attention's label; ``ProfileError`` when a named one is not planned."""
        labels = [s.label for s in (specs if specs is not None else self.attention_specs())]
        if self.reference is None:
            return "standard" if "standard" in labels else None
        if self.reference not in labels:
            raise ProfileError(f"reference: {self.reference!r} is not one of this run's "
                               f"attentions ({', '.join(labels)}); name one of them, or add it"
                               " to `attentions`/`variants`")
        return self.reference

    def to_dict(self) -> dict[str, Any]:
        data = self.model_dump(mode="json", exclude={"suites", "source"})
        for key in ("attentions", "variants"):  # unscoped entries keep their earlier hash
            for entry in data.get(key) or []:
                if entry.get("suites") is None:
                    entry.pop("suites", None)
        if data.get("model") is None:  # runs on the harness encoder keep their earlier hash
            data.pop("model", None)
            data.pop("finetune", None)
        data["suites"] = {k: v.model_dump(mode="json") for k, v in self.suites.items()}
        data["source"] = self.source
        return data

    @property
    def hash(self) -> str:
        data = self.to_dict()
        data.pop("source", None)
        data.pop("predictions", None)  # what is saved, not what is measured
        if not (data.get("data") or {}).get("skip_bad_files"):
            (data.get("data") or {}).pop("skip_bad_files", None)  # the default keeps old hashes
        return hashlib.sha1(canonical_json(data).encode()).hexdigest()


def list_profiles() -> list[str]:
    """Names of the profiles shipped in ``suites/``."""
    folder = _profile_dir()
    return sorted(p.stem for p in folder.glob("*.yaml"))


def _profile_dir() -> Path:
    """``suites/`` of the checkout, or the copy installed as the ``harness.profiles`` package."""
    if PROFILE_DIR.is_dir():
        return PROFILE_DIR
    import importlib.resources

    return Path(str(importlib.resources.files("harness.profiles")))


def _format_loc(loc: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in loc) or "(top level)"


def _error_text(err: ValidationError, model: type[BaseModel], prefix: tuple[Any, ...]) -> str:
    lines = []
    for e in err.errors():
        loc = (*prefix, *e["loc"])
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            owner: type[BaseModel] | None = model
            for part in e["loc"][:-1]:
                field = owner.model_fields.get(str(part)) if owner else None
                ann = getattr(field, "annotation", None)
                owner = ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None
            allowed = ", ".join(owner.model_fields) if owner else "see the docs"
            msg = f"unknown key; allowed keys here: {allowed}"
        lines.append(f"  {_format_loc(loc)}: {msg}")
    return "\n".join(lines)


def profile_from_dict(data: Any, source: str = "<dict>") -> Profile:
    """Validate a profile given as a mapping; ``ProfileError`` names ``source`` and the key."""
    if not isinstance(data, dict):
        raise ProfileError(f"{source}: a profile must be a mapping, got {type(data).__name__}")
    data = dict(data)
    plugins = data.get("plugins") or []
    if not isinstance(plugins, list) or not all(isinstance(p, str) for p in plugins):
        raise ProfileError(f"{source}: `plugins` must be a list of MODULE[:ATTR] strings")
    try:
        load_plugins(plugins)  # before attentions are validated: they may name plugin ones
    except ValueError as err:
        raise ProfileError(f"{source}: plugins: {err}") from None
    raw_suites = data.pop("suites", None)
    if not isinstance(raw_suites, dict) or not raw_suites:
        raise ProfileError(
            f"{source}: `suites` must map suite names to parameters; available suites:"
            f" {', '.join(list_suites())}"
        )
    suites: dict[str, SuiteParams] = {}
    problems = []
    for name, params in raw_suites.items():
        if name not in list_suites():
            known = ", ".join(list_suites())
            problems.append(f"  suites.{name}: unknown suite; available: {known}")
            continue
        model = get_suite(name).Params
        try:
            suites[name] = model.model_validate(params or {})
        except ValidationError as err:
            problems.append(_error_text(err, model, ("suites", name)))
    try:
        profile = Profile.model_validate({**data, "suites": {}})
    except ValidationError as err:
        problems.append(_error_text(err, Profile, ()))
        profile = None
    if problems:
        raise ProfileError(f"{source}: invalid profile\n" + "\n".join(problems))
    assert profile is not None
    profile = profile.model_copy(update={"suites": suites, "source": source})
    try:
        specs = profile.attention_specs()
    except ProfileError as err:
        raise ProfileError(f"{source}: invalid profile\n  attentions: {err}") from None
    try:
        _check_scopes(profile, specs)
    except ProfileError as err:
        raise ProfileError(f"{source}: invalid profile\n  {err}") from None
    if profile.model is not None:
        from harness.models.user import describe_cached

        try:
            describe_cached(profile.model)
        except ValueError as err:
            raise ProfileError(f"{source}: model: {err}") from None
    return profile


def _check_scopes(profile: Profile, specs: list[AttentionSpec]) -> None:
    """Each entry's ``suites`` names registered suites, and the reference runs in every suite
    of the profile (the suites compare each attention with it); else ``ProfileError``."""
    reference = profile.reference_label(specs)
    for spec in specs:
        unknown = [s for s in spec.suites or () if s not in list_suites()]
        if unknown:
            raise ProfileError(f"attention {spec.label!r}: suites: unknown suite(s)"
                               f" {', '.join(unknown)}; available: {', '.join(list_suites())}")
        missing = [s for s in profile.suites if not spec.runs_in(s)]
        if spec.label == reference and missing:
            raise ProfileError(f"attention {spec.label!r} is the reference, which every suite"
                               f" compares with, but its suites leave out {', '.join(missing)};"
                               " drop its `suites:` or choose another `reference`")


def load_profile(name_or_path: str | Path) -> Profile:
    """Load a shipped profile by name (``quick``, ``release``) or a YAML file by path."""
    text = str(name_or_path)
    path = Path(text)
    if not (text.endswith((".yaml", ".yml")) or path.is_file()):
        path = _profile_dir() / f"{text}.yaml"
        if not path.is_file():
            raise ProfileError(
                f"unknown profile {text!r}; shipped profiles: {', '.join(list_profiles())};"
                " or pass a path to a .yaml file"
            )
    if not path.is_file():
        raise ProfileError(f"{path}: profile file not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise ProfileError(f"{path}: not valid YAML ({err})") from None
    if isinstance(data, dict):
        data.setdefault("name", path.stem)
    return profile_from_dict(data, source=str(path))
