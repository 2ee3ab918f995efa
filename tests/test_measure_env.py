"""Environment capture and device resolution."""

import json
import os
import shutil
import subprocess
from importlib import metadata

import pytest
import torch

import harness
from harness.measure import env as env_mod
from harness.measure.env import available_devices, capture_environment, git_info, resolve_device


def test_capture_environment_cpu_fields():
    info = capture_environment("cpu")
    assert info["harness_version"] == harness.__version__
    assert info["packages"]["torch"] == metadata.version("torch")
    assert info["packages"]["torch"].split("+")[0] == torch.__version__.split("+")[0]
    assert set(env_mod.PACKAGES) <= set(info["packages"])
    assert info["cpu_count"] == os.cpu_count()
    assert info["torch_threads"] == torch.get_num_threads()
    assert info["device"] == "cpu"
    assert info["device_name"] == info["cpu_model"]
    assert info["gpu_name"] is None and info["cuda_version"] is None
    assert isinstance(info["hostname"], str) and info["hostname"]
    assert info["git_dirty"] in (True, False, None)
    json.dumps(info)  # must go straight into a results file


@pytest.mark.skipif(shutil.which("git") is None, reason="needs the git executable")
def test_git_info_reports_sha_and_dirty_flag(tmp_path):
    def git(*args):
        return subprocess.run(
            [
                "git",
                "-C",
                str(tmp_path),
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@example.org",
                *args,
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()

    assert git_info(tmp_path) == {"git_sha": None, "git_dirty": None}  # not a checkout
    git("init", "-q")
    (tmp_path / "a.txt").write_text("one\n")
    git("add", "a.txt")
    git("commit", "-q", "-m", "first")
    sha = git("rev-parse", "HEAD")
    assert git_info(tmp_path) == {"git_sha": sha, "git_dirty": False}
    (tmp_path / "a.txt").write_text("two\n")
    assert git_info(tmp_path) == {"git_sha": sha, "git_dirty": True}


def test_resolve_device_without_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == "cpu"
    assert resolve_device("CPU") == "cpu"
    assert available_devices() == ["cpu"]
    with pytest.raises(ValueError, match="CUDA is not available"):
        resolve_device("cuda")
    with pytest.raises(ValueError, match="CUDA is not available"):
        capture_environment("cuda:0")


def test_resolve_device_with_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert resolve_device("auto") == "cuda"
    assert resolve_device("cuda:0") == "cuda:0"
    assert available_devices() == ["cpu", "cuda"]
    with pytest.raises(ValueError, match="does not exist"):
        resolve_device("cuda:3")


@pytest.mark.parametrize("bad", ["tpu", "cuda:x", "", 0])
def test_resolve_device_rejects_unknown_names(bad):
    with pytest.raises(ValueError, match="device"):
        resolve_device(bad)
