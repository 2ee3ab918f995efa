"""A user's transformers model in every suite, each harness attention swapped in.

The one seam between the suites and a model that is not the harness's own encoder
(``harness run --model PATH_OR_NAME``, profile key ``model:``):

- :func:`describe_model` reads a folder saved with ``save_pretrained`` (or a hub name, online)
  and checks it before anything runs: a config, a classification class for its architecture
  whose attention goes through transformers' ``AttentionInterface``, the pre-processor its
  modality needs (tokenizer / image processor / feature extractor). The result,
  :class:`UserModel`, names the model in every record (``name@config-hash``) and in run.json.
- :func:`adapt_task` re-encodes a loaded task for the model: texts through its tokenizer,
  images through its image processor; the task then builds this model (:func:`build_classifier`,
  called by the shared trainer) instead of the harness encoder.
- :func:`timing_steps` and :func:`memory_work` give the throughput and memory suites the whole
  model's train step and inference at a length capped by its maximum positions
  (:func:`model_lengths`).

Attention dropout is set to 0 (the harness contract has none; recorded in run.json); the
classification head is sized to the task (a new, randomly initialized head when the saved one
has another size); a folder without weights is a random init (stated in run.json).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from functools import lru_cache
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

__all__ = [
    "SUPPORTED",
    "UserModel",
    "UserModelClassifier",
    "UserModelError",
    "adapt_task",
    "build_classifier",
    "current_model",
    "describe_model",
    "memory_work",
    "model_lengths",
    "timing_steps",
]

#: Architectures whose classification models are tested here with every harness attention
#: (exactness of ``standard`` against transformers' sdpa and eager).
SUPPORTED = ("bert", "roberta", "distilbert", "modernbert (global attention layers)", "vit",
             "wav2vec2", "whisper (encoder)")
#: Config fields that hold the attention-weights dropout (set to 0: not in the harness contract).
_ATTENTION_DROPOUT = ("attention_probs_dropout_prob", "attention_dropout")
_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json",
                 "pytorch_model.bin.index.json")
#: The forward argument each kind of classification model takes.
_INPUTS = {"text": "input_ids", "image": "pixel_values"}


class UserModelError(ValueError):
    """The model cannot run here: names the model, what is wrong and how to fix it."""


@dataclass(frozen=True)
class UserModel:
    """What identifies a user's model and how the suites feed it (picklable, JSON-able)."""

    source: str
    name: str
    config_hash: str
    model_type: str
    model_class: str
    modality: str
    input_name: str
    weights: bool
    num_labels: int
    max_positions: int | None
    native_length: int | None = None
    #: False: evaluate the model as given with each attention swapped in (no retraining)
    finetune: bool = True

    @property
    def id(self) -> str:
        """``name@hash``: what records carry, so runs of different models never match."""
        return f"{self.name}@{self.config_hash}"

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "id": self.id, "random_init": not self.weights,
                "attention_dropout": 0.0}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> UserModel:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


# ------------------------------------------------------------------------------ describe
def _auto_classes() -> dict[str, Any]:
    from transformers import (
        AutoModelForAudioClassification,
        AutoModelForImageClassification,
        AutoModelForSequenceClassification,
    )

    return {"text": AutoModelForSequenceClassification,
            "image": AutoModelForImageClassification,
            "audio": AutoModelForAudioClassification}


def _config_hash(config: Any) -> str:
    data = config.to_dict()
    for key in ("_name_or_path", "transformers_version", "_attn_implementation_autoset",
                "id2label", "label2id", "num_labels", "architectures", "dtype", "torch_dtype"):
        data.pop(key, None)
    return hashlib.sha1(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:10]


def _max_positions(config: Any) -> int | None:
    n = getattr(config, "max_position_embeddings", None)
    if not isinstance(n, int) or n <= 0:
        return None
    if config.model_type in ("roberta", "xlm-roberta", "camembert"):  # positions start at pad+1
        n -= int(getattr(config, "pad_token_id", 1) or 1) + 1
    return n


def _native_length(config: Any, modality: str) -> int | None:
    """Sequence length the attention sees when the model fixes it (images; Whisper frames)."""
    if modality == "image":
        size, patch = getattr(config, "image_size", None), getattr(config, "patch_size", None)
        if isinstance(size, int) and isinstance(patch, int) and patch > 0:
            return (size // patch) ** 2 + 1
    if getattr(config, "max_source_positions", None):
        return int(config.max_source_positions)
    return None


def describe_model(source: str | Path) -> UserModel:
    """Read and check the model at ``source`` (a ``save_pretrained`` folder or a hub name).

    Raises :class:`UserModelError` naming what is wrong: not a model, an architecture whose
    attention does not go through ``AttentionInterface`` (the class and the supported ones), no
    classification model for it, a missing tokenizer or image processor.
    """
    from transformers import AutoConfig

    text = str(source)
    path = Path(text).expanduser()
    local = path.exists()
    if local and not path.is_dir():
        raise UserModelError(f"--model {text}: a file, not a model folder; pass the folder that "
                             "save_pretrained wrote (config.json, weights, tokenizer)")
    if local and not (path / "config.json").is_file():
        raise UserModelError(f"--model {text}: not a transformers model folder (no config.json);"
                             " save the model with model.save_pretrained(FOLDER) and its "
                             "tokenizer / image processor with .save_pretrained(FOLDER)")
    if not local:
        try:  # a hub model already in the local cache needs no network
            AutoConfig.from_pretrained(text, local_files_only=True)
        except (OSError, ValueError, KeyError):
            from harness.data.text import _hub_reachable

            if not _hub_reachable():
                raise UserModelError(
                    f"--model {text}: no folder of that name here, and the hub is unreachable "
                    "(offline?); pass a folder written by save_pretrained") from None
    try:
        config = AutoConfig.from_pretrained(str(path) if local else text)
    except (OSError, ValueError, KeyError) as err:
        where = "folder" if local else "hub name (no folder of that name here)"
        raise UserModelError(f"--model {text}: cannot read a transformers config from this "
                             f"{where}: {str(err).splitlines()[0]}") from None
    classes = _auto_classes()
    modality = next((m for m, auto in classes.items()
                     if type(config) in auto._model_mapping), None)
    if modality is None:
        raise UserModelError(
            f"--model {text}: model type {config.model_type!r} has no sequence, image or audio "
            f"classification class in transformers; supported: {', '.join(SUPPORTED)}")
    model_class = classes[modality]._model_mapping[type(config)]
    if not model_class._can_set_attn_implementation():
        raise UserModelError(
            f"--model {text}: {model_class.__name__} computes attention in its own code, not "
            "through transformers' AttentionInterface, so no harness attention can be swapped "
            f"in; supported architectures: {', '.join(SUPPORTED)}")
    if modality == "audio":
        from transformers import AutoFeatureExtractor
        try:
            extractor = AutoFeatureExtractor.from_pretrained(str(path) if local else text)
        except (OSError, ValueError):
            extractor = None
        input_name = (extractor.model_input_names[0] if extractor is not None
                      else "input_features" if getattr(config, "num_mel_bins", None)
                      else "input_values")
    else:
        input_name = _INPUTS[modality]
    weights = any((path / f).is_file() for f in _WEIGHT_FILES) if local else True
    name = path.resolve().name if local else text
    return UserModel(
        source=str(path.resolve()) if local else text, name=name,
        config_hash=_config_hash(config), model_type=config.model_type,
        model_class=model_class.__name__, modality=modality, input_name=input_name,
        weights=weights, num_labels=int(config.num_labels),
        max_positions=_max_positions(config), native_length=_native_length(config, modality))


def check_preprocessor(model: UserModel) -> None:
    """The tokenizer (text) or image processor (image) the suites feed the model through."""
    if model.modality == "text":
        _tokenizer(model.source)
    elif model.modality == "image":
        _image_processor(model.source)


def _tokenizer(source: str) -> Any:
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(source)
    except (OSError, ValueError, TypeError) as err:
        raise UserModelError(
            f"--model {source}: no tokenizer with the model ({str(err).splitlines()[0]}); save "
            "it beside the model: tokenizer.save_pretrained(FOLDER)") from None


def _image_processor(source: str) -> Any:
    from transformers import AutoImageProcessor

    try:
        return AutoImageProcessor.from_pretrained(source)
    except (OSError, ValueError, TypeError) as err:
        raise UserModelError(
            f"--model {source}: no image processor with the model "
            f"({str(err).splitlines()[0]}); save it beside the model: "
            "image_processor.save_pretrained(FOLDER)") from None


# ------------------------------------------------------------------------------ lengths
def current_model(model: UserModel | dict[str, Any] | None) -> UserModel | None:
    """``model`` as a :class:`UserModel` (run contexts and run.json hold its dict)."""
    if model is None or isinstance(model, UserModel):
        return model
    return UserModel.from_dict(model)


def model_lengths(model: UserModel, lengths: list[int]) -> tuple[list[int], str | None]:
    """The profile's ``lengths`` the model can take, and a note when they were capped.

    Models that fix their length (images: patches + 1; Whisper: its frames) run at that one
    length; others at every length up to their maximum positions (plus the maximum itself when
    longer ones were asked for).
    """
    if model.native_length is not None:
        return [model.native_length], (f"{model.name} runs at its own length "
                                       f"{model.native_length} only")
    cap = model.max_positions
    if cap is None:
        return sorted(lengths), None
    kept = sorted(n for n in lengths if n <= cap)
    if len(kept) == len(lengths):
        return kept, None
    if cap not in kept:
        kept.append(cap)
    dropped = sorted(n for n in lengths if n > cap)
    return kept, (f"lengths {dropped} exceed {model.name}'s {cap} positions: capped at {cap}")


# ------------------------------------------------------------------------------ the model
def _label(name: str, options: dict[str, Any]) -> str:
    """A label unique to ``name`` with ``options`` (an implementation name of its own)."""
    if not options:
        return name
    digest = hashlib.sha1(json.dumps(options, sort_keys=True, default=str).encode()).hexdigest()
    return f"{name}.{digest[:8]}"


def _attention_impl(name: str, options: dict[str, Any], label: str | None = None) -> str:
    from harness.integrations.transformers import register_attention_spec

    return register_attention_spec(label or name, name, options)


def _load_hf(model: UserModel, num_labels: int, impl: str, seed: int | None) -> nn.Module:
    from transformers import AutoConfig
    from transformers.utils import logging as hf_logging

    auto = _auto_classes()[model.modality]
    config = AutoConfig.from_pretrained(model.source)
    for key in _ATTENTION_DROPOUT:
        if hasattr(config, key):
            setattr(config, key, 0.0)
    if int(config.num_labels) != num_labels:
        config.num_labels = num_labels
        config.id2label = {i: f"LABEL_{i}" for i in range(num_labels)}
        config.label2id = {v: k for k, v in config.id2label.items()}
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # "newly initialized head" is expected when resized
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        with torch.random.fork_rng(devices=[]):
            if seed is not None:
                torch.manual_seed(seed)
            if model.weights:
                hf = auto.from_pretrained(model.source, config=config, attn_implementation=impl,
                                          ignore_mismatched_sizes=True)
            else:
                hf = auto.from_config(config, attn_implementation=impl)
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()
    return hf.float()


class UserModelClassifier(nn.Module):
    """A transformers classification model behind the harness encoder's interface.

    ``forward(inputs, attention_mask=None, labels=None)`` returns ``logits`` and a cross-entropy
    ``loss``; :meth:`set_attention` swaps the attention without touching weights;
    :meth:`attention_inputs` and :attr:`layers` serve the fidelity probe.
    """

    def __init__(self, model: UserModel, hf: nn.Module, attention: str,
                 options: dict[str, Any]) -> None:
        super().__init__()
        self.user_model = model
        self.model = hf
        self._attention = (attention, dict(options))
        self._n_layers = 0

    @property
    def config(self) -> Any:
        return self.model.config

    def forward(self, inputs: Tensor | None = None, attention_mask: Tensor | None = None,
                labels: Tensor | None = None, **named: Any) -> Any:
        from transformers.modeling_outputs import SequenceClassifierOutput

        x = inputs if inputs is not None else named.get(self.user_model.input_name)
        kwargs: dict[str, Any] = {self.user_model.input_name: x}
        if attention_mask is not None and self.user_model.modality != "image":
            kwargs["attention_mask"] = attention_mask.long()
        logits = self.model(**kwargs).logits
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits.float(), labels.to(logits.device).long())
        return SequenceClassifierOutput(loss=loss, logits=logits)

    def set_attention(self, name: str, **options: Any) -> UserModelClassifier:
        """Every layer runs ``get_attention(name, **options)`` from now on; weights untouched."""
        self.model.set_attn_implementation(_attention_impl(name, options, _label(name, options)))
        self._attention = (name, dict(options))
        return self

    @property
    def layers(self) -> list[Any]:
        """One view per attention call of the last :meth:`attention_inputs` pass, whose
        ``attention.attn`` is the model's current attention (the fidelity probe's exact side)."""
        from harness.attention import get_attention

        name, options = self._attention
        return [SimpleNamespace(attention=SimpleNamespace(attn=get_attention(name, **options)))
                for _ in range(self._n_layers)]

    def attention_inputs(self, inputs: Tensor, attention_mask: Tensor | None = None
                         ) -> list[tuple[Tensor, Tensor, Tensor, Tensor | None]]:
        """Per attention layer, the contract's ``(q, k, v, key_padding_mask)`` in eval mode."""
        from transformers import AttentionInterface

        from harness.integrations.transformers import make_attention_function, to_contract

        name, options = self._attention
        label = f"{name} (recorded)"
        inner = make_attention_function(label, name, options)
        records: list[tuple[Tensor, Tensor, Tensor, Tensor | None]] = []

        def recorder(module: nn.Module, query: Tensor, key: Tensor, value: Tensor,
                     attention_mask: Tensor | None, **kwargs: Any) -> Any:
            from harness.attention import get_attention

            q, k, v, kpm, _ = to_contract(
                label, get_attention(name, **options), query, key, value, attention_mask,
                scaling=kwargs.get("scaling"),
                num_key_value_groups=int(getattr(module, "num_key_value_groups", 1) or 1))
            records.append((q.detach(), k.detach(), v.detach(), kpm))
            return inner(module, query, key, value, attention_mask, **kwargs)

        impl = _attention_impl(name, options, _label(name, options) + ".recorded")
        previous = self.model.config._attn_implementation
        saved = AttentionInterface._global_mapping[impl]
        AttentionInterface._global_mapping[impl] = recorder
        was_training = self.training
        try:
            self.model.set_attn_implementation(impl)
            self.eval()
            with torch.no_grad():
                self(inputs, attention_mask=attention_mask)
        finally:
            AttentionInterface._global_mapping[impl] = saved
            self.model.set_attn_implementation(previous)
            self.train(was_training)
        self._n_layers = len(records)
        return records


def build_classifier(model: UserModel | dict[str, Any], attention: Any, num_labels: int, *,
                     seed: int | None = None) -> UserModelClassifier:
    """The user's model with ``attention`` (an AttentionSpec) and a ``num_labels`` head."""
    model = current_model(model)
    assert model is not None
    impl = _attention_impl(attention.name, dict(attention.options), attention.label)
    hf = _load_hf(model, num_labels, impl, seed)
    return UserModelClassifier(model, hf, attention.name, dict(attention.options))


# ------------------------------------------------------------------------------- tasks
class _HFTokenizer:
    """A transformers tokenizer behind the task :class:`~harness.data.base.Tokenizer` protocol."""

    def __init__(self, tok: Any) -> None:
        self.tok = tok
        self.vocab_size = len(tok)
        self.pad_id = int(tok.pad_token_id if tok.pad_token_id is not None else 0)
        self.cls_id = int(tok.cls_token_id if tok.cls_token_id is not None else self.pad_id)

    def encode_batch(self, texts: list[str], max_len: int) -> tuple[Tensor, Tensor]:
        enc = self.tok(list(texts), padding="max_length", truncation=True, max_length=max_len,
                       return_tensors="pt")
        return enc["input_ids"].long(), enc["attention_mask"].bool()

    def token_counts(self, texts: list[str]) -> np.ndarray:
        encoded = self.tok(list(texts), verbose=False)["input_ids"]
        return np.array([len(ids) for ids in encoded])


def adapt_task(task: Any, model: UserModel | dict[str, Any] | None) -> Any:
    """``task`` encoded for the user's ``model`` (None: unchanged).

    Text tasks are re-tokenized from their texts (``TaskUnavailable`` when a task has none, e.g.
    the synthetic token tasks); images go through the model's image processor (grayscale is
    repeated to the model's channels); audio tasks hold log-mel frames, not waveforms, so they
    are ``TaskUnavailable`` for a user's model. Every record then names the model.
    """
    from harness.data.base import Split, TaskData, TaskUnavailable

    model = current_model(model)
    if model is None:
        return task
    if task.modality != model.modality:
        raise TaskUnavailable(
            f"task {task.name!r} holds {task.modality} inputs; {model.name} "
            f"({model.model_class}) is a {model.modality} model")
    splits: dict[str, Split] = {}
    if task.modality == "text":
        if any(s.texts is None for s in task.splits.values()):
            raise TaskUnavailable(
                f"task {task.name!r} has no texts (token ids of the harness's own vocabulary); "
                f"{model.name} reads text through its tokenizer: run it on --data-files/"
                "--dataset or a text task")
        tok = _HFTokenizer(_tokenizer(model.source))
        width = task.max_len if model.max_positions is None else min(task.max_len,
                                                                     model.max_positions)
        for key, split in task.splits.items():
            ids, mask = tok.encode_batch(split.texts, width)
            splits[key] = Split(ids, mask, split.labels, texts=split.texts, groups=split.groups)
        out = TaskData(name=task.name, **splits, num_classes=task.num_classes,
                       vocab_size=tok.vocab_size, pad_id=tok.pad_id, max_len=width,
                       label_names=task.label_names, tokenizer=tok,
                       info={**task.info, "user_model": model.as_dict()})
        return out
    if task.modality == "image":
        processor = _image_processor(model.source)
        for key, split in task.splits.items():
            splits[key] = replace(split, pixel_values=_process_images(split.pixel_values,
                                                                      processor))
        first = splits["train"].pixel_values
        return TaskData(name=task.name, **splits, num_classes=task.num_classes, vocab_size=1,
                        pad_id=0, max_len=int(first.shape[2] * first.shape[3]),
                        label_names=task.label_names, tokenizer=None,
                        info={**task.info, "user_model": model.as_dict()})
    raise TaskUnavailable(
        f"task {task.name!r}: audio tasks hold log-mel frames, not waveforms; {model.name}'s "
        "feature extractor needs the waveforms, so audio accuracy with a user's model is not "
        "supported (throughput and memory are)")


def _process_images(pixels: Tensor, processor: Any) -> Tensor:
    """[0, 1] pixels (n, C, H, W) -> the processor's pixel_values (resized, normalized)."""
    from PIL import Image

    channels = getattr(processor, "num_channels", None) or 3
    arrays = (pixels.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    images = []
    for a in arrays:
        img = Image.fromarray(a[..., 0] if a.shape[-1] == 1 else a)
        images.append(img.convert("RGB") if channels == 3 else img)
    out = []
    for start in range(0, len(images), 256):
        out.append(processor(images=images[start:start + 256],
                             return_tensors="pt")["pixel_values"].float())
    return torch.cat(out) if out else pixels


def task_model(task: Any) -> UserModel | None:
    """The user model a task was adapted for (:func:`adapt_task`), or None."""
    data = getattr(task, "info", {}).get("user_model")
    return None if data is None else UserModel.from_dict(data)


# ----------------------------------------------------------------- throughput and memory
def synthetic_inputs(model: UserModel, seq_len: int, batch: int, device: str = "cpu",
                     seed: int = 0) -> tuple[dict[str, Tensor], Tensor]:
    """Random inputs (never zeros) that give the attention ``seq_len`` positions, and labels."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(model.source)
    gen = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, max(model.num_labels, 2), (batch,), generator=gen)
    if model.modality == "text":
        low = min(5, config.vocab_size - 1)
        ids = torch.randint(low, config.vocab_size, (batch, seq_len), generator=gen)
        inputs = {"input_ids": ids, "attention_mask": torch.ones(batch, seq_len,
                                                                 dtype=torch.long)}
    elif model.modality == "image":
        size = config.image_size
        inputs = {"pixel_values": torch.rand(batch, config.num_channels, size, size,
                                             generator=gen)}
    elif model.input_name == "input_features":
        frames = 2 * int(config.max_source_positions)  # Whisper: stride-2 conv to positions
        inputs = {"input_features": torch.randn(batch, config.num_mel_bins, frames,
                                                generator=gen)}
    else:  # raw waveform: the conv front-end divides by the product of its strides
        samples = seq_len * math.prod(getattr(config, "conv_stride", (320,)))
        inputs = {"input_values": torch.randn(batch, samples, generator=gen)}
    return {k: v.to(device) for k, v in inputs.items()}, labels.to(device)


def timing_steps(model: UserModel | dict[str, Any], attention: Any, seq_len: int, batch: int,
                 device: str = "cpu") -> tuple[Callable[[], None], Callable[[], Tensor]]:
    """(train_step, inference) closures of the whole model with ``attention`` at ``seq_len``."""
    model = current_model(model)
    assert model is not None
    torch.manual_seed(0)
    impl = _attention_impl(attention.name, dict(attention.options), attention.label)
    hf = _load_hf(model, max(model.num_labels, 2), impl, seed=0).to(device)
    inputs, labels = synthetic_inputs(model, seq_len, batch, device)
    opt = torch.optim.AdamW(hf.parameters(), lr=1e-5)

    def train_step() -> None:
        hf.train()
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(hf(**inputs).logits.float(), labels)
        loss.backward()
        opt.step()

    def infer() -> Tensor:
        hf.eval()
        with torch.no_grad():
            return hf(**inputs).logits

    return train_step, infer


def memory_work(model: dict[str, Any], name: str, options: dict[str, Any], seq_len: int,
                batch: int, mode: str, device: str = "cpu") -> Callable[[], object]:
    """The memory suite's work for a user model: one forward (``forward``) or forward and
    backward (``fwd_bwd``) of the whole model; weights and inputs are in the baseline."""
    user = UserModel.from_dict(model)
    hf = _load_hf(user, max(user.num_labels, 2),
                  _attention_impl(name, options, _label(name, options)), seed=0)
    hf = hf.to(device)
    grad = mode == "fwd_bwd"
    hf.train(grad)
    warm, _ = synthetic_inputs(user, min(seq_len, 16) if user.native_length is None else seq_len,
                               batch, device)
    with torch.set_grad_enabled(grad):
        out = hf(**warm).logits
        if grad:
            out.sum().backward()
    hf.zero_grad(set_to_none=True)
    del warm, out
    inputs, _ = synthetic_inputs(user, seq_len, batch, device)

    def work() -> object:
        if grad:
            hf(**inputs).logits.sum().backward()
            hf.zero_grad(set_to_none=True)
            return None
        with torch.no_grad():
            hf(**inputs)
        return None

    return work


# ----------------------------------------------------------------------------- planning
@lru_cache(maxsize=8)
def describe_cached(source: str) -> UserModel:
    """:func:`describe_model`, once per process and source."""
    return describe_model(source)


def profile_model(profile: Any) -> UserModel | None:
    """The user model a profile names (``model:``, ``finetune:``), or None."""
    source = getattr(profile, "model", None)
    if source is None:
        return None
    return replace(describe_cached(str(source)), finetune=bool(getattr(profile, "finetune",
                                                                       True)))


def _count_classes(profile: Any) -> tuple[int, str] | None:
    """(classes, where) of the run's own data, read without tokenizing; None: unknown here."""
    data = profile.data
    if data.data_files:
        from harness.data.text import check_text_data

        info = check_text_data(data_files=dict(data.data_files), text_column=data.text_column,
                               label_column=data.label_column)
        return len(info["label_names"]), "--data-files"
    if data.data_dir and data.data_format:
        root = Path(data.data_dir).expanduser()
        train = root / "train" if (root / "train").is_dir() else root
        return sum(1 for p in train.iterdir() if p.is_dir()), f"--data-dir {data.data_dir}"
    return None


def check_run(profile: Any, suites: list[str]) -> None:
    """Planning checks of a run on a user's model (``UserModelError``, the CLI's exit 2): its
    pre-processor, the data's modality against the model's, suites that cannot take it, and,
    when the model is evaluated as given (``finetune: false``, its head cannot be resized), a
    task with more classes than the head."""
    model = profile_model(profile)
    if model is None:
        return
    check_preprocessor(model)
    data = profile.data
    kind = f"{model.name} ({model.model_class}) is a {model.modality} model"
    if "accuracy" in suites:
        if model.modality == "audio":
            raise UserModelError(
                f"--model: {kind}; the accuracy suite's audio tasks hold log-mel frames, not the "
                "waveforms its feature extractor needs. Run throughput and memory with it")
        if data.given and model.modality != "text":
            raise UserModelError(f"--model: {kind}, but --data-files/--dataset give text; pass "
                                 "--data-dir with --data-format imagefolder for an image model")
        if data.media_given and model.modality == "text":
            raise UserModelError(f"--model: {kind}, but --data-dir/--data-format give "
                                 f"{data.data_format} data; pass text with --data-files")
    if "bias" in suites and model.modality != "text":
        raise UserModelError(f"--model: {kind}; the bias suite audits text classifiers only; "
                             "leave bias out (e.g. `harness run accuracy throughput memory`)")
    if not model.finetune and {"accuracy", "bias"} & set(suites):
        counted = _count_classes(profile)
        if counted is not None and counted[0] > model.num_labels:
            raise UserModelError(
                f"--model: {model.name}'s head has {model.num_labels} classes and is used as "
                f"given (finetune: false: no retraining, so no new head), but {counted[1]} has "
                f"{counted[0]} classes; fine-tune instead (drop --no-finetune) or give data "
                f"with at most {model.num_labels} classes")


def planned_lengths(model: UserModel | dict[str, Any], lengths: list[int]
                    ) -> tuple[list[int], dict[str, Any]]:
    """The lengths to time ``model`` at and the cell params naming its cap (``max_positions``,
    and ``length_note`` when the profile's lengths were capped)."""
    model = current_model(model)
    assert model is not None
    kept, note = model_lengths(model, list(lengths))
    extra: dict[str, Any] = {"max_positions": model.max_positions}
    if note:
        extra["length_note"] = note
    return kept, extra
