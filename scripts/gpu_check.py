"""One prepared check of the harness's CUDA path, in one output folder (docs/GPU.md).

Steps, each in its own process with its own time limit, so that a CUDA error in one cannot
poison the others:

1. ``preflight``: CUDA present (``--require-cuda``, on by default with ``--device cuda``: a
   missing GPU fails the check with exit 2 before anything runs), versions, imports.
2. ``tests``: the ``cuda``-marked tests of the whole suite and the attention contract and family
   tests, on this machine (junit XML + log). On a CUDA device a test skipped for want of CUDA
   fails the step.
3. ``suites``: ``harness run throughput memory`` on the device, lengths up to 16K, every
   registered attention and the quick profile's variants (``runs/<run-id>/results.jsonl``,
   ``index.html``).
4. ``bench``: ``scripts/gpu_bench.py``: the matmul peak per dtype; every backend of every
   family against its family's default kernel (outputs, gradients, then timed); the float32 /
   bfloat16 / float16 sweep of every attention and backend (forward, fwd+bwd, % of peak, peak
   memory, crossover, memory exponents), standard (sdpa) vs bare SDPA and vs eager, sparse and
   sparse[backend=flex] vs ``torch.compile(flex_attention)`` (``bench.jsonl``).
5. ``training`` (only when named in ``--steps``): ``harness run accuracy bias`` cut to 40 steps
   per model, a smoke of the training, evaluation and audit paths on the device.
6. ``summary.txt``: every table and every failure, also printed at the end.

Exit status: 0 every step passed; 1 a step failed or did not finish; 2 unusable setup (CUDA
asked for and missing, a package that cannot be imported).

    scripts/gpu_check.sh --device cuda --out /tmp/gpu_check --bundle "$OUT"
    scripts/gpu_check.sh --device cpu --tiny --out /tmp/gpu_dry     # the dry run
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import threading
import time
import traceback
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from scripts.gpu_summary import latest_run, write_summary  # noqa: E402

#: Modules every step needs: a failure to import one stops the check (exit 2).
REQUIRED_MODULES = ("torch", "pydantic", "yaml", "jinja2", "typer", "psutil", "scipy",
                    "transformers", "harness.suites", "harness.run.runner", "harness.report",
                    "harness.cli")
#: Modules the check does not run but the installed harness needs (accuracy and bias suites).
OTHER_MODULES = ("datasets", "evaluate", "fairlearn", "sklearn", "pandas", "pyarrow")
#: Distributions whose versions go into env.json and the summary.
VERSIONS = ("torch", "triton", "transformers", "pydantic", "pydantic-core", "annotated-types",
            "typing-inspection", "typing-extensions", "datasets", "evaluate", "fairlearn",
            "dill", "multiprocess", "xxhash", "narwhals", "fsspec", "huggingface-hub",
            "pyarrow", "pandas", "numpy", "scipy", "scikit-learn", "pytest")
TEST_FILES = ("tests/test_attention_contract.py", "tests/test_attention_sparse.py",
              "tests/test_attention_lsh.py", "tests/test_attention_linear.py",
              "tests/test_attention_backends.py", "tests/test_attention_flops.py",
              "tests/test_gpu_check.py")
#: Lengths of the device run (the issue: up to 16K) and of the CPU dry run.
FULL_LENGTHS = [1024, 2048, 4096, 8192, 16384]
TINY_LENGTHS = [128, 256]
#: Seconds each step may take on the device; the check as a whole stays under 8 minutes.
FULL_LIMITS = {"tests": 150, "suites": 150, "bench": 300, "training": 150}


class CheckError(Exception):
    """The setup cannot run the check (exit 2): names what is missing and how to fix it."""


@dataclass
class Step:
    name: str
    status: str = "not run"  # passed | failed | not run
    seconds: float = 0.0
    detail: list[str] = field(default_factory=list)


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def preflight(device: str, require_cuda: bool) -> tuple[dict[str, Any], list[str]]:
    """Environment facts and the problems found; CheckError when the check cannot run at all."""
    env: dict[str, Any] = {"python": sys.version.split()[0], "executable": sys.executable,
                           "device": device, "pythonpath": os.environ.get("PYTHONPATH", "")}
    env["versions"] = {name: _version(name) for name in VERSIONS}
    missing = []
    for name in REQUIRED_MODULES:
        try:
            importlib.import_module(name)
        except Exception as err:
            missing.append(f"{name}: {type(err).__name__}: {err}")
    if missing:
        raise CheckError(
            "cannot import what the check needs:\n  " + "\n  ".join(missing) + "\nbring the "
            "missing packages as wheels (scripts/gpu_wheels.sh, then gpu_check.sh --wheels .whl)")
    import torch

    env["torch_cuda_build"] = torch.version.cuda
    env["cuda_available"] = torch.cuda.is_available()
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            message = (f"--device {device}: torch.cuda.is_available() is False (torch "
                       f"{torch.__version__}, CUDA build {torch.version.cuda}); this machine "
                       "should have a GPU")
            if require_cuda:
                raise CheckError(message + "; nothing was run (pass --no-require-cuda to "
                                 "let the steps run and fail one by one)")
            return env, [message]
        props = torch.cuda.get_device_properties(torch.device(device))
        env.update(gpu_name=props.name, gpu_memory_bytes=int(props.total_memory),
                   capability=f"{props.major}.{props.minor}",
                   multiprocessors=props.multi_processor_count,
                   cudnn=torch.backends.cudnn.version())
    problems = []
    for name in OTHER_MODULES:
        try:
            importlib.import_module(name)
        except Exception as err:
            problems.append(f"import {name} failed ({type(err).__name__}: {err}); the accuracy "
                            "and bias suites need it")
    return env, problems


def _limit(name: str, tiny: bool, deadline: float) -> float:
    left = deadline - time.monotonic()
    if tiny:
        return max(1.0, left)
    return max(1.0, min(FULL_LIMITS[name], left))


def run_process(cmd: list[str], log: Path, timeout: float, env: dict[str, str]) -> int | None:
    """Run ``cmd`` from the repo root, output appended to ``log`` and echoed; None when it was
    killed at ``timeout`` seconds."""
    killed = threading.Event()
    with open(log, "a", encoding="utf-8") as fh:
        fh.write(f"$ {' '.join(cmd)}\n")
        fh.flush()
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                env=env, text=True, bufsize=1)

        def kill() -> None:
            killed.set()
            proc.kill()

        timer = threading.Timer(timeout, kill)
        timer.start()
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                fh.write(line)
                print("    " + line, end="", flush=True)
            code = proc.wait()
        finally:
            timer.cancel()
        if killed.is_set():
            fh.write(f"\n[killed after {timeout:.0f} s]\n")
            return None
        return code


def junit_problems(xml_path: Path, device: str) -> tuple[dict[str, int], list[str]]:
    """Counts of a pytest junit file and its problems: failures, errors, and (on CUDA) tests
    skipped because CUDA was missing."""
    if not xml_path.is_file():
        return {}, [f"{xml_path.name}: pytest wrote no report"]
    root = ET.parse(xml_path).getroot()
    counts = {"passed": 0, "failed": 0, "skipped": 0}
    problems = []
    for case in root.iter("testcase"):
        name = f"{case.get('classname')}::{case.get('name')}"
        bad = case.find("failure") if case.find("failure") is not None else case.find("error")
        skipped = case.find("skipped")
        if bad is not None:
            counts["failed"] += 1
            problems.append(f"FAILED {name}: {(bad.get('message') or '')[:300]}")
        elif skipped is not None:
            counts["skipped"] += 1
            reason = skipped.get("message") or ""
            if device.startswith("cuda") and "cuda" in reason.lower():
                problems.append(f"SKIPPED on a CUDA device: {name}: {reason}")
        else:
            counts["passed"] += 1
    return counts, problems


def run_tests(out: Path, device: str, tiny: bool, deadline: float, env: dict[str, str]
              ) -> list[str]:
    problems = []
    base = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs",
            "--continue-on-collection-errors"]
    # The dry run (tiny) keeps the contract file only: the family files are CPU tests there.
    files = [f for f in TEST_FILES if not tiny or ("sparse" not in f and "lsh" not in f
             and "linear" not in f)]
    runs = {"tests_cuda": ["-m", "cuda", "tests"], "tests_attention": files}
    for name, selection in runs.items():
        xml = out / f"{name}.xml"
        code = run_process([*base, f"--junitxml={xml}", *selection], out / "tests.log",
                           _limit("tests", tiny, deadline), env)
        counts, found = junit_problems(xml, device)
        problems += found
        print(f"  {name}: {counts}, exit {code}", flush=True)
        if code is None:
            problems.append(f"{name}: pytest did not finish in time")
        elif code not in (0, 5) and not found:
            problems.append(f"{name}: pytest exited {code} (see tests.log)")
        if name == "tests_cuda" and device.startswith("cuda") and not counts.get("passed"):
            problems.append("no cuda-marked test ran on the CUDA device")
    return problems


def suites_profile(device: str, tiny: bool, memory_budget: str) -> dict[str, Any]:
    """The quick profile's attentions with device-sized throughput and memory sweeps."""
    from harness.run.profiles import load_profile

    data = load_profile("quick").to_dict()
    data.pop("source", None)
    lengths = TINY_LENGTHS if tiny else FULL_LENGTHS
    model = ({"seq_lens": [64], "batch": 2, "hidden_size": 32, "num_layers": 1, "num_heads": 2}
             if tiny else {"seq_lens": [512, 2048], "batch": 8, "hidden_size": 128,
                           "num_layers": 2, "num_heads": 4})
    data.update(name="gpu-check", description="scripts/gpu_check.py device sweep",
                device=device, memory_budget=memory_budget, threads=None)
    data["suites"] = {
        "throughput": {"seq_lens": lengths, "batch_sizes": [1], "heads": 4, "head_dim": 64,
                       "passes": ["forward", "backward", "fwd_bwd"],
                       "min_run_time": 0.01 if tiny else 0.05, "warmup": 1 if tiny else 2,
                       "model": model},
        "memory": {"seq_lens": lengths, "batch": 1, "heads": 4, "head_dim": 64,
                   "modes": ["forward", "fwd_bwd"]},
    }
    return data


def training_profile(device: str, memory_budget: str) -> dict[str, Any]:
    """The quick profile's accuracy (recall only) and bias suites, cut to a smoke of the CUDA
    training, evaluation and audit paths (40 steps per model)."""
    from harness.run.profiles import load_profile

    data = load_profile("quick").to_dict()
    data.pop("source", None)
    data.update(name="gpu-check-training", description="scripts/gpu_check.py training smoke",
                device=device, memory_budget=memory_budget, threads=None)
    accuracy, bias = data["suites"]["accuracy"], data["suites"]["bias"]
    accuracy["tasks"] = [t for t in accuracy["tasks"] if t["name"] == "recall"]
    accuracy["tasks"][0]["params"].update(n_train=500, n_val=100, n_test=200)
    for suite in (accuracy, bias):
        suite["train"].update(steps=40, eval_every=20)
        suite["n_boot"] = 100
        suite["threads"] = None
    bias["corpus"].update(n_train=500, n_val=100, n_test=300)
    data["suites"] = {"accuracy": accuracy, "bias": bias}
    return data


def run_training(out: Path, device: str, tiny: bool, deadline: float, env: dict[str, str],
                 memory_budget: str) -> list[str]:
    """``harness run accuracy bias`` on the device with the training smoke profile."""
    import yaml

    profile = out / "gpu_training.yaml"
    profile.write_text(yaml.safe_dump(training_profile(device, memory_budget), sort_keys=False),
                       encoding="utf-8")
    cmd = [sys.executable, "-m", "harness.cli", "run", "accuracy", "bias", "--profile",
           str(profile), "--device", device, "--out", str(out / "runs-training"),
           "--no-progress"]
    code = run_process(cmd, out / "training.log", _limit("training", tiny, deadline),
                       {**env, "HARNESS_TRACEBACK": "1"})
    if code is None:
        return ["harness run accuracy bias did not finish in time"]
    if code != 0:
        return [f"harness run accuracy bias exited {code} (see training.log)"]
    return []


def run_suites(out: Path, device: str, tiny: bool, deadline: float, env: dict[str, str],
               memory_budget: str) -> tuple[list[str], Path | None]:
    import yaml

    profile = out / "gpu_profile.yaml"
    profile.write_text(yaml.safe_dump(suites_profile(device, tiny, memory_budget),
                                      sort_keys=False), encoding="utf-8")
    runs = out / "runs"
    cmd = [sys.executable, "-m", "harness.cli", "run", "throughput", "memory", "--profile",
           str(profile), "--device", device, "--out", str(runs), "--no-progress"]
    code = run_process(cmd, out / "suites.log", _limit("suites", tiny, deadline),
                       {**env, "HARNESS_TRACEBACK": "1"})
    run_dir = latest_run(runs)
    problems = []
    if code is None:
        problems.append("harness run did not finish in time (its finished cells are kept)")
    elif code != 0:
        problems.append(f"harness run exited {code} (1: some cells errored; see suites.log)")
    if run_dir is None:
        problems.append("harness run wrote no run directory")
    elif not (run_dir / "index.html").is_file():
        problems.append(f"{run_dir.name}: no index.html")
    return problems, run_dir


def run_bench(out: Path, device: str, tiny: bool, deadline: float, env: dict[str, str],
              memory_budget: str) -> list[str]:
    limit = _limit("bench", tiny, deadline)
    cmd = [sys.executable, str(REPO / "scripts" / "gpu_bench.py"), "--device", device,
           "--out", str(out / "bench.jsonl"), "--memory-budget", memory_budget,
           "--time-budget", str(max(1.0, limit - 30))]
    if not device.startswith("cuda"):
        # FlexAttention's first compile on CPU takes tens of seconds per shape: the dry run
        # checks the path eagerly (same block mask and mask_mod).
        env = {**env, "HARNESS_FLEX_COMPILE": "0"}
    if tiny:
        cmd += ["--dtypes", "float32", "bfloat16", "--lengths", *map(str, TINY_LENGTHS),
                "--flex-dtypes", "float32", "--flex-lengths", "256", "--min-run-time", "0.01",
                "--warmup", "1", "--rounds", "2"]
    code = run_process(cmd, out / "bench.log", limit, env)
    if code is None:
        return ["gpu_bench did not finish in time (its finished sections are kept)"]
    if code != 0:
        return [f"gpu_bench exited {code}: some measurements failed (see bench.log)"]
    return []


def bundle(out: Path, dest: Path) -> list[Path]:
    """``summary.txt`` and one ``gpu_check.tar.gz`` of the whole folder into ``dest`` (few files:
    the device returns at most 8)."""
    dest.mkdir(parents=True, exist_ok=True)
    archive = dest / "gpu_check.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(out, arcname=out.name)
    copied = [archive]
    if (out / "summary.txt").is_file():
        copied.append(Path(shutil.copy(out / "summary.txt", dest / "summary.txt")))
    return copied


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda", help="cuda (the real check) or cpu (dry run)")
    p.add_argument("--out", type=Path, default=Path("reports/gpu-check"),
                   help="output folder (created; must not already hold a check)")
    p.add_argument("--require-cuda", action=argparse.BooleanOptionalAction, default=None,
                   help="fail (exit 2) when CUDA is missing; default: on with --device cuda")
    p.add_argument("--tiny", action="store_true", help="tiny sizes: the CPU dry run")
    p.add_argument("--steps", nargs="+", default=["tests", "suites", "bench"],
                   choices=["tests", "suites", "bench", "training"],
                   help="steps after the preflight; 'training' (accuracy + bias smoke on the "
                   "device) is not in the default run")
    p.add_argument("--memory-budget", default="48GiB", help="peak allowed per memory cell")
    p.add_argument("--time-budget", type=float, default=None,
                   help="seconds for all steps together (default 450, under 8 minutes; "
                   "3600 with --tiny, for a slow CPU)")
    p.add_argument("--bundle", type=Path, default=None,
                   help="also copy summary.txt and a .tar.gz of the folder here (e.g. $OUT)")
    args = p.parse_args(argv)
    if args.device != "cpu" and not (args.device == "cuda" or args.device.startswith("cuda:")):
        p.error(f"--device must be cpu, cuda or cuda:N, got {args.device!r}")
    if args.time_budget is None:
        args.time_budget = 3600.0 if args.tiny else 450.0
    if args.require_cuda is None:
        args.require_cuda = args.device.startswith("cuda")
    if args.out.exists() and any(args.out.iterdir()):
        p.error(f"--out {args.out} is not empty; name a new folder")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    deadline = started + args.time_budget
    out: Path = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    steps = [Step("preflight")]
    print(f"gpu_check: device {args.device}, out {out}, budget {args.time_budget:.0f} s",
          flush=True)
    try:
        info, problems = preflight(args.device, args.require_cuda)
    except CheckError as err:
        message = f"gpu_check: FAILED before running anything: {err}"
        print(message, file=sys.stderr, flush=True)
        (out / "summary.txt").write_text(message + "\n", encoding="utf-8")
        if args.bundle:
            bundle(out, args.bundle)
        return 2
    (out / "env.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    steps[0].status = "failed" if problems else "passed"
    steps[0].detail = problems
    run_dir = None
    for name in args.steps:
        step = Step(name)
        steps.append(step)
        if time.monotonic() > deadline:
            step.detail = ["not run: the time budget was spent"]
            continue
        t0 = time.monotonic()
        print(f"[{name}]", flush=True)
        try:
            if name == "tests":
                step.detail = run_tests(out, args.device, args.tiny, deadline, env)
            elif name == "suites":
                step.detail, run_dir = run_suites(out, args.device, args.tiny, deadline, env,
                                                  args.memory_budget)
            elif name == "bench":
                step.detail = run_bench(out, args.device, args.tiny, deadline, env,
                                        args.memory_budget)
            else:
                step.detail = run_training(out, args.device, args.tiny, deadline, env,
                                           args.memory_budget)
        except Exception as err:  # a broken step is reported; the others still run
            step.detail = [f"the step itself failed: {type(err).__name__}: {err}"]
            traceback.print_exc()
        step.seconds = time.monotonic() - t0
        step.status = "failed" if step.detail else "passed"
    text = write_summary(out, info, steps, run_dir, time.monotonic() - started)
    print(text, flush=True)
    if args.bundle:
        for path in bundle(out, args.bundle):
            print(f"bundled: {path}")
    return 0 if all(s.status == "passed" for s in steps) else 1


if __name__ == "__main__":
    raise SystemExit(main())
