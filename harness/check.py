"""The claims audit: ``harness check NAME`` verifies what an attention declares about itself.

An attention declares :class:`~harness.attention.Capabilities` (causal, key padding, q/k lengths,
exactness to softmax, claimed time and memory exponents, dtypes). :func:`audit` checks each claim
against behaviour and returns one :class:`Verdict` per check:

* ``exactness``: a configuration that should be exact (:meth:`Attention.exact_options`) vs a
  float64 reference; otherwise the approximation error vs softmax at a few lengths (reported);
* ``causality``: later q, k and v changed -> no earlier output changes, in values and gradients;
* ``padding``: padded keys/values changed -> real outputs unchanged; an all-padded row is finite;
* ``independence``: NaN or huge values in one (batch, head) slice leave every other slice as is;
* ``determinism``: two instances with the same options (seed) give identical outputs;
* ``dtypes``: every claimed dtype runs, returns that dtype, finite and close to float64;
* ``bad_inputs``: inputs that break the contract raise ``ValueError``;
* ``backend``: a non-default kernel (an option in ``Attention.backend_options``, e.g. sparse
  ``backend=flex``) gives the default kernel's outputs and gradients within float tolerance,
  causal and padded, at lengths with several blocks (skipped for the default kernel);
* ``time_complexity`` / ``memory_complexity``: the exponent fitted over a length sweep (the
  memory suite's work function and fit) vs the claim, as an upper bound: violated only when the
  whole t-interval of the fitted exponent lies above ``claim + tolerance``.
"""

from __future__ import annotations

import datetime
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from scipy import stats as sps
from torch import Tensor

from harness.attention import Attention, attention_class, attention_options, reference_attention
from harness.measure.limits import TimeLimitExceeded, time_limit
from harness.measure.stats import fit_power_law
from harness.records import Record

__all__ = [
    "CHECKS",
    "CheckConfig",
    "Verdict",
    "audit",
    "exit_code",
    "exponent_interval",
    "write_check_run",
]

CHECKS = ("exactness", "causality", "padding", "independence", "determinism", "dtypes",
          "bad_inputs", "backend", "time_complexity", "memory_complexity")

Status = Literal["pass", "fail", "skip", "info"]

_DTYPES = {"float32": torch.float32, "float64": torch.float64, "bfloat16": torch.bfloat16,
           "float16": torch.float16}
#: Mean relative error vs the float64 output allowed per dtype.
_DTYPE_TOL = {"float64": 1e-10, "float32": 1e-4, "bfloat16": 6e-2, "float16": 1e-2}
#: Exactness, causality, padding and independence compare float64 outputs within this.
_ATOL = 1e-9
#: The backend check: largest difference from the default kernel allowed per dtype.
_BACKEND_TOL = {torch.float64: 1e-9, torch.float32: 1e-4}


@dataclass(frozen=True)
class Verdict:
    """One check: what is claimed, pass/fail/skip/info, and the measured evidence."""

    check: str
    claim: str
    status: Status
    evidence: str
    value: float | None = None
    ci: tuple[float, float] | None = None
    device: str = "cpu"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class CheckConfig:
    """Sizes of the audit. The complexity sweeps are small by default (seconds)."""

    seq_lens: tuple[int, ...] = (256, 512, 1024, 2048)
    memory_seq_lens: tuple[int, ...] = (1024, 2048, 4096, 8192)
    batch: int = 1
    heads: int = 2
    head_dim: int = 32
    repeats: int = 7
    exponent_tolerance: float = 0.3
    confidence: float = 0.95
    checks: tuple[str, ...] = CHECKS
    devices: tuple[str, ...] = ("cpu",)
    memory_timeout_s: float = 120.0
    #: time limit of each check (seconds): a check past it is stopped and fails (``timeout``)
    timeout_s: float = 600.0
    extra: dict[str, Any] = field(default_factory=dict)


def exit_code(verdicts: Sequence[Verdict]) -> int:
    """0 when every claim holds, 1 when one is violated."""
    return 1 if any(v.status == "fail" for v in verdicts) else 0


def exponent_interval(
    lengths: Sequence[float], values: Sequence[float], confidence: float = 0.95
) -> tuple[float, tuple[float, float] | None]:
    """Fitted power-law exponent of ``values`` in ``lengths`` and its t-interval (n - 2 degrees
    of freedom; None with only two points)."""
    fit = fit_power_law(lengths, values)
    if fit.stderr is None:
        return fit.exponent, None
    t = float(sps.t.ppf(0.5 + confidence / 2, fit.n_points - 2))
    return fit.exponent, (fit.exponent - t * fit.stderr, fit.exponent + t * fit.stderr)


# ----------------------------------------------------------------------------- helpers
def _inputs(b: int, h: int, n: int, d: int, *, seed: int = 0, dtype=torch.float64,
            device: str = "cpu") -> tuple[Tensor, Tensor, Tensor]:
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(b, h, n, d, generator=g, dtype=torch.float64).to(device, dtype)
                 for _ in range(3))  # type: ignore[return-value]


def _variants(cls: type[Attention]) -> list[bool]:
    """Distinct q and k always; q as k too for shared-QK families."""
    return [False, True] if cls.capabilities.shared_qk else [False]


def _call(attn: Attention, q: Tensor, k: Tensor, v: Tensor, shared: bool, **kw: Any) -> Tensor:
    return attn(q, q if shared else k, v, **kw)


def _maxdiff(a: Tensor, b: Tensor) -> float:
    diff = (a.double() - b.double()).abs()
    both_nan = a.isnan() & b.isnan()
    diff = diff.masked_fill(both_nan, 0.0).nan_to_num(nan=math.inf)
    return float(diff.max()) if diff.numel() else 0.0


def _padding_mask(b: int, n: int, device: str) -> Tensor:
    mask = torch.ones(b, n, dtype=torch.bool, device=device)
    mask[-1, n - 11:] = False
    if b > 1:
        mask[0, 3:6] = False  # padding inside a sequence too
    return mask


def _result(check: str, claim: str, problems: list[str], evidence_ok: str,
            device: str) -> Verdict:
    if problems:
        return Verdict(check, claim, "fail", "; ".join(problems), device=device)
    return Verdict(check, claim, "pass", evidence_ok, device=device)


def _guard(check: str, claim: str, device: str, fn: Callable[[], Verdict],
           timeout_s: float | None = None) -> Verdict:
    """Run a check within ``timeout_s``; an exception is a violation with the error as its
    evidence, and so is a check past its time limit (stopped, ``timeout``)."""
    try:
        with time_limit(timeout_s):
            return fn()
    except TimeLimitExceeded:
        return Verdict(check, claim, "fail", f"timeout: no result within --timeout-s"
                       f" {timeout_s:g} s; the check was stopped", device=device)
    except Exception as err:  # the attention failed where it claims to work
        return Verdict(check, claim, "fail", f"raised {type(err).__name__}: {err}", device=device)


def _no_backward(cls: type[Attention], options: dict[str, Any], dev: str) -> str | None:
    """Why this configuration refuses a backward pass on ``dev`` (its ``ValueError``, e.g.
    FlexAttention on CPU), or None when gradients flow."""
    q, k, v = (t.requires_grad_(True) for t in _inputs(1, 1, 8, 4, seed=9, device=dev))
    try:
        _call(cls(**options), q, k, v, cls.capabilities.shared_qk).sum().backward()
    except ValueError as err:
        return str(err)
    return None


# ----------------------------------------------------------------------------- checks
def _exactness(cls: type[Attention], options: dict[str, Any], dev: str) -> Verdict:
    n = 48
    exact = cls.exact_options(n)
    caps = cls.capabilities
    if exact is None:
        errors = []
        for length in (64, 256):
            q, k, v = _inputs(2, 2, length, 16, device=dev)
            out = cls(**options)(q, k, v)
            ref = reference_attention(q, k, v)
            rel = float((out - ref).abs().mean() / ref.abs().mean())
            errors.append(f"N={length}: {rel:.3g}")
        return Verdict("exactness", "approximates softmax", "info",
                       "mean relative error vs softmax " + ", ".join(errors), device=dev)
    attn = cls(**{**options, **exact})
    shown = ", ".join(f"{k}={v!r}" for k, v in exact.items()) or "its options"
    claim = f"exact softmax with {shown}"
    worst, where = 0.0, ""
    q, k, v = _inputs(2, 2, n, 16, seed=1, device=dev)
    mask = _padding_mask(2, n, dev)
    for causal in (False, True) if caps.causal else (False,):
        for m in (None, mask) if caps.key_padding_mask else (None,):
            out = attn(q, k, v, key_padding_mask=m, causal=causal)
            ref = reference_attention(q, k, v, m, causal)
            rows = torch.ones(2, n, dtype=torch.bool, device=dev) if m is None else m
            err = _maxdiff(out[rows[:, None, :].expand(2, 2, n)],
                           ref[rows[:, None, :].expand(2, 2, n)])
            if err > worst or math.isnan(err):
                worst, where = err, f"causal={causal}, padded={m is not None}"
    problems = [f"max error {worst:.3g} vs float64 reference ({where})"] if worst > _ATOL else []
    return _result("exactness", claim, problems, f"max error {worst:.3g} (float64, N={n})", dev)


def _causality(cls: type[Attention], options: dict[str, Any], dev: str) -> Verdict:
    claim = "later tokens never change earlier outputs"
    if not cls.capabilities.causal:
        return Verdict("causality", "causal not claimed", "skip", "capability causal=False",
                       device=dev)
    n, cut = 48, 29
    problems = []
    no_grad = _no_backward(cls, options, dev)
    for shared in _variants(cls):
        attn = cls(**options)
        q, k, v = _inputs(2, 2, n, 16, seed=2, device=dev)
        base = _call(attn, q, k, v, shared, causal=True)
        q2, k2, v2 = q.clone(), k.clone(), v.clone()
        q2[:, :, cut:] += 3.0
        k2[:, :, cut:] -= 2.0
        v2[:, :, cut:] = torch.randn_like(v2[:, :, cut:]) * 5
        out = _call(attn, q2, k2, v2, shared, causal=True)
        change = _maxdiff(out[:, :, :cut], base[:, :, :cut])
        tag = " (q as k)" if shared else ""
        if change > _ATOL:
            problems.append(f"earlier outputs changed by {change:.3g} when q, k, v after position"
                            f" {cut} changed{tag}")
        if no_grad:
            continue
        qg, kg, vg = (t.clone().requires_grad_(True) for t in (q, k, v))
        out = _call(attn, qg, kg, vg, shared, causal=True)
        out[:, :, :cut].pow(2).sum().backward()
        for label, t in (("q", qg), ("v", vg)) if shared else (("q", qg), ("k", kg), ("v", vg)):
            grad = 0.0 if t.grad is None else float(t.grad[:, :, cut:].abs().max())
            if grad != 0.0:
                problems.append(f"gradient of earlier outputs reaches later {label}"
                                f" (max {grad:.3g}){tag}")
    what = f"values unchanged (no backward here: {no_grad})" if no_grad else \
        "values and gradients unchanged"
    return _result("causality", claim, problems,
                   f"{what} (N={n}, later {n - cut} tokens changed)", dev)


def _padding(cls: type[Attention], options: dict[str, Any], dev: str) -> Verdict:
    claim = "padded keys change nothing; all-padded rows stay finite"
    caps = cls.capabilities
    if not caps.key_padding_mask:
        return Verdict("padding", "key padding not claimed", "skip",
                       "capability key_padding_mask=False", device=dev)
    n = 48
    problems = []
    mask = _padding_mask(2, n, dev)
    rows = mask[:, None, :, None].expand(2, 2, n, 16)
    for shared in _variants(cls):
        tag = " (q as k)" if shared else ""
        for causal in (False, True) if caps.causal else (False,):
            attn = cls(**options)
            q, k, v = _inputs(2, 2, n, 16, seed=3, device=dev)
            base = _call(attn, q, k, v, shared, key_padding_mask=mask, causal=causal)
            pad = ~mask[:, None, :, None]
            k2 = torch.where(pad, torch.randn_like(k) * 7, k)
            v2 = torch.where(pad, torch.randn_like(v) * 7, v)
            q2 = torch.where(pad, k2, q) if shared else q
            out = _call(attn, q2, k2, v2, shared, key_padding_mask=mask, causal=causal)
            change = _maxdiff(out[rows], base[rows])
            if change > _ATOL:
                problems.append(f"real outputs changed by {change:.3g} when padded keys/values"
                                f" changed (causal={causal}){tag}")
        empty = mask.clone()
        empty[0] = False
        no_grad = _no_backward(cls, options, dev)
        q, k, v = (t.requires_grad_(not no_grad)
                   for t in _inputs(2, 2, n, 16, seed=4, device=dev))
        out = _call(cls(**options), q, k, v, shared, key_padding_mask=empty)
        if not bool(torch.isfinite(out).all()):
            problems.append(f"an all-padded row gives non-finite outputs{tag}")
        elif out.requires_grad:
            out.sum().backward()
            grads = [t.grad for t in (q, k, v) if t.grad is not None]
            if not all(bool(torch.isfinite(g).all()) for g in grads):
                problems.append(f"an all-padded row gives non-finite gradients{tag}")
    return _result("padding", claim, problems,
                   f"real outputs unchanged, all-padded row finite (N={n})", dev)


def _independence(cls: type[Attention], options: dict[str, Any], dev: str) -> Verdict:
    claim = "each (batch, head) slice is computed on its own"
    problems = []
    n = 160  # long enough for several chunks / blocks / buckets in the built-in defaults
    keep = torch.ones(3, 2, dtype=torch.bool, device=dev)
    keep[1, 0] = False
    for dtype in (torch.float32, torch.float64):  # NaN bit patterns differ between widths
        for shared in _variants(cls):
            attn = cls(**options)
            q, k, v = _inputs(3, 2, n, 8, seed=5, dtype=dtype, device=dev)
            base = _call(attn, q, k, v, shared)
            for poison, label in ((float("nan"), "NaN"), (1e4, "a large value (1e4)")):
                for which in ("q", "k", "v"):
                    if shared and which == "k":
                        continue
                    tensors = {"q": q.clone(), "k": k.clone(), "v": v.clone()}
                    if label == "NaN":
                        tensors[which][1, 0, n // 3] = poison
                    else:
                        tensors[which][1, 0] *= poison
                    out = _call(attn, tensors["q"], tensors["k"], tensors["v"], shared)
                    change = _maxdiff(out[keep], base[keep])
                    if change > _ATOL:
                        problems.append(
                            f"{label} in {which}[1, 0] changed other slices by {change:.3g}"
                            f" ({str(dtype).removeprefix('torch.')}"
                            f"{', q as k' if shared else ''})")
    return _result("independence", claim, problems,
                   "NaN and 1e4 in one slice leave the other slices unchanged", dev)


def _determinism(cls: type[Attention], options: dict[str, Any], dev: str) -> Verdict:
    claim = "same options, same inputs -> same outputs"
    q, k, v = _inputs(2, 2, 64, 16, seed=6, dtype=torch.float32, device=dev)
    shared = cls.capabilities.shared_qk
    a, b = cls(**options), cls(**options)
    first = _call(a, q, k, v, shared)
    problems = []
    for label, out in (("a second instance", _call(b, q, k, v, shared)),
                       ("a second call", _call(a, q, k, v, shared))):
        if not torch.equal(out, first):
            problems.append(f"{label} differs by {_maxdiff(out, first):.3g}")
    return _result("determinism", claim, problems, "bit-identical outputs", dev)


def _dtypes(cls: type[Attention], options: dict[str, Any], dev: str) -> Verdict:
    claimed = cls.capabilities.dtypes
    claim = "runs in " + ", ".join(claimed)
    attn = cls(**options)
    shared = cls.capabilities.shared_qk
    q, k, v = _inputs(2, 2, 64, 16, seed=7, device=dev)
    ref = _call(attn, q, k, v, shared)
    problems, shown = [], []
    for name in claimed:
        dtype = _DTYPES.get(name)
        if dtype is None:
            problems.append(f"unknown dtype {name!r} claimed")
            continue
        try:
            out = _call(attn, q.to(dtype), k.to(dtype), v.to(dtype), shared)
        except Exception as err:
            problems.append(f"{name}: raised {type(err).__name__}: {err}")
            continue
        if out.dtype != dtype:
            problems.append(f"{name}: returned {out.dtype}")
            continue
        if not bool(torch.isfinite(out).all()):
            problems.append(f"{name}: non-finite outputs")
            continue
        rel = float((out.double() - ref).abs().mean() / ref.abs().mean())
        shown.append(f"{name} {rel:.2g}")
        if rel > _DTYPE_TOL.get(name, 1e-2):
            problems.append(f"{name}: mean relative error {rel:.3g} vs float64 exceeds"
                            f" {_DTYPE_TOL.get(name, 1e-2):g}")
    return _result("dtypes", claim, problems, "relative error vs float64: " + ", ".join(shown),
                   dev)


def _bad_inputs(cls: type[Attention], options: dict[str, Any], dev: str) -> Verdict:
    claim = "inputs that break the contract raise ValueError"
    caps = cls.capabilities
    q, k, v = _inputs(2, 2, 16, 8, seed=8, dtype=torch.float32, device=dev)
    mask = torch.ones(2, 16, dtype=torch.bool, device=dev)
    cases: list[tuple[str, Callable[[Attention], Any]]] = [
        ("3-D q", lambda a: a(q[0], k, v)),
        ("integer tensors", lambda a: a(q.long(), k.long(), v.long())),
        ("batch sizes differ", lambda a: a(q, k[:1], v[:1])),
        ("head_dim of q and k differ", lambda a: a(q, k[..., :4], v)),
        ("k and v lengths differ", lambda a: a(q, k, v[:, :, :8])),
        ("empty sequence", lambda a: a(q[:, :, :0], k[:, :, :0], v[:, :, :0])),
        ("dtypes differ", lambda a: a(q, k.double(), v)),
        ("not a tensor", lambda a: a(q.tolist(), k, v)),
    ]
    if caps.key_padding_mask:
        cases += [("float key_padding_mask", lambda a: a(q, k, v, key_padding_mask=mask.float())),
                  ("key_padding_mask of the wrong shape",
                   lambda a: a(q, k, v, key_padding_mask=mask[:, :8]))]
    else:
        cases.append(("key_padding_mask (not supported)",
                      lambda a: a(q, k, v, key_padding_mask=mask)))
    if not caps.causal:
        cases.append(("causal=True (not supported)", lambda a: a(q, k, v, causal=True)))
    if not caps.cross_lengths:
        cases.append(("q and k lengths differ (not supported)",
                      lambda a: a(q[:, :, :8], k, v)))
    problems = []
    attn = cls(**options)
    for label, call in cases:
        try:
            call(attn)
        except ValueError:
            continue
        except Exception as err:
            problems.append(f"{label}: raised {type(err).__name__} instead of ValueError")
            continue
        problems.append(f"{label}: accepted")
    return _result("bad_inputs", claim, problems, f"{len(cases)} bad inputs refused", dev)


def _backend(cls: type[Attention], options: dict[str, Any], dev: str) -> Verdict:
    """A non-default kernel against the family's default kernel, same inputs and options."""
    from harness.attention import attention_options

    defaults = attention_options(cls)
    chosen = {key: options[key] for key in cls.backend_options
              if key in options and options[key] != defaults.get(key)}
    if not chosen:
        return Verdict("backend", "the default kernel", "skip",
                       "no non-default backend option: nothing to compare", device=dev)
    shown = ", ".join(f"{k}={v!r}" for k, v in chosen.items())
    base_options = {**options, **{key: defaults[key] for key in chosen}}
    claim = f"{shown} computes what the default kernel does"
    caps = cls.capabilities
    no_grad = _no_backward(cls, options, dev)
    problems, worst = [], 0.0
    for n in (48, 160):
        mask = _padding_mask(2, n, dev)
        for dtype in (torch.float64, torch.float32):
            for shared in _variants(cls):
                for causal in (False, True) if caps.causal else (False,):
                    for m in (None, mask) if caps.key_padding_mask else (None,):
                        grad = dtype == torch.float64 and not no_grad
                        outs = []
                        for opts in (options, base_options):
                            q, k, v = (t.requires_grad_(grad) for t in _inputs(
                                2, 2, n, 16, seed=10, dtype=dtype, device=dev))
                            out = _call(cls(**opts), q, k, v, shared, key_padding_mask=m,
                                        causal=causal)
                            grads: list[Tensor] = []
                            if grad:
                                out.pow(2).sum().backward()
                                grads = [t.grad for t in (q, k, v) if t.grad is not None]
                            outs.append((out.detach(), grads))
                        (mine, g_mine), (ref, g_ref) = outs
                        err = _maxdiff(mine, ref)
                        for a, b in zip(g_mine, g_ref, strict=False):
                            err = max(err, _maxdiff(a, b) / max(1.0, float(b.abs().max())))
                        worst = max(worst, err)
                        if err > _BACKEND_TOL[dtype] or math.isnan(err):
                            problems.append(
                                f"differs by {err:.3g} (N={n}, {str(dtype)[6:]}, causal={causal},"
                                f" padded={m is not None}{', q as k' if shared else ''})")
    grads_note = f"outputs only, no backward here: {no_grad}" if no_grad else \
        "outputs and float64 gradients"
    against = ", ".join(f"{k}={defaults[k]!r}" for k in chosen)
    return _result("backend", claim, problems[:4],
                   f"max difference {worst:.3g} from {against}"
                   f" ({grads_note}; float64 and float32, causal and padded, N=48 and 160)", dev)


def _exponent_verdict(check: str, claim_text: str, claimed: float, lengths: list[int],
                      values: list[float], unit: str, cfg: CheckConfig, dev: str) -> Verdict:
    claim = f"{claim_text} (exponent <= {claimed:g} + {cfg.exponent_tolerance:g})"
    if len(lengths) < 3:
        return Verdict(check, claim, "skip", f"needs >= 3 lengths that ran, got {len(lengths)}",
                       device=dev)
    exponent, ci = exponent_interval(lengths, values, cfg.confidence)
    assert ci is not None
    pct = round(100 * cfg.confidence)
    evidence = (f"fitted exponent {exponent:.2f}, {pct}% t-interval [{ci[0]:.2f}, {ci[1]:.2f}]"
                f" over N={lengths[0]}..{lengths[-1]} ({unit})")
    status: Status = "fail" if ci[0] > claimed + cfg.exponent_tolerance else "pass"
    if status == "fail":
        evidence = "exceeds the claim: " + evidence
    return Verdict(check, claim, status, evidence, value=exponent, ci=ci, device=dev)


def _time(cls: type[Attention], options: dict[str, Any], cfg: CheckConfig, dev: str) -> Verdict:
    """Forward time per length: lengths interleaved round by round, one torch thread, the
    least disturbed (minimum) call per length."""
    attn = cls(**options).to(dev)
    shared = cls.capabilities.shared_qk
    inputs = {n: _inputs(cfg.batch, cfg.heads, n, cfg.head_dim, dtype=torch.float32, device=dev)
              for n in cfg.seq_lens}
    best = dict.fromkeys(cfg.seq_lens, math.inf)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.no_grad():
            for q, k, v in inputs.values():
                _call(attn, q, k, v, shared)  # warm-up
            for _ in range(cfg.repeats):
                for n, (q, k, v) in inputs.items():
                    if dev.startswith("cuda"):
                        torch.cuda.synchronize(dev)
                    start = time.perf_counter()
                    _call(attn, q, k, v, shared)
                    if dev.startswith("cuda"):
                        torch.cuda.synchronize(dev)
                    best[n] = min(best[n], time.perf_counter() - start)
    finally:
        torch.set_num_threads(threads)
    return _exponent_verdict("time_complexity", cls.capabilities.time_complexity,
                             cls.capabilities.time_exponent, list(best), list(best.values()),
                             f"forward, 1 thread, min of {cfg.repeats} calls", cfg, dev)


def _memory(name: str, cls: type[Attention], options: dict[str, Any], cfg: CheckConfig,
            dev: str) -> Verdict:
    from harness.measure.memory import cuda_peak_memory, measure_cpu_peak
    from harness.suites.memory import memory_work

    complexity, claimed = cls(**options).claimed_memory
    lengths, peaks, failed = [], [], []
    for n in cfg.memory_seq_lens:
        kwargs = {"name": name, "options": options, "seq_len": n, "batch": cfg.batch,
                  "heads": cfg.heads, "head_dim": cfg.head_dim, "mode": "forward",
                  "device": dev}
        if dev.startswith("cuda"):
            peak: float | None = cuda_peak_memory(memory_work(**kwargs), dev)
        else:
            result = measure_cpu_peak("harness.suites.memory:memory_work", kwargs,
                                      timeout_s=min(cfg.memory_timeout_s, cfg.timeout_s),
                                      launcher="forkserver")
            peak = result.peak_bytes if result.status == "ok" else None
            if peak is None:
                failed.append(f"N={n}: {result.status} {result.error or ''}".strip())
        if peak:
            lengths.append(n)
            peaks.append(float(peak))
    verdict = _exponent_verdict("memory_complexity", complexity, claimed, lengths, peaks,
                                "peak bytes, forward", cfg, dev)
    if failed and verdict.status == "skip":
        return Verdict(verdict.check, verdict.claim, "fail", "; ".join(failed), device=dev)
    return verdict


# ----------------------------------------------------------------------------- audit
def audit(
    name: str | type[Attention],
    options: dict[str, Any] | None = None,
    config: CheckConfig | None = None,
) -> list[Verdict]:
    """Check every claim of attention ``name`` (a registered name or an Attention subclass).

    ``ValueError`` for an unknown name, options or check. The memory check needs a registered
    name (it measures in a fresh process); for a bare class it is skipped.
    """
    cfg = config or CheckConfig()
    unknown = sorted(set(cfg.checks) - set(CHECKS))
    if unknown:
        raise ValueError(f"unknown check(s) {', '.join(unknown)}; choose from {', '.join(CHECKS)}")
    if not (math.isfinite(cfg.timeout_s) and cfg.timeout_s > 0):
        raise ValueError(f"timeout_s must be a number of seconds > 0, got {cfg.timeout_s}")
    cls = attention_class(name) if isinstance(name, str) else name
    options = dict(options or {})
    valid = attention_options(cls)
    unknown_opts = sorted(set(options) - set(valid))
    label = name if isinstance(name, str) else cls.__name__
    if unknown_opts:
        listed = ", ".join(f"{k}={v!r}" for k, v in valid.items()) or "(none)"
        raise ValueError(f"unknown option(s) {', '.join(unknown_opts)} for attention"
                         f" {label!r}; valid options: {listed}")
    try:
        cls(**options)  # bad options fail here, before anything is measured
    except ValueError:
        raise
    except Exception as err:  # e.g. a backend this machine lacks
        raise ValueError(f"attention {label!r} cannot be built with options {options}:"
                         f" {type(err).__name__}: {err}") from None
    for dev in cfg.devices:
        problem = cls.device_support(dev, options)
        if problem:
            raise ValueError(f"{problem} (harness check --device names the device)")
    behaviour: dict[str, Callable[..., Verdict]] = {
        "exactness": _exactness, "causality": _causality, "padding": _padding,
        "independence": _independence, "determinism": _determinism, "dtypes": _dtypes,
        "bad_inputs": _bad_inputs, "backend": _backend,
    }
    verdicts: list[Verdict] = []
    for dev in cfg.devices:
        for check in cfg.checks:
            if check in behaviour:
                verdicts.append(_guard(check, check, dev, lambda c=check, d=dev: behaviour[c](
                    cls, options, d), cfg.timeout_s))
    dev = cfg.devices[-1]  # complexity once, on the last (fastest) device
    if "time_complexity" in cfg.checks:
        verdicts.append(_guard("time_complexity", cls.capabilities.time_complexity, dev,
                               lambda: _time(cls, options, cfg, dev), cfg.timeout_s))
    if "memory_complexity" in cfg.checks:
        if isinstance(name, str):
            verdicts.append(_guard("memory_complexity", cls.capabilities.memory_complexity, dev,
                                   lambda: _memory(name, cls, options, cfg, dev),
                                   cfg.timeout_s))
        else:
            verdicts.append(Verdict("memory_complexity", cls.capabilities.memory_complexity,
                                    "skip", "measured in a fresh process: register the class",
                                    device=dev))
    return verdicts


def check_records(name: str, options: dict[str, Any], verdicts: Sequence[Verdict]) -> list[Record]:
    """One ``claim_holds`` record per verdict (1 holds, 0 violated; info and skip as skipped),
    plus the fitted exponents with their t-intervals."""
    from harness.attention import attention_options

    resolved = {**attention_options(attention_class(name)), **options}
    out = []
    for v in verdicts:
        params = {"check": v.check, "device": v.device}
        status = "ok" if v.status in ("pass", "fail") else "skipped"
        out.append(Record(suite="check", attention=name, options=resolved, params=params,
                          metric="claim_holds", value=float(v.status == "pass")
                          if status == "ok" else None, unit="bool", higher_is_better=True,
                          n=1, status=status, error=None if v.status == "pass" else v.evidence,
                          label=name))
        if v.value is not None and v.ci is not None:
            out.append(Record(suite="check", attention=name, options=resolved, params=params,
                              metric="fitted_exponent", value=v.value, unit="exponent",
                              higher_is_better=False, ci_low=v.ci[0], ci_high=v.ci[1],
                              interval="ci95", label=name))
    return out


def write_check_run(run_dir: str | Path, name: str, options: dict[str, Any],
                    verdicts: Sequence[Verdict], argv: Sequence[str] = ()) -> Path:
    """Write the verdicts as a run directory (run.json + results.jsonl) that ``harness report``
    and ``harness compare`` read like any suite's."""
    from harness.attention import loaded_plugins
    from harness.measure.env import capture_environment
    from harness.records import Cell
    from harness.run.store import ResultsStore

    run_dir = Path(run_dir)
    now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    cls = attention_class(name)
    meta = {
        "run_id": run_dir.name, "status": "finished", "start_time": now, "end_time": now,
        "command": list(argv), "suites": ["check"],
        "attentions": [{"label": name, "name": name, "options": dict(options),
                        "capabilities": cls.capabilities.as_dict()}],
        "plugins": [p.as_dict() for p in loaded_plugins()],
        "device": verdicts[-1].device if verdicts else "cpu",
        "environment": capture_environment(verdicts[-1].device if verdicts else "cpu"),
        "seeds": [0], "n_cells": 1, "resumed": [],
    }
    store = ResultsStore.create(run_dir, meta)
    records = check_records(name, options, verdicts)
    store.write_cell(Cell("check", name, records[0].options if records else {}, {}), records)
    exit_status = exit_code(verdicts)
    store.update_meta(counts={"ok": len(records)}, exit_code=exit_status)
    return run_dir
