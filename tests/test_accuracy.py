"""Accuracy suite: plan, cells through the suite API and the CLI, divergence, summary math."""

from __future__ import annotations

import copy
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from scipy import stats as sps
from sklearn.metrics import accuracy_score, f1_score
from typer.testing import CliRunner

from harness.cli import app
from harness.records import Record
from harness.run.profiles import ProfileError, profile_from_dict
from harness.suites import AttentionSpec, RunContext, get_suite
from harness.suites.accuracy import (
    BASELINE_LABEL,
    AccuracyParams,
    chance_macro_f1,
    paired_diff,
    score_predictions,
)
from harness.suites.base import DataOptions
from harness.suites.training import macro_f1_scores

REPO = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SST2 = DATA / "sst2"

RECALL = {"n_train": 64, "n_val": 24, "n_test": 40, "seq_len": 24, "n_pairs": 4, "n_queries": 2,
          "num_keys": 12, "num_values": 4}
TRAIN = {"steps": 6, "batch_size": 16, "eval_every": 3, "hidden_size": 16, "num_layers": 1,
         "num_heads": 2, "ffn_size": 32}


def tiny_profile(**accuracy) -> dict:
    params = {
        "tasks": [{"name": "recall", "params": RECALL,
                   "attention_options": {"sparse": {"block_size": 6}, "lsh": {"chunk_size": 4}}}],
        "text": None,
        "train": TRAIN,
        "n_boot": 50,
        **accuracy,
    }
    return copy.deepcopy({
        "name": "tiny-accuracy",
        "seeds": [0],
        "device": "cpu",
        "threads": 1,
        "attentions": [{"name": "standard"}, {"name": "sparse"}, {"name": "lsh"},
                       {"name": "linear", "options": {"feature_map": "favor"}}],
        "suites": {"accuracy": params},
    })


def run_cli(tmp_path: Path, profile: dict, *extra: str):
    path = tmp_path / "profile.yaml"
    path.write_text(yaml.safe_dump(profile))
    out = tmp_path / "runs"
    result = CliRunner().invoke(app, ["run", "accuracy", "--profile", str(path), "--out",
                                      str(out), "--no-progress", "--no-report", *extra])
    run_dir = out / (out / "latest").readlink() if (out / "latest").is_symlink() else None
    if run_dir is None:
        run_dir = out / (out / "latest").read_text().strip()
    records = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]
    return result, run_dir, records


def test_plan_applies_task_attention_options_and_params():
    suite = get_suite("accuracy")
    raw = tiny_profile()["suites"]["accuracy"]
    del raw["text"]  # the default text task, with its default attention options
    params = AccuracyParams.model_validate(raw)
    specs = [AttentionSpec("standard"), AttentionSpec("sparse"),
             AttentionSpec("sparse", {"block_size": 2}, "sparse[2]")]
    planned = suite.plan(params, specs, [0, 1])
    cells = [c for c in planned if "probe" not in c.params]
    # (recall + text) x (attentions + the no-attention baseline) x seeds
    assert len(cells) == 2 * (3 + 1) * 2
    base = [c for c in cells if c.label == BASELINE_LABEL]
    assert len(base) == 4 and all(c.params["ablation"] == "no_token_mixing" for c in base)
    without = AccuracyParams.model_validate({**raw, "baseline": False})
    assert not [c for c in suite.plan(without, specs, [0]) if c.label == BASELINE_LABEL]
    # one fidelity probe per task and softmax-approximating configuration, after the training
    # cells, depending on the first seed's training cells of its task (the reference among them)
    probes = planned[len(cells):]
    assert [(c.params["task"], c.label, c.params["probe"]) for c in probes] == [
        ("recall", "sparse", "fidelity"), ("recall", "sparse[2]", "fidelity"),
        ("text", "sparse", "fidelity"), ("text", "sparse[2]", "fidelity")]
    deps = suite.depends_on(probes[0], planned)
    assert [(c.label, c.params["task"], c.params["seed"]) for c in deps] == [
        ("standard", "recall", 0), ("sparse", "recall", 0), ("sparse[2]", "recall", 0),
        (BASELINE_LABEL, "recall", 0)]
    assert suite.depends_on(cells[0], planned) == []
    sparse = [c for c in cells if c.label == "sparse" and c.params["task"] == "recall"]
    assert sparse[0].options["block_size"] == 6  # the task's override
    explicit = [c for c in cells if c.label == "sparse[2]" and c.params["task"] == "recall"]
    assert explicit[0].options["block_size"] == 2  # the spec's own option wins
    text = [c for c in cells if c.params["task"] == "text" and c.label == "sparse"]
    assert text[0].options["block_size"] == 8  # the text task's default override
    assert {c.params["seed"] for c in cells} == {0, 1}
    assert len({c.id for c in cells}) == len(cells)
    other = AccuracyParams.model_validate(
        {**tiny_profile()["suites"]["accuracy"],
         "tasks": [{"name": "recall", "params": {**RECALL, "seq_len": 32}}]})
    assert suite.plan(other, specs[:1], [0])[0].id != cells[0].id


def test_bad_params_name_the_key():
    bad = tiny_profile()
    bad["suites"]["accuracy"]["tasks"][0]["params"]["bogus"] = 1
    with pytest.raises(ProfileError, match="bogus"):
        profile_from_dict(bad)
    bad = tiny_profile()
    bad["suites"]["accuracy"]["attention_options"] = {"sparse": {"chunk_size": 4}}
    with pytest.raises(ProfileError, match="chunk_size"):
        profile_from_dict(bad)
    bad = tiny_profile(text={"params": {"data_files": "train=x.tsv"}})
    with pytest.raises(ProfileError, match="command line"):
        profile_from_dict(bad)
    bad = tiny_profile(tasks=[{"name": "recall"}, {"name": "recall"}])
    with pytest.raises(ProfileError, match="unique"):
        profile_from_dict(bad)
    with pytest.raises(ProfileError, match="nosuch"):
        profile_from_dict(tiny_profile(tasks=[{"name": "nosuch"}]))


def test_cell_via_suite_api_scores_and_saves_predictions(tmp_path):
    suite = get_suite("accuracy")
    params = AccuracyParams.model_validate(tiny_profile()["suites"]["accuracy"])
    cell = suite.plan(params, [AttentionSpec("standard")], [0])[0]
    seen = []
    ctx = RunContext(run_dir=tmp_path, seeds=(0,), progress=lambda f, t: seen.append(f))
    records = {r.metric: r for r in suite.run_cell(cell, params, ctx)}
    assert set(records) == {"macro_f1", "accuracy", "val_macro_f1", "train_time_s", "n_params",
                            "best_step"}
    saved = json.loads((tmp_path / "artifacts" / f"{cell.id}.json").read_text())
    y, p = np.array(saved["labels"]), np.array(saved["predictions"])
    assert len(y) == RECALL["n_test"] == records["macro_f1"].n
    assert records["macro_f1"].value == pytest.approx(f1_score(y, p, average="macro"))
    assert records["accuracy"].value == pytest.approx(accuracy_score(y, p))
    for name in ("macro_f1", "accuracy"):
        r = records[name]
        assert r.interval == "ci95" and r.ci_low <= r.value <= r.ci_high and r.higher_is_better
    assert records["best_step"].value in (3, 6)
    assert (tmp_path / "artifacts" / f"{cell.id}.pt").is_file()  # reference checkpoint
    assert seen and max(seen) == 1.0


def test_text_cells_skip_without_data(tmp_path):
    suite = get_suite("accuracy")
    params = AccuracyParams.model_validate(tiny_profile(text={})["suites"]["accuracy"])
    cell = next(c for c in suite.plan(params, [AttentionSpec("standard")], [0])
                if c.params["task"] == "text")
    records = suite.run_cell(cell, params, RunContext(run_dir=tmp_path))
    assert [r.status for r in records] == ["skipped"]
    assert "--data-files" in records[0].error


def test_cli_end_to_end_with_summary_and_fidelity(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_EVALUATE_OFFLINE", "1")
    result, run_dir, records = run_cli(tmp_path, tiny_profile())
    assert result.exit_code == 0, result.output
    cells = [r for r in records if not r["cell"].startswith("summary")]
    assert {r["label"] for r in cells} == {"standard", "sparse", "lsh", "linear[favor]",
                                           BASELINE_LABEL}
    # per task (no seed): the summary's records and the fidelity probe cells' records
    by = {(r["label"], r["metric"]): r for r in records if "seed" not in r["params"]}
    probes = {r["cell"] for r in records if r["metric"] == "fidelity_rel_error"}
    assert len(probes) == 3 and not any(c.startswith("summary") for c in probes)
    # 6 training steps may not leave chance: then the comparisons say so instead of passing
    # for findings
    signal = by[("standard", "task_signal")]
    assert all(r["status"] == "ok" or (r["status"] == "skipped" and signal["value"] == 0.0
                                       and r["error"].startswith("no_signal"))
               for r in records)
    for label in ("standard", "sparse", "lsh", "linear[favor]"):
        assert by[(label, "macro_f1_mean")]["n"] == 1
        assert by[(label, "macro_f1_gain_vs_no_attention")]["n"] == RECALL["n_test"]
    assert by[(BASELINE_LABEL, "macro_f1_mean")]["n"] == 1
    assert (BASELINE_LABEL, "fidelity_rel_error") not in by
    assert by[("standard", "chance_macro_f1")]["ci_method"] == "bootstrap"
    for label in ("sparse", "lsh", "linear[favor]"):
        diff = by[(label, "macro_f1_diff_vs_reference")]
        assert diff["interval"] == "ci95" and diff["n"] == RECALL["n_test"]
        assert 0.0 < by[(label, "paired_p_value")]["value"] <= 1.0
        assert by[(label, "fidelity_rel_error")]["value"] >= 0.0
        assert 0.0 <= by[(label, "swap_macro_f1")]["value"] <= 1.0
    # 4 blocks of 6 tokens: window 3 + global 1 + random 2 cover every key: exact softmax
    assert by[("sparse", "fidelity_rel_error")]["value"] < 1e-5
    assert by[("lsh", "fidelity_rel_error")]["value"] > 1e-3
    f1 = {r["label"]: r["value"] for r in cells if r["metric"] == "macro_f1"}
    arts = {r["label"]: json.loads((run_dir / "artifacts" / f"{r['cell']}.json").read_text())
            for r in cells if r["metric"] == "macro_f1"}
    y = np.array(arts["standard"]["labels"])
    expected = f1_score(y, arts["lsh"]["predictions"], average="macro") - f1["standard"]
    assert by[("lsh", "macro_f1_diff_vs_reference")]["value"] == pytest.approx(expected)


def test_diverging_cell_is_an_error_record_and_the_run_goes_on(tmp_path):
    profile = tiny_profile()
    bad = {**profile["suites"]["accuracy"]["tasks"][0], "label": "recall-inf",
           "train": {**TRAIN, "lr": math.inf}}
    profile["suites"]["accuracy"]["tasks"].append(bad)
    profile["attentions"] = [{"name": "standard"}]
    result, _, records = run_cli(tmp_path, profile)
    assert result.exit_code == 1
    broken = [r for r in records if r["params"].get("task") == "recall-inf"]
    assert broken and all(r["status"] == "error" for r in broken)
    assert "diverged at step" in broken[0]["error"]
    fine = [r for r in records if r["params"].get("task") == "recall" and r["metric"] == "macro_f1"]
    assert fine and fine[0]["status"] == "ok"


@pytest.mark.skipif(not SST2.is_dir(), reason="shared SST-2 data not available")
def test_sst2_from_data_files(tmp_path):
    profile = tiny_profile(tasks=[], text={
        "label": "sst2",
        "params": {"tokenizer": "word", "vocab_size": 2000, "max_len": 32, "max_train": 200,
                   "max_eval": 64}})
    profile["attentions"] = [{"name": "standard"}]
    files = f"train={SST2 / 'train_full.tsv'},test={SST2 / 'dev.tsv'}"
    result, _, records = run_cli(tmp_path, profile, "--data-files", files)
    assert result.exit_code == 0, result.output
    f1 = next(r for r in records if r["metric"] == "macro_f1")
    assert f1["status"] == "ok" and f1["params"]["task"] == "sst2" and f1["n"] == 64


def test_metrics_load_offline(tmp_path):
    code = ("from harness.metrics import accuracy, macro_f1;"
            "print(round(macro_f1([0, 1, 1, 0], [0, 1, 0, 0]), 4),"
            " accuracy([0, 1, 1, 0], [0, 1, 0, 0]))")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_EVALUATE_OFFLINE": "1",
           "HF_DATASETS_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         cwd=tmp_path, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["0.7333", "0.75"]


# ------------------------------------------------------------------------------ summary math
def _fake_run(tmp_path: Path, systems: dict[str, list[np.ndarray]], y: np.ndarray,
              times: dict[str, list[float]]) -> list[Record]:
    """Records + artifacts of a run where each label has predictions for seeds 0, 1, 2."""
    art = tmp_path / "artifacts"
    art.mkdir(parents=True, exist_ok=True)
    records = []
    for label, preds in systems.items():
        name, options = {"standard": ("standard", {"backend": "sdpa"}),
                         "linear": ("linear", {"feature_map": "elu", "n_features": 256,
                                               "seed": 0})}[label]
        for seed, p in enumerate(preds):
            cell = f"{label}-{seed}"
            (art / f"{cell}.json").write_text(json.dumps({
                "labels": y.tolist(), "predictions": p.tolist(), "test_fingerprint": "same"}))
            common = {"suite": "accuracy", "attention": name, "options": options,
                      "params": {"task": "t", "seed": seed, "config": "c"}, "label": label,
                      "cell": cell}
            records += [
                Record(metric="macro_f1", value=f1_score(y, p, average="macro"), **common),
                Record(metric="accuracy", value=accuracy_score(y, p), **common),
                Record(metric="train_time_s", value=times[label][seed], **common),
                Record(metric="n_params", value=1000 if label == "standard" else 900, **common),
            ]
    return records


def test_summary_means_t_interval_and_paired_comparison(tmp_path):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 300)
    std = [np.where(rng.random(300) < 0.8, y, rng.integers(0, 3, 300)) for _ in range(3)]
    lin = [np.where(rng.random(300) < 0.5, y, rng.integers(0, 3, 300)) for _ in range(3)]
    times = {"standard": [1.0, 2.0, 3.0], "linear": [0.5, 0.5, 0.8]}
    records = _fake_run(tmp_path, {"standard": std, "linear": lin}, y, times)
    params = AccuracyParams.model_validate({"tasks": [], "text": None, "fidelity": False,
                                            "n_boot": 400})
    out = get_suite("accuracy").summarize(records, params, RunContext(run_dir=tmp_path))
    by = {(r.label, r.metric): r for r in out}
    f1s = [f1_score(y, p, average="macro") for p in lin]
    mean = by[("linear", "macro_f1_mean")]
    half = sps.t.ppf(0.975, 2) * np.std(f1s, ddof=1) / math.sqrt(3)
    assert mean.value == pytest.approx(np.mean(f1s)) and mean.n == 3
    assert mean.stderr == pytest.approx(np.std(f1s, ddof=1) / math.sqrt(3))
    assert (mean.ci_low, mean.ci_high) == pytest.approx((np.mean(f1s) - half, np.mean(f1s) + half))
    assert by[("standard", "train_time_s_mean")].value == pytest.approx(2.0)
    for label in ("standard", "linear"):  # every mean over seeds names its interval method
        for metric in ("macro_f1_mean", "accuracy_mean", "train_time_s_mean"):
            assert (by[(label, metric)].interval, by[(label, metric)].ci_method) == ("ci95", "t")
    assert by[("linear", "n_params_ratio_vs_reference")].value == pytest.approx(0.9)
    diff = by[("linear", "macro_f1_diff_vs_reference")]
    expected = np.mean([f1_score(y, a, average="macro") - f1_score(y, b, average="macro")
                        for a, b in zip(lin, std, strict=True)])
    assert diff.value == pytest.approx(expected) and diff.n == 300
    assert diff.ci_low < diff.value < diff.ci_high < 0  # clearly worse than standard
    assert by[("linear", "paired_p_value")].value < 0.01
    assert ("standard", "macro_f1_diff_vs_reference") not in by


def test_paired_diff_is_the_stats_layers_paired_bootstrap():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 400)
    a = np.where(rng.random(400) < 0.90, y, 1 - y)
    b = np.where(rng.random(400) < 0.70, y, 1 - y)
    res = paired_diff(y, [a], [b], n_boot=1000, seed=0)
    diff = res.difference
    assert diff.value == pytest.approx(macro_f1_scores(y, a) - macro_f1_scores(y, b))
    assert (diff.method, diff.n) == ("paired_bootstrap", 400)
    assert 0 < diff.ci_low < diff.value < diff.ci_high and res.p_value < 0.01
    same = paired_diff(y, [a, a], [a, a], n_boot=100)
    assert (same.difference.value, same.difference.ci_low, same.p_value) == (0.0, 0.0, 1.0)
    with pytest.raises(ValueError, match="same test examples"):
        paired_diff(y, [a[:10]], [b], n_boot=10)


def test_score_predictions_interval_covers_value():
    y = np.array([0, 1, 2] * 30)
    p = np.array([0, 1, 1] * 30)
    s = score_predictions(y, p, n_boot=200)
    f1 = s["macro_f1"]
    assert f1.value == pytest.approx(f1_score(y, p, average="macro"))
    assert f1.ci_low <= f1.value <= f1.ci_high and (f1.method, f1.n) == ("bootstrap", 90)
    assert score_predictions(y, p, n_boot=0)["accuracy"].ci_low is None


def test_chance_level_is_the_best_label_blind_guess():
    rng = np.random.default_rng(0)
    balanced = rng.integers(0, 10, 3000)
    guesses = [macro_f1_scores(balanced, rng.integers(0, 10, 3000)) for _ in range(30)]
    chance = chance_macro_f1(balanced, n_boot=100)
    assert chance.value == pytest.approx(np.mean(guesses), abs=0.01)  # uniform guess
    skewed = (rng.random(3000) < 0.9).astype(int)
    # majority class: F1 of the majority class over 2 classes
    assert chance_macro_f1(skewed, n_boot=0).value == pytest.approx(
        f1_score(skewed, np.ones_like(skewed), average="macro"), abs=0.01)


def test_no_signal_task_reports_comparisons_as_not_findings(tmp_path):
    """A reference at chance: its task is no_signal and every delta on it says so; a reference
    that learned: the same deltas are findings (the check fails on a broken input)."""
    rng = np.random.default_rng(3)
    y = rng.integers(0, 4, 400)
    params = AccuracyParams.model_validate({"tasks": [], "text": None, "fidelity": False,
                                            "n_boot": 200})
    for learned in (False, True):
        hit = 0.9 if learned else 0.0
        std = [np.where(rng.random(400) < hit, y, rng.integers(0, 4, 400)) for _ in range(2)]
        lin = [np.where(rng.random(400) < hit / 2, y, rng.integers(0, 4, 400)) for _ in range(2)]
        records = _fake_run(tmp_path, {"standard": std, "linear": lin}, y,
                            {"standard": [1.0, 1.0], "linear": [1.0, 1.0]})
        for r in records:
            if r.metric == "macro_f1":
                art = json.loads((tmp_path / "artifacts" / f"{r.cell}.json").read_text())
                est = score_predictions(np.array(art["labels"]), np.array(art["predictions"]),
                                        n_boot=200)["macro_f1"]
                r.ci_low, r.ci_high = est.ci_low, est.ci_high
        out = get_suite("accuracy").summarize(records, params, RunContext(run_dir=tmp_path))
        by = {(r.label, r.metric): r for r in out}
        signal = by[("standard", "task_signal")]
        assert signal.value == float(learned)
        assert by[("standard", "chance_macro_f1")].value == pytest.approx(0.25, abs=0.03)
        for metric in ("macro_f1_diff_vs_reference", "paired_p_value"):
            rec = by[("linear", metric)]
            if learned:
                assert rec.status == "ok" and signal.error is None
            else:
                assert rec.status == "skipped" and rec.error.startswith("no_signal")
                assert rec.value is not None  # kept, but not a finding


def test_run_context_data_reaches_the_text_task():
    from harness.suites.accuracy.cells import task_kwargs

    params = AccuracyParams.model_validate({"tasks": [], "text": {"params": {"max_len": 16}}})
    data = DataOptions(data_files={"train": str(SST2 / "train_full.tsv")}, label_column="label")
    kwargs = task_kwargs(params.text, params, RunContext(data=data))
    assert kwargs == {"max_len": 16, "data_files": {"train": str(SST2 / "train_full.tsv")},
                      "label_column": "label"}
