"""Result records: the unit every suite produces and the results store keeps (docs/RESULTS.md)."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, fields
from typing import Any

__all__ = ["INTERVALS", "STATUSES", "Cell", "Record", "canonical_json"]

STATUSES = ("ok", "oom", "timeout", "error", "skipped")
INTERVALS = (None, "ci95", "iqr")


def canonical_json(value: Any) -> str:
    """Deterministic JSON (sorted keys, no spaces) used for hashing and matching."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


@dataclass(frozen=True)
class Cell:
    """One unit of work: a suite on one attention configuration with one parameter set."""

    suite: str
    attention: str
    options: dict[str, Any]
    params: dict[str, Any]
    label: str = ""

    @property
    def id(self) -> str:
        """Identity of the cell in a run; the label is part of it, so two labels that share a
        configuration are two cells (both run)."""
        key = canonical_json([self.suite, self.attention, self.options, self.params,
                              self.label or self.attention])
        return hashlib.sha1(key.encode()).hexdigest()[:16]

    @property
    def display(self) -> str:
        shown = ", ".join(f"{k}={v}" for k, v in self.params.items())
        return f"{self.suite}/{self.label or self.attention} [{shown}]"


@dataclass
class Record:
    """One metric of one cell. See docs/RESULTS.md for each field's meaning."""

    suite: str
    attention: str
    options: dict[str, Any]
    params: dict[str, Any]
    metric: str
    value: float | None = None
    unit: str | None = None
    higher_is_better: bool | None = None
    stderr: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    n: int | None = None
    interval: str | None = None
    status: str = "ok"
    error: str | None = None
    label: str | None = None
    cell: str | None = None
    cell_size: int | None = None
    samples: list[float] | None = None
    noisy: str | None = None
    load: dict[str, Any] | None = None
    predictions: str | None = None
    suite_version: int | None = None
    ci_method: str | None = None
    #: Label of the attention a side-by-side ratio was timed against (throughput
    #: ``*_speed_vs_reference``); None elsewhere and in older runs.
    reference: str | None = None
    #: Sizes of the consecutive runs of ``samples`` that each came from one fresh process
    #: (throughput ``processes`` > 1): compare tests the per-process estimates. None: one process.
    sample_groups: list[int] | None = None

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"record status must be one of {STATUSES}, got {self.status!r}")
        for name in ("value", "stderr", "ci_low", "ci_high"):
            v = getattr(self, name)
            if v is not None:
                v = float(v)
                setattr(self, name, v if math.isfinite(v) else None)
        if self.n is not None:
            self.n = int(self.n)
        if self.samples is not None:
            self.samples = [float(x) for x in self.samples]
        if self.suite_version is not None:
            self.suite_version = int(self.suite_version)
        if self.sample_groups is not None:
            self.sample_groups = [int(x) for x in self.sample_groups]
            if self.samples is None or sum(self.sample_groups) != len(self.samples) or min(
                    self.sample_groups, default=0) < 1:
                raise ValueError(f"record sample_groups {self.sample_groups} must be positive "
                                 f"sizes that add up to the {len(self.samples or [])} samples")
        if self.interval not in INTERVALS:
            raise ValueError(f"record interval must be one of {INTERVALS}, got {self.interval!r}")

    @classmethod
    def for_cell(cls, cell: Cell, metric: str, **kwargs: Any) -> Record:
        return cls(
            suite=cell.suite,
            attention=cell.attention,
            options=dict(cell.options),
            params=dict(cell.params),
            metric=metric,
            label=cell.label or cell.attention,
            **kwargs,
        )

    @property
    def key(self) -> tuple[str, str, str, str, str, str]:
        """Identity used to match records across runs (the label tells apart variants that
        share a configuration)."""
        return (
            self.suite,
            self.attention,
            self.label or self.attention,
            canonical_json(self.options),
            canonical_json(self.params),
            self.metric,
        )

    def to_json(self) -> str:
        # the fields as they are (json.dumps copies nothing; asdict's deep copy was 80% of this)
        data = {name: getattr(self, name) for name in _RECORD_FIELDS}
        if data["predictions"] is None:  # only cells that saved predictions carry the field
            del data["predictions"]
        for name in ("reference", "sample_groups"):  # only some timings carry these
            if data[name] is None:
                del data[name]
        return json.dumps(data, default=str)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Record:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


#: Record's field names, in order (its JSON keys)
_RECORD_FIELDS = tuple(f.name for f in fields(Record))
