"""The accuracy suite's parameters: its tasks (synthetic, the run's text, the run's media) and
their defaults, the training budget, the probes and the baseline row."""

from __future__ import annotations

import hashlib
from typing import Any, Literal

from pydantic import Field, NonNegativeInt, PositiveInt, model_validator

from harness.records import canonical_json
from harness.suites.base import AttentionOptions, SuiteParams
from harness.suites.training import TrainParams

__all__ = [
    "BASELINE",
    "BASELINE_LABEL",
    "DATA_KEYS",
    "MEDIA_KEYS",
    "AccuracyParams",
    "MediaTaskEntry",
    "TaskEntry",
    "TextTaskEntry",
]

#: Attention name and label of the no-attention baseline row (an ablation, not a registry entry).
BASELINE = "none"
BASELINE_LABEL = "no-attention"
#: ``ctx.data`` fields that the text task takes from the command line, not from the profile.
DATA_KEYS = ("dataset", "data_files", "text_column", "label_column")
#: ... and those that the media (image/audio) task takes.
MEDIA_KEYS = ("dataset", "data_dir", "data_format", "label_column", "skip_bad_files")


class TaskEntry(SuiteParams):
    """One task: ``load_task(name, **params)``, shown as ``label`` (default: the name).

    ``train`` overrides the suite's budget for this task (still identical for every attention);
    ``attention_options`` (per attention name) fill in options the attention spec leaves unset.
    """

    name: str
    params: dict[str, Any] = Field(default_factory=dict)
    label: str | None = None
    train: TrainParams | None = None
    attention_options: AttentionOptions = Field(default_factory=dict)

    @model_validator(mode="after")
    def _known_task(self) -> TaskEntry:
        try:
            from harness.data import list_tasks, task_options
        except ImportError:  # the data layer is unavailable: load_task will say why at run time
            return self
        if self.name not in list_tasks():
            raise ValueError(f"unknown task {self.name!r}; registered: {', '.join(list_tasks())}")
        unknown = sorted(set(self.params) - set(task_options(self.name)))
        if unknown:
            valid = ", ".join(task_options(self.name))
            raise ValueError(
                f"task {self.name!r}: unknown parameter(s) {', '.join(unknown)}; valid: {valid}"
            )
        return self

    @property
    def key(self) -> str:
        return self.label or self.name

    def config_hash(self) -> str:
        """Short hash of what defines the task's data, so cells differ when it changes."""
        return hashlib.sha1(canonical_json([self.name, self.params]).encode()).hexdigest()[:8]


class TextTaskEntry(TaskEntry):
    """The ``text`` task on the run's data (``--data-files``/``--dataset``); ``name`` is fixed."""

    name: Literal["text"] = "text"


def _listops() -> TaskEntry:
    return TaskEntry(name="listops", params={"n_train": 2000, "n_val": 200, "n_test": 500,
                                             "min_len": 32, "max_len": 128, "max_depth": 4,
                                             "max_args": 5},
                     attention_options={"sparse": {"block_size": 8}, "lsh": {"chunk_size": 16}})


def _recall() -> TaskEntry:
    return TaskEntry(name="recall", params={"n_train": 2000, "n_val": 200, "n_test": 500,
                                            "seq_len": 128, "n_pairs": 8, "n_queries": 4,
                                            "num_keys": 32, "num_values": 8},
                     attention_options={"sparse": {"block_size": 8}, "lsh": {"chunk_size": 16}})


class MediaTaskEntry(TaskEntry):
    """The ``media`` task on the run's image/audio data (``--data-dir`` + ``--data-format``, or
    ``--dataset NAME --data-format ...``); ``name`` is fixed."""

    name: Literal["media"] = "media"


def _text() -> TextTaskEntry:
    return TextTaskEntry(name="text", params={"tokenizer": "wordpiece", "vocab_size": 8000,
                                              "max_len": 64, "max_train": 20000, "max_eval": 2000},
                         attention_options={"sparse": {"block_size": 8}, "lsh": {"chunk_size": 8}})


class AccuracyParams(SuiteParams):
    """Parameters of the accuracy suite (see :mod:`harness.suites.accuracy`)."""

    tasks: list[TaskEntry] = Field(default_factory=lambda: [_listops(), _recall()])
    text: TextTaskEntry | None = Field(default_factory=_text)
    #: the run's image/audio data (``--data-dir``); a profile opts in with a ``media:`` entry
    media: MediaTaskEntry | None = None
    train: TrainParams = Field(default_factory=TrainParams)
    attention_options: AttentionOptions = Field(default_factory=dict)
    n_boot: NonNegativeInt = 1000
    #: Also train the no-attention baseline (token mixing removed, same budget) per task and seed.
    baseline: bool = True
    fidelity: bool = True
    fidelity_max_examples: PositiveInt = 512
    predict_batch_size: PositiveInt = 128
    #: torch threads while training and scoring (None: the run's). Small encoders gain little
    #: from intra-op threads, and on a busy machine a single thread is far steadier.
    threads: PositiveInt | None = None
    #: Time limit of one cell (seconds): past it the cell is stopped and recorded ``timeout``.
    timeout_s: float = Field(default=14400.0, gt=0.0)

    @model_validator(mode="after")
    def _consistent(self) -> AccuracyParams:
        keys = [t.key for t in self.all_tasks()]
        dupes = sorted({k for k in keys if keys.count(k) > 1})
        if dupes:
            raise ValueError(
                f"task labels must be unique, repeated: {', '.join(dupes)}; set `label:` on one"
            )
        for entry, keys, flags, pin in (
            (self.text, DATA_KEYS, "--dataset/--data-files/--text-column/--label-column",
             "text and params.data_files"),
            (self.media, MEDIA_KEYS, "--data-dir/--data-format/--dataset/--label-column",
             "media and params.data_dir"),
        ):
            given = sorted(set(entry.params) & set(keys)) if entry is not None else []
            if given:
                raise ValueError(
                    f"{entry.name}.params: {', '.join(given)} come from the command line "
                    f"({flags}); to pin data in the profile, add a `tasks:` entry with name: {pin}"
                )
        return self

    def all_tasks(self) -> list[TaskEntry]:
        run_data = [e for e in (self.text, self.media) if e is not None]
        return [*self.tasks, *run_data]

    def task(self, key: str) -> TaskEntry:
        for entry in self.all_tasks():
            if entry.key == key:
                return entry
        known = ", ".join(t.key for t in self.all_tasks())
        raise ValueError(f"accuracy: no task {key!r} in the profile; it has: {known}")

    def train_for(self, entry: TaskEntry) -> TrainParams:
        return entry.train or self.train

    def is_run_data(self, entry: TaskEntry) -> bool:
        """Whether ``entry`` runs on the run's own data (the text or the media entry)."""
        return (self.text is not None and entry is self.text) or self.is_run_media(entry)

    def is_run_media(self, entry: TaskEntry) -> bool:
        """Whether ``entry`` is the media entry (the run's image/audio data)."""
        return self.media is not None and entry is self.media
