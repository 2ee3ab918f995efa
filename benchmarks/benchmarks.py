"""asv benchmarks: thin wrappers over the suites, parametrized from the profile (one source).

The lengths, attentions and suite parameters come from this checkout's ``suites/<profile>.yaml``
(``quick`` unless ``HARNESS_ASV_PROFILE`` names another), the same file ``harness run`` reads, so
the parameter lists stay the same for every commit asv measures; threads are pinned
(``HARNESS_ASV_THREADS``, set to 1 in asv.conf.json's matrix).

- ``time_*``: asv times the attention call itself (``setup`` builds inputs outside the timing).
- ``track_peak_bytes``: the memory suite's measurement, in a fresh process per cell, in bytes.
  asv's own ``peakmem_`` reports the benchmark process's lifetime peak (``import torch`` and the
  harness included), which hides the attention's share; the memory suite measures peak RSS above
  a baseline taken after imports and input allocation instead.
- ``track_error_rate`` (1 - macro-F1) and ``track_parity_gap``: asv reads larger values of a
  ``track_`` benchmark as worse, so both are error-type quantities (lower is better).
- Combinations that run out of memory (or time) or that an attention does not support raise
  ``NotImplementedError`` in ``setup``: asv records them as skipped, not failed (a failure
  would make ``asv continuous`` exit 2 before it compares anything). Only ``setup`` can skip:
  a ``NotImplementedError`` in a benchmark's body is a failure, so measurements that can run
  out of budget are made in ``setup``. A failing ``track_`` body is a broken benchmark.
"""

from __future__ import annotations

import ast
import os
import tempfile
from pathlib import Path

import torch
import yaml

from harness.suites import RunContext, get_suite
from harness.suites.base import AttentionSpec
from harness.suites.throughput import attention_inputs

_TREE = Path(__file__).resolve().parents[1]
_PROFILE_NAME = os.environ.get("HARNESS_ASV_PROFILE", "quick")
_PROFILE_FILE = _TREE / "suites" / f"{_PROFILE_NAME}.yaml"
# asv runs every commit with the parameter lists it discovered once, so they must not depend on
# the harness installed at the commit under test: they come from this checkout's profile (and,
# when the profile runs "every registered attention", from this checkout's registry source).
# Each commit then validates the profile sections it runs with its own code; what it cannot run
# (an attention it does not have, a suite it lacks) is skipped.
RAW = yaml.safe_load(_PROFILE_FILE.read_text(encoding="utf-8"))


def _registered_in_tree() -> list[str]:
    """Names registered by this checkout's harness/attention/*.py (``name = "..."`` of classes
    decorated with ``@register_attention``), read from the source, not from the installed copy."""
    names = []
    for path in sorted((_TREE / "harness" / "attention").glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef) and any(
                getattr(d, "id", None) == "register_attention" for d in node.decorator_list
            ):
                for stmt in node.body:
                    if (isinstance(stmt, ast.Assign) and getattr(stmt.targets[0], "id", "") ==
                            "name" and isinstance(stmt.value, ast.Constant)):
                        names.append(stmt.value.value)
    return sorted(names)


def _specs() -> dict[str, AttentionSpec]:
    entries = RAW.get("attentions")
    if entries is None:
        entries = [{"name": n} for n in _registered_in_tree()] + list(RAW.get("variants") or [])
    specs = [AttentionSpec(e["name"], dict(e.get("options") or {}), e.get("label") or "")
             if isinstance(e, dict) else AttentionSpec(str(e)) for e in entries]
    return {spec.label: spec for spec in specs}


SPECS = _specs()
# HARNESS_ASV_ATTENTIONS (comma-separated labels) narrows the profile's attentions, e.g. for the
# gate proof; it filters the profile's list and never adds to it.
if os.environ.get("HARNESS_ASV_ATTENTIONS"):
    _wanted = set(os.environ["HARNESS_ASV_ATTENTIONS"].split(","))
    SPECS = {label: spec for label, spec in SPECS.items() if label in _wanted}
LABELS = list(SPECS)
THREADS = int(os.environ.get("HARNESS_ASV_THREADS", RAW.get("threads") or 1))


def _raw_suite(name: str) -> dict:
    return dict((RAW.get("suites") or {}).get(name) or {})


def _context() -> RunContext:
    from harness.run.profiles import parse_bytes

    torch.set_num_threads(THREADS)
    return RunContext(device="cpu", threads=THREADS,
                      memory_budget=parse_bytes(RAW.get("memory_budget", "6GiB")),
                      seeds=tuple(RAW.get("seeds") or [0]),
                      run_dir=Path(tempfile.mkdtemp(prefix="asv-")))


def _suite(name: str):
    try:
        return get_suite(name)
    except ValueError as err:  # a suite this commit of the harness does not have
        raise NotImplementedError(str(err)) from None


def _suite_params(name: str):
    """The profile's section for ``name``, validated by the installed harness's own model."""
    if name not in (RAW.get("suites") or {}):
        raise NotImplementedError(f"profile {_PROFILE_NAME!r} has no {name} suite")
    try:
        return _suite(name).Params.model_validate(_raw_suite(name))
    except ValueError as err:  # this commit's harness reads the section differently
        raise NotImplementedError(f"{name} parameters unusable at this commit: {err}") from None


def _spec(label: str) -> AttentionSpec:
    from harness.attention import list_attentions

    spec = SPECS[label]
    if spec.name not in list_attentions():
        raise NotImplementedError(f"attention {spec.name!r} is not registered at this commit")
    return spec


def _first_ok(records, metric: str, *, skip: bool = True) -> float:
    """The first ok value of ``metric``; otherwise ``NotImplementedError`` (a skip, when raised
    in ``setup``) with ``skip``, else ``RuntimeError`` (a failure: a broken benchmark)."""
    for r in records:
        if r.metric == metric and r.status == "ok" and r.value is not None:
            return float(r.value)
    problems = "; ".join(f"{r.metric}: {r.status} {r.error}" for r in records if r.error)
    error = NotImplementedError if skip else RuntimeError
    raise error(f"no {metric} measured ({problems or 'nothing recorded'})")


class AttentionTime:
    """Forward and backward time of each attention per length (throughput suite's settings)."""

    params = (LABELS, list(_raw_suite("throughput").get("seq_lens") or []))
    param_names = ("attention", "seq_len")
    timeout = 600

    def setup(self, label: str, seq_len: int) -> None:
        params = _suite_params("throughput")
        _context()
        spec = _spec(label)
        # The quadratic eager reference is skipped where its N x N weights would not fit.
        if spec.capabilities.memory_exponent >= 2 and spec.options.get("backend") == "eager" and (
            params.heads * seq_len * seq_len * 4 * 3 > _context().memory_budget
        ):
            raise NotImplementedError("over the memory budget")
        self.attn = spec.build()
        self.q, self.k, self.v = attention_inputs(1, params.heads, seq_len, params.head_dim,
                                                  requires_grad=True)
        if spec.capabilities.shared_qk:
            self.k = self.q
        self.out = self.attn(self.q, self.k, self.v)
        self.grad = torch.randn_like(self.out)

    def time_forward(self, label: str, seq_len: int) -> None:
        with torch.no_grad():
            self.attn(self.q, self.k, self.v)

    def time_backward(self, label: str, seq_len: int) -> None:
        torch.autograd.grad(self.out, (self.q, self.v), self.grad, retain_graph=True)


class AttentionMemory:
    """Peak bytes above baseline per attention, length and mode, via the memory suite.

    The measurement runs in ``setup`` (a ``track_`` benchmark is not timed): a combination over
    the memory budget (``oom``) or over the time limit (``timeout``) raises
    ``NotImplementedError`` there, which asv records as skipped; ``track_peak_bytes`` returns
    the figure. Any other failure is a failure.
    """

    params = (LABELS, list(_raw_suite("memory").get("seq_lens") or []),
              list(_raw_suite("memory").get("modes") or ["forward", "fwd_bwd"]))
    param_names = ("attention", "seq_len", "mode")
    timeout = 600

    def setup(self, label: str, seq_len: int, mode: str) -> None:
        suite = _suite("memory")
        params = _suite_params("memory")
        shape = {"heads": params.heads, "head_dim": params.head_dim, "dtype": "float32"}
        cell = _spec(label).cell("memory", {"mode": mode, "seq_len": seq_len,
                                            "batch": params.batch, **shape})
        records = suite.run_cell(cell, params, _context())
        out_of_budget = [r for r in records if r.status in ("oom", "timeout")]
        if out_of_budget:
            r = out_of_budget[0]
            raise NotImplementedError(f"{label} N={seq_len} {mode}: {r.status} ({r.error})")
        self.peak = _first_ok(records, "peak_bytes", skip=False)

    def track_peak_bytes(self, label: str, seq_len: int, mode: str) -> float:
        return self.peak

    track_peak_bytes.unit = "bytes"


class AccuracyTrack:
    """1 - macro-F1 of the first quick accuracy task, standard attention, first seed."""

    timeout = 900

    def setup(self) -> None:
        self.suite = _suite("accuracy")
        self.params_ = _suite_params("accuracy")
        cells = self.suite.plan(self.params_, [_spec("standard")], [_context().seeds[0]])
        if not cells:
            raise NotImplementedError("the accuracy suite planned no cell")
        self.cell = cells[0]

    def track_error_rate(self) -> float:
        records = self.suite.run_cell(self.cell, self.params_, _context())
        return 1.0 - _first_ok(records, "macro_f1", skip=False)

    track_error_rate.unit = "1 - macro-F1"


class BiasTrack:
    """Demographic-parity difference of the controlled probe, standard attention, first seed."""

    timeout = 900

    def setup(self) -> None:
        self.suite = _suite("bias")
        self.params_ = _suite_params("bias")
        cells = self.suite.plan(self.params_, [_spec("standard")], [_context().seeds[0]])
        if not cells:
            raise NotImplementedError("the bias suite planned no cell")
        self.cell = cells[0]

    def track_parity_gap(self) -> float:
        records = self.suite.run_cell(self.cell, self.params_, _context())
        return _first_ok(records, "demographic_parity_difference", skip=False)

    track_parity_gap.unit = "difference"
