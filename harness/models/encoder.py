"""A pre-norm Transformer encoder classifier that runs any registered attention.

The model is a transformers ``PreTrainedModel`` (``save_pretrained`` / ``from_pretrained`` work),
and every attention family plugs in through the registry: the same embeddings, blocks, pooling and
head surround whichever attention ``config.attention`` names, so parameter counts stay comparable.

A modality front-end turns the input into the sequence the blocks see (``config.modality``):

- ``text``: token ids ``(batch, seq_len)`` -> token + learned 1-D position embeddings;
- ``image``: pixels in [0, 1] ``(batch, channels, height, width)`` -> ViT-style patch embedding (a
  ``patch_size`` x ``patch_size`` convolution with that stride; ``patch_size=1`` is LRA's
  pixel-level sequence) + learned 2-D position embeddings (row + column), flattened row-major;
- ``audio``: log-mel frames ``(batch, frames, num_mel_bins)`` (from
  :func:`harness.data.audio.log_mel`) -> a linear frame embedding + learned 1-D position embeddings.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from transformers import PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import SequenceClassifierOutput

from harness.attention import Attention, attention_class, get_attention

try:  # transformers >= 5: init functions that skip weights already loaded from a checkpoint
    from transformers import initialization as _init
except ImportError:  # pragma: no cover - older transformers
    from torch.nn import init as _init  # type: ignore[no-redef]

__all__ = [
    "INPUT_NAMES",
    "MODALITIES",
    "POOLINGS",
    "EncoderClassifier",
    "EncoderConfig",
    "build_model",
    "count_parameters",
]

POOLINGS = ("mean", "cls")
MODALITIES = ("text", "image", "audio")
#: the forward argument that carries each modality's input (transformers' names)
INPUT_NAMES = {"text": "input_ids", "image": "pixel_values", "audio": "input_features"}


def _check_int(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"EncoderConfig.{name} must be an int >= {minimum}, got {value!r}")


def _prefers_shared_qk(attention: str) -> bool:
    """The attention's ``shared_qk`` capability; False for a name ``check()`` will reject."""
    try:
        return attention_class(attention).capabilities.shared_qk
    except ValueError:
        return False


class EncoderConfig(PretrainedConfig):
    """Configuration of :class:`EncoderClassifier`; every field is validated on construction.

    ``attention`` is a registry name and ``attention_options`` its options (checked by building
    the attention once). ``shared_qk`` (one projection for queries and keys, which then reach the
    attention as the same tensor) defaults to the attention's ``capabilities.shared_qk`` (True for
    ``"lsh"``).
    """

    model_type = "attention-harness-encoder"
    attribute_map = {  # noqa: RUF012 - transformers reads this class attribute
        "num_hidden_layers": "num_layers",
        "num_attention_heads": "num_heads",
        "intermediate_size": "ffn_size",
        "max_position_embeddings": "max_position",
    }

    def __init__(
        self,
        vocab_size: int = 1024,
        max_position: int = 512,
        hidden_size: int = 128,
        num_layers: int = 2,
        num_heads: int = 4,
        ffn_size: int = 512,
        dropout: float = 0.1,
        pooling: str = "mean",
        num_labels: int | None = None,
        pad_token_id: int = 0,
        attention: str = "standard",
        attention_options: dict[str, Any] | None = None,
        shared_qk: bool | None = None,
        layer_norm_eps: float = 1e-5,
        initializer_range: float = 0.02,
        modality: str = "text",
        image_size: list[int] | tuple[int, int] = (32, 32),
        num_channels: int = 1,
        patch_size: int = 1,
        num_mel_bins: int = 40,
        **kwargs: Any,
    ) -> None:
        if num_labels is not None:  # else from id2label (as saved), or transformers' default 2
            kwargs["num_labels"] = num_labels
        super().__init__(pad_token_id=pad_token_id, **kwargs)
        self.vocab_size = vocab_size
        self.max_position = max_position
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.ffn_size = ffn_size
        self.dropout = dropout
        self.pooling = pooling
        self.pad_token_id = pad_token_id
        self.attention = attention
        self.attention_options = dict(attention_options or {})
        self.shared_qk = _prefers_shared_qk(attention) if shared_qk is None else shared_qk
        self.layer_norm_eps = layer_norm_eps
        self.initializer_range = initializer_range
        self.modality = modality
        self.image_size = list(image_size) if isinstance(image_size, (list, tuple)) else image_size
        self.num_channels = num_channels
        self.patch_size = patch_size
        self.num_mel_bins = num_mel_bins
        self.check()

    @property
    def patch_grid(self) -> tuple[int, int]:
        """(rows, columns) of patches of an image model."""
        return (self.image_size[0] // self.patch_size, self.image_size[1] // self.patch_size)

    @property
    def sequence_length(self) -> int:
        """Longest sequence the blocks see: ``max_position``, or the patch count of an image."""
        if self.modality == "image":
            rows, cols = self.patch_grid
            return rows * cols
        return self.max_position

    def check(self) -> None:
        """Raise ``ValueError`` naming the first invalid field."""
        for name, minimum in (
            ("vocab_size", 1),
            ("max_position", 1),
            ("hidden_size", 1),
            ("num_layers", 1),
            ("num_heads", 1),
            ("ffn_size", 1),
            ("num_labels", 2),
        ):
            _check_int(name, getattr(self, name), minimum)
        if self.hidden_size % self.num_heads:
            raise ValueError(
                f"EncoderConfig.hidden_size ({self.hidden_size}) must be divisible by num_heads "
                f"({self.num_heads}); pick e.g. hidden_size={self.num_heads * 32}"
            )
        _check_int("pad_token_id", self.pad_token_id, 0)
        if self.pad_token_id >= self.vocab_size:
            raise ValueError(
                f"EncoderConfig.pad_token_id ({self.pad_token_id}) must be < vocab_size "
                f"({self.vocab_size})"
            )
        if self.pooling not in POOLINGS:
            raise ValueError(
                f"EncoderConfig.pooling must be one of {POOLINGS}, got {self.pooling!r}"
            )
        for name in ("dropout",):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
                raise ValueError(f"EncoderConfig.{name} must be a float in [0, 1), got {value!r}")
        for name in ("layer_norm_eps", "initializer_range"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or value <= 0:
                raise ValueError(f"EncoderConfig.{name} must be a positive float, got {value!r}")
        if not isinstance(self.shared_qk, bool):
            raise ValueError(f"EncoderConfig.shared_qk must be a bool, got {self.shared_qk!r}")
        self._check_modality()
        try:
            get_attention(self.attention, **self.attention_options)
        except ValueError as err:
            raise ValueError(f"EncoderConfig.attention / attention_options: {err}") from None

    def _check_modality(self) -> None:
        if self.modality not in MODALITIES:
            raise ValueError(
                f"EncoderConfig.modality must be one of {MODALITIES}, got {self.modality!r}"
            )
        for name in ("num_channels", "patch_size", "num_mel_bins"):
            _check_int(name, getattr(self, name), 1)
        size = self.image_size
        if (
            not isinstance(size, list)
            or len(size) != 2
            or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in size)
        ):
            raise ValueError(
                f"EncoderConfig.image_size must be [height, width] (positive ints), got {size!r}"
            )
        if self.modality == "image" and (size[0] % self.patch_size or size[1] % self.patch_size):
            raise ValueError(
                f"EncoderConfig.patch_size ({self.patch_size}) must divide image_size {size}; "
                "pick a divisor of both sides (1 = one position per pixel)"
            )


class EncoderSelfAttention(nn.Module):
    """Multi-head self-attention: q/k/v projections, a registry attention, output projection."""

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        h = config.hidden_size
        self.num_heads = config.num_heads
        self.head_dim = h // config.num_heads
        self.shared_qk = bool(config.shared_qk)
        self.q_proj = nn.Linear(h, h)
        self.k_proj = None if self.shared_qk else nn.Linear(h, h)
        self.v_proj = nn.Linear(h, h)
        self.out_proj = nn.Linear(h, h)
        self.attn: Attention = get_attention(config.attention, **config.attention_options)

    def _split(self, x: Tensor) -> Tensor:
        b, n, _ = x.shape
        return x.view(b, n, self.num_heads, self.head_dim).transpose(1, 2)

    def forward(self, x: Tensor, key_padding_mask: Tensor | None) -> Tensor:
        q = self._split(self.q_proj(x))
        k = q if self.k_proj is None else self._split(self.k_proj(x))
        v = self._split(self.v_proj(x))
        out = self.attn(q, k, v, key_padding_mask=key_padding_mask)
        b, _, n, _ = out.shape
        return self.out_proj(out.transpose(1, 2).reshape(b, n, -1))


class EncoderBlock(nn.Module):
    """Pre-norm block: x + attn(LN(x)), then x + FFN(LN(x)) with a GELU FFN."""

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        h, eps = config.hidden_size, config.layer_norm_eps
        self.attn_norm = nn.LayerNorm(h, eps=eps)
        self.attention = EncoderSelfAttention(config)
        self.ffn_norm = nn.LayerNorm(h, eps=eps)
        self.ffn = nn.Sequential(
            nn.Linear(h, config.ffn_size),
            nn.GELU(),
            nn.Dropout(config.dropout),
            nn.Linear(config.ffn_size, h),
        )
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: Tensor, key_padding_mask: Tensor | None) -> Tensor:
        x = x + self.dropout(self.attention(self.attn_norm(x), key_padding_mask))
        return x + self.dropout(self.ffn(self.ffn_norm(x)))


def _reset_non_persistent_buffers(module: Attention) -> None:
    """Re-derive an attention's non-persistent buffers from its options.

    They are not in checkpoints, and ``from_pretrained`` builds the model on the meta device, so
    they must be recomputed after loading; an attention's buffers are a function of its options.
    """
    named = [
        (path, sub, name)
        for path, sub in module.named_modules()
        for name in sub._non_persistent_buffers_set
        if getattr(sub, name, None) is not None
    ]
    if not named:
        return
    with torch.device("cpu"), torch.random.fork_rng(devices=[]):  # leave the global RNG alone
        fresh = type(module)(**module.options)
    with torch.no_grad():
        for path, sub, name in named:
            current = getattr(sub, name)
            source = getattr(fresh.get_submodule(path), name, None)
            if source is not None and source.shape == current.shape:
                current.copy_(source)
            else:  # lazily sized buffers: let the attention derive them again on first use
                setattr(sub, name, None if source is None else source.to(current.device))


class EncoderClassifier(PreTrainedModel):
    """A modality front-end, pre-norm blocks, final LayerNorm, pooling, linear head.

    ``forward(inputs, attention_mask=None, labels=None)`` returns a ``SequenceClassifierOutput``
    (cross-entropy ``loss`` when ``labels`` are given). ``inputs`` is the modality's tensor (token
    ids, pixels or log-mel frames; also accepted by its transformers name: ``input_ids``,
    ``pixel_values``, ``input_features``). Without an ``attention_mask`` every position is real;
    images take none (every patch is real).
    """

    config_class = EncoderConfig
    base_model_prefix = "encoder"
    main_input_name = "input_ids"
    _no_split_modules = ["EncoderBlock"]  # noqa: RUF012 - transformers reads this class attribute

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__(config)
        h = config.hidden_size
        if config.modality == "image":
            p = config.patch_size
            rows, cols = config.patch_grid
            self.patch_embeddings = nn.Conv2d(config.num_channels, h, kernel_size=p, stride=p)
            self.row_embeddings = nn.Embedding(rows, h)
            self.column_embeddings = nn.Embedding(cols, h)
        else:
            if config.modality == "audio":
                self.frame_embeddings = nn.Linear(config.num_mel_bins, h)
            else:
                self.token_embeddings = nn.Embedding(config.vocab_size, h)
            self.position_embeddings = nn.Embedding(config.max_position, h)
        self.embed_dropout = nn.Dropout(config.dropout)
        self.layers = nn.ModuleList(EncoderBlock(config) for _ in range(config.num_layers))
        self.final_norm = nn.LayerNorm(h, eps=config.layer_norm_eps)
        self.head_dropout = nn.Dropout(config.dropout)
        self.classifier = nn.Linear(h, config.num_labels)
        self.post_init()

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        std = self.config.initializer_range
        if module is getattr(self, "patch_embeddings", None) or module is getattr(
            self, "frame_embeddings", None
        ):  # input projections (as ViT's): unit-scale inputs give unit-scale embeddings
            fan_in = module.weight[0].numel()
            _init.normal_(module.weight, mean=0.0, std=fan_in**-0.5)
            _init.zeros_(module.bias)
        elif isinstance(module, (nn.Linear, nn.Embedding, nn.Conv2d)):
            _init.normal_(module.weight, mean=0.0, std=std)
            if getattr(module, "bias", None) is not None:
                _init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            _init.ones_(module.weight)
            _init.zeros_(module.bias)
        elif isinstance(module, Attention):
            _reset_non_persistent_buffers(module)

    # -- inputs ---------------------------------------------------------------------------------
    def _pick_input(self, inputs: Tensor | None, named: dict[str, Tensor | None]) -> Tensor:
        """The one input tensor, given positionally or by its transformers name."""
        modality = self.config.modality
        expected = INPUT_NAMES[modality]
        given = {k: v for k, v in named.items() if v is not None}
        wrong = sorted(set(given) - {expected})
        if wrong:
            raise ValueError(
                f"EncoderClassifier: a {modality} model takes {expected}, got {', '.join(wrong)}"
            )
        if inputs is not None and given:
            raise ValueError(f"EncoderClassifier: pass {expected} once (positionally or by name)")
        picked = given.get(expected, inputs)
        if picked is None:
            raise ValueError(f"EncoderClassifier: {expected} is required")
        return picked

    def _check_inputs(
        self, inputs: Tensor, attention_mask: Tensor | None
    ) -> tuple[Tensor, Tensor | None]:
        modality = self.config.modality
        name = INPUT_NAMES[modality]
        if modality == "image":
            return self._check_image(inputs, attention_mask), None
        if not isinstance(inputs, Tensor) or inputs.dim() != (2 if modality == "text" else 3):
            got = tuple(inputs.shape) if isinstance(inputs, Tensor) else type(inputs)
            shape = "(batch, seq_len)" if modality == "text" else "(batch, frames, num_mel_bins)"
            raise ValueError(f"EncoderClassifier: {name} must be a {shape} tensor, got {got}")
        if modality == "text" and inputs.dtype not in (
            torch.int64, torch.int32, torch.int16, torch.uint8
        ):
            raise ValueError(
                f"EncoderClassifier: input_ids must be integer token ids, got dtype {inputs.dtype}"
            )
        if modality == "audio":
            if not inputs.is_floating_point():
                raise ValueError(f"EncoderClassifier: {name} must be float, got {inputs.dtype}")
            if inputs.shape[2] != self.config.num_mel_bins:
                raise ValueError(
                    f"EncoderClassifier: {name} has {inputs.shape[2]} mel bins, the model "
                    f"num_mel_bins={self.config.num_mel_bins}"
                )
        n = inputs.shape[1]
        if n == 0:
            raise ValueError(f"EncoderClassifier: {name} has seq_len 0; pass at least one position")
        if n > self.config.max_position:
            raise ValueError(
                f"EncoderClassifier: {name} seq_len {n} exceeds max_position "
                f"{self.config.max_position}; truncate the inputs or build the model with a larger "
                "max_position"
            )
        if attention_mask is None:
            return inputs, None
        if not isinstance(attention_mask, Tensor) or attention_mask.shape != inputs.shape[:2]:
            got = tuple(attention_mask.shape) if isinstance(attention_mask, Tensor) else None
            raise ValueError(
                f"EncoderClassifier: attention_mask must have the shape (batch, seq_len) of "
                f"{name} {tuple(inputs.shape[:2])}, got {got}"
            )
        if attention_mask.dtype != torch.bool:
            if attention_mask.is_floating_point() or attention_mask.is_complex():
                raise ValueError(
                    "EncoderClassifier: attention_mask must be bool or 0/1 integers, "
                    f"got dtype {attention_mask.dtype}"
                )
            if ((attention_mask != 0) & (attention_mask != 1)).any():
                raise ValueError(
                    "EncoderClassifier: attention_mask holds values other than 0 and 1"
                )
            attention_mask = attention_mask.bool()
        return inputs, attention_mask.to(inputs.device)

    def _check_image(self, pixels: Tensor, attention_mask: Tensor | None) -> Tensor:
        c, (h, w) = self.config.num_channels, self.config.image_size
        if attention_mask is not None:
            raise ValueError(
                "EncoderClassifier: an image model takes no attention_mask (every patch is real)"
            )
        if not isinstance(pixels, Tensor) or tuple(pixels.shape[1:]) != (c, h, w) or (
            pixels.dim() != 4
        ):
            got = tuple(pixels.shape) if isinstance(pixels, Tensor) else type(pixels)
            raise ValueError(
                f"EncoderClassifier: pixel_values must be (batch, {c}, {h}, {w}) "
                f"(channels, height, width of config.image_size), got {got}"
            )
        if not pixels.is_floating_point():
            raise ValueError(
                f"EncoderClassifier: pixel_values must be float (e.g. in [0, 1]), got "
                f"{pixels.dtype}"
            )
        return pixels

    def embed(self, inputs: Tensor) -> Tensor:
        """The front-end: (batch, seq_len, hidden_size) with position embeddings added."""
        if self.config.modality == "image":
            pixels = inputs.to(self.patch_embeddings.weight.dtype)
            x = self.patch_embeddings(2.0 * pixels - 1.0)  # [0, 1] -> [-1, 1], as ViT's input
            rows, cols = x.shape[2], x.shape[3]
            pos = self.row_embeddings.weight[:rows, None, :] + self.column_embeddings.weight[
                None, :cols, :
            ]
            return x.flatten(2).transpose(1, 2) + pos.reshape(rows * cols, -1)
        positions = torch.arange(inputs.shape[1], device=inputs.device)
        if self.config.modality == "audio":
            x = self.frame_embeddings(inputs.to(self.frame_embeddings.weight.dtype))
        else:
            x = self.token_embeddings(inputs)
        return x + self.position_embeddings(positions)

    def encode(self, inputs: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        """Final hidden states (batch, seq_len, hidden_size), after the final LayerNorm."""
        return self._encode(*self._check_inputs(inputs, attention_mask))

    def _encode(self, inputs: Tensor, mask: Tensor | None) -> Tensor:
        x = self.embed_dropout(self.embed(inputs))
        for layer in self.layers:
            x = layer(x, mask)
        return self.final_norm(x)

    def pool(self, hidden: Tensor, attention_mask: Tensor | None) -> Tensor:
        """(batch, hidden_size): mean over real tokens, or the first token (``pooling="cls"``)."""
        if self.config.pooling == "cls":
            return hidden[:, 0]
        if attention_mask is None:
            return hidden.mean(dim=1)
        weights = attention_mask.to(hidden.dtype).unsqueeze(-1)
        return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1.0)

    def forward(
        self,
        inputs: Tensor | None = None,
        attention_mask: Tensor | None = None,
        labels: Tensor | None = None,
        return_dict: bool | None = None,
        *,
        input_ids: Tensor | None = None,
        pixel_values: Tensor | None = None,
        input_features: Tensor | None = None,
        **_: Any,
    ) -> SequenceClassifierOutput | tuple[Tensor, ...]:
        """Logits (batch, num_labels); cross-entropy ``loss`` when ``labels`` (batch,) are given."""
        named = {"input_ids": input_ids, "pixel_values": pixel_values,
                 "input_features": input_features}
        input_ids, mask = self._check_inputs(self._pick_input(inputs, named), attention_mask)
        hidden = self._encode(input_ids, mask)
        logits = self.classifier(self.head_dropout(self.pool(hidden, mask)))
        loss = None
        if labels is not None:
            if labels.shape != (input_ids.shape[0],):
                raise ValueError(
                    f"EncoderClassifier: labels must have shape (batch,) = "
                    f"({input_ids.shape[0]},), got {tuple(labels.shape)}"
                )
            if labels.numel() and (labels.min() < 0 or labels.max() >= self.config.num_labels):
                raise ValueError(
                    f"EncoderClassifier: labels must lie in [0, "
                    f"{self.config.num_labels}), got min {int(labels.min())}, "
                    f"max {int(labels.max())}"
                )
            loss = F.cross_entropy(logits.float(), labels.to(logits.device).long())
        if return_dict is False:
            return (logits,) if loss is None else (loss, logits)
        return SequenceClassifierOutput(loss=loss, logits=logits)

    # -- attention swapping and fidelity ---------------------------------------------------------
    def set_attention(self, name: str, **options: Any) -> EncoderClassifier:
        """Swap every layer's attention for ``get_attention(name, **options)``; weights untouched.

        ``config.attention`` / ``attention_options`` follow; ``shared_qk`` (a weight layout) keeps
        its value. Returns ``self``.
        """
        modules = [get_attention(name, **options) for _ in self.layers]
        ref = next(self.parameters())
        for layer, module in zip(self.layers, modules, strict=True):
            layer.attention.attn = module.to(ref.device).train(self.training)
        self.config.attention = name
        self.config.attention_options = dict(options)
        return self

    def attention_inputs(
        self, inputs: Tensor, attention_mask: Tensor | None = None
    ) -> list[tuple[Tensor, Tensor, Tensor, Tensor | None]]:
        """Per layer, the ``(q, k, v, key_padding_mask)`` reaching the attention, in eval mode.

        Runs one forward pass without gradients (dropout off) and restores the training mode.
        With ``shared_qk`` the recorded q and k are one tensor object, as the attention saw them.
        """
        records: list[tuple[Tensor, Tensor, Tensor, Tensor | None]] = []

        def hook(_module: nn.Module, args: tuple, kwargs: dict) -> None:
            q, k, v = args[:3]
            mask = kwargs.get("key_padding_mask", args[3] if len(args) > 3 else None)
            q_rec = q.detach()
            k_rec = q_rec if k is q else k.detach()  # shared QK stays one tensor
            records.append((q_rec, k_rec, v.detach(), mask))

        handles = [
            layer.attention.attn.register_forward_pre_hook(hook, with_kwargs=True)
            for layer in self.layers
        ]
        was_training = self.training
        try:
            self.eval()
            with torch.no_grad():
                self(inputs, attention_mask=attention_mask)
        finally:
            for handle in handles:
                handle.remove()
            self.train(was_training)
        return records


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters of ``model`` (each shared tensor counted once)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def build_model(
    attention: str = "standard",
    *,
    vocab_size: int,
    num_labels: int,
    max_position: int,
    hidden_size: int = 128,
    num_layers: int = 2,
    num_heads: int = 4,
    ffn_size: int | None = None,
    dropout: float = 0.1,
    pooling: str = "mean",
    pad_token_id: int = 0,
    attention_options: dict[str, Any] | None = None,
    shared_qk: bool | None = None,
    seed: int | None = None,
    modality: str = "text",
    image_size: tuple[int, int] | list[int] = (32, 32),
    num_channels: int = 1,
    patch_size: int = 1,
    num_mel_bins: int = 40,
) -> EncoderClassifier:
    """Build an :class:`EncoderClassifier` (``ffn_size`` defaults to 4 * hidden_size).

    ``modality`` picks the front-end (``text``, ``image``, ``audio``); image models read
    ``image_size``, ``num_channels`` and ``patch_size``, audio models ``num_mel_bins`` (frames up to
    ``max_position``).

    With ``seed``, weights are drawn from that seed without touching the global RNG, so models
    that differ only in attention start from the same weights.
    """
    config = EncoderConfig(
        vocab_size=vocab_size,
        max_position=max_position,
        hidden_size=hidden_size,
        num_layers=num_layers,
        num_heads=num_heads,
        ffn_size=4 * hidden_size if ffn_size is None else ffn_size,
        dropout=dropout,
        pooling=pooling,
        num_labels=num_labels,
        pad_token_id=pad_token_id,
        attention=attention,
        attention_options=attention_options,
        shared_qk=shared_qk,
        modality=modality,
        image_size=list(image_size),
        num_channels=num_channels,
        patch_size=patch_size,
        num_mel_bins=num_mel_bins,
    )
    build: Callable[[], EncoderClassifier] = lambda: EncoderClassifier(config)  # noqa: E731
    if seed is None:
        return build()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()
