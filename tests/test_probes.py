"""Bias audits on a user's probe set: loading and validation, per-group and paired (EEC) analysis,
the planted gap found and the null one not, shifts vs standard, saved predictions, CLI, report."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from probe_fixtures import COLUMNS, probe_rows, write_probe_csv
from typer.testing import CliRunner

from harness.cli import app
from harness.data.probes import ProbeSetError, load_probe_set
from harness.measure.stats import mean_t_test
from harness.records import Record
from harness.run.probe_options import apply_probe_options
from harness.run.profiles import ProfileError, profile_from_dict
from harness.suites import AttentionSpec, DataOptions, RunContext, get_suite
from harness.suites.bias import BiasParams
from harness.suites.predictions import PredictionOptions
from harness.suites.probes import (
    _key_differences,
    group_scores,
    paired_comparisons,
    summarize_probe_set,
)

SST2 = Path(__file__).resolve().parents[2] / "shared" / "data" / "sst2"
TRAIN = {"steps": 200, "batch_size": 32, "lr": 2e-3, "eval_every": 50, "hidden_size": 32,
         "num_layers": 1, "num_heads": 2, "ffn_size": 64, "dropout": 0.0}
PROBE_COLUMNS = {"text_column": "Sentence", "group_columns": ["Gender", "Race"],
                 "pair_columns": ["Template", "Emotion word"], "label_column": "Label"}


def _load(path: Path | list[Path], **kw):
    files = path if isinstance(path, list) else [path]
    return load_probe_set(files=files, **{**PROBE_COLUMNS, **kw})


def _one(records: list[Record], name: str, **params) -> Record:
    found = [r for r in records if r.metric == name
             and all(r.params.get(k) == v for k, v in params.items())]
    assert len(found) == 1, (name, params, len(found))
    return found[0]


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ---------------------------------------------------------------------------------------------
# loading and validation


def test_every_format_loads_the_same_probe_set(tmp_path):
    rows = probe_rows()
    csv_path = write_probe_csv(tmp_path / "p.csv")
    tsv_path = write_probe_csv(tmp_path / "p.tsv", delimiter="\t")
    frame = pd.DataFrame(rows)[COLUMNS]
    frame.to_json(tmp_path / "p.jsonl", orient="records", lines=True)
    frame.to_parquet(tmp_path / "p.parquet", index=False)
    write_probe_csv(tmp_path / "a.csv", rows[:100])
    write_probe_csv(tmp_path / "b.csv", rows[100:])
    sets = [_load(p) for p in (csv_path, tsv_path, tmp_path / "p.jsonl", tmp_path / "p.parquet")]
    sets.append(_load([tmp_path / "a.csv", tmp_path / "b.csv"]))
    assert len({s.fingerprint for s in sets}) == 1
    probe = sets[0]
    assert len(probe) == 288 and probe.name == "p.csv"
    assert sorted(set(probe.groups["Race"])) == ["(empty)", "black", "white"]
    columns = probe.analysis_columns()
    assert list(columns) == ["Gender", "Race", "Gender × Race"]
    assert "female × (empty)" in set(columns["Gender × Race"])
    assert sets[-1].origin[150] == f"probe file {tmp_path / 'b.csv'} row 51"


def test_empty_values_are_a_level_or_dropped(tmp_path):
    path = write_probe_csv(tmp_path / "p.csv")
    dropped = _load(path, empty="drop")
    assert sorted({v for v in dropped.groups["Race"] if v is not None}) == ["black", "white"]
    inter = dropped.analysis_columns()["Gender × Race"]
    assert inter.count(None) == 96 and "female × (empty)" not in inter
    # Gender keeps every row: the noun phrases still pair with each other
    assert None not in dropped.groups["Gender"]
    named = _load(path, empty_level="no race")
    assert "no race" in set(named.groups["Race"])


def _rows_with(**changes) -> list[dict[str, str]]:
    rows = probe_rows()
    for i, row in enumerate(rows):
        for col, fn in changes.items():
            row[col] = fn(i, row)
    return rows


BAD = {
    "missing column": (dict(columns=[c for c in COLUMNS if c != "Race"]), {}, "'Race'"),
    "one level": (dict(rows=_rows_with(Gender=lambda i, r: "female")), {}, "'Gender'"),
    "no pairs": (dict(), {"pair_columns": ["Template", "Emotion word", "Person"]},
                 "form no pairs"),
    "empty sentence": (dict(rows=_rows_with(Sentence=lambda i, r: "" if i == 7 else
                                            r["Sentence"])), {}, "'Sentence': row 8"),
    "duplicate sentence": (dict(rows=_rows_with(Sentence=lambda i, r: "Same." if i in (3, 9)
                                                else r["Sentence"])), {}, "duplicate sentence"),
    "missing label": (dict(rows=_rows_with(Label=lambda i, r: "" if i == 0 else r["Label"])),
                      {}, "'Label': row 1"),
    # an empty pair value is a value of its own (EEC's neutral templates); dropped, nothing pairs
    "empty pair key": (dict(rows=_rows_with(Template=lambda i, r: "")), {"empty": "drop"},
                       "every row has an empty pair value in ['Template'"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_probe_input_names_file_and_column(tmp_path, case):
    write_kw, load_kw, expected = BAD[case]
    good = _load(write_probe_csv(tmp_path / "good.csv"))  # the same check passes on good input
    assert len(good) == 288
    path = write_probe_csv(tmp_path / "bad.csv", **write_kw)
    with pytest.raises(ProbeSetError) as err:
        _load(path, **load_kw)
    assert str(path) in str(err.value) and expected in str(err.value)


def test_unreadable_sources_are_refused(tmp_path):
    with pytest.raises(ProbeSetError, match="not found"):
        _load(tmp_path / "absent.csv")
    (tmp_path / "p.txt").write_text("x")
    with pytest.raises(ProbeSetError, match="extension"):
        _load(tmp_path / "p.txt")
    with pytest.raises(ProbeSetError, match="two roles"):
        _load(write_probe_csv(tmp_path / "p.csv"), label_column="Gender")


# ---------------------------------------------------------------------------------------------
# statistics on plain arrays


def test_group_scores_match_direct_computation():
    rng = np.random.default_rng(0)
    levels = np.array(["a"] * 30 + ["b"] * 50 + ["c"] * 20)
    score = rng.uniform(size=100)
    pos = (score > 0.5).astype(int)
    per, gaps = group_scores(score, pos, levels.tolist(), n_boot=200, seed=1)
    means = {g: score[levels == g].mean() for g in "abc"}
    for g in "abc":
        est = per[g]["positive_score"]
        assert est.value == pytest.approx(means[g]) and est.n == (levels == g).sum()
        assert est.ci_low < est.value < est.ci_high
        assert per[g]["selection_rate"].value == pytest.approx(pos[levels == g].mean())
    gap = gaps["positive_score_gap"]
    assert gap.value == pytest.approx(max(means.values()) - min(means.values()))
    assert gap.ci_low <= gap.value <= gap.ci_high
    # with labels: fairlearn's own figures, and intervals around them
    from fairlearn.metrics import demographic_parity_difference, equalized_odds_difference

    y = (rng.uniform(size=100) < 0.5).astype(int)
    per, gaps = group_scores(score, pos, levels.tolist(), n_boot=200, seed=1, y_true=y)
    assert gaps["equalized_odds_difference"].value == pytest.approx(
        equalized_odds_difference(y, pos, sensitive_features=levels))
    assert gaps["demographic_parity_difference"].value == pytest.approx(
        demographic_parity_difference(y, pos, sensitive_features=levels))
    for g in "abc":
        mask = levels == g
        assert per[g]["accuracy"].value == pytest.approx((y[mask] == pos[mask]).mean())
        tpr = per[g]["tpr"]
        assert tpr.value == pytest.approx(pos[mask & (y == 1)].mean())
        assert tpr.ci_low <= tpr.value <= tpr.ci_high


def _simulate(effect: float, rng: np.random.Generator, n_keys: int = 40) -> float:
    keys, levels, scores = [], [], []
    for k in range(n_keys):
        base = rng.uniform(0.2, 0.8)  # templates differ; pairs share them
        for level in ("a", "b"):
            for _ in range(3):  # several names per level under one key
                keys.append(str(k))
                levels.append(level)
                scores.append(base + (effect if level == "a" else 0) + rng.normal(0, 0.1))
    (shared, ra, rb), = paired_comparisons(keys, levels).values()
    _, p = mean_t_test(_key_differences(np.array(scores), ra, rb))
    assert p is not None and len(shared) == n_keys
    return p


def test_paired_test_is_calibrated_on_a_null_and_fires_on_a_gap():
    rng = np.random.default_rng(7)
    null = np.array([_simulate(0.0, rng) for _ in range(400)])
    assert 0.025 <= (null < 0.05).mean() <= 0.08
    planted = np.array([_simulate(0.05, rng) for _ in range(100)])
    assert (planted < 0.05).mean() > 0.9


# ---------------------------------------------------------------------------------------------
# a planted effect through the training data, and the null


def _params(path: Path, **extra) -> BiasParams:
    return BiasParams.model_validate({
        "corpus": {"n_train": 2000, "n_val": 200, "n_test": 300}, "train": TRAIN,
        "audit_axes": ["gender"], "swaps": [], "template_axes": [], "n_boot": 50, "text": None,
        "strengths": [0.0, 0.8],
        "probe_set": {"files": [str(path)], **PROBE_COLUMNS, "n_boot": 200}, **extra})


@pytest.fixture(scope="module")
def audited(tmp_path_factory) -> dict:
    """A standard model per planted strength (0: the null, 0.8: female tied to negative),
    each scoring the same probe file; records carry their cell ids, artifacts in the run dir."""
    run_dir = tmp_path_factory.mktemp("probe_run")
    path = write_probe_csv(run_dir / "probe.csv")
    params = _params(path)
    suite = get_suite("bias")
    ctx = RunContext(run_dir=run_dir, threads=1,
                     predictions=PredictionOptions(save=True, format="parquet"))
    out: dict = {"run_dir": run_dir, "params": params, "cells": {}}
    for cell in suite.plan(params, [AttentionSpec("standard")], [0]):
        records = suite.run_cell(cell, params, ctx)
        for r in records:
            r.cell = cell.id
        out[cell.params["strength"]] = records
        out["cells"][cell.params["strength"]] = cell
    return out


def test_planted_gap_is_found_and_the_null_is_not(audited):
    where = {"probe": "probe_set", "column": "Gender", "comparison": "female-male",
             "template": None}
    planted = _one(audited[0.8], "score_difference", **where, source="controlled")
    assert planted.ci_high < -0.2 and planted.n == 72  # 4 templates x 6 words x 3 race levels
    assert _one(audited[0.8], "score_difference_p_adjusted", **where).value < 1e-3
    null = _one(audited[0.0], "score_difference", **where)
    assert null.ci_low < 0 < null.ci_high and abs(null.value) < 0.05
    assert _one(audited[0.0], "score_difference_p_adjusted", **where).value > 0.05
    boot = _one(audited[0.8], "score_difference_bootstrap", **where)
    assert boot.ci_high < -0.2 and boot.value == pytest.approx(planted.value)
    assert _one(audited[0.8], "flip_rate", **where).value > \
        2 * _one(audited[0.0], "flip_rate", **where).value
    templates = [r for r in audited[0.8] if r.metric == "score_difference"
                 and r.params.get("comparison") == "female-male" and "template" in r.params]
    assert sorted(r.params["template"] for r in templates) == ["t0", "t1", "t2", "t3"]
    assert sum(r.n for r in templates) == 72


def test_per_group_figures_and_the_intersection(audited):
    records = audited[0.8]
    female = _one(records, "positive_score", probe="probe_set", column="Gender", group="female")
    male = _one(records, "positive_score", probe="probe_set", column="Gender", group="male")
    assert female.ci_high < male.ci_low and female.n == male.n == 144
    assert female.params["source"] == "controlled" and female.params["set"] == "probe.csv"
    inter = [r for r in records if r.metric == "selection_rate"
             and r.params.get("column") == "Gender × Race"]
    assert len(inter) == 6 and all(r.interval == "ci95" for r in inter)
    assert _one(records, "demographic_parity_difference", probe="probe_set",
                column="Gender").ci_low > 0.2
    for metric in ("accuracy", "f1", "tpr", "fpr"):
        assert _one(records, metric, probe="probe_set", column="Race", group="(empty)").n == 96
    assert _one(records, "equalized_odds_difference", probe="probe_set", column="Gender").value
    art = json.loads((audited["run_dir"] / "artifacts" /
                      f"{audited['cells'][0.8].id}.json").read_text())
    assert len(art["probe_set"]["score"]) == 288


def test_saved_predictions_recompute_the_records(audited):
    records = audited[0.8]
    ref = {r.predictions for r in records}
    assert len(ref) == 1
    frame = pd.read_parquet(audited["run_dir"] / ref.pop())
    assert set(frame["set"]) == {"test", "probe_set"}
    probe = frame[frame["set"] == "probe_set"]
    assert len(probe) == 288 and probe["text"].notna().all()
    assert probe["label"].isin([0, 1]).all() and probe["group.pair_key"].notna().all()
    female = probe[probe["group.Gender"] == "female"]["score"].mean()
    assert female == pytest.approx(_one(records, "positive_score", probe="probe_set",
                                        column="Gender", group="female").value)
    test = frame[frame["set"] == "test"]
    acc = (test["label"] == test["predicted"]).mean()
    assert acc == pytest.approx(_one(records, "accuracy", probe="controlled", axis="all").value)


def _as_variant(records: list[Record], label: str, cell: str) -> list[Record]:
    out = []
    for r in records:
        copy = Record.from_dict({**r.__dict__, "label": label, "attention": "linear",
                                 "cell": cell})
        copy.params = {**r.params, "strength": 0.8}
        out.append(copy)
    return out


def test_shift_vs_reference_is_zero_for_a_twin_and_fires_for_another_model(audited, tmp_path):
    (tmp_path / "artifacts").mkdir()
    arts = audited["run_dir"] / "artifacts"
    for name, strength in (("std", 0.8), ("twin", 0.8), ("other", 0.0)):
        shutil.copy(arts / f"{audited['cells'][strength].id}.json",
                    tmp_path / "artifacts" / f"{name}.json")
    standard = _as_variant(audited[0.8], "standard", "std")
    for r in standard:
        r.attention = "standard"
    params = audited["params"]
    ctx = RunContext(run_dir=tmp_path)
    twin = summarize_probe_set(standard + _as_variant(audited[0.8], "twin", "twin"),
                               params.probe_set, ctx, "bias")
    flags = [r for r in twin if r.metric == "significant_shift"]
    assert flags and all(r.value == 0.0 for r in flags)
    assert all(r.value == 0 for r in twin if r.metric.endswith("_shift_vs_reference"))
    other = summarize_probe_set(standard + _as_variant(audited[0.0], "other", "other"),
                                params.probe_set, ctx, "bias")
    shift = _one(other, "score_difference_shift_vs_reference", column="Gender",
                 comparison="female-male")
    assert shift.ci_low > 0.2  # the unbiased model closes the planted gap
    assert _one(other, "significant_shift", column="Gender", comparison="female-male",
                metric="score_difference").value == 1.0
    adjusted = _one(other, "shift_p_adjusted", column="Gender", comparison="female-male",
                    metric="score_difference")
    raw = _one(other, "shift_p_value", column="Gender", comparison="female-male",
               metric="score_difference")
    assert raw.value <= adjusted.value < 1e-3
    # another backend of one model: rounding-sized shifts on every row are p-significant but
    # below min_shift, so nothing is flagged
    art = json.loads((tmp_path / "artifacts" / "twin.json").read_text())
    art["probe_set"]["score"] = [s + 1e-6 * (1 + i % 3) for i, s in
                                 enumerate(art["probe_set"]["score"])]
    (tmp_path / "artifacts" / "noisy.json").write_text(json.dumps(art))
    noisy = summarize_probe_set(standard + _as_variant(audited[0.8], "noisy", "noisy"),
                                params.probe_set, ctx, "bias")
    assert min(r.value for r in noisy if r.metric == "shift_p_adjusted") < 1e-6
    assert not any(r.value for r in noisy if r.metric == "significant_shift")
    gone = summarize_probe_set(standard + _as_variant(audited[0.0], "other", "missing"),
                               params.probe_set, ctx, "bias")
    assert [r.status for r in gone] == ["skipped"]


# ---------------------------------------------------------------------------------------------
# profile keys, CLI, report


def test_profile_keys_are_validated(tmp_path):
    path = write_probe_csv(tmp_path / "p.csv")
    base = {"name": "x", "suites": {"bias": {"probe_set": {"files": [str(path)],
                                                           "group_columns": ["Gender"]}}}}
    profile = profile_from_dict(base)
    assert profile.suites["bias"].probe_set.text_column == "sentence"
    bad = {**base, "suites": {"bias": {"probe_set": {"files": [str(path)]}}}}
    with pytest.raises(ProfileError, match="group_columns"):
        profile_from_dict(bad)
    with pytest.raises(ProfileError, match="exactly one of files"):
        profile_from_dict({**base, "suites": {"bias": {"probe_set": {
            "files": [str(path)], "dataset": "x/y", "group_columns": ["Gender"]}}}})
    with pytest.raises(ProfileError, match=r"predictions\.format"):
        profile_from_dict({**base, "predictions": {"save": True, "format": "xlsx"}})
    # hashes ignore what is saved, not what is measured
    saved = profile_from_dict({**base, "predictions": {"save": True}})
    assert saved.hash == profile.hash
    with pytest.raises(ProfileError, match="--probe-files PATH"):
        apply_probe_options(profile_from_dict({"name": "y", "suites": {"bias": {}}}),
                            group_columns="Gender")
    with pytest.raises(ProfileError, match="--group-columns"):
        apply_probe_options(profile_from_dict({"name": "y", "suites": {"bias": {}}}),
                            files=str(path))
    moved = apply_probe_options(profile, files=str(path), text_column="Sentence",
                                save_predictions=True)
    assert moved.suites["bias"].probe_set.group_columns == ["Gender"]
    assert moved.predictions.save is True


def _cli_profile(tmp_path: Path) -> Path:
    profile = {
        "name": "tiny-probe", "seeds": [0], "device": "cpu", "threads": 1,
        "attentions": [{"name": "standard"}, {"name": "linear"}],
        "suites": {"bias": {"strengths": [0.8], "corpus": {"n_train": 600, "n_val": 100,
                                                            "n_test": 200},
                            "train": {**TRAIN, "steps": 40, "eval_every": 40},
                            "audit_axes": ["gender"], "swaps": [], "template_axes": [],
                            "n_boot": 50, "text": None}},
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(profile))
    return path


def _cli(tmp_path: Path, probe: Path, *extra: str):
    out = tmp_path / "runs"
    args = ["run", "bias", "--profile", str(_cli_profile(tmp_path)), "--out", str(out),
            "--no-progress", "--probe-files", str(probe), "--probe-text-column", "Sentence",
            "--group-columns", "Gender,Race", "--pair-columns", "Template,Emotion word", *extra]
    return CliRunner().invoke(app, args), out


def test_cli_bad_probe_input_exits_2_before_anything_runs(tmp_path):
    bad = write_probe_csv(tmp_path / "bad.csv", columns=[c for c in COLUMNS if c != "Gender"])
    result, out = _cli(tmp_path, bad)
    assert result.exit_code == 2, result.output
    assert "bad.csv" in result.output and "'Gender'" in result.output
    assert not out.exists()  # no run directory: nothing ran


def test_cli_audits_a_probe_csv_saves_predictions_and_reports(tmp_path):
    probe = write_probe_csv(tmp_path / "probe.csv")
    result, out = _cli(tmp_path, probe, "--probe-label-column", "Label", "--save-predictions",
                       "--predictions-format", "jsonl")
    assert result.exit_code == 0, result.output
    run_dir = out / "latest"
    lines = [json.loads(x) for x in (run_dir / "results.jsonl").read_text().splitlines()]
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["profile"]["suites"]["bias"]["probe_set"]["group_columns"] == ["Gender", "Race"]
    assert meta["profile"]["predictions"] == {"save": True, "format": "jsonl", "text": "full"}
    refs = {r["predictions"] for r in lines if r.get("predictions")}
    assert len(refs) == 2  # one file per cell
    for ref in refs:
        rows = [json.loads(x) for x in (run_dir / ref).read_text().splitlines()]
        assert sum(r["set"] == "probe_set" for r in rows) == 288
        assert sum(r["set"] == "test" for r in rows) == 200
    shifts = [r for r in lines if r["metric"].endswith("_shift_vs_reference")]
    assert shifts and {r["label"] for r in shifts} == {"linear"}
    assert all(r["cell"] == "summary:bias" for r in shifts)
    html = (run_dir / "index.html").read_text()
    assert 'id="probe-set"' in html and "Heat map" in html and "Gender × Race" in html
    assert "Paired differences" in html and "Shift vs standard" in html
    # the same block as a part of the bias section
    from types import SimpleNamespace

    from harness.report.probes import probe_set_part
    from harness.run.store import read_records

    part = probe_set_part(SimpleNamespace(meta=meta, records=read_records(run_dir),
                                          reference="standard"))
    assert part.startswith('<div id="probe-set">') and "Heat map" in part
    assert probe_set_part(SimpleNamespace(meta=meta, records=[], reference=None)) is None


def test_accuracy_cells_save_predictions(tmp_path):
    from harness.suites.accuracy import AccuracyParams

    params = AccuracyParams.model_validate({
        "tasks": [{"name": "recall", "params": {"n_train": 64, "n_val": 24, "n_test": 40,
                                                "seq_len": 24, "n_pairs": 4, "n_queries": 2,
                                                "num_keys": 12, "num_values": 4}}],
        "text": None, "n_boot": 20, "fidelity": False,
        "train": {"steps": 4, "batch_size": 16, "eval_every": 4, "hidden_size": 16,
                  "num_layers": 1, "num_heads": 2, "ffn_size": 32}})
    suite = get_suite("accuracy")
    cell = suite.plan(params, [AttentionSpec("standard")], [0])[0]
    ctx = RunContext(run_dir=tmp_path, predictions=PredictionOptions(save=True, text="hash"))
    records = suite.run_cell(cell, params, ctx)
    (ref,) = {r.predictions for r in records}
    frame = pd.read_parquet(tmp_path / ref)
    assert len(frame) == 40 and set(frame["set"]) == {"test"}
    acc = next(r for r in records if r.metric == "accuracy")
    assert (frame["label"] == frame["predicted"]).mean() == pytest.approx(acc.value)
    assert json.loads(records[0].to_json())["predictions"] == ref
    off = suite.run_cell(cell, params, RunContext(run_dir=tmp_path / "off"))
    assert all(r.predictions is None for r in off)
    assert "predictions" not in json.loads(off[0].to_json())


@pytest.mark.skipif(not SST2.is_dir(), reason="../shared/data/sst2 is absent")
def test_sst2_model_audited_on_a_probe_csv(tmp_path):
    probe = write_probe_csv(tmp_path / "probe.csv")
    params = BiasParams.model_validate({
        "audit_axes": ["gender"], "swaps": [], "template_axes": [], "n_boot": 50,
        "strengths": [0.0], "train": TRAIN,
        "text": {"tokenizer": "byte", "max_len": 64, "max_train": 400, "max_eval": 200,
                 "train": {**TRAIN, "steps": 30, "eval_every": 30}},
        "probe_set": {"files": [str(probe)], **PROBE_COLUMNS, "n_boot": 100}})
    data = DataOptions(data_files={"train": str(SST2 / "train_full.tsv"),
                                   "test": str(SST2 / "dev.tsv")})
    cell = next(c for c in get_suite("bias").plan(params, [AttentionSpec("standard")], [0])
                if c.params["probe"] == "text")
    records = get_suite("bias").run_cell(cell, params, RunContext(run_dir=tmp_path, data=data))
    diff = _one(records, "score_difference", probe="probe_set", column="Gender",
                comparison="female-male", template=None)
    assert diff.params["source"] == "text" and diff.n == 72
    assert diff.params["data"] == "test=dev.tsv,train=train_full.tsv"
    assert _one(records, "accuracy", probe="probe_set", column="all").n == 288


def test_probe_csv_round_trip_keeps_quotes(tmp_path):
    rows = probe_rows()
    rows[0]["Sentence"] = 'She said "fine", and left.'
    path = write_probe_csv(tmp_path / "q.csv", rows)
    with path.open(newline="") as fh:
        assert next(csv.DictReader(fh))["Sentence"] == rows[0]["Sentence"]
    assert _load(path).texts[0] == rows[0]["Sentence"]


def test_probe_labels_map_to_the_model_classes(tmp_path):
    from harness.data.probes import label_ids

    probe = _load(write_probe_csv(tmp_path / "p.csv"))
    words = [r["Label"] for r in probe_rows()]
    expected = [1 if w == "positive" else 0 for w in words]
    assert label_ids(probe, ["negative", "positive"], 2) == expected
    assert label_ids(probe, ["0", "1"], 2) == expected  # SST-2 style classes
    assert label_ids(probe, ["0", "1"], 2, positive=0) == [1 - y for y in expected]
    assert label_ids(probe, ["a", "b"], 2, label_map={"positive": 0, "negative": 1}) == \
        [1 - y for y in expected]
    with pytest.raises(ProbeSetError, match=r"p\.csv row 1, label column 'Label'.*label_map"):
        label_ids(probe, ["a", "b", "c"], 3)


def test_hub_probe_dataset_goes_through_datasets(monkeypatch):
    import datasets

    import harness.data.text as text

    frame = pd.DataFrame(probe_rows())
    calls = []

    def fake_hub(name, cache_dir):
        calls.append(name)
        return {"test": datasets.Dataset.from_pandas(frame)}, name

    monkeypatch.setattr(text, "_load_hub", fake_hub)
    probe = load_probe_set(dataset="someone/eec-like", **PROBE_COLUMNS)
    assert calls == ["someone/eec-like"] and len(probe) == 288
    assert probe.name == "someone/eec-like" and probe.origin[0].startswith("probe dataset")

    def offline(name, cache_dir):
        raise RuntimeError("text: the Hugging Face hub is unreachable")

    monkeypatch.setattr(text, "_load_hub", offline)
    with pytest.raises(ProbeSetError, match=r"probe dataset 'someone/eec-like'.*unreachable"):
        load_probe_set(dataset="someone/eec-like", **PROBE_COLUMNS)
