"""The suite contract: parameters (validated), a plan of cells, one cell's measurement, summaries.

A suite's parameters are a pydantic model (``Suite.Params``); profiles in ``suites/*.yaml`` hold the
values, and both the CLI and the asv benchmarks read them from there (one source of truth).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, model_validator

from harness.attention import attention_class, attention_options, list_attentions
from harness.records import Cell, Record
from harness.registry import Registry

__all__ = [
    "FORMATS",
    "RESOURCE_CLASSES",
    "AttentionOptions",
    "AttentionSpec",
    "DataOptions",
    "MetricSpec",
    "RunContext",
    "Suite",
    "SuiteParams",
    "check_attention_options",
    "compare_rules",
    "get_suite",
    "list_suites",
    "register_suite",
    "resolve_options",
    "suite_meta",
    "suites_meta",
]

#: How a metric's value is shown (docs/RESULTS.md, "Metric metadata"): ``auto`` by its unit;
#: ``signed`` with an explicit sign (differences); ``percent`` as 12.3%.
FORMATS = ("auto", "signed", "percent")


class SuiteParams(BaseModel):
    """Base of every suite's parameter model: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


#: A cell's time limit when its suite's parameters declare no ``timeout_s`` of their own.
DEFAULT_TIMEOUT_S = 14400.0


@dataclass(frozen=True)
class AttentionSpec:
    """A registered attention with options and a display label (``standard[eager]``)."""

    name: str
    options: dict[str, Any] = field(default_factory=dict)
    label: str = ""
    #: The suites this configuration runs in (profile ``suites:`` of an attention entry);
    #: None: every suite of the run.
    suites: tuple[str, ...] | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if not self.label:
            shown = ",".join(str(v) for v in self.options.values())
            object.__setattr__(self, "label", f"{self.name}[{shown}]" if shown else self.name)

    @property
    def resolved_options(self) -> dict[str, Any]:
        """Options with the class defaults filled in (what actually runs). A kernel choice
        (``backend_options``) left at its default stays out, so records keep the identity
        they had before the option existed (compare matches runs across versions)."""
        cls = attention_class(self.name)
        defaults = attention_options(cls)
        resolved = {**defaults, **self.options}
        kernel_defaults = {k for k in cls.backend_options if resolved.get(k) == defaults.get(k)}
        return {k: v for k, v in resolved.items() if k not in kernel_defaults}

    @property
    def capabilities(self):
        return attention_class(self.name).capabilities

    def build(self):
        from harness.attention import get_attention

        return get_attention(self.name, **self.options)

    def cell(self, suite: str, params: dict[str, Any]) -> Cell:
        return Cell(suite, self.name, self.resolved_options, params, self.label)

    def as_dict(self) -> dict[str, Any]:
        data = {"label": self.label, "name": self.name, "options": dict(self.options)}
        if self.suites is not None:
            data["suites"] = list(self.suites)
        return data

    def runs_in(self, suite: str) -> bool:
        """Whether this configuration runs in ``suite`` (see ``suites``)."""
        return self.suites is None or suite in self.suites


def check_attention_options(value: dict[str, dict[str, Any]], where: str = "attention_options"
                            ) -> dict[str, dict[str, Any]]:
    """``value`` (options per attention name), or a ValueError that names ``where`` the unknown
    attention or option is and lists the valid ones."""
    for name, options in value.items():
        if name not in list_attentions():
            raise ValueError(
                f"{where}: unknown attention {name!r}; registered: {', '.join(list_attentions())}"
            )
        valid = attention_options(attention_class(name))
        unknown = sorted(set(options) - set(valid))
        if unknown:
            raise ValueError(
                f"{where}.{name}: unknown option(s) {', '.join(unknown)}; valid: {', '.join(valid)}"
            )
    return value


#: A parameter field of options per attention name (``{sparse: {block_size: 8}}``), checked
#: against the registry by :func:`check_attention_options`.
AttentionOptions = Annotated[dict[str, dict[str, Any]], AfterValidator(check_attention_options)]


def resolve_options(spec: AttentionSpec, *layers: Mapping[str, Mapping[str, Any]]
                    ) -> dict[str, Any]:
    """The options that run for ``spec``: its class defaults, then each layer's options for its
    attention (per attention name, e.g. suite-wide then per task, later layers win), then the
    options the spec itself sets."""
    options = dict(spec.resolved_options)
    for layer in layers:
        options.update(layer.get(spec.name, {}))
    options.update(spec.options)
    return options


@dataclass(frozen=True)
class MetricSpec:
    """One metric a suite writes, declared once (HELM-style schema) and stored in run.json.

    ``unit`` and ``higher_is_better`` are the record fields' values (None: informational);
    ``headline`` marks the suite's headline metric (one per suite); ``format`` is one of
    :data:`FORMATS`; ``summary`` is True for metrics written by ``Suite.summarize``;
    ``gated=False`` keeps a metric out of `harness compare`'s verdict and power (shown only),
    e.g. a figure computed from timings the suite already gates; ``compared`` marks a metric the
    suite's summary compares with the run's reference (bias: ``<name>_diff_vs_reference``).

    Records are built from the spec (:meth:`Suite.record`), so ``unit`` and ``higher_is_better``
    are written here only.
    """

    name: str
    display: str
    unit: str | None = None
    higher_is_better: bool | None = None
    headline: bool = False
    format: str = "auto"
    summary: bool = False
    description: str = ""
    gated: bool = True
    compared: bool = False

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise ValueError(f"metric {self.name!r}: format must be one of {FORMATS}, "
                             f"got {self.format!r}")

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "display": self.display, "unit": self.unit,
                "higher_is_better": self.higher_is_better, "headline": self.headline,
                "format": self.format, "summary": self.summary,
                "description": self.description, "gated": self.gated,
                "compared": self.compared}


class DataOptions(SuiteParams):
    """Where the run's own data comes from: text (``dataset`` / ``data_files``) for suites that
    train on text, or an image/audio folder (``data_dir`` + ``data_format``) or hub image/audio
    ``dataset`` (with ``data_format``) for the accuracy suite's ``media`` task."""

    dataset: str | None = None
    data_files: dict[str, str] | None = None
    text_column: str | None = None
    label_column: str | None = None
    data_dir: str | None = None
    data_format: Literal["imagefolder", "audiofolder"] | None = None
    skip_bad_files: bool = False  # leave unreadable media files out (listed), instead of exit 2

    @model_validator(mode="after")
    def _media_pair(self) -> DataOptions:
        if self.data_dir is not None and self.data_format is None:
            raise ValueError("data.data_dir needs data_format: imagefolder or audiofolder")
        if self.data_format is not None and self.data_dir is None and self.dataset is None:
            raise ValueError("data.data_format needs data_dir (a local folder) or dataset (a hub "
                             "image/audio dataset)")
        return self

    @property
    def given(self) -> bool:
        """Whether the run names text data (a text dataset or local files)."""
        text_dataset = self.dataset is not None and self.data_format is None
        return text_dataset or self.data_files is not None

    @property
    def media_given(self) -> bool:
        """Whether the run names image/audio data (a folder, or a hub dataset with a format)."""
        return self.data_format is not None

    @property
    def label(self) -> str:
        """Short identity of the data (hub name or file names), stored in records' params."""
        if self.dataset:
            return str(self.dataset)
        return ",".join(f"{k}={Path(v).name}" for k, v in sorted((self.data_files or {}).items()))

    @property
    def media_label(self) -> str:
        """Short identity of the image/audio data (hub name or folder name)."""
        return str(self.dataset) if self.data_dir is None else Path(self.data_dir).name


_PLANNED_MODEL: list[dict[str, Any] | None] = [None]


@contextmanager
def planning_model(model: dict[str, Any] | None) -> Iterator[None]:
    """Within the block, :func:`planned_model` is ``model``: the run's user model
    (``harness.models.user.UserModel.as_dict()``) while its suites plan; None: the encoder."""
    saved = _PLANNED_MODEL[0]
    _PLANNED_MODEL[0] = model
    try:
        yield
    finally:
        _PLANNED_MODEL[0] = saved


def planned_model() -> dict[str, Any] | None:
    """The user model of the run being planned (see :func:`planning_model`), or None."""
    return _PLANNED_MODEL[0]


def no_progress(fraction: float, text: str) -> None:
    """The default progress sink: drops the event (a module function, so contexts pickle)."""


@dataclass
class RunContext:
    """What a cell needs to know about the run it belongs to.

    Picklable, so a cell can run in another process or on another node: ``progress`` is a
    picklable callable (the executors give each worker a sink that sends events to the driver),
    and ``inputs`` holds the records of the cells this cell depends on (``Suite.depends_on``).
    """

    device: str = "cpu"
    threads: int = 1
    memory_budget: int = 8 * 2**30
    run_dir: Path | None = None
    seeds: tuple[int, ...] = (0,)
    data: DataOptions = field(default_factory=DataOptions)
    predictions: Any = None  # harness.suites.predictions.PredictionOptions (None: not saved)
    progress: Callable[[float, str], None] = no_progress
    inputs: dict[str, list[Record]] = field(default_factory=dict)
    #: The label of the reference attention every suite compares with (profile ``reference``).
    reference: str | None = "standard"
    #: The reference attention's spec, for suites that run it beside each cell (throughput's
    #: side-by-side timing); None: not known here (the suite uses its own fallback).
    reference_spec: AttentionSpec | None = None
    #: The run's user model (``harness.models.user.UserModel.as_dict()``; profile ``model:``,
    #: ``--model``), which the suites build through ``harness.models.user``; None: the harness
    #: encoder.
    model: dict[str, Any] | None = None

    def is_reference(self, label: str | None) -> bool:
        """Whether an attention label (``record.label or record.attention``) is the reference."""
        return label is not None and label == self.reference

    @property
    def artifacts(self) -> Path:
        if self.run_dir is None:
            raise ValueError("this run context has no run directory for artifacts")
        path = Path(self.run_dir) / "artifacts"
        path.mkdir(parents=True, exist_ok=True)
        return path


#: Resource classes of cells. ``timing`` cells measure speed and need the machine (or the GPU) to
#: themselves while they measure. ``memory`` cells measure a peak in a fresh process of their own:
#: on CPU a neighbour does not change that process's peak RSS, so they share the machine (one slot,
#: never beside a timing cell); on a GPU they need it to themselves. ``training`` cells train and
#: score small models and share a machine, one torch thread each.
RESOURCE_CLASSES = ("timing", "memory", "training")


class Suite(ABC):
    """One suite: ``plan`` cells, ``run_cell`` each, then ``summarize`` across cells.

    Declarations read by every view (they go into run.json, so reports and compare need no suite
    code): ``version`` (bump it when the method changes: compare then reports "method changed",
    not a regression), ``metrics`` (one :class:`MetricSpec` per metric; exactly one headline) and
    ``section``, the ``"module:function"`` that renders the suite's report section from the
    store (None: the report's generic section, a table of the declared metrics).
    """

    name: ClassVar[str]
    description: ClassVar[str]
    headline: ClassVar[str] = ""  # set from the metric declared ``headline=True``
    Params: ClassVar[type[SuiteParams]]
    #: resource class of this suite's cells (one of ``RESOURCE_CLASSES``)
    resource: ClassVar[str] = "training"
    #: run.json keys that also define this suite's measurements (compare matches on them).
    run_keys: ClassVar[tuple[str, ...]] = ()
    #: metric -> its drift-cancelling ratio metric (measured side by side with a reference);
    #: compare requires the ratio to agree before it calls the metric a regression.
    reference_metrics: ClassVar[dict[str, str]] = {}
    #: How far a row whose uncertainty comes from one run alone (a single measurement, or an
    #: interval fitted within the run) moves between runs of identical code, as a fraction
    #: (measured; e.g. memory's per-process allocator state); compare calls a smaller change
    #: of such a row unchanged and states it as the row's power. None: none declared.
    single_run_noise: ClassVar[float | None] = None
    version: ClassVar[int] = 1
    metrics: ClassVar[tuple[MetricSpec, ...]] = ()
    section: ClassVar[str | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        heads = [m.name for m in cls.metrics if m.headline]
        if len(heads) > 1:
            raise TypeError(f"suite {cls.__name__}: one headline metric, got {heads}")
        if heads:
            cls.headline = heads[0]
        names = [m.name for m in cls.metrics]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise TypeError(f"suite {cls.__name__}: metrics declared twice: {dupes}")

    @classmethod
    def metric_spec(cls, metric: str) -> MetricSpec:
        """The declared :class:`MetricSpec` of ``metric``; ValueError when the suite does not
        declare it."""
        for spec in cls.metrics:
            if spec.name == metric:
                return spec
        raise ValueError(f"suite {cls.name!r} does not declare a metric {metric!r}; add a"
                         f" MetricSpec for it to {cls.__qualname__}.metrics")

    @classmethod
    def record(cls, source: Cell | Record, metric: str, *, params: dict[str, Any] | None = None,
               per_group: bool = False, **fields: Any) -> Record:
        """A record of the declared ``metric`` (unit and direction from its MetricSpec, so no
        call site types them) for ``source``: a cell, or a record whose attention, options and
        label it shares (a summary). ``params`` replaces the source's; ``fields`` are the other
        record fields (value, n, status, ...). ValueError for an undeclared metric.

        ``per_group=True``: one group's rate in a group audit (e.g. its accuracy), written
        without a direction whatever the metric's: compare judges the gaps between groups,
        not each group."""
        spec = cls.metric_spec(metric)
        given = sorted({"unit", "higher_is_better"} & fields.keys())
        if given:
            raise TypeError(f"{cls.name}/{metric}: {', '.join(given)} come from the metric's"
                            " MetricSpec; do not pass them")
        return Record(suite=cls.name, attention=source.attention, options=dict(source.options),
                      params=dict(source.params if params is None else params), metric=metric,
                      label=source.label or source.attention, unit=spec.unit,
                      higher_is_better=None if per_group else spec.higher_is_better, **fields)

    @abstractmethod
    def plan(
        self, params: SuiteParams, attentions: list[AttentionSpec], seeds: list[int]
    ) -> list[Cell]:
        """The cells to run, in order."""

    @abstractmethod
    def run_cell(self, cell: Cell, params: SuiteParams, ctx: RunContext) -> list[Record]:
        """Measure one cell; raise on failure (the runner records the error and goes on)."""

    def resource_class(self, cell: Cell) -> str:
        """Resource class of ``cell`` (see ``RESOURCE_CLASSES``); the suite's by default."""
        return self.resource

    def imports(self, cell: Cell, user_model: bool) -> tuple[str, ...]:
        """Modules that running ``cell`` imports on first use (``user_model``: the run has a
        user's model): an executor may import them ahead, where the cell will run (the pool: its
        workers at start, its fork server, this process), so that no cell's clock pays for
        them. None by default."""
        return ()

    def depends_on(self, cell: Cell, cells: list[Cell]) -> list[Cell]:
        """The cells of ``cells`` (this suite's plan) that ``cell`` needs first.

        A cell runs only after its dependencies finished; their records are what ``skip_reason``
        sees and what ``ctx.inputs`` holds while it runs. They must come earlier in the plan.
        """
        return []

    def skip_reason(self, cell: Cell, finished: list[Record]) -> str | None:
        """Why ``cell`` should not run, given its dependencies' records (e.g. a sweep stopped at
        its first oom)."""
        return None

    def summarize(
        self, records: list[Record], params: SuiteParams, ctx: RunContext
    ) -> list[Record]:
        """Cross-cell records (fits, means over seeds, comparisons with standard)."""
        return []

    def cell_weight(self, cell: Cell) -> float:
        """Relative expected cost of a cell, for the progress bar."""
        return 1.0

    # -- replicas: one cell measured in several worker processes, then merged -----------------
    # A suite never starts processes: it declares how many replicas each cell needs and the
    # executor runs replica i of every cell in a process of its own, kept for the run (so each
    # cell meets the same processes), one replica after the other; the runner merges the runs.

    def replicas(self, params: SuiteParams) -> int:
        """Worker processes each cell is measured in (1: the cell runs once, where the executor
        places it). Above 1, the suite also overrides :meth:`merge_replicas`."""
        return 1

    def replica_params(self, params: SuiteParams, i: int, k: int) -> SuiteParams:
        """The parameters replica ``i`` of ``k`` runs with (e.g. its share of a budget)."""
        return params

    def merge_replicas(self, runs: list[list[Record]]) -> list[Record]:
        """One cell's records from the records of its ``k`` replicas (in replica order)."""
        if len(runs) == 1:
            return runs[0]
        raise NotImplementedError(f"suite {self.name!r} runs cells in {len(runs)} replicas"
                                  " but does not override Suite.merge_replicas")

    def upgrade_params(self, params: dict[str, Any], section: dict[str, Any]) -> dict[str, Any]:
        """A schema-1 record's ``params`` completed with what this version's records carry,
        from the run's profile ``section`` for this suite (so old stores still match)."""
        return params


def _check_suite(name: str, obj: object) -> Suite:
    """A registered suite: a :class:`Suite` subclass (instantiated) or instance named ``name``."""
    suite = obj() if isinstance(obj, type) and issubclass(obj, Suite) else obj
    if not isinstance(suite, Suite):
        raise ValueError(f"suite {name!r} must be a Suite subclass, got {obj!r}")
    if suite.name != name:
        raise ValueError(f"suite class {type(suite).__qualname__} is named {suite.name!r} but is"
                         f" registered as {name!r}; make its `name` and the entry point's equal")
    noise = suite.single_run_noise
    if noise is not None and (isinstance(noise, bool) or not isinstance(noise, int | float)
                              or not 0 < noise < 10):
        raise ValueError(f"suite {name!r}: single_run_noise must be None or a fraction > 0 (0.4 ="
                         f" 40%), got {noise!r}")
    return suite


def _suite_name(obj: object) -> str | None:
    """The name a plugin's ``MODULE:ATTR`` object registers under, if it is a suite."""
    if (isinstance(obj, type) and issubclass(obj, Suite)) or isinstance(obj, Suite):
        return obj.name
    return None


_ORDER = ["accuracy", "throughput", "memory", "bias"]
#: Every suite: built-ins, and plugins (entry points ``harness.suites``, ``--plugin``).
_SUITES: Registry[Suite] = Registry(
    "suite", validate=_check_suite, group="harness.suites", adopt=_suite_name,
    order=lambda n: (_ORDER.index(n) if n in _ORDER else len(_ORDER), n)
)


def register_suite(cls: type[Suite]) -> type[Suite]:
    """Class decorator: register a suite under ``cls.name`` (a taken name is refused)."""
    _SUITES.add(cls.name, cls)
    return cls


def list_suites() -> list[str]:
    """Registered suites in their canonical running order."""
    return _SUITES.names()


def compare_rules(names: list[str] | None = None) -> dict[str, dict[str, Any]]:
    """Each suite's rules for `harness compare` (``run_keys``, ``reference_metrics``, whether its
    cells are ``timing`` cells, ``single_run_noise``), stored in run.json so comparing runs
    needs no suite import."""
    def rules(suite: Suite) -> dict[str, Any]:
        return {"run_keys": list(suite.run_keys),
                "reference_metrics": dict(suite.reference_metrics),
                "timing": suite.resource == "timing",
                "single_run_noise": suite.single_run_noise}

    return {name: rules(get_suite(name)) for name in (list_suites() if names is None else names)}


def suite_meta(name: str) -> dict[str, Any]:
    """A registered suite's declarations as stored in run.json (``suites_meta[name]``)."""
    suite = get_suite(name)
    return {"version": suite.version, "description": suite.description,
            "section": suite.section, "resource": suite.resource,
            "metrics": [m.as_dict() for m in suite.metrics]}


def suites_meta(names: list[str]) -> dict[str, dict[str, Any]]:
    """``suite_meta`` of each named suite, for run.json."""
    return {name: suite_meta(name) for name in names}


def get_suite(name: str) -> Suite:
    return _SUITES.entry(name).value  # type: ignore[return-value]
