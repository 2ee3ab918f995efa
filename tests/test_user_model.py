"""A user's transformers model in the suites (``harness run --model``), built offline.

End to end: all four suites on a tiny BERT folder (WordPiece tokenizer trained here), accuracy on
a tiny ViT folder with an image folder, the model as given with attentions swapped
(``--no-finetune``); bad input exits 2 before anything runs.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch

pytest.importorskip("transformers")
pytest.importorskip("tokenizers")

from typer.testing import CliRunner

from harness.cli import app
from harness.models.tiny import make_bert, make_vit
from harness.models.user import (
    UserModelError,
    adapt_task,
    describe_model,
    model_lengths,
    timing_steps,
)
from harness.suites.base import AttentionSpec

POSITIVE = ["good", "great", "fine", "lovely", "superb"]
NEGATIVE = ["bad", "awful", "poor", "dull", "weak"]
FILLER = ["the", "film", "was", "really", "quite", "a", "story", "and", "plot", "very"]

PROFILE = """
seeds: [0]
reference: standard
attentions:
  - {name: standard}
  - {name: sparse, options: {block_size: 4}}
suites:
  accuracy:
    tasks: []
    text: {params: {tokenizer: word, vocab_size: 200, max_len: 16, max_train: 200, max_eval: 80}}
    media: {params: {image_size: 16, max_train: 60, max_eval: 40}}
    train: {steps: 60, batch_size: 16, lr: 0.005, eval_every: 30, hidden_size: 32,
            num_layers: 1, num_heads: 2, ffn_size: 64, dropout: 0.0}
    baseline: false
    n_boot: 50
    threads: 1
  throughput:
    seq_lens: [8, 64]
    batch_sizes: [2]
    passes: [forward]
    min_run_time: 0.002
    min_rounds: 2
    warmup: 1
  memory:
    seq_lens: [8, 16]
    modes: [forward]
    timeout_s: 120
  bias:
    strengths: [0.8]
    corpus: {n_train: 120, n_val: 40, n_test: 60, bias_axis: gender, bias_group: female,
             mechanism: label_flip, tokenizer: word}
    train: {steps: 4, batch_size: 16, lr: 0.001, eval_every: 4, hidden_size: 32,
            num_layers: 1, num_heads: 2, ffn_size: 64}
    audit_axes: [gender]
    swaps: [gender]
    template_axes: [gender]
    n_boot: 20
    text: null
"""


def _sentences(n: int, seed: int, classes: int = 2) -> list[tuple[str, int]]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = i % classes
        cue = rng.choice(POSITIVE if label == 1 else NEGATIVE)
        words = [*rng.sample(FILLER, 4), cue, *rng.sample(FILLER, 2)]
        rows.append((" ".join(words), label))
    return rows


def _write_tsv(path: Path, rows: list[tuple[str, int]]) -> Path:
    path.write_text("sentence\tlabel\n" + "".join(f"{t}\t{y}\n" for t, y in rows))
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("user_model")
    train = _write_tsv(root / "train.tsv", _sentences(200, 0))
    test = _write_tsv(root / "test.tsv", _sentences(80, 1))
    three = _write_tsv(root / "three.tsv", _sentences(300, 2, classes=3))
    bert = make_bert(root / "bert", [t for t, _ in _sentences(200, 0)], vocab_size=120,
                     hidden_size=32, num_heads=2, num_layers=1, max_positions=32)
    profile = root / "tiny.yaml"
    profile.write_text(PROFILE)
    return {"root": root, "train": train, "test": test, "three": three, "bert": bert,
            "profile": profile}


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> dict[str, Path]:
    import numpy as np
    from PIL import Image

    root = tmp_path_factory.mktemp("user_images")
    rng = np.random.default_rng(0)
    for cls in ("left", "right"):
        folder = root / "images" / cls
        folder.mkdir(parents=True)
        for i in range(100):
            a = rng.integers(0, 60, (20, 20, 3)).astype(np.uint8)
            half = slice(0, 10) if cls == "left" else slice(10, 20)
            a[:, half] += 180
            Image.fromarray(a).save(folder / f"{i}.png")
    return {"images": root / "images", "vit": make_vit(root / "vit", image_size=16)}


def _run(args: list[str], out: Path) -> tuple[int, str, Path | None]:
    result = CliRunner().invoke(app, ["run", *args, "--out", str(out), "--executor", "serial",
                                      "--no-progress", "--no-report"])
    runs = sorted(p for p in out.glob("2*") if p.is_dir()) if out.is_dir() else []
    return result.exit_code, result.output, runs[-1] if runs else None


def _records(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_all_four_suites_on_a_tiny_bert_folder(files, tmp_path):
    code, output, run_dir = _run(
        ["--profile", str(files["profile"]), "--model", str(files["bert"]), "--data-files",
         f"train={files['train']},test={files['test']}"], tmp_path)
    assert code == 0, output
    meta = json.loads((run_dir / "run.json").read_text())
    model_id = meta["model"]["id"]
    assert meta["model"]["model_class"] == "BertForSequenceClassification"
    assert meta["model"]["random_init"] is False
    records = _records(run_dir)
    assert all(r["params"].get("model") == model_id for r in records)
    suites = {r["suite"] for r in records if r["status"] == "ok"}
    assert suites == {"accuracy", "throughput", "memory", "bias"}
    f1 = {r["label"]: r["value"] for r in records
          if r["metric"] == "macro_f1" and r["params"].get("task") == "text"}
    assert set(f1) == {"standard", "sparse[4]"} and f1["standard"] > 0.8  # it learned
    timed = [r for r in records if r["metric"] == "inference_tokens_per_s"]
    assert sorted({r["params"]["seq_len"] for r in timed}) == [8, 32]  # 64 capped at 32
    assert all("capped at 32" in r["params"]["length_note"] for r in timed)
    assert any(r["metric"] == "fidelity_rel_error" and r["status"] == "ok" for r in records)
    assert any(r["suite"] == "bias" and r["metric"] == "demographic_parity_difference"
               for r in records)
    from harness.report import write_report

    assert f"model <strong>{model_id}" in write_report(run_dir).read_text()


@pytest.mark.slow
def test_accuracy_on_a_tiny_vit_with_an_image_folder(files, images, tmp_path):
    code, output, run_dir = _run(
        ["accuracy", "--profile", str(files["profile"]), "--model", str(images["vit"]),
         "--data-dir", str(images["images"]), "--data-format", "imagefolder"], tmp_path)
    assert code == 0, output
    f1 = [r for r in _records(run_dir) if r["metric"] == "macro_f1"
          and r["params"].get("task") == "media"]
    assert {r["label"] for r in f1} == {"standard", "sparse[4]"}
    assert all(r["status"] == "ok" and r["params"]["model"].startswith("vit@") for r in f1)


def test_swap_without_retraining_evaluates_the_model_as_given(files, tmp_path):
    code, output, run_dir = _run(
        ["accuracy", "--profile", str(files["profile"]), "--model", str(files["bert"]),
         "--no-finetune", "--data-files", f"train={files['train']},test={files['test']}"],
        tmp_path)
    assert code == 0, output
    records = _records(run_dir)
    steps = [r for r in records if r["metric"] == "best_step" and r["params"].get("seed") == 0]
    assert steps and all(r["value"] == 0 for r in steps)  # nothing was trained
    assert json.loads((run_dir / "run.json").read_text())["model"]["finetune"] is False
    assert any(r["metric"] == "swap_macro_f1" and r["status"] == "ok" for r in records)


@pytest.mark.parametrize("case", ["not_a_model", "file", "mpnet", "modality", "head",
                                  "bias_on_images"])
def test_bad_input_exits_2_before_anything_runs(case, files, images, tmp_path):
    data = ["--data-files", f"train={files['train']},test={files['test']}"]
    args = {"not_a_model": ["--model", str(files["root"]), *data],
            "file": ["--model", str(files["train"]), *data],
            "modality": ["accuracy", "--model", str(images["vit"]), *data],
            "bias_on_images": ["bias", "--model", str(images["vit"])],
            "head": ["accuracy", "--model", str(files["bert"]), "--no-finetune",
                     "--data-files", f"train={files['three']},test={files['three']}"]}
    expect = {"not_a_model": "no config.json", "file": "not a model folder",
              "mpnet": "MPNetForSequenceClassification", "modality": "is a image model",
              "head": "head has 2 classes", "bias_on_images": "text classifiers only"}
    if case == "mpnet":
        from transformers import MPNetConfig, MPNetForSequenceClassification

        folder = tmp_path / "mpnet"
        MPNetForSequenceClassification(MPNetConfig(
            vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
            intermediate_size=32)).save_pretrained(folder)
        args["mpnet"] = ["--model", str(folder), *data]
    out = tmp_path / "out"
    code, output, run_dir = _run(["--profile", str(files["profile"]), *args[case]], out)
    assert code == 2, output
    assert expect[case] in " ".join(output.split()), output
    assert run_dir is None  # nothing ran, nothing written
    if case == "mpnet":
        assert "supported architectures: bert" in " ".join(output.split())


def test_describe_and_lengths(files, images):
    bert = describe_model(files["bert"])
    assert (bert.modality, bert.max_positions, bert.weights) == ("text", 32, True)
    assert model_lengths(bert, [8, 16]) == ([8, 16], None)
    kept, note = model_lengths(bert, [8, 64, 128])
    assert kept == [8, 32] and "capped at 32" in note
    vit = describe_model(images["vit"])
    assert vit.modality == "image" and model_lengths(vit, [8, 64])[0] == [17]
    with pytest.raises(UserModelError, match=r"no config\.json"):
        describe_model(files["root"])


def test_folder_without_weights_is_a_random_init(files, tmp_path):
    folder = make_bert(tmp_path / "cfg-only", [t for t, _ in _sentences(50, 0)], vocab_size=80,
                       hidden_size=16, num_heads=2, num_layers=1, max_positions=16,
                       weights=False)
    model = describe_model(folder)
    assert model.weights is False and model.as_dict()["random_init"] is True
    train, infer = timing_steps(model, AttentionSpec("linear"), 8, 2)
    train()
    assert infer().shape == (2, 2)


def test_adapt_task_refuses_tasks_without_texts_and_other_modalities(files, images):
    from harness.data import load_task
    from harness.data.base import TaskUnavailable

    bert = describe_model(files["bert"])
    recall = load_task("recall", n_train=20, n_val=10, n_test=10, seq_len=16, n_pairs=2,
                       n_queries=1, num_keys=8, num_values=4)
    with pytest.raises(TaskUnavailable, match="no texts"):
        adapt_task(recall, bert)
    digits = load_task("digits", n_val=20, n_test=20, size=8)
    with pytest.raises(TaskUnavailable, match="image inputs"):
        adapt_task(digits, bert)
    vit_task = adapt_task(digits, describe_model(images["vit"]))
    assert vit_task.train.pixel_values.shape[1:] == (3, 16, 16)
    assert torch.isfinite(vit_task.train.pixel_values).all()


def test_hub_name_offline_is_refused_fast(monkeypatch):
    import harness.data.text as text

    monkeypatch.setattr(text, "_hub_reachable", lambda timeout=3.0: False)
    with pytest.raises(UserModelError, match="hub is unreachable"):
        describe_model("no-such-org/no-such-model")
