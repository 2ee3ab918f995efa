"""FLOP counts on the attention contract, the measured peak, and the throughput suite's
``<pass>_flops_per_s`` / ``<pass>_peak_fraction`` records."""

from __future__ import annotations

import math

import pytest
import torch
from typer.testing import CliRunner

from harness.attention import attention_class, list_attentions
from harness.attention.base import pass_factor
from harness.cli import app

BUILT_IN = ("standard", "sparse", "lsh", "linear")


def test_standard_counts_flashattention_convention():
    cls = attention_class("standard")
    assert cls.flops(2, 4, 1024, 64) == 4 * 2 * 4 * 1024**2 * 64
    assert cls.flops(2, 4, 1024, 64, causal=True) == 2 * 2 * 4 * 1024**2 * 64
    assert cls.flops(1, 1, 256, 32, {}, "backward") == 2.5 * cls.flops(1, 1, 256, 32)
    assert cls.flops(1, 1, 256, 32, {}, "fwd_bwd") == 3.5 * cls.flops(1, 1, 256, 32)


def test_pass_factor_refuses_unknown_pass():
    with pytest.raises(ValueError, match="pass must be one of"):
        pass_factor("sideways")


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("n", [100, 1000])
def test_sparse_counts_exactly_the_visible_pairs(n, causal):
    cls = attention_class("sparse")
    attn = cls(block_size=16)
    pairs = int(attn.dense_mask(n, causal).sum())
    assert attn.visible_pairs(n, causal) == pairs
    assert cls.flops(1, 2, n, 8, {"block_size": 16}, causal=causal) == 4 * 2 * 8 * pairs


def test_sparse_with_one_block_counts_as_standard():
    n = 64
    dense = attention_class("standard").flops(1, 2, n, 8)
    assert attention_class("sparse").flops(1, 2, n, 8, {"block_size": n}) == dense


def test_lsh_counts_chunks_hashing_and_sorting():
    cls = attention_class("lsh")
    n, d = 4096, 64
    chunks = 4 * n * 128 * d
    hashing = 2 * n * d * (128 // 2)  # auto buckets: 2 * 4096 / 64
    sorting = n * math.log2(n)
    assert cls.flops(1, 1, n, d) == pytest.approx(chunks + hashing + sorting)
    assert cls.flops(1, 1, n, d, {}, "backward") == pytest.approx(2.5 * chunks)
    assert cls.flops(1, 1, n, d, {"n_hashes": 2}) == pytest.approx(2 * cls.flops(1, 1, n, d))
    # 16384 tokens: 512 buckets, hashed factorized (16 x 32): 8 + 16 projection columns
    big = 16384
    expected = 4 * big * 128 * d + 2 * big * d * (8 + 16) + big * math.log2(big)
    assert cls.flops(1, 1, big, d) == pytest.approx(expected)


def test_linear_grows_linearly_and_favor_counts_its_features():
    cls = attention_class("linear")
    assert cls.flops(1, 1, 2048, 64) == pytest.approx(2 * cls.flops(1, 1, 1024, 64))
    assert cls.flops(1, 1, 1024, 64, {"feature_map": "favor"}) > cls.flops(1, 1, 1024, 64)


@pytest.mark.parametrize("name", BUILT_IN)
def test_every_built_in_family_declares_a_count_and_formula(name):
    cls = attention_class(name)
    assert cls.flops_formula
    fwd = cls.flops(1, 2, 512, 16)
    assert fwd > 0 and cls.flops(1, 2, 512, 16, {}, "fwd_bwd") > fwd
    assert name in list_attentions()


def test_peak_is_measured_once_and_kept_in_the_environment():
    from harness.measure.env import capture_environment
    from harness.measure.timing import peak_flops

    first = peak_flops("cpu", "float32", threads=1)
    assert first > 1e8 and peak_flops("cpu", "float32", threads=1) == first  # cached
    env = capture_environment("cpu")
    assert env["peak_flops_per_s"]["float32"] > 1e8
    with pytest.raises(ValueError, match="dtype must be one of"):
        peak_flops("cpu", "int8")


def test_throughput_records_flop_rate_and_fraction_of_peak(tmp_path):
    from harness.run.profiles import profile_from_dict
    from harness.run.runner import start_run
    from harness.run.store import read_run

    data = {
        "name": "flops", "seeds": [0], "device": "cpu", "threads": 1,
        "memory_budget": "2GiB", "attentions": [{"name": "standard"}, {"name": "sparse",
                                                 "options": {"block_size": 16}, "label": "sparse"}],
        "suites": {"throughput": {"seq_lens": [64], "heads": 2, "head_dim": 8,
                                  "min_run_time": 0.01, "warmup": 0, "model": None,
                                  "passes": ["forward", "fwd_bwd"]}},
    }
    outcome = start_run(profile_from_dict(data), suites=["throughput"], out_dir=tmp_path,
                        argv=["t"])
    recs = {(r.label, r.metric): r for r in outcome.records}
    for label, name in (("standard", "standard"), ("sparse", "sparse")):
        cls = attention_class(name)
        opts = recs[(label, "forward_ms")].options
        for pass_ in ("forward", "fwd_bwd"):
            rate = recs[(label, f"{pass_}_flops_per_s")]
            ms = recs[(label, f"{pass_}_ms")]
            work = cls.flops(1, 2, 64, 8, opts, pass_)
            assert rate.value == pytest.approx(work / (ms.value / 1e3), rel=1e-3)
            frac = recs[(label, f"{pass_}_peak_fraction")]
            peak = frac.load["peak_flops_per_s"]
            assert frac.value == pytest.approx(rate.value / peak, rel=1e-3)
            assert 0 < frac.value < 1 and frac.unit == "fraction"
    assert recs[("sparse", "forward_ms")].load["kernel"].startswith("gathered blocks")
    meta = read_run(outcome.run_dir)
    assert meta["environment"]["peak_flops_per_s"]["float32"] > 0
    declared = {m["name"]: m for m in meta["suites_meta"]["throughput"]["metrics"]}
    assert declared["forward_peak_fraction"]["format"] == "percent"
    from harness.report import write_report

    html = write_report(outcome.run_dir).read_text(encoding="utf-8")
    assert "% of peak" in html
    shown = f"{recs[('sparse', 'forward_peak_fraction')].value * 100:.1f}%"
    assert shown in html and "GFLOP/s" in html


def test_a_family_without_a_count_writes_no_flop_records():
    from harness.attention import Attention

    assert Attention.flops(1, 1, 8, 4) is None
    assert torch is not None


def test_list_shows_each_familys_flop_formula():
    result = CliRunner().invoke(app, ["list"])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "FLOPs" in text and "4·B·H·N²·d forward" in text
    assert "visible" in text and "hashing" in text and "feature maps" in text
