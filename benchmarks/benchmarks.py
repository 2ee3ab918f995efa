"""asv benchmarks: thin wrappers over the suites, parametrized from the profile (one source).

The lengths, attentions and suite parameters come from ``suites/<profile>.yaml`` (``quick`` unless
``HARNESS_ASV_PROFILE`` names another), the same file ``harness run`` reads; threads are pinned
(``HARNESS_ASV_THREADS``, set to 1 in asv.conf.json's matrix).

- ``time_*``: asv times the attention call itself (``setup`` builds inputs outside the timing).
- ``track_peak_bytes``: the memory suite's measurement, in a fresh process per cell, in bytes.
  asv's own ``peakmem_`` reports the benchmark process's lifetime peak (``import torch`` and the
  harness included), which hides the attention's share; the memory suite measures peak RSS above
  a baseline taken after imports and input allocation instead.
- ``track_error_rate`` (1 - macro-F1) and ``track_parity_gap``: asv reads larger values of a
  ``track_`` benchmark as worse, so both are error-type quantities (lower is better).
- Combinations that run out of memory or that an attention does not support raise
  ``NotImplementedError`` in ``setup``: asv records them as skipped, not failed (a failure
  would make ``asv continuous`` exit 2 before it compares anything).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch

from harness.run.profiles import load_profile
from harness.suites import RunContext, get_suite
from harness.suites.throughput import attention_inputs

_PROFILE_NAME = os.environ.get("HARNESS_ASV_PROFILE", "quick")
# By name: the profile installed with the harness under test (harness.profiles), so each commit is
# measured with the sweep it defines.
PROFILE = load_profile(_PROFILE_NAME)
SPECS = {spec.label: spec for spec in PROFILE.attention_specs()}
# HARNESS_ASV_ATTENTIONS (comma-separated labels) narrows the profile's attentions, e.g. for the
# gate proof; it filters the profile's list and never adds to it.
if os.environ.get("HARNESS_ASV_ATTENTIONS"):
    _wanted = set(os.environ["HARNESS_ASV_ATTENTIONS"].split(","))
    SPECS = {label: spec for label, spec in SPECS.items() if label in _wanted}
LABELS = list(SPECS)
THREADS = int(os.environ.get("HARNESS_ASV_THREADS", PROFILE.threads or 1))


def _context() -> RunContext:
    torch.set_num_threads(THREADS)
    return RunContext(device="cpu", threads=THREADS, memory_budget=PROFILE.memory_budget,
                      seeds=tuple(PROFILE.seeds), run_dir=Path(tempfile.mkdtemp(prefix="asv-")))


def _suite_params(name: str):
    if name not in PROFILE.suites:
        raise NotImplementedError(f"profile {_PROFILE_NAME!r} has no {name} suite")
    return PROFILE.suites[name]


def _suite(name: str):
    try:
        return get_suite(name)
    except ValueError as err:  # a suite this commit of the harness does not have
        raise NotImplementedError(str(err)) from None


def _first_ok(records, metric: str) -> float:
    for r in records:
        if r.metric == metric and r.status == "ok" and r.value is not None:
            return float(r.value)
    problems = "; ".join(f"{r.metric}: {r.status} {r.error}" for r in records if r.error)
    raise NotImplementedError(f"no {metric} measured ({problems or 'nothing recorded'})")


class AttentionTime:
    """Forward and backward time of each attention per length (throughput suite's settings)."""

    params = (LABELS, list(_suite_params("throughput").seq_lens))
    param_names = ("attention", "seq_len")
    timeout = 600

    def setup(self, label: str, seq_len: int) -> None:
        params = _suite_params("throughput")
        _context()
        spec = SPECS[label]
        # The quadratic eager reference is skipped where its N x N weights would not fit.
        if spec.capabilities.memory_exponent >= 2 and spec.options.get("backend") == "eager" and (
            params.heads * seq_len * seq_len * 4 * 3 > PROFILE.memory_budget
        ):
            raise NotImplementedError("over the memory budget")
        self.attn = spec.build()
        self.q, self.k, self.v = attention_inputs(1, params.heads, seq_len, params.head_dim,
                                                  requires_grad=True)
        if spec.name == "lsh":
            self.k = self.q
        self.out = self.attn(self.q, self.k, self.v)
        self.grad = torch.randn_like(self.out)

    def time_forward(self, label: str, seq_len: int) -> None:
        with torch.no_grad():
            self.attn(self.q, self.k, self.v)

    def time_backward(self, label: str, seq_len: int) -> None:
        torch.autograd.grad(self.out, (self.q, self.v), self.grad, retain_graph=True)


class AttentionMemory:
    """Peak bytes above baseline per attention, length and mode, via the memory suite."""

    params = (LABELS, list(_suite_params("memory").seq_lens),
              list(_suite_params("memory").modes))
    param_names = ("attention", "seq_len", "mode")
    timeout = 600

    def setup(self, label: str, seq_len: int, mode: str) -> None:
        self.suite = _suite("memory")
        self.params_ = _suite_params("memory")
        self.cell = SPECS[label].cell("memory", {"mode": mode, "seq_len": seq_len,
                                                 "batch": self.params_.batch})

    def track_peak_bytes(self, label: str, seq_len: int, mode: str) -> float:
        records = self.suite.run_cell(self.cell, self.params_, _context())
        return _first_ok(records, "peak_bytes")

    track_peak_bytes.unit = "bytes"


class AccuracyTrack:
    """1 - macro-F1 of the first quick accuracy task, standard attention, first seed."""

    timeout = 900

    def setup(self) -> None:
        self.suite = _suite("accuracy")
        self.params_ = _suite_params("accuracy")
        cells = self.suite.plan(self.params_, [SPECS["standard"]], [PROFILE.seeds[0]])
        if not cells:
            raise NotImplementedError("the accuracy suite planned no cell")
        self.cell = cells[0]

    def track_error_rate(self) -> float:
        records = self.suite.run_cell(self.cell, self.params_, _context())
        return 1.0 - _first_ok(records, "macro_f1")

    track_error_rate.unit = "1 - macro-F1"


class BiasTrack:
    """Demographic-parity difference of the controlled probe, standard attention, first seed."""

    timeout = 900

    def setup(self) -> None:
        self.suite = _suite("bias")
        self.params_ = _suite_params("bias")
        cells = self.suite.plan(self.params_, [SPECS["standard"]], [PROFILE.seeds[0]])
        if not cells:
            raise NotImplementedError("the bias suite planned no cell")
        self.cell = cells[0]

    def track_parity_gap(self) -> float:
        records = self.suite.run_cell(self.cell, self.params_, _context())
        return _first_ok(records, "demographic_parity_difference")

    track_parity_gap.unit = "difference"
