"""Inputs shaped like real ones: the published EEC layout, CrowS-style wide pairs, multi-line
review TSVs, messy CSVs, mixed media folders with a corrupt file, and bad probe files."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from input_fixtures import (
    write_audio_folder,
    write_crows,
    write_eec,
    write_image_folder,
    write_messy_csv,
    write_review_tsv,
)
from probe_fixtures import probe_rows, write_probe_csv
from typer.testing import CliRunner

from harness.cli import app
from harness.data import load_task
from harness.data.folders import check_media_folder
from harness.data.probes import ProbeSetError, load_probe_set
from harness.data.text import check_text_data, read_split_files
from harness.records import Cell
from harness.suites.probes import ProbeSetParams, wide_pair_records

SST2 = Path("/work/shared/data/sst2")
TRAIN = {"steps": 30, "batch_size": 16, "lr": 2e-3, "eval_every": 30, "hidden_size": 16,
         "num_layers": 1, "num_heads": 2, "ffn_size": 32, "dropout": 0.0}
EEC_COMMAND = ["--probe-text-column", "Sentence", "--group-columns", "Gender,Race",
               "--pair-columns", "Template,Emotion word"]  # the README's, without a label


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def _bias_profile(tmp_path: Path) -> Path:
    profile = {
        "name": "tiny-inputs", "seeds": [0], "device": "cpu", "threads": 1,
        "attentions": [{"name": "standard"}, {"name": "linear"}],
        "suites": {"bias": {"strengths": [0.8], "corpus": {"n_train": 400, "n_val": 80,
                                                            "n_test": 120},
                            "train": TRAIN, "audit_axes": ["gender"], "swaps": [],
                            "template_axes": [], "n_boot": 30, "text": None},
                   "accuracy": {"tasks": [], "text": {"params": {"max_len": 64,
                                                                 "tokenizer": "word"}},
                                "media": {"params": {"image_size": 8, "max_frames": 20}},
                                "train": TRAIN, "n_boot": 20, "fidelity": False}},
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(profile))
    return path


def _run(tmp_path: Path, suite: str, *extra: str, attention: str | None = None):
    tmp_path.mkdir(parents=True, exist_ok=True)
    out = tmp_path / "runs"
    args = ["run", suite, "--profile", str(_bias_profile(tmp_path)), "--out", str(out),
            "--no-progress", "--executor", "serial",
            *(["--attention", attention] if attention else []), *extra]
    result = CliRunner().invoke(app, args)
    records, meta, html = [], {}, ""
    latest = out / "latest"
    if latest.exists():
        records = [json.loads(x) for x in (latest / "results.jsonl").read_text().splitlines()]
        meta = json.loads((latest / "run.json").read_text())
        html = (latest / "index.html").read_text() if (latest / "index.html").exists() else ""
    return result, out, records, meta, html


def _find(records, metric, **params):
    return [r for r in records if r["metric"] == metric
            and all(r["params"].get(k) == v for k, v in params.items())]


# ------------------------------------------------------------------------------- EEC layout
def test_eec_empty_pair_values_are_a_level_or_dropped(tmp_path):
    path = write_eec(tmp_path / "eec.csv")
    kw = {"files": [path], "text_column": "Sentence", "group_columns": ["Gender", "Race"],
          "pair_columns": ["Template", "Emotion word"]}
    probe = load_probe_set(**kw)
    assert len(probe) == 120 and sum(probe.pair_empty) == 24
    neutral = [k for k, e in zip(probe.keys, probe.pair_empty, strict=True) if e]
    assert all(k.endswith("\x1f(empty)") for k in neutral)  # they pair by template alone
    dropped = load_probe_set(**kw, empty="drop")
    assert sum(k is None for k in dropped.keys) == 24
    assert dropped.summary()["empty_pair_rows"] == 24


def test_eec_runs_with_the_readme_command_and_reports_neutral_pairs_apart(tmp_path):
    path = write_eec(tmp_path / "eec.csv")
    result, _, records, meta, html = _run(tmp_path, "bias", "--probe-files", str(path),
                                          *EEC_COMMAND)
    assert result.exit_code == 0, result.output
    assert meta["inputs"]["probe_set"]["empty_pair_rows"] == 24
    subsets = _find(records, "score_difference", column="Gender", comparison="female-male")
    kinds = {r["params"].get("pairs") for r in subsets if "template" not in r["params"]}
    assert kinds == {None, "complete", "empty Template, Emotion word"}
    for label in ("standard", "linear"):
        by = {r["params"].get("pairs"): r for r in subsets if r["label"] == label
              and "template" not in r["params"]}
        # 4 emotion words x 2 templates x 3 race levels; 2 neutral templates x 3 race levels
        assert by["complete"]["n"] == 24 and by["empty Template, Emotion word"]["n"] == 6
        assert by[None]["n"] == 30
    assert "Pairs with and without an empty pair value" in html


# ------------------------------------------------------------------------- wide-format pairs
def _wide_probe(tmp_path: Path):
    return load_probe_set(files=[write_crows(tmp_path / "crows.csv")], text_column="unused",
                          group_columns=["bias_type"], pair_text_columns=["sent_more",
                                                                          "sent_less"])


def test_wide_pairs_are_calibrated_on_a_null_and_fire_on_a_planted_gap(tmp_path):
    probe = _wide_probe(tmp_path)
    params = ProbeSetParams(files=["x.csv"], pair_text_columns=["sent_more", "sent_less"],
                            n_boot=50)
    cell = Cell("bias", "standard", {}, {"seed": 0})
    n = probe.rows
    gender = np.array([g == "gender" for g in probe.groups["bias_type"]])
    rng = np.random.default_rng(0)
    false_alarms, hits = 0, 0
    sims = 200
    for i in range(sims):
        base = rng.uniform(0.2, 0.8, n)
        null = np.concatenate([base + rng.normal(0, 0.05, n), base + rng.normal(0, 0.05, n)])
        planted = null.copy()
        planted[:n][gender] -= 0.03  # A (the named woman) scores lower on gender rows
        for score, kind in ((null, "null"), (planted, "planted")):
            recs = wide_pair_records(cell, {}, probe, score, params, seed=i)
            q = {(r.params["column"], r.params.get("group")): r.value for r in recs
                 if r.metric == "pair_difference_p_adjusted"}
            if kind == "null":
                false_alarms += min(q.values()) < 0.05
            else:
                hits += q[("bias_type", "gender")] < 0.05
    assert false_alarms / sims <= 0.08  # Holm over 3 subsets: family-wise <= 5% (+ noise)
    assert hits / sims >= 0.9
    recs = wide_pair_records(cell, {}, probe, planted, params, seed=0)
    higher = [r for r in recs if r.metric == "pair_a_higher_rate"]
    assert {(r.params["column"], r.params.get("group")) for r in higher} == {
        ("all", None), ("bias_type", "gender"), ("bias_type", "race-color")}
    diff = next(r for r in recs if r.metric == "pair_difference"
                and r.params.get("group") == "gender")
    assert diff.value == pytest.approx(float(np.mean(planted[:n][gender] - planted[n:][gender])))


def test_wide_pairs_end_to_end(tmp_path):
    path = write_crows(tmp_path / "crows.csv")
    result, _, records, meta, html = _run(
        tmp_path, "bias", "--probe-files", str(path), "--pair-text-columns",
        "sent_more,sent_less", "--group-columns", "bias_type")
    assert result.exit_code == 0, result.output
    assert meta["profile"]["suites"]["bias"]["probe_set"]["pair_text_columns"] == [
        "sent_more", "sent_less"]
    rows = _find(records, "probe_rows", probe="probe_set")
    assert {r["value"] for r in rows} == {160}
    for metric in ("pair_difference", "pair_difference_bootstrap", "pair_difference_p_value",
                   "pair_difference_p_adjusted", "pair_a_higher_rate"):
        found = _find(records, metric, comparison="sent_more-sent_less")
        assert {(r["label"], r["params"]["column"], r["params"].get("group")) for r in found} \
            == {(lb, c, g) for lb in ("standard", "linear") for c, g in (
                ("all", None), ("bias_type", "gender"), ("bias_type", "race-color"))}, metric
    shifts = _find(records, "pair_difference_shift_vs_reference")
    assert {r["label"] for r in shifts} == {"linear"} and len(shifts) == 3
    assert "Wide-format pairs" in html and "A higher" in html
    # a wide probe file: no pair columns or labels with it
    bad, out, *_ = _run(tmp_path / "bad", "bias", "--probe-files", str(path),
                        "--pair-text-columns", "sent_more,sent_less", "--pair-columns",
                        "bias_type")
    assert bad.exit_code == 2 and "wide-format" in bad.output and not out.exists()


# ---------------------------------------------------------------------- long multi-line TSV
def test_multiline_tsv_is_read_whole_with_lengths_and_truncation(tmp_path):
    path = write_review_tsv(tmp_path / "books.tsv", 40, "book")
    ds = read_split_files({"train": path})["train"]
    assert len(ds) == 40 and "\n" in ds[0]["sentence"] and "\t" in ds[0]["sentence"]
    assert ds[0]["sentence"].startswith('"')  # a quote inside the field stays verbatim
    test = write_review_tsv(tmp_path / "kitchen.tsv", 30, "kitchen", seed=1)
    task = load_task("text", data_files={"train": path, "test": test}, tokenizer="word",
                     max_len=64, cache_dir=str(tmp_path / "c"))
    assert task.info["rows_read"] == {"train": 40, "test": 30}
    frac = task.info["truncated_fraction"]
    assert frac["test"] == 1.0  # ~120-word reviews at max_len 64
    lengths = task.info["token_lengths"]["test"]
    assert lengths["median"] > 100 and lengths["p90"] >= lengths["median"]
    assert lengths["max"] >= lengths["p90"]
    whole = load_task("text", data_files={"train": path, "test": test}, tokenizer="word",
                      max_len=None, cache_dir=str(tmp_path / "c"))
    assert whole.info["truncated_fraction"]["test"] == 0.0
    # a file whose quoting is broken: read rows and records disagree, or the parser names why
    broken = tmp_path / "broken.tsv"
    broken.write_text('sentence\tlabel\n"an open quote\nlabel\t1\nnext\t0\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"broken\.tsv.*EOF inside string"):
        read_split_files({"train": broken})


def test_cross_domain_reviews_end_to_end_warn_on_truncation(tmp_path):
    train = write_review_tsv(tmp_path / "books.tsv", 220, "book", words=60)
    test = write_review_tsv(tmp_path / "kitchen.tsv", 40, "kitchen", seed=1, words=60)
    result, _, records, meta, html = _run(
        tmp_path, "accuracy", "--data-files", f"train={train},test={test}",
        attention="standard")
    assert result.exit_code == 0, result.output
    assert meta["inputs"]["text"]["rows_read"] == {"train": 220, "test": 40}
    read = {r["params"]["split"]: r["value"] for r in _find(records, "rows_read")}
    assert read == {"train": 220, "test": 40}
    cut = {r["params"]["split"]: r["value"] for r in _find(records, "truncated_fraction")}
    assert set(cut) == {"train", "validation", "test"} and cut["test"] > 0.9
    assert _find(records, "token_length_p90", split="test")[0]["value"] > 64
    assert "longer than max_len" in html


# ------------------------------------------------------------------------------ messy CSVs
def test_messy_csv_bom_crlf_spaced_columns_string_labels(tmp_path):
    train = write_messy_csv(tmp_path / "train.csv", 60)
    test = write_messy_csv(tmp_path / "test.csv", 30)
    task = load_task("text", data_files={"train": train, "test": test},
                     text_column="review text", label_column="Sentiment Label",
                     tokenizer="word", max_len=32, cache_dir=str(tmp_path / "c"))
    assert task.label_names == ["negative", "positive"]
    assert task.info["rows_read"] == {"train": 60, "test": 30}
    assert task.test.texts[0] == 'row 0: a broken film, "truly" broken\r\nsecond line'


def test_files_with_different_columns_exit_2_naming_both(tmp_path):
    train = write_messy_csv(tmp_path / "train.csv", 60)
    test = write_messy_csv(tmp_path / "test.csv", 30, text="text", label="label")
    result, out, *_ = _run(tmp_path, "accuracy", "--data-files", f"train={train},test={test}",
                           "--text-column", "review text", "--label-column", "Sentiment Label")
    assert result.exit_code == 2 and not out.exists()
    text = " ".join(result.output.split())
    assert "train: [review text, Sentiment Label]" in text and "test: [text, label]" in text
    assert "--text-column/--label-column" in text


def test_missing_text_column_names_the_flags(tmp_path):
    train = write_messy_csv(tmp_path / "train.csv", 60)
    with pytest.raises(ValueError, match="--text-column"):
        check_text_data(data_files={"train": train}, label_column="Sentiment Label")
    with pytest.raises(ValueError, match="--label-column"):
        check_text_data(data_files={"train": train}, text_column="review text")


@pytest.mark.skipif(not SST2.is_dir(), reason="shared SST-2 data is absent")
def test_sst2_dev_rows_read_equal_its_records():
    from harness.data.text import count_records

    path = SST2 / "dev.tsv"
    ds = read_split_files({"train": path})["train"]
    assert len(ds) == count_records(path, "tsv", 3) == 872  # csv.QUOTE_NONE


# ------------------------------------------------------------------------------ probe files
@pytest.mark.parametrize("name,content,message", [
    ("empty.csv", "", "is empty"),
    ("header.csv", "Sentence,Gender\n", "no rows"),
    ("cut.json", '[{"Sentence": "a", "Gender": "f"},\n {"Sentence": "b", "Gen',
     "invalid JSON at line 2 column"),
    ("cut.jsonl", '{"Sentence": "a", "Gender": "f"}\n{"Sentence": "b", "Gen',
     "invalid JSON at line 2 column"),
])
def test_bad_probe_files_say_why(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ProbeSetError, match=message) as err:
        load_probe_set(files=[path], text_column="Sentence", group_columns=["Gender"])
    assert name in str(err.value) and "DatasetGenerationError" not in str(err.value)


@pytest.mark.parametrize("value,message", [("NaN", "has no label"),
                                           ("maybe", "not a class of the trained model")])
def test_probe_labels_are_checked_before_anything_trains(tmp_path, value, message):
    rows = probe_rows()
    rows[5]["Label"] = value
    path = write_probe_csv(tmp_path / "probe.csv", rows)
    result, out, *_ = _run(tmp_path, "bias", "--probe-files", str(path), *EEC_COMMAND,
                           "--probe-label-column", "Label")
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split()) and not out.exists()


def test_a_long_probe_sentence_never_changes_the_trained_model(tmp_path):
    from harness.suites import AttentionSpec, RunContext, get_suite
    from harness.suites.bias import BiasParams

    rows = probe_rows()
    rows[0]["Sentence"] = " ".join(["word"] * 3000) + " sad"
    long = write_probe_csv(tmp_path / "long.csv", rows)
    short = write_probe_csv(tmp_path / "short.csv")
    suite = get_suite("bias")
    out = {}
    for name, path in (("long", long), ("short", short)):
        params = BiasParams.model_validate({
            "strengths": [0.8], "corpus": {"n_train": 300, "n_val": 60, "n_test": 100},
            "train": TRAIN, "audit_axes": ["gender"], "swaps": [], "template_axes": [],
            "n_boot": 20, "text": None, "save_predictions": False,
            "probe_set": {"files": [str(path)], "text_column": "Sentence",
                          "group_columns": ["Gender"]}})
        cell = suite.plan(params, [AttentionSpec("standard")], [0])[0]
        out[name] = suite.run_cell(cell, params, RunContext(threads=1))
    controlled = {n: [(r.metric, r.value) for r in recs if r.params.get("probe") == "controlled"
                      and r.metric != "train_time_s"] for n, recs in out.items()}
    assert controlled["long"] == controlled["short"]
    cut = [r for r in out["long"] if r.metric == "probe_truncated_fraction"]
    assert cut and cut[0].value == pytest.approx(1 / 288)


def test_probe_options_without_the_bias_suite_exit_2(tmp_path):
    path = write_probe_csv(tmp_path / "probe.csv")
    train = write_review_tsv(tmp_path / "books.tsv", 220, "book", words=20)
    result, out, *_ = _run(tmp_path, "accuracy", "--data-files", f"train={train}",
                           "--probe-files", str(path), "--group-columns", "Gender")
    assert result.exit_code == 2 and "bias" in result.output and not out.exists()


# ------------------------------------------------------------------------------ media folders
def test_mixed_image_folder_is_converted_and_the_corrupt_file_named(tmp_path):
    root = write_image_folder(tmp_path / "img")
    with pytest.raises(ValueError, match=r"broken\.png") as err:
        check_media_folder(root, "imagefolder")
    assert "--skip-bad-files" in str(err.value)
    found = check_media_folder(root, "imagefolder", skip_bad_files=True)
    assert [s["path"] for s in found["skipped_files"]] == [str(root / "train/dark/broken.png")]
    with pytest.raises(ValueError, match=r"broken\.png"):
        load_task("media", data_dir=str(root), data_format="imagefolder", image_size=8,
                  cache_dir=str(tmp_path / "c"))
    task = load_task("media", data_dir=str(root), data_format="imagefolder", image_size=8,
                     channels=3, skip_bad_files=True, cache_dir=str(tmp_path / "c"))
    assert len(task.skipped_files if hasattr(task, "skipped_files") else
               task.info["skipped_files"]) == 1
    assert {len(s) for s in task.splits.values()} == {20}
    for split in task.splits.values():
        light = split.labels == 1
        pixels = split.pixel_values
        assert pixels.shape[1:] == (3, 8, 8)
        # every mode and format (16-bit, palette, transparency) lands on its class's grey level
        assert float(pixels[light].min()) > 0.8 and float(pixels[~light].max()) < 0.2


def test_mixed_audio_folder_is_converted_and_the_corrupt_file_named(tmp_path):
    root = write_audio_folder(tmp_path / "snd")
    with pytest.raises(ValueError, match=r"broken\.wav"):
        check_media_folder(root, "audiofolder")
    task = load_task("media", data_dir=str(root), data_format="audiofolder", max_frames=20,
                     sample_rate=8000, skip_bad_files=True, cache_dir=str(tmp_path / "c"))
    assert [s["path"] for s in task.info["skipped_files"]] == [str(root / "train/low/broken.wav")]
    assert {len(s) for s in task.splits.values()} == {20}
    feats = task.train.input_features
    assert feats.shape[1:] == (20, 40) and bool(feats.isfinite().all())


@pytest.mark.parametrize("kind", ["image", "audio"])
def test_media_end_to_end_exit_2_then_skip_bad_files(tmp_path, kind):
    if kind == "image":
        root, fmt = write_image_folder(tmp_path / "media"), "imagefolder"
    else:
        root, fmt = write_audio_folder(tmp_path / "media"), "audiofolder"
    args = ["--data-dir", str(root), "--data-format", fmt]
    result, out, *_ = _run(tmp_path / "a", "accuracy", *args, attention="standard")
    assert result.exit_code == 2 and not out.exists()
    assert "broken." in result.output and "--skip-bad-files" in result.output
    result, out, records, meta, html = _run(tmp_path / "b", "accuracy", *args,
                                            "--skip-bad-files", attention="standard")
    assert result.exit_code == 0, result.output
    (skipped,) = meta["inputs"]["media"]["skipped_files"]
    assert skipped["path"].endswith("broken.wav" if kind == "audio" else "broken.png")
    counts = _find(records, "skipped_files")
    assert counts and all(r["value"] == 1 for r in counts)
    assert "left out" in html and "broken." in html


def _folder(root: Path, layout: dict[str, int], ext: str = ".png") -> Path:
    from PIL import Image

    for rel, n in layout.items():
        (root / rel).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            if ext == ".png":
                Image.new("L", (4, 4), i).save(root / rel / f"{i}.png")
            else:
                import soundfile

                soundfile.write(root / rel / f"{i}{ext}", np.zeros(800, np.float32), 8000)
    return root


@pytest.mark.parametrize("layout,fmt,ext,message", [
    ({}, "imagefolder", ".png", "no image files"),
    ({"cats": 30}, "imagefolder", ".png", "only one class"),
    ({"cats": 30, "dogs": 30, "birds": 0}, "imagefolder", ".png", "birds holds no image"),
    ({"cats": 30, "dogs/young": 30}, "imagefolder", ".png", "nested folders"),
    ({"yes": 30, "no": 30}, "imagefolder", ".wav", "did you mean --data-format audiofolder"),
    ({"a": 3, "b": 3}, "imagefolder", ".png", "too few files"),
    ({"train/a": 30, "train/b": 2, "validation/a": 20, "test/a": 10, "test/b": 10},
     "imagefolder", ".png",
     "too few train files"),
])
def test_media_folder_problems_name_the_folder(tmp_path, layout, fmt, ext, message):
    root = _folder(tmp_path / "data", layout, ext)
    root.mkdir(exist_ok=True)
    with pytest.raises(ValueError, match=message) as err:
        check_media_folder(root, fmt)
    assert str(root) in str(err.value)


def test_a_huge_image_is_named(tmp_path, monkeypatch):
    import harness.data.folders as folders

    monkeypatch.setattr(folders, "MAX_PIXELS", 100)
    root = _folder(tmp_path / "data", {"train/a": 20, "train/b": 20, "validation/a": 10,
                                        "validation/b": 10, "test/a": 10, "test/b": 10})
    from PIL import Image

    Image.new("L", (40, 40)).save(root / "train/a/big.png")
    with pytest.raises(ValueError, match=r"big.png: 40 x 40 = 1,600 pixels"):
        check_media_folder(root, "imagefolder")


def test_profile_key_skip_bad_files_and_hash(tmp_path):
    from harness.run.profiles import profile_from_dict

    base = {"name": "x", "suites": {"bias": {}}}
    plain = profile_from_dict(base)
    on = profile_from_dict({**base, "data": {"data_dir": "d", "data_format": "imagefolder",
                                             "skip_bad_files": True}})
    assert on.data.skip_bad_files is True and plain.data.skip_bad_files is False
    assert plain.hash == profile_from_dict(copy.deepcopy(base)).hash


def test_audio_read_as_images_says_so_in_the_loader_too(tmp_path):
    root = _folder(tmp_path / "data", {"yes": 3, "no": 3}, ".wav")
    with pytest.raises(ValueError, match="did you mean --data-format audiofolder"):
        load_task("media", data_dir=str(root), data_format="imagefolder",
                  cache_dir=str(tmp_path / "c"))
