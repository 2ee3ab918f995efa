"""The shared trainer: one budget and recipe for every attention, best-validation checkpoint kept.

Every attention in a run is trained with the same :class:`TrainParams` (model size, steps, batch
size, AdamW, linear warm-up then linear decay, gradient clipping, dropout), following LRA's fairness
rule. Validation macro-F1 is computed every ``eval_every`` steps (and after the last step); the
weights with the best validation score are copied in memory and loaded back at the end, so the
caller scores that checkpoint on test.

Runs are seeded: ``seed`` sets the initial weights (``build_model(seed=...)``), the global torch RNG
(dropout) and a dedicated generator for the data order, so the same seed gives the same result on
CPU. A NaN/inf loss or gradient norm raises :class:`TrainingDiverged` naming the step.

>>> # task = load_task("recall")
>>> # result = train_classifier(AttentionSpec("standard"), task, TrainParams(), seed=0)
>>> # preds, probs = predict(result.model, task.test)
"""

from __future__ import annotations

import json
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch
from pydantic import Field, PositiveFloat, PositiveInt, model_validator
from torch import Tensor

from harness.suites.base import AttentionSpec, SuiteParams

if TYPE_CHECKING:
    from harness.data.base import Split, TaskData
    from harness.models import EncoderClassifier

__all__ = [
    "TrainParams",
    "TrainResult",
    "TrainingDiverged",
    "build_for_task",
    "load_task_cached",
    "macro_f1_scores",
    "make_batch",
    "model_imports",
    "predict",
    "train_classifier",
]


def model_imports(user_model: bool) -> tuple[str, ...]:
    """What training or timing a model imports on first use (``Suite.imports``): the encoder
    and transformers under it (~3 s), and the user-model adapter when the run has one."""
    return ("harness.models", "harness.models.user") if user_model else ("harness.models",)


class TrainParams(SuiteParams):
    """Model size and training budget: identical for every attention in a run."""

    steps: PositiveInt = 400
    batch_size: PositiveInt = 32
    lr: PositiveFloat = 1e-3
    weight_decay: float = Field(default=0.01, ge=0.0)
    warmup_frac: float = Field(default=0.1, ge=0.0, lt=1.0)
    clip_norm: PositiveFloat = 1.0
    dropout: float = Field(default=0.1, ge=0.0, lt=1.0)
    eval_every: PositiveInt = 100
    hidden_size: PositiveInt = 64
    num_layers: PositiveInt = 2
    num_heads: PositiveInt = 4
    ffn_size: PositiveInt = 128
    pooling: Literal["mean", "cls"] = "mean"
    eval_batch_size: PositiveInt = 128
    trim_padding: bool = True  # drop all-padding columns of each (right-padded) batch
    patch_size: PositiveInt = 1  # image tasks: side of the square patches (1 = one per pixel)

    @model_validator(mode="after")
    def _heads_divide(self) -> TrainParams:
        if self.hidden_size % self.num_heads:
            raise ValueError(
                f"train.hidden_size ({self.hidden_size}) must be divisible by train.num_heads "
                f"({self.num_heads}); e.g. hidden_size: {self.num_heads * 16}"
            )
        return self


@dataclass
class TrainResult:
    """A trained model (best-validation weights loaded, eval mode) and how it got there.

    ``history`` holds one dict per evaluation: ``step``, ``train_loss`` (mean since the previous
    evaluation), ``val_macro_f1``, ``val_accuracy``, ``lr`` and ``elapsed_s``.
    """

    model: EncoderClassifier
    best_step: int
    best_val_score: float
    train_time_s: float
    n_params: int
    history: list[dict[str, Any]] = field(default_factory=list)


def non_finite_attention(model: torch.nn.Module, ids: Any, mask: Any) -> str | None:
    """Which attention, if any, returns non-finite outputs from finite inputs on this batch
    (run once a loss turns NaN: the attention is broken, not the learning rate)."""
    from harness.attention import Attention

    found: list[str] = []

    def hook(module: torch.nn.Module, args: tuple, out: Any) -> None:
        tensors = [a for a in args[:3] if isinstance(a, torch.Tensor)]
        if (not found and isinstance(out, torch.Tensor) and not bool(out.isfinite().all())
                and all(bool(t.isfinite().all()) for t in tensors)):
            found.append(f"attention {getattr(module, 'name', type(module).__name__)!r}"
                         " returned non-finite outputs (NaN/inf) from finite inputs; the"
                         " attention is broken (not the learning rate): fix its attend()")

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, Attention)]
    try:
        with torch.no_grad():
            model(ids, attention_mask=mask)
    except Exception:  # a diagnosis only: the divergence is reported either way
        pass
    finally:
        for h in handles:
            h.remove()
    return found[0] if found else None


class TrainingDiverged(RuntimeError):  # noqa: N818 - the shared API's name
    """The loss or gradient norm became NaN/inf; the message names the step."""


def macro_f1_scores(
    y_true: np.ndarray, y_pred: np.ndarray, num_classes: int | None = None, axis: int = -1
) -> np.ndarray | float:
    """Macro-F1 of each row of ``y_true``/``y_pred`` (class ids), fast enough for bootstraps.

    Averages F1 over the classes present in that row's labels or predictions (scikit-learn's
    ``f1_score(average="macro")`` convention). 1-D inputs give a float, 2-D a value per row.
    ``axis`` must be the last axis (the ``bootstrap_ci(vectorized=True)`` calling convention).
    """
    t = np.asarray(y_true)
    p = np.asarray(y_pred)
    if t.shape != p.shape:
        raise ValueError(f"macro_f1_scores: y_true shape {t.shape} differs from y_pred {p.shape}")
    if axis not in (-1, t.ndim - 1):
        raise ValueError(f"macro_f1_scores: only the last axis is supported, got axis={axis}")
    single = t.ndim == 1
    t2 = t.reshape(1, -1) if single else t.reshape(-1, t.shape[-1])
    p2 = p.reshape(1, -1) if single else p.reshape(-1, p.shape[-1])
    if t2.shape[1] == 0:
        raise ValueError("macro_f1_scores: no examples; pass at least one label")
    if t2.min() < 0 or p2.min() < 0:
        raise ValueError("macro_f1_scores: class ids must be non-negative integers")
    t2, p2 = t2.astype(np.int64, copy=False), p2.astype(np.int64, copy=False)
    c = max(int(num_classes or 0), int(t2.max()) + 1, int(p2.max()) + 1)
    rows = t2.shape[0]
    offset = (np.arange(rows) * c)[:, None]
    size = rows * c
    n_true = np.bincount((offset + t2).ravel(), minlength=size).reshape(rows, c)
    n_pred = np.bincount((offset + p2).ravel(), minlength=size).reshape(rows, c)
    hit = (offset + t2)[t2 == p2]
    tp = np.bincount(hit, minlength=size).reshape(rows, c)
    denom = n_true + n_pred
    present = denom > 0
    f1 = 2.0 * tp / np.maximum(denom, 1)
    scores = f1.sum(axis=1) / np.maximum(present.sum(axis=1), 1)
    return float(scores[0]) if single else scores.reshape(t.shape[:-1])


class _NoMixing(torch.nn.Module):
    """Stands in for a block's self-attention sublayer and adds nothing: no token mixing."""

    def forward(self, x: Tensor, key_padding_mask: Tensor | None) -> Tensor:
        return torch.zeros_like(x)


def build_for_task(
    attention: AttentionSpec, task: TaskData, params: TrainParams, *, seed: int,
    token_mixing: bool = True,
) -> EncoderClassifier:
    """The encoder for ``task`` with the run's model size; initial weights drawn from ``seed``.

    ``token_mixing=False`` builds the no-attention ablation: every block's self-attention
    sublayer is removed (each token passes through the feed-forward layers alone) and the pooled
    output is a mean over per-token features - a bag of (positional) embeddings with the same
    embeddings, depth, width, head and training budget as the attention models.
    """
    from harness.models import build_model
    from harness.models.user import build_classifier, task_model

    user = task_model(task)
    if user is not None:  # the task was encoded for a user's transformers model
        if not token_mixing:
            raise ValueError("the no-attention baseline needs the harness encoder, not a user's "
                             f"model ({user.name})")
        return build_classifier(user, attention, task.num_classes, seed=seed)  # type: ignore
    model = build_model(
        attention.name,
        attention_options=dict(attention.options),
        vocab_size=task.vocab_size,
        num_labels=task.num_classes,
        max_position=task.max_len,
        hidden_size=params.hidden_size,
        num_layers=params.num_layers,
        num_heads=params.num_heads,
        ffn_size=params.ffn_size,
        dropout=params.dropout,
        pooling=params.pooling,
        pad_token_id=task.pad_id,
        seed=seed,
        **_front_end(task, params),
    )
    if not token_mixing:
        if params.pooling != "mean":
            raise ValueError(
                f"the no-attention baseline needs train.pooling: mean (got {params.pooling!r});"
                " without token mixing a first-token pooler sees one token"
            )
        for layer in model.layers:
            layer.attention = _NoMixing()
    return model


def _front_end(task: TaskData, params: TrainParams) -> dict[str, Any]:
    """The encoder's modality options for ``task`` (nothing for text)."""
    if task.modality == "image":
        channels, height, width = task.input_shape
        return {"modality": "image", "num_channels": channels, "image_size": (height, width),
                "patch_size": params.patch_size}
    if task.modality == "audio":
        return {"modality": "audio", "num_mel_bins": task.input_shape[-1]}
    return {}


def make_batch(
    split: Split, index: Tensor, device: str, trim: bool
) -> tuple[Tensor, Tensor | None, Tensor]:
    """``(inputs, attention_mask, labels)`` of ``split[index]`` on ``device``; with ``trim``,
    columns that are padding in every row are dropped (splits are right-padded). ``inputs`` are
    token ids, pixels or log-mel frames (``split.inputs``); images have no mask (None)."""
    ids = split.inputs[index]
    if split.attention_mask is None:
        return ids.to(device), None, split.labels[index].to(device)
    mask = split.attention_mask[index]
    if trim:
        width = int(mask.any(dim=0).nonzero().max()) + 1 if bool(mask.any()) else 1
        ids, mask = ids[:, :width], mask[:, :width]
    return ids.to(device), mask.to(device), split.labels[index].to(device)


@torch.no_grad()
def predict(
    model: EncoderClassifier,
    split: Split,
    *,
    batch_size: int = 64,
    device: str = "cpu",
    trim_padding: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Predicted labels ``(n,)`` and class probabilities ``(n, C)`` for ``split``, in order."""
    if batch_size < 1:
        raise ValueError(f"predict: batch_size must be >= 1, got {batch_size}")
    was_training = model.training
    model.eval()
    probs: list[np.ndarray] = []
    try:
        for start in range(0, len(split), batch_size):
            index = torch.arange(start, min(start + batch_size, len(split)))
            ids, mask, _ = make_batch(split, index, device, trim_padding)
            logits = model(ids, attention_mask=mask).logits
            probs.append(torch.softmax(logits.float(), dim=-1).cpu().numpy())
    finally:
        model.train(was_training)
    num_labels = int(model.config.num_labels)
    prob = np.concatenate(probs) if probs else np.zeros((0, num_labels), dtype=np.float32)
    return prob.argmax(axis=1).astype(np.int64), prob


def _param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Weight decay on matrices of linear layers only (not biases, norms or embeddings)."""
    decay, no_decay = [], []
    for module in model.modules():
        for name, param in module.named_parameters(recurse=False):
            if param.requires_grad:
                is_matrix = name == "weight" and isinstance(module, torch.nn.Linear)
                (decay if is_matrix else no_decay).append(param)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def _lr_factor(step: int, total: int, warmup: int) -> float:
    """Linear warm-up over ``warmup`` steps, then linear decay to zero at ``total``."""
    if warmup and step < warmup:
        return (step + 1) / warmup
    return max(0.0, (total - step) / max(1, total - warmup))


def _check_task(task: TaskData) -> None:
    if len(task.train) == 0:
        raise ValueError(f"task {task.name!r}: the train split is empty; give it examples")
    if task.num_classes < 2:
        raise ValueError(f"task {task.name!r}: needs at least 2 classes, got {task.num_classes}")


def _optimizer(model: torch.nn.Module, params: TrainParams) -> tuple[
        torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """AdamW over ``model``'s parameter groups, with the warmup-then-decay learning rate."""
    optimizer = torch.optim.AdamW(
        _param_groups(model, params.weight_decay), lr=params.lr, betas=(0.9, 0.98), eps=1e-8
    )
    warmup = round(params.warmup_frac * params.steps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: _lr_factor(s, params.steps, warmup)
    )
    return optimizer, scheduler


def _shuffled_batches(n_train: int, batch_size: int, seed: int) -> Iterator[Tensor]:
    """Index batches of the training split, without end: a fresh shuffle (seeded) per epoch,
    the last incomplete batch of each dropped."""
    order_gen = torch.Generator().manual_seed(seed)
    while True:
        perm = torch.randperm(n_train, generator=order_gen)
        for start in range(0, n_train - batch_size + 1, batch_size):
            yield perm[start : start + batch_size]


def _train_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                batch: tuple[Tensor, Tensor | None, Tensor], params: TrainParams, label: str,
                step: int) -> Tensor:
    """One optimizer step on ``batch``; its loss. Raises :class:`TrainingDiverged` (naming the
    attention when it produced the non-finite values) on a non-finite loss or gradient norm."""
    ids, mask, labels = batch
    loss = model(ids, attention_mask=mask, labels=labels).loss
    if not torch.isfinite(loss):
        broken = non_finite_attention(model, ids, mask)
        if broken:
            raise TrainingDiverged(f"{label}: at step {step}/{params.steps} {broken}")
        raise TrainingDiverged(
            f"{label}: training diverged at step {step}/{params.steps} (loss {loss.item()}); "
            f"lower train.lr (now {params.lr}) or train.clip_norm"
        )
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), params.clip_norm)
    if not torch.isfinite(norm):
        raise TrainingDiverged(
            f"{label}: gradient norm became {norm.item()} at step {step}/{params.steps}; "
            f"lower train.lr (now {params.lr})"
        )
    optimizer.step()
    return loss


def _validation_scores(model: torch.nn.Module, task: TaskData, params: TrainParams,
                       device: str) -> tuple[float, float]:
    """Macro-F1 and accuracy of ``model`` on the task's validation split."""
    preds, _ = predict(model, task.validation, batch_size=params.eval_batch_size,
                       device=device, trim_padding=params.trim_padding)
    y = task.validation.labels.numpy()
    return float(macro_f1_scores(y, preds)), float((preds == y).mean())


def train_classifier(
    attention: AttentionSpec,
    task: TaskData,
    params: TrainParams,
    *,
    seed: int,
    device: str = "cpu",
    progress: Callable[[float, str], None] | None = None,
    token_mixing: bool = True,
) -> TrainResult:
    """Train an encoder with ``attention`` on ``task`` for ``params.steps`` steps
    (``token_mixing=False``: the no-attention ablation of :func:`build_for_task`).

    Returns the best-validation checkpoint (eval mode). Raises :class:`TrainingDiverged` on a
    non-finite loss or gradient norm, ``ValueError`` on an unusable task.
    """
    _check_task(task)
    torch.manual_seed(seed)
    model = build_for_task(attention, task, params, seed=seed,
                           token_mixing=token_mixing).to(device)
    n_params = sum(p.numel() for p in model.parameters())
    user = task.info.get("user_model") or {}
    if user and not user.get("finetune", True):  # a user's model as given: swap, no retraining
        model.eval()
        return TrainResult(model=model, best_step=0, best_val_score=math.nan, train_time_s=0.0,
                           n_params=n_params)
    optimizer, scheduler = _optimizer(model, params)
    has_val = len(task.validation) > 0
    label = attention.label
    history: list[dict[str, Any]] = []
    best_score, best_step, best_state = -math.inf, 0, None
    loss_sum, loss_count = 0.0, 0
    started = time.perf_counter()
    stream = _shuffled_batches(len(task.train), min(params.batch_size, len(task.train)), seed)
    model.train()
    for step in range(1, params.steps + 1):
        batch = make_batch(task.train, next(stream), device, params.trim_padding)
        loss = _train_step(model, optimizer, batch, params, label, step)
        scheduler.step()
        loss_sum += float(loss.detach())
        loss_count += 1
        if step % params.eval_every == 0 or step == params.steps:
            entry: dict[str, Any] = {
                "step": step,
                "train_loss": loss_sum / max(loss_count, 1),
                "lr": optimizer.param_groups[0]["lr"],
            }
            loss_sum, loss_count = 0.0, 0
            if has_val:
                score, entry["val_accuracy"] = _validation_scores(model, task, params, device)
                entry["val_macro_f1"] = score
                if score > best_score:
                    best_score, best_step = score, step
                    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            entry["elapsed_s"] = time.perf_counter() - started
            history.append(entry)
            model.train()
        if progress is not None and (step % 10 == 0 or step == params.steps):
            shown = f" val F1 {best_score:.3f}" if best_state is not None else ""
            progress(step / params.steps, f"{label} {task.name}: step {step}/{params.steps}{shown}")
    if best_state is not None:
        model.load_state_dict(best_state)
    else:  # no validation split: the final weights
        best_step, best_score = params.steps, math.nan
    model.eval()
    return TrainResult(
        model=model,
        best_step=best_step,
        best_val_score=best_score,
        train_time_s=time.perf_counter() - started,
        n_params=n_params,
        history=history,
    )


_TASKS: OrderedDict[str, Any] = OrderedDict()  # loaded tasks, shared by a run's cells
_TASKS_KEPT = 3


def load_task_cached(name: str, *, model: Any = None, **options: Any) -> Any:
    """``load_task`` with a small in-process cache: every attention of a run trains on the same
    data, so a dataset is read and tokenized once (local files are keyed by size and mtime).

    ``model``: the run's user model (``RunContext.model``): the task comes encoded for it
    (:func:`harness.models.user.adapt_task`)."""
    from harness.data import load_task

    stamp = []
    for path in (options.get("data_files") or {}).values():
        try:
            st = Path(path).stat()
            stamp.append((str(path), st.st_size, st.st_mtime_ns))
        except OSError:
            stamp.append((str(path), None, None))
    key = json.dumps([name, options, stamp, model], sort_keys=True, default=str)
    task = _TASKS.get(key)
    if task is None:
        task = load_task(name, **options)
        if model is not None:
            from harness.models.user import adapt_task

            task = adapt_task(task, model)
        _TASKS[key] = task
        while len(_TASKS) > _TASKS_KEPT:
            _TASKS.popitem(last=False)
    else:
        _TASKS.move_to_end(key)
    return task
