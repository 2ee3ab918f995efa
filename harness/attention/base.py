"""The attention contract: one base class, capability flags, input validation, a registry.

Every attention family subclasses :class:`Attention`, declares its :class:`Capabilities`, and is
registered by name with :func:`register_attention`. Tests and benchmarks parametrize over
:func:`list_attentions`, so a newly registered variant is tested and benchmarked at once.
"""

from __future__ import annotations

import inspect
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from harness.registry import Registry

__all__ = [
    "BACKWARD_FLOP_FACTOR",
    "PASSES",
    "Attention",
    "Capabilities",
    "attention_class",
    "attention_options",
    "attention_origin",
    "get_attention",
    "list_attentions",
    "pass_factor",
    "register_attention",
    "validate_inputs",
]


#: Timed passes a FLOP count is given for.
PASSES = ("forward", "backward", "fwd_bwd")
#: FlashAttention's convention: the backward pass does 2.5x the matmul work of the forward.
BACKWARD_FLOP_FACTOR = 2.5


def pass_factor(pass_: str) -> float:
    """Multiple of the forward FLOPs a pass does (backward 2.5x, forward + backward 3.5x)."""
    if pass_ not in PASSES:
        raise ValueError(f"pass must be one of {PASSES}, got {pass_!r}")
    return {"forward": 1.0, "backward": BACKWARD_FLOP_FACTOR,
            "fwd_bwd": 1.0 + BACKWARD_FLOP_FACTOR}[pass_]


@dataclass(frozen=True)
class Capabilities:
    """What an attention family supports and what it claims to cost in sequence length N.

    ``memory_exponent`` is the claimed exponent p in memory ~ N^p at a fixed batch, heads and head
    dimension; the memory suite compares it with the fitted slope of log memory vs log N.
    ``shared_qk``: the family is meant to run with ``q is k`` (one projection for both, as in
    Reformer); models, suites and benchmarks then pass the same tensor as q and k.
    ``time_exponent``: the claimed exponent of N in time (an upper bound; log factors are left
    to the audit's tolerance). ``dtypes``: the floating dtypes it claims to support.
    ``harness check`` verifies each claim (see :mod:`harness.check`).
    """

    causal: bool = True
    key_padding_mask: bool = True
    cross_lengths: bool = True
    time_complexity: str = "O(N^2)"
    memory_complexity: str = "O(N^2)"
    memory_exponent: float = 2.0
    approximates_softmax: bool = False
    shared_qk: bool = False
    time_exponent: float = 2.0
    dtypes: tuple[str, ...] = ("float32", "float64", "bfloat16")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Attention(nn.Module):
    """Base class of every attention family.

    Subclasses set ``name`` and ``capabilities``, take their options as keyword-only ``__init__``
    arguments with defaults (these are the registry's option names), and implement
    :meth:`attend`, which receives inputs that :meth:`forward` has already validated.
    """

    name: ClassVar[str] = ""
    capabilities: ClassVar[Capabilities] = Capabilities()

    def forward(
        self,
        q: Tensor,
        k: Tensor,
        v: Tensor,
        key_padding_mask: Tensor | None = None,
        causal: bool = False,
    ) -> Tensor:
        """Attend. q, k, v: (batch, heads, seq_len, head_dim); mask: (batch, seq_len) bool.

        ``key_padding_mask`` is True for real tokens. A query that sees no real key returns zeros.
        """
        validate_inputs(q, k, v, key_padding_mask, causal, self.capabilities, self.name)
        out = self.attend(q, k, v, key_padding_mask, causal)
        if not isinstance(out, Tensor) or out.shape != (*q.shape[:3], v.shape[3]):
            got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
            raise ValueError(
                f"attention {self.name!r} returned {got}; its attend() must return (batch,"
                f" heads, q seq_len, v head_dim) = {(*q.shape[:3], v.shape[3])} for"
                f" {_shapes(q, k, v)}")
        return out

    def attend(
        self, q: Tensor, k: Tensor, v: Tensor, key_padding_mask: Tensor | None, causal: bool
    ) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    @classmethod
    def exact_options(cls, seq_len: int) -> dict[str, Any] | None:
        """Options under which this family computes exact softmax attention for sequences of
        ``seq_len`` tokens (``harness check`` compares them with a float64 reference), or None
        when no configuration is exact. Default: ``{}`` unless it approximates softmax."""
        return None if cls.capabilities.approximates_softmax else {}

    #: The FLOP count :meth:`flops` implements, in words (``harness list`` shows it).
    flops_formula: ClassVar[str] = ""
    #: Options that choose a kernel, not a result: every value computes what the defaults do
    #: (``harness check`` compares a non-default backend's outputs with the default's).
    backend_options: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def device_support(cls, device: str, options: dict[str, Any]) -> str | None:
        """Why these options cannot run on ``device`` (e.g. a CUDA-only kernel on CPU), or None.

        ``harness check`` and callers refuse such a configuration before anything runs."""
        return None

    @classmethod
    def flops(
        cls,
        batch: int,
        heads: int,
        n: int,
        head_dim: int,
        options: dict[str, Any] | None = None,
        pass_: str = "forward",
        *,
        causal: bool = False,
    ) -> float | None:
        """Floating-point operations of one call of ``pass_`` (forward, backward, fwd_bwd) at
        this shape and these options, counted as FlashAttention does (a multiply-add is 2;
        backward is 2.5x the forward's matmul work); None when the family declares no count
        (the throughput suite then writes no FLOP rate)."""
        return None

    @property
    def claimed_memory(self) -> tuple[str, float]:
        """(complexity, exponent of N) that this configuration claims for its peak memory.

        The class capabilities by default; a family whose options change the claim overrides it.
        """
        return self.capabilities.memory_complexity, self.capabilities.memory_exponent

    @property
    def options(self) -> dict[str, Any]:
        """The resolved options of this instance (defaults filled in)."""
        return {key: getattr(self, key) for key in attention_options(type(self))}

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.options.items())


def validate_inputs(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    key_padding_mask: Tensor | None,
    causal: bool,
    capabilities: Capabilities,
    name: str = "attention",
) -> None:
    """Raise ``ValueError`` with an actionable message when inputs break the contract.

    Runs on every call, so the accepted case is a handful of attribute reads: messages are only
    built for a failure (a GPU step of a few microseconds is otherwise bound by this host work).
    """
    if not (isinstance(q, Tensor) and isinstance(k, Tensor) and isinstance(v, Tensor)):
        _explain(q, k, v, name)
    qs, ks, vs = q.shape, k.shape, v.shape
    dt, dev = q.dtype, q.device
    if (len(qs) != 4 or len(ks) != 4 or len(vs) != 4 or not dt.is_floating_point
            or k.dtype != dt or v.dtype != dt or k.device != dev or v.device != dev
            or qs[:2] != ks[:2] or ks[:2] != vs[:2] or qs[3] != ks[3] or ks[2] != vs[2]
            or qs[2] == 0 or ks[2] == 0 or qs[3] == 0 or vs[3] == 0):
        _explain(q, k, v, name)
    if qs[2] != ks[2] and not capabilities.cross_lengths:
        raise ValueError(f"{name}: q and k must have the same seq_len for this attention; got "
                         f"{_shapes(q, k, v)}")
    if causal and not capabilities.causal:
        raise ValueError(f"{name}: causal=True is not supported by this attention")
    if key_padding_mask is not None:
        if not capabilities.key_padding_mask:
            raise ValueError(f"{name}: key_padding_mask is not supported by this attention")
        if not isinstance(key_padding_mask, Tensor):
            kind = type(key_padding_mask)
            got = f"{kind.__module__}.{kind.__qualname__}".removeprefix("builtins.")
            fix = ("torch.from_numpy(mask)" if kind.__module__ == "numpy"
                   else "torch.as_tensor(mask, dtype=torch.bool)")
            raise ValueError(f"{name}: key_padding_mask must be a bool torch.Tensor (True ="
                             f" real token), got {got}; convert with {fix}")
        if key_padding_mask.dtype != torch.bool:
            raise ValueError(
                f"{name}: key_padding_mask must be a bool tensor (True = real token), got"
                f" {key_padding_mask.dtype}; convert with mask.bool()"
            )
        expected = (ks[0], ks[2])
        if tuple(key_padding_mask.shape) != expected:
            raise ValueError(
                f"{name}: key_padding_mask must have shape (batch, seq_len) = {expected},"
                f" got {tuple(key_padding_mask.shape)}"
            )
        if key_padding_mask.device != dev:
            raise ValueError(f"{name}: key_padding_mask is on {key_padding_mask.device}, "
                             f"k on {k.device}")


def _shapes(q: Tensor, k: Tensor, v: Tensor) -> str:
    return f"q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)}"


def _explain(q: object, k: object, v: object, name: str) -> None:
    """Raise the ``ValueError`` naming the first broken rule of q, k, v (the slow path)."""
    layout = "(batch, heads, seq_len, head_dim)"
    for label, t in (("q", q), ("k", k), ("v", v)):
        if not isinstance(t, Tensor):
            raise ValueError(f"{name}: {label} must be a torch.Tensor, got {type(t).__name__}")
        if t.dim() != 4:
            raise ValueError(
                f"{name}: {label} must be 4-D {layout}, got {t.dim()}-D shape {tuple(t.shape)}"
            )
        if not t.is_floating_point():
            raise ValueError(f"{name}: {label} must be a floating tensor, got dtype {t.dtype}")
    assert isinstance(q, Tensor) and isinstance(k, Tensor) and isinstance(v, Tensor)
    shapes = _shapes(q, k, v)
    if q.shape[:2] != k.shape[:2] or k.shape[:2] != v.shape[:2]:
        raise ValueError(f"{name}: batch and heads of q, k, v must match; got {shapes}")
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(f"{name}: head_dim of q and k must match; got {shapes}")
    if k.shape[2] != v.shape[2]:
        raise ValueError(f"{name}: k and v must have the same seq_len; got {shapes}")
    if q.shape[2] == 0 or k.shape[2] == 0:
        raise ValueError(f"{name}: empty sequence (seq_len 0) in {shapes}; pass at least 1 token")
    if q.shape[-1] == 0 or v.shape[-1] == 0:
        raise ValueError(f"{name}: head_dim must be positive; got {shapes}")
    if q.dtype != k.dtype or k.dtype != v.dtype:
        raise ValueError(f"{name}: q, k, v dtypes differ ({q.dtype}, {k.dtype}, {v.dtype})")
    if q.device != k.device or k.device != v.device:
        raise ValueError(f"{name}: q, k, v are on different devices")
    raise AssertionError(f"{name}: validate_inputs found a fault _explain cannot name: {shapes}")


def _check_attention(name: str, cls: object) -> type[Attention]:
    if not (isinstance(cls, type) and issubclass(cls, Attention)):
        raise ValueError(f"attention {name!r} must be an Attention subclass, got {cls!r}")
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no `name`; set a class attribute name = '...'")
    if cls.name != name:
        raise ValueError(
            f"attention class {cls.__module__}.{cls.__qualname__} is named {cls.name!r} but is"
            f" registered as {name!r}; make its `name` and the entry point's name equal"
        )
    return cls


def _attention_name(obj: object) -> str | None:
    """The name a plugin's ``MODULE:ATTR`` object registers under, if it is an attention class."""
    return obj.name if isinstance(obj, type) and issubclass(obj, Attention) else None


#: Every attention: built-ins, and plugins (entry points ``harness.attentions``, ``--plugin``).
_REGISTRY: Registry[type[Attention]] = Registry(
    "attention", validate=_check_attention, group="harness.attentions", adopt=_attention_name)


def register_attention(cls: type[Attention]) -> type[Attention]:
    """Class decorator: add an :class:`Attention` subclass to the registry under ``cls.name``.

    A name already taken by another class raises ``ValueError`` naming both origins.
    """
    if not (isinstance(cls, type) and issubclass(cls, Attention)):
        raise ValueError(f"register_attention expects an Attention subclass, got {cls!r}")
    return _REGISTRY.add(cls.name, cls)


def list_attentions() -> list[str]:
    """Names of all registered attentions (entry-point plugins included), sorted."""
    return _REGISTRY.names()


def attention_class(name: str) -> type[Attention]:
    """The registered class for ``name``; ``ValueError`` listing the valid names otherwise."""
    return _REGISTRY.entry(name).value  # type: ignore[return-value]


def attention_origin(name: str) -> tuple[str, str | None]:
    """(origin, version) of attention ``name``: ``built-in`` or the plugin it came from."""
    entry = _REGISTRY.entry(name)
    return entry.origin, entry.version


def attention_options(cls: type[Attention]) -> dict[str, Any]:
    """Option names of an attention class with their defaults (its keyword-only init args)."""
    params = inspect.signature(cls.__init__).parameters
    return {
        p.name: p.default
        for p in params.values()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    }


def get_attention(name: str, **options: Any) -> Attention:
    """Build the attention registered as ``name`` with ``options``.

    Unknown names or option names raise ``ValueError`` listing the valid ones.
    """
    cls = attention_class(name)
    valid = attention_options(cls)
    unknown = sorted(set(options) - set(valid))
    if unknown:
        listed = ", ".join(f"{k}={v!r}" for k, v in valid.items()) or "(none)"
        raise ValueError(
            f"unknown option(s) {', '.join(unknown)} for attention {name!r};"
            f" valid options: {listed}"
        )
    return cls(**options)
