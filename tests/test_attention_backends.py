"""Backends as options: each computes its family default's outputs (float64 reference too),
refuses a device it cannot run on before anything runs, and ``harness check`` audits it."""

from __future__ import annotations

import pytest
import torch
from typer.testing import CliRunner

from harness.attention import attention_class, get_attention, reference_attention
from harness.check import CheckConfig, audit
from harness.cli import app

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.fixture(autouse=True)
def _eager_flex(monkeypatch):
    """FlexAttention's first compile on CPU takes tens of seconds: these tests run it eager
    (the same block mask and mask_mod; CUDA tests below compile)."""
    monkeypatch.setenv("HARNESS_FLEX_COMPILE", "0")


def _qkv(b=2, h=2, n=40, d=8, dtype=torch.float64, seed=0, device="cpu"):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(b, h, n, d, generator=g, dtype=torch.float64).to(device, dtype)
            for _ in range(3)]


def _mask(b, n, device="cpu"):
    mask = torch.ones(b, n, dtype=torch.bool, device=device)
    mask[-1, n - 9:] = False
    mask[0, 2:5] = False
    return mask


# ------------------------------------------------------------------------ standard
@pytest.mark.parametrize("kernel", ["flash", "math"])
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("padded", [False, True])
def test_standard_cpu_kernels_equal_float64_reference(kernel, causal, padded):
    q, k, v = _qkv()
    mask = _mask(2, 40) if padded else None
    out = get_attention("standard", sdpa_kernel=kernel)(q, k, v, key_padding_mask=mask,
                                                        causal=causal)
    ref = reference_attention(q, k, v, mask, causal)
    rows = (mask if padded else torch.ones(2, 40, dtype=torch.bool))[:, None, :, None]
    assert float((out - ref).abs().masked_fill(~rows, 0).max()) < 1e-10


@pytest.mark.parametrize("kernel", ["efficient", "cudnn"])
def test_standard_cuda_only_kernels_are_refused_on_cpu(kernel):
    attn = get_attention("standard", sdpa_kernel=kernel)
    with pytest.raises(ValueError, match="CUDA-only kernel"):
        attn(*_qkv())
    assert "CUDA-only" in attention_class("standard").device_support("cpu", {"sdpa_kernel": kernel})
    assert attention_class("standard").device_support("cuda", {"sdpa_kernel": kernel}) is None


def test_standard_refuses_a_kernel_for_the_eager_backend_and_unknown_kernels():
    with pytest.raises(ValueError, match="pins a kernel of the sdpa backend"):
        get_attention("standard", backend="eager", sdpa_kernel="flash")
    with pytest.raises(ValueError, match="sdpa_kernel must be one of"):
        get_attention("standard", sdpa_kernel="fastest")


# -------------------------------------------------------------------------- sparse
@pytest.mark.parametrize("n", [40, 130, 160])
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("padded", [False, True])
def test_sparse_flex_equals_gather(n, causal, padded):
    q, k, v = _qkv(b=3, n=n)
    mask = None
    if padded:
        mask = _mask(3, n)
        mask[1] = False
        mask[1, n - 3] = True  # most queries of row 1 see no real key: zeros on both sides
    flex = get_attention("sparse", block_size=16, backend="flex")
    gather = get_attention("sparse", block_size=16)
    out = flex(q, k, v, key_padding_mask=mask, causal=causal)
    ref = gather(q, k, v, key_padding_mask=mask, causal=causal)
    assert float((out - ref).abs().max()) < 1e-10
    assert "eager" in flex.kernel


def test_sparse_flex_block_mask_is_the_dense_pattern():
    attn = get_attention("sparse", block_size=16, backend="flex")
    for causal in (False, True):
        dense = attn.flex_block_mask(160, causal).to_dense()[0, 0].bool()
        blocks = attn.dense_mask(160, causal)[::16, ::16] | attn.dense_mask(160, causal)[
            15::16, ::16]  # a block is kept when any of its pairs is
        assert torch.equal(dense, blocks)


def test_sparse_flex_refuses_backward_on_cpu_and_unknown_backends():
    q, k, v = _qkv()
    q.requires_grad_(True)
    with pytest.raises(ValueError, match="no backward pass on CPU"):
        get_attention("sparse", block_size=16, backend="flex")(q, k, v)
    with torch.no_grad():  # inference is fine
        get_attention("sparse", block_size=16, backend="flex")(q, k, v)
    with pytest.raises(ValueError, match="backend must be one of"):
        get_attention("sparse", backend="triton")


# -------------------------------------------------------------------------- linear
def test_linear_fla_is_refused_on_cpu_with_the_fix():
    with pytest.raises(ValueError, match="CUDA only; on cpu use backend='torch'"):
        get_attention("linear", backend="fla")(*_qkv(dtype=torch.float32), causal=True)
    with pytest.raises(ValueError, match="backend must be one of"):
        get_attention("linear", backend="cuda")


# ------------------------------------------------------------------- harness check
def test_check_audits_sparse_flex_against_gather():
    cfg = CheckConfig(checks=("backend", "causality", "padding"))
    verdicts = {v.check: v for v in audit("sparse", {"backend": "flex"}, cfg)}
    assert verdicts["backend"].status == "pass", verdicts["backend"].evidence
    assert "backend='gather'" in verdicts["backend"].evidence
    assert verdicts["causality"].status == "pass" and "no backward" in \
        verdicts["causality"].evidence
    assert verdicts["padding"].status == "pass"


def test_backend_check_skips_the_default_and_fires_on_a_wrong_kernel():
    from harness.attention.sparse import BlockSparseAttention

    class Broken(BlockSparseAttention):
        """A flex backend that forgets the random blocks: a planted difference."""

        name = "sparse"

        def flex_kv_blocks(self, seq_len, causal, device):
            saved = self.random_blocks
            self.random_blocks = 0
            try:
                self._flex_layouts.clear()
                self._layouts.clear()
                return super().flex_kv_blocks(seq_len, causal, device)
            finally:
                self.random_blocks = saved
                self._layouts.clear()

    cfg = CheckConfig(checks=("backend",))
    default = audit("sparse", {}, cfg)[0]
    assert default.status == "skip"
    broken = audit(Broken, {"backend": "flex", "block_size": 16}, cfg)[0]
    assert broken.status == "fail" and "differs by" in broken.evidence
    fine = audit(BlockSparseAttention, {"backend": "flex", "block_size": 16}, cfg)[0]
    assert fine.status == "pass"


@pytest.mark.parametrize("args", [["standard", "-O", "sdpa_kernel=cudnn"],
                                  ["linear", "-O", "backend=fla"]])
def test_check_refuses_a_cuda_only_backend_on_cpu_with_exit_2(args):
    result = CliRunner().invoke(app, ["check", *args, "--device", "cpu"])
    assert result.exit_code == 2, result.output
    assert "cpu" in result.output and "Traceback" not in result.output


def test_check_sparse_flex_from_the_command_line():
    result = CliRunner().invoke(app, ["check", "sparse", "-O", "backend=flex", "--only",
                                      "exactness,backend,bad_inputs", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "every claim holds" in result.output


# ---------------------------------------------------------------------------- CUDA
@pytest.mark.cuda
@CUDA
@pytest.mark.parametrize("causal", [False, True])
def test_cuda_sparse_flex_compiled_equals_gather(monkeypatch, causal):
    monkeypatch.setenv("HARNESS_FLEX_COMPILE", "auto")
    q, k, v = _qkv(b=2, h=2, n=512, d=64, dtype=torch.float32, device="cuda")
    for t in (q, k, v):
        t.requires_grad_(True)
    flex = get_attention("sparse", backend="flex")
    gather = get_attention("sparse")
    out, ref = flex(q, k, v, causal=causal), gather(q, k, v, causal=causal)
    assert float((out - ref).abs().max()) < 1e-3
    grads = torch.autograd.grad(out.sum(), (q, k, v))
    refs = torch.autograd.grad(ref.sum(), (q, k, v))
    assert all(float((a - b).abs().max()) < 1e-2 for a, b in zip(grads, refs, strict=True))
    assert flex.kernel.endswith("compiled")


@pytest.mark.cuda
@CUDA
@pytest.mark.parametrize("kernel", ["flash", "efficient", "cudnn", "math"])
def test_cuda_sdpa_kernels_equal_auto(kernel):
    q, k, v = _qkv(n=256, d=64, dtype=torch.bfloat16, device="cuda")
    ref = get_attention("standard")(q, k, v, causal=True)
    try:
        out = get_attention("standard", sdpa_kernel=kernel)(q, k, v, causal=True)
    except ValueError as err:  # a kernel this GPU / build lacks: said clearly
        assert kernel in str(err)
        return
    assert float((out.float() - ref.float()).abs().max()) < 3e-2


@pytest.mark.cuda
@CUDA
def test_cuda_linear_fla_equals_torch_when_installed():
    pytest.importorskip("fla")
    q, k, v = _qkv(n=256, d=64, dtype=torch.float32, device="cuda")
    mask = _mask(2, 256, "cuda")
    out = get_attention("linear", backend="fla")(q, k, v, key_padding_mask=mask, causal=True)
    ref = get_attention("linear")(q, k, v, key_padding_mask=mask, causal=True)
    assert float((out - ref).abs().max()) < 1e-3


def test_a_default_kernel_choice_stays_out_of_the_record_identity():
    """Runs from before a backend option existed keep matching (compare keys on options)."""
    from harness.suites.base import AttentionSpec

    assert "backend" not in AttentionSpec("sparse", {}, "sparse").resolved_options
    assert "backend" not in AttentionSpec("sparse", {"backend": "gather"}, "s").resolved_options
    assert AttentionSpec("sparse", {"backend": "flex"}, "s").resolved_options["backend"] == "flex"
    standard = AttentionSpec("standard", {}, "standard").resolved_options
    assert standard == {"backend": "sdpa"}  # as before sdpa_kernel existed
    linear = AttentionSpec("linear", {}, "linear").resolved_options
    assert "backend" not in linear and linear["feature_map"] == "elu"


def test_float64_on_cpu_runs_flex_eagerly_without_switching_the_process(monkeypatch):
    """Compiled FlexAttention on CPU refuses float64: such calls go eager, and later float32
    calls still compile (the audit's float64 checks must not demote the timed kernel)."""
    from harness.attention import _flex

    monkeypatch.setenv("HARNESS_FLEX_COMPILE", "auto")
    calls = []

    def compiled(q, k, v, **kw):
        calls.append(q.dtype)
        return torch.zeros_like(q)

    monkeypatch.setattr(_flex, "_STATE", {"compiled": compiled})
    attn = get_attention("sparse", block_size=16, backend="flex")
    q, k, v = _qkv(n=48)
    ref = get_attention("sparse", block_size=16)(q, k, v)
    assert float((attn(q, k, v) - ref).abs().max()) < 1e-10  # float64: the eager path
    assert calls == [] and _flex.flex_mode() == "compiled"
    attn(q.float(), k.float(), v.float())
    assert calls == [torch.float32]  # float32: the compiled kernel
