"""The claims audit: every built-in passes; a deliberately broken attention fails each check."""

from __future__ import annotations

import sys
import time

import pytest
import torch
from typer.testing import CliRunner

from harness.attention import Capabilities, list_attentions, load_plugins
from harness.attention.standard import StandardAttention
from harness.check import CHECKS, CheckConfig, audit, exit_code, exponent_interval
from harness.cli import app

BEHAVIOUR = ("exactness", "causality", "padding", "independence", "determinism", "dtypes",
             "bad_inputs")
FAST_TIME = CheckConfig(checks=("time_complexity",), seq_lens=(64, 128, 256, 512), repeats=3)


def _by_check(verdicts):
    return {v.check: v for v in verdicts}


@pytest.mark.parametrize("name", ["standard", "sparse", "lsh", "linear"])
def test_builtins_pass_every_behaviour_check(name):
    assert name in list_attentions()
    verdicts = audit(name, config=CheckConfig(checks=BEHAVIOUR))
    failed = [(v.check, v.evidence) for v in verdicts if v.status == "fail"]
    assert not failed
    assert exit_code(verdicts) == 0
    assert {v.check for v in verdicts} == set(BEHAVIOUR)


# --------------------------------------------------------------------- broken attentions
class _Eager(StandardAttention):
    """Correct eager softmax; each broken variant below breaks one claim."""

    name = "broken"

    def __init__(self) -> None:
        super().__init__(backend="eager")


class NotExact(_Eager):
    def attend(self, q, k, v, key_padding_mask, causal):
        return super().attend(q, k, v, key_padding_mask, causal) + 1e-4


class LeaksLaterValues(_Eager):
    def attend(self, q, k, v, key_padding_mask, causal):
        return super().attend(q, k, v, key_padding_mask, False)  # ignores causal


class LeaksLaterKeys(_Eager):
    """Causal in values, but later *keys* rescale every output (the old LSH leak's shape)."""

    def attend(self, q, k, v, key_padding_mask, causal):
        out = super().attend(q, k, v, key_padding_mask, causal)
        return out * (1 + 1e-3 * torch.tanh(k[:, :, -1:].sum(dim=-1, keepdim=True)))


class IgnoresPadding(_Eager):
    def attend(self, q, k, v, key_padding_mask, causal):
        return super().attend(q, k, v, None, causal)


class NaNOnEmptyRows(_Eager):
    def attend(self, q, k, v, key_padding_mask, causal):
        scores = q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5
        if key_padding_mask is not None:
            scores = scores.masked_fill(~key_padding_mask[:, None, None, :], float("-inf"))
        if causal:
            n = q.shape[2]
            scores = scores.masked_fill(~torch.ones(n, n, dtype=torch.bool).tril(), -torch.inf)
        return torch.softmax(scores, dim=-1) @ v


class MixesSlices(_Eager):
    """Normalizes by a statistic of the whole batch (the lsh NaN-crossing bug's shape)."""

    def attend(self, q, k, v, key_padding_mask, causal):
        out = super().attend(q, k, v, key_padding_mask, causal)
        return out / (1 + 1e-3 * v.abs().amax())


class Unseeded(_Eager):
    def attend(self, q, k, v, key_padding_mask, causal):
        out = super().attend(q, k, v, key_padding_mask, causal)
        return out + 1e-6 * torch.randn_like(out)


class NoBfloat16(_Eager):
    def attend(self, q, k, v, key_padding_mask, causal):
        if q.dtype == torch.bfloat16:
            return super().attend(q.float(), k.float(), v.float(), key_padding_mask, causal)
        return super().attend(q, k, v, key_padding_mask, causal)


class AcceptsAnything(_Eager):
    def forward(self, q, k, v, key_padding_mask=None, causal=False):  # no validation
        try:
            return self.attend(q, k, v, None, causal)
        except Exception:
            return None


class _Sleeps(_Eager):
    """Deterministic cost: sleeps c * N**power (wall time dominates the tiny attention)."""

    power = 1.0
    scale = 1e-4
    capabilities = Capabilities(time_complexity="O(N)", time_exponent=1.0)

    def attend(self, q, k, v, key_padding_mask, causal):
        time.sleep(self.scale * (q.shape[2] / 64) ** self.power * 64)
        return super().attend(q, k, v, key_padding_mask, causal)


class LinearTime(_Sleeps):
    power = 1.0


class QuadraticTime(_Sleeps):
    power = 2.0


@pytest.mark.parametrize(("cls", "check", "evidence"), [
    (NotExact, "exactness", "max error 0.0001"),
    (LeaksLaterValues, "causality", "earlier outputs changed"),
    (LeaksLaterKeys, "causality", "gradient of earlier outputs reaches later k"),
    (IgnoresPadding, "padding", "real outputs changed"),
    (NaNOnEmptyRows, "padding", "all-padded row gives non-finite outputs"),
    (MixesSlices, "independence", "in v[1, 0] changed other slices"),
    (Unseeded, "determinism", "differs by"),
    (NoBfloat16, "dtypes", "bfloat16: returned torch.float32"),
    (AcceptsAnything, "bad_inputs", "3-D q: accepted"),
])
def test_a_broken_attention_fails_its_check(cls, check, evidence):
    verdicts = audit(cls, config=CheckConfig(checks=BEHAVIOUR))
    by = _by_check(verdicts)
    assert by[check].status == "fail", by[check]
    assert evidence in by[check].evidence
    assert exit_code(verdicts) == 1
    # The fault is named by its own check; the eager base passes everything else here.
    clean = _by_check(audit(_Eager, config=CheckConfig(checks=(check,))))
    assert clean[check].status == "pass"


def test_time_exponent_fires_on_a_planted_quadratic_and_not_on_a_linear_cost():
    linear = _by_check(audit(LinearTime, config=FAST_TIME))["time_complexity"]
    assert linear.status == "pass", linear
    quadratic = _by_check(audit(QuadraticTime, config=FAST_TIME))["time_complexity"]
    assert quadratic.status == "fail", quadratic
    assert quadratic.ci is not None and quadratic.ci[0] > 1.3
    assert "exceeds the claim" in quadratic.evidence


def test_builtins_time_claims_hold_on_a_small_sweep():
    for name in ("standard", "sparse", "lsh", "linear"):
        verdict = _by_check(audit(name, config=FAST_TIME))["time_complexity"]
        assert verdict.status == "pass", verdict


def test_independence_check_catches_the_old_lsh_nan_crossing(monkeypatch):
    """Without the bucket clamp (the old code), NaN projections give out-of-range bucket ids,
    the sort is no permutation and gathers read other (batch, head) slices."""
    from harness.attention import lsh

    monkeypatch.setattr(lsh, "_clamp_buckets_", lambda buckets, n_buckets: buckets)
    verdict = _by_check(audit("lsh", config=CheckConfig(checks=("independence",))))
    assert verdict["independence"].status == "fail", verdict
    monkeypatch.undo()
    verdict = _by_check(audit("lsh", config=CheckConfig(checks=("independence",))))
    assert verdict["independence"].status == "pass", verdict


def test_exponent_interval_is_a_t_interval():
    n = [64, 128, 256, 512]
    exponent, ci = exponent_interval(n, [x ** 2 * (1 + 0.05 * (-1) ** i) for i, x in
                                         enumerate(n)])
    assert abs(exponent - 2) < 0.1 and ci[0] < exponent < ci[1]
    assert exponent_interval(n[:2], [1.0, 2.0])[1] is None  # two points: no interval


MEMORY_HOG = '''
from harness.attention.standard import StandardAttention
from harness.attention import Capabilities, register_attention

@register_attention
class MemoryHog(StandardAttention):
    """Eager N x N scores, but claims O(N) memory; and off softmax by 1e-4 (claims exact)."""
    name = "memory_hog"
    capabilities = Capabilities(memory_complexity="O(N)", memory_exponent=1.0)

    def __init__(self):
        super().__init__(backend="eager")

    @property
    def claimed_memory(self):
        return self.capabilities.memory_complexity, self.capabilities.memory_exponent

    def attend(self, q, k, v, key_padding_mask, causal):
        return super().attend(q, k, v, key_padding_mask, causal) + 1e-4
'''


@pytest.fixture
def memory_hog(tmp_path):
    from harness.attention import base, plugins

    (tmp_path / "memory_hog_plugin.py").write_text(MEMORY_HOG)
    sys.path.insert(0, str(tmp_path))
    entries, loaded = dict(base._REGISTRY._entries), dict(plugins._LOADED)
    load_plugins(["memory_hog_plugin"])
    yield "memory_hog"
    base._REGISTRY._entries.clear()
    base._REGISTRY._entries.update(entries)
    plugins._LOADED.clear()
    plugins._LOADED.update(loaded)
    sys.path.remove(str(tmp_path))
    sys.modules.pop("memory_hog_plugin", None)


def test_memory_exponent_fires_on_a_planted_quadratic_and_not_on_a_linear_one(memory_hog):
    cfg = CheckConfig(checks=("memory_complexity",), memory_seq_lens=(512, 1024, 2048, 4096))
    hog = _by_check(audit(memory_hog, config=cfg))["memory_complexity"]
    assert hog.status == "fail", hog
    assert hog.value is not None and hog.value > 1.6
    fused = _by_check(audit("linear", config=cfg))["memory_complexity"]
    assert fused.status == "pass", fused


def test_cli_check_exit_codes(tmp_path):
    ok = CliRunner().invoke(app, ["check", "standard", "--only", "exactness,causality"])
    assert ok.exit_code == 0, ok.output
    assert "every claim holds" in ok.output
    assert CliRunner().invoke(app, ["check", "nope"]).exit_code == 2
    bad = CliRunner().invoke(app, ["check", "standard", "--only", "speed"])
    assert bad.exit_code == 2 and "unknown check" in bad.output
    assert CliRunner().invoke(app, ["check", "lsh", "-O", "chunk_size=0"]).exit_code == 2
    assert set(CHECKS) >= set(BEHAVIOUR)


def test_cli_check_exits_1_on_a_violated_claim(memory_hog):
    result = CliRunner().invoke(app, ["check", memory_hog, "--only", "exactness,causality"])
    assert result.exit_code == 1, result.output
    assert "violated (exactness)" in result.output
