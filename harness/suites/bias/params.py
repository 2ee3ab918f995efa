"""The bias suite's parameters: the planted-bias corpus, the training budget, the probes (group
audit axes, swaps, template axes, the run's text data, a probe set) and the flags' test settings."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, NonNegativeInt, PositiveInt, field_validator, model_validator

from harness.data import list_swaps
from harness.data.terms import ATTRIBUTES, AXES, axis_groups
from harness.suites.base import AttentionOptions, SuiteParams
from harness.suites.probes import ProbeSetParams
from harness.suites.training import TrainParams

__all__ = ["NONE", "BiasParams", "CorpusParams", "TextProbeParams"]

#: ``none``: the attribute value of a sentence without an identity term of it, and the
#: template axis of the sentences without identity terms.
NONE = "none"


def _default_train() -> TrainParams:
    return TrainParams(steps=200, batch_size=32, lr=2e-3, eval_every=50, hidden_size=32,
                       num_layers=1, num_heads=2, ffn_size=64, dropout=0.0)


class CorpusParams(SuiteParams):
    """The planted-bias corpus (``bias_sentiment``): sizes, the planted group and its mechanism."""

    n_train: PositiveInt = 2000
    n_val: PositiveInt = 300
    n_test: PositiveInt = 1000
    bias_axis: str = "gender"
    bias_group: str = "female"
    mechanism: Literal["label_flip", "sampling"] = "label_flip"
    tokenizer: Literal["word", "byte"] = "word"

    @model_validator(mode="after")
    def _known_group(self) -> CorpusParams:
        if self.bias_axis not in ATTRIBUTES:
            raise ValueError(
                f"corpus.bias_axis must be one of {', '.join(ATTRIBUTES)}, got {self.bias_axis!r}"
            )
        groups = axis_groups(self.bias_axis)
        if self.bias_group not in groups:
            raise ValueError(
                f"corpus.bias_group {self.bias_group!r} is not a {self.bias_axis} group;"
                f" choose one of {', '.join(groups)}"
            )
        return self


class TextProbeParams(SuiteParams):
    """Training on the run's text dataset (``--data-files``/``--dataset``) for the text probes.

    ``attention_options`` apply on top of the suite's for the text cells (longer inputs).
    """

    tokenizer: Literal["byte", "word", "bpe", "wordpiece"] = "bpe"
    vocab_size: PositiveInt = 4000
    max_len: int = Field(default=48, ge=8)
    max_train: PositiveInt | None = 2000
    max_eval: PositiveInt | None = 1000
    train: TrainParams | None = None  # None: the suite's ``train``
    attention_options: AttentionOptions = Field(default_factory=dict)


class BiasParams(SuiteParams):
    """Parameters of the bias suite (see :mod:`harness.suites.bias` for the cells they
    plan).

    ``min_increase``: the practical-significance floor. ``significant_increase`` tests whether a
    variant is more than this margin more biased than the reference (0: any increase). Scores and
    rates live on [0, 1], so one margin fits every bias metric; it keeps negligible but
    "significant" differences (e.g. 0.005 in the positive score of a saturated model) from
    raising flags.

    ``multiplicity`` / ``alpha``: the flags of one attention (per seed and planted strength or
    data source) form one family of tests, adjusted together: ``holm`` (default) bounds the
    chance of *any* false flag in the family by ``alpha`` (family-wise error), under any
    dependence between the tests; ``bh`` (Benjamini-Hochberg) bounds the expected share of false
    flags among the flags instead (more power, weaker promise); ``none`` tests each comparison
    alone (the pre-adjustment behaviour: about half the null families carry a false flag).

    ``threads`` caps torch's CPU threads inside a cell: models this small train fastest on one
    thread (more threads only add synchronisation, and spin badly on a shared CPU); ``None``
    keeps the run's setting.

    ``attention_options`` (per attention name) fill in options a profile's attention spec leaves
    unset. The corpus's sentences are ~15 tokens, so block-sparse and LSH need small blocks and
    chunks (e.g. ``{sparse: {block_size: 2, random_blocks: 0}, lsh: {chunk_size: 4}}``) to be
    anything but full attention; the options that ran are in every record's ``options``.
    """

    strengths: list[float] = Field(default_factory=lambda: [0.8])
    corpus: CorpusParams = Field(default_factory=CorpusParams)
    train: TrainParams = Field(default_factory=_default_train)
    audit_axes: list[str] = Field(default_factory=lambda: list(ATTRIBUTES))
    swaps: list[str] = Field(default_factory=list_swaps)
    template_axes: list[str] = Field(default_factory=lambda: ["gender", "name"])
    n_boot: NonNegativeInt = 200
    positive_label: NonNegativeInt = 1
    predict_batch_size: PositiveInt = 512
    save_predictions: bool = True
    min_increase: float = Field(default=0.0, ge=0.0, lt=1.0)
    multiplicity: Literal["holm", "bh", "none"] = "holm"
    alpha: float = Field(default=0.05, gt=0.0, lt=1.0)
    threads: PositiveInt | None = 1
    attention_options: AttentionOptions = Field(default_factory=dict)
    text: TextProbeParams | None = Field(default_factory=TextProbeParams)
    probe_set: ProbeSetParams | None = None
    #: Time limit of one cell (seconds): past it the cell is stopped and recorded ``timeout``.
    timeout_s: float = Field(default=14400.0, gt=0.0)

    @field_validator("strengths")
    @classmethod
    def _strengths(cls, v: list[float]) -> list[float]:
        if not v:
            raise ValueError("strengths needs at least one value in [0, 1], e.g. [0.0, 0.8]")
        bad = [s for s in v if not 0.0 <= s <= 1.0]
        if bad:
            raise ValueError(f"strengths must lie in [0, 1]; got {bad}")
        if len(set(v)) != len(v):
            raise ValueError(f"strengths must not repeat, got {v}")
        return [float(s) for s in v]

    @field_validator("audit_axes")
    @classmethod
    def _axes(cls, v: list[str]) -> list[str]:
        bad = [a for a in v if a not in ATTRIBUTES]
        if bad or not v:
            raise ValueError(f"audit_axes: unknown {bad or v}; choose from {', '.join(ATTRIBUTES)}")
        return v

    @field_validator("swaps")
    @classmethod
    def _swaps(cls, v: list[str]) -> list[str]:
        bad = [s for s in v if s not in list_swaps()]
        if bad:
            raise ValueError(f"swaps: unknown {bad}; choose from {', '.join(list_swaps())}")
        return v

    @field_validator("template_axes")
    @classmethod
    def _template_axes(cls, v: list[str]) -> list[str]:
        bad = [a for a in v if a not in AXES or a == NONE]
        if bad:
            allowed = ", ".join(a for a in AXES if a != NONE)
            raise ValueError(f"template_axes: unknown {bad}; choose from {allowed}")
        return v
