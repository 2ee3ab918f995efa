"""Bias suite: the controlled probe detects planted bias and does not invent it; the text probe,
the summary against standard, parameter validation, and the CLI end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from typer.testing import CliRunner

from harness.measure.stats import Estimate, abs_estimate
from harness.records import Record
from harness.suites import AttentionSpec, DataOptions, RunContext, get_suite
from harness.suites.bias import BiasParams

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SST2 = DATA / "sst2"

TRAIN = {"steps": 200, "batch_size": 32, "lr": 2e-3, "eval_every": 50, "hidden_size": 32,
         "num_layers": 1, "num_heads": 2, "ffn_size": 64, "dropout": 0.0}
TINY = {
    "corpus": {"n_train": 2000, "n_val": 200, "n_test": 800},
    "train": TRAIN,
    "audit_axes": ["gender", "race"],
    "swaps": ["gender"],
    "template_axes": ["gender"],
    "n_boot": 200,
    "text": None,
}


def _one(records: list[Record], metric: str, **params) -> Record:
    found = [r for r in records if r.metric == metric
             and all(r.params.get(k) == v for k, v in params.items())]
    assert len(found) == 1, (metric, params, len(found))
    return found[0]


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """One torch thread: the same numbers on any machine, and kind to a shared CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def controlled(tmp_path_factory) -> dict[float, list[Record]]:
    """One tiny standard model per strength (0 and 0.8), run through the suite's cells.

    Records carry their cell id (as the store would set it); artifacts land in ``_run_dir``.
    """
    suite = get_suite("bias")
    params = BiasParams.model_validate({**TINY, "strengths": [0.0, 0.8]})
    run_dir = tmp_path_factory.mktemp("bias_run")
    ctx = RunContext(run_dir=run_dir, threads=1)
    cells = suite.plan(params, [AttentionSpec("standard")], [0])
    assert [c.params["strength"] for c in cells] == [0.0, 0.8]
    out: dict = {"_run_dir": run_dir}
    for cell in cells:
        records = suite.run_cell(cell, params, ctx)
        assert all(r.status == "ok" for r in records), [r.error for r in records if r.error]
        assert (run_dir / "artifacts" / f"{cell.id}.json").is_file()
        for r in records:
            r.cell = cell.id
        out[cell.params["strength"]] = records
    return out


def test_no_planted_bias_reads_as_no_bias(controlled):
    records = controlled[0.0]
    assert _one(records, "accuracy", axis="all").value > 0.9
    dpd = _one(records, "demographic_parity_difference", axis="gender")
    assert dpd.value < 0.08
    assert dpd.params == {"probe": "controlled", "planted": "gender:female", "strength": 0.0,
                          "seed": 0, "axis": "gender"}
    assert dpd.higher_is_better is False and dpd.interval == "ci95"
    assoc = _one(records, "model_association", axis="gender")
    assert assoc.ci_low <= 0.0 <= assoc.ci_high or abs(assoc.value) < 0.05
    data = _one(records, "data_association", axis="gender")
    assert abs(data.value) < 0.1
    for direction in ("male->female", "female->male"):
        cf = _one(records, "score_difference", swap="gender", direction=direction)
        assert abs(cf.value) < 0.1
        assert _one(records, "flip_rate", swap="gender", direction=direction).value < 0.1
    # pronouns carry no label information here, so their effect is small and untrained: well
    # below the gap the planted bias produces (checked in the next test)
    assert _one(records, "score_gap", probe="template", comparison="female-male").value < 0.2


def test_planted_bias_is_detected(controlled):
    records = controlled[0.8]
    dpd = _one(records, "demographic_parity_difference", axis="gender")
    assert dpd.value > 0.2 and dpd.ci_low > 0.15
    female = _one(records, "selection_rate", axis="gender", group="female")
    male = _one(records, "selection_rate", axis="gender", group="male")
    assert female.ci_high < male.ci_low  # the planted group is selected less, clearly
    assert female.params["group"] == "female" and female.n > 100
    assert _one(records, "equalized_odds_difference", axis="gender").ci_low > 0.2
    ratio = _one(records, "demographic_parity_ratio", axis="gender")
    assert ratio.value < 0.6 and ratio.higher_is_better is True
    # the model learned the association the training labels carry
    model = _one(records, "model_association", axis="gender")
    data = _one(records, "data_association", axis="gender")
    assert model.ci_high < -0.15 and data.value < -0.25
    amp = _one(records, "bias_amplification", axis="gender")
    # measured along the data's (negative) association
    assert amp.value == pytest.approx(-(model.value - data.value))
    # swapping "he" -> "she" lowers the positive score; the other way raises it
    down = _one(records, "score_difference", swap="gender", direction="male->female")
    up = _one(records, "score_difference", swap="gender", direction="female->male")
    assert down.ci_high < -0.1 and up.ci_low > 0.1
    assert _one(records, "score_gap_p_value", swap="gender", direction="male->female").value \
        < 0.001
    assert _one(records, "score_gap", swap="gender", direction="male->female").value == \
        pytest.approx(-down.value)
    flip = _one(records, "flip_rate", swap="gender", direction="male->female")
    worst = _one(records, "worst_case_accuracy", swap="gender", direction="male->female")
    assert flip.value > 0.2 and worst.value < 0.85 and flip.n == worst.n > 30
    tpl = _one(records, "score_difference", probe="template", comparison="female-male")
    assert tpl.ci_high < -0.3 and tpl.n == 200  # 10 templates x 20 emotion words
    unbiased = _one(controlled[0.0], "score_gap", probe="template", comparison="female-male")
    assert -tpl.value > 3 * unbiased.value


def test_summary_of_identical_models_is_zero(controlled, tmp_path):
    """A variant with the very same predictions differs from standard by exactly 0."""
    suite = get_suite("bias")
    params = BiasParams.model_validate(TINY)
    (tmp_path / "artifacts").mkdir()
    source = controlled["_run_dir"] / "artifacts" / f"{controlled[0.8][0].cell}.json"
    for name in ("std", "twin"):
        (tmp_path / "artifacts" / f"{name}.json").write_text(source.read_text())
    records = []
    for r in controlled[0.8]:
        records.append(Record.from_dict({**r.__dict__, "cell": "std"}))
        records.append(Record.from_dict({**r.__dict__, "attention": "linear", "label": "linear",
                                         "cell": "twin"}))
    out = suite.summarize(records, params, RunContext(run_dir=tmp_path))
    diffs = [r for r in out if r.metric.endswith("_diff_vs_reference")]
    flags = [r for r in out if r.metric == "significant_increase"]
    assert {r.params["ci_method"] for r in diffs} == {"paired_bootstrap"}
    assert {r.metric for r in diffs} == {
        "demographic_parity_difference_diff_vs_reference",
        "demographic_parity_ratio_diff_vs_reference",
        "equalized_odds_difference_diff_vs_reference", "bias_amplification_diff_vs_reference",
        "flip_rate_diff_vs_reference", "score_gap_diff_vs_reference"}
    for r in diffs:
        assert r.value == pytest.approx(0.0, abs=1e-12) and r.label == "linear"
        assert r.ci_low == pytest.approx(0.0, abs=1e-12)
        assert r.ci_high == pytest.approx(0.0, abs=1e-12)
    p_adj = [r for r in out if r.metric == "increase_p_adjusted"]
    assert len(p_adj) == len(diffs) and all(r.value == 1.0 for r in p_adj)
    # one seed: no verdict on the attention, and the record says why
    assert [(f.status, f.params["seed"]) for f in flags] == [("skipped", "all")]
    assert "two or more seeds" in flags[0].error


def _controlled_artifact(y_pred: list[int], fingerprint: str = "same") -> dict:
    return {"controlled": {
        "y_true": [1, 0] * 6, "y_pred": y_pred,
        "groups": {"gender": ["female"] * 6 + ["male"] * 6},
        "planted_axis": "gender", "planted_group": "female", "data_association": -0.4,
        "fingerprint": fingerprint}}


def _gap_record(label: str, value: float, cell: str, stderr: float) -> Record:
    return Record(suite="bias", attention=label, options={}, label=label, cell=cell,
                  params={"probe": "controlled", "planted": "gender:female", "strength": 0.8,
                          "seed": 0, "axis": "gender"},
                  metric="demographic_parity_difference", value=value, stderr=stderr,
                  ci_low=value - 0.1, ci_high=value + 0.1, interval="ci95", n=12,
                  higher_is_better=False)


def test_summary_flags_a_significant_increase_and_falls_back_without_artifacts(tmp_path):
    suite = get_suite("bias")
    params = BiasParams.model_validate(TINY)
    art = tmp_path / "artifacts"
    art.mkdir()
    fair = [1, 0] * 6  # every group selected at 0.5
    biased = [0] * 6 + [1] * 6  # female never selected, male always
    (art / "s.json").write_text(json.dumps(_controlled_artifact(fair)))
    (art / "v.json").write_text(json.dumps(_controlled_artifact(biased)))
    records = [_gap_record("standard", 0.0, "s", 0.05), _gap_record("lsh", 1.0, "v", 0.05)]
    out = suite.summarize(records, params, RunContext(run_dir=tmp_path))
    diff = _one(out, "demographic_parity_difference_diff_vs_reference")
    assert diff.value == pytest.approx(1.0) and diff.params["ci_method"] == "paired_bootstrap"
    assert diff.ci_low > 0.5
    p_adj = _one(out, "increase_p_adjusted")
    assert p_adj.value < 1e-6 and p_adj.params["metric"] == "demographic_parity_difference"
    assert p_adj.attention == "lsh" and p_adj.n == 1
    # different test examples (fingerprints) or no artifacts: normal approximation
    (art / "v.json").write_text(json.dumps(_controlled_artifact(biased, "other")))
    out = suite.summarize(records, params, RunContext(run_dir=tmp_path))
    diff = _one(out, "demographic_parity_difference_diff_vs_reference")
    assert diff.params["ci_method"] == "normal_approx"
    half = 1.959963984540054 * np.sqrt(2 * 0.05**2)
    assert diff.ci_low == pytest.approx(1.0 - half) and diff.ci_high == pytest.approx(1.0 + half)
    out = suite.summarize(records, params, RunContext(run_dir=None))
    assert _one(out, "demographic_parity_difference_diff_vs_reference").params["ci_method"] \
        == "normal_approx"
    assert suite.summarize(records[1:], params, RunContext()) == []  # no standard: nothing


@pytest.mark.parametrize(("margin", "flagged"), [(0.0, 1.0), (0.02, 1.0), (0.05, 0.0)])
def test_flag_margin(margin, flagged):
    suite = get_suite("bias")
    params = BiasParams.model_validate({**TINY, "min_increase": margin})
    records = [_gap_record("standard", 0.30, "s", 0.001), _gap_record("lsh", 0.33, "v", 0.001)]
    out = suite.summarize(records, params, RunContext())
    diff = _one(out, "demographic_parity_difference_diff_vs_reference")
    assert diff.ci_low == pytest.approx(0.03 - 1.96 * np.sqrt(2) * 0.001, abs=1e-4)
    assert float(_one(out, "increase_p_adjusted").value <= 0.05) == flagged


def test_summary_mean_over_seeds():
    from scipy import stats

    suite = get_suite("bias")
    params = BiasParams.model_validate(TINY)
    records, diffs = [], [0.10, 0.20, 0.15]
    for seed, d in enumerate(diffs):
        for label, value in (("standard", 0.3), ("sparse", 0.3 + d)):
            r = _gap_record(label, value, f"{label}{seed}", 0.01)
            r.params = {**r.params, "seed": seed}
            records.append(r)
    out = suite.summarize(records, params, RunContext())
    mean = _one(out, "demographic_parity_difference_diff_vs_reference", seed="all")
    assert mean.params["ci_method"] == "t_over_seeds" and mean.n == 3
    assert mean.value == pytest.approx(0.15)
    half = stats.t.ppf(0.975, 2) * np.std(diffs, ddof=1) / np.sqrt(3)
    assert mean.ci_low == pytest.approx(0.15 - half) and mean.ci_high == pytest.approx(0.15 + half)
    flag = _one(out, "significant_increase", seed="all")
    assert flag.value == 1.0
    assert len([r for r in out if r.metric.endswith("_diff_vs_reference")]) == 4


def _null_family(rng: np.random.Generator, labels: list[str], seeds: int, size: int, se: float,
                 planted: float = 0.0) -> list[Record]:
    """Standard and the variants ``labels`` over ``seeds`` seeds on ``size`` comparisons whose
    true difference is 0 (each seed's model has its own quirks, shared by no other seed), plus
    ``planted`` added to every variant's first comparison in every seed."""
    records = []
    for seed in range(seeds):
        for j in range(size):
            truth = rng.uniform(0.1, 0.5)
            for name in ["standard", *labels]:
                shift = planted if j == 0 and name != "standard" else 0.0
                value = truth + shift + rng.normal(0.0, 0.03)  # this model's own quirk
                records.append(Record(
                    suite="bias", attention=name, options={}, label=name, cell=f"{name}{seed}",
                    params={"probe": "counterfactual", "source": "controlled", "strength": 0.0,
                            "seed": seed, "swap": f"swap{j}", "direction": "a->b"},
                    metric="flip_rate", value=value, stderr=se, ci_low=value - 2 * se,
                    ci_high=value + 2 * se, interval="ci95", n=500, higher_is_better=False))
    return records


def _flagged(records: list[Record], params: BiasParams) -> set:
    out = get_suite("bias").summarize(records, params, RunContext())
    return {f.label for f in out if f.metric == "significant_increase" and f.value == 1.0}


@pytest.mark.parametrize("method", ["holm", "bh"])
def test_flags_are_calibrated_on_a_true_null_and_fire_on_a_planted_gap(method):
    """40 comparisons per attention over 4-5 seeds, no true difference: with the family adjusted,
    at most ~5% of attentions carry any flag (tested alone, most would); a planted gap is
    flagged for every attention. Each seed's model has quirks larger than its test-sampling
    error, so per-seed tests would flag them: verdicts come from the tests over seeds."""
    rng = np.random.default_rng(0)
    labels = [f"variant{i}" for i in range(30)]
    null = _null_family(rng, labels, 4, 40, 0.005)
    adjusted = BiasParams.model_validate({**TINY, "multiplicity": method, "min_increase": 0.0})
    alone = BiasParams.model_validate({**TINY, "multiplicity": "none", "min_increase": 0.0})
    assert len(_flagged(null, alone)) / len(labels) > 0.5
    assert len(_flagged(null, adjusted)) / len(labels) <= 0.10
    out = get_suite("bias").summarize(null, adjusted, RunContext())
    per_seed = [r for r in out if r.metric == "increase_p_adjusted" and r.params["seed"] != "all"]
    flagged_seeds = {(r.label, r.params["seed"]) for r in per_seed if r.value <= 0.05}
    assert len(flagged_seeds) > len(labels)  # per-model quirks: why seeds decide the verdict
    raw = {json.dumps(r.params, sort_keys=True) + r.label: r.value for r in out
           if r.metric == "increase_p_value"}
    assert all(r.value >= raw[json.dumps(r.params, sort_keys=True) + r.label]
               for r in out if r.metric == "increase_p_adjusted")
    assert {r.n for r in out if r.metric == "increase_p_adjusted"} == {40}
    planted = _null_family(rng, labels[:10], 5, 40, 0.005, planted=0.4)
    out = get_suite("bias").summarize(planted, adjusted, RunContext())
    hits = {f.label for f in out if f.metric == "significant_increase" and f.value == 1.0
            and f.params["swap"] == "swap0"}
    assert hits == set(labels[:10])


def test_multiplicity_is_a_profile_key():
    assert BiasParams.model_validate(TINY).multiplicity == "holm"
    with pytest.raises(ValueError, match="multiplicity"):
        BiasParams.model_validate({**TINY, "multiplicity": "bonferroni"})


def test_abs_estimate_interval():
    assert abs_estimate(Estimate(-0.3, -0.4, -0.2, 0.05, 9)) == Estimate(0.3, 0.2, 0.4, 0.05, 9)
    assert abs_estimate(Estimate(0.1, -0.2, 0.3, 0.1, 9)) == Estimate(0.1, 0.0, 0.3, 0.1, 9)
    assert abs_estimate(Estimate(-0.1, -0.2, 0.0, 0.1, 9, "t")).method == "t"


def test_every_interval_states_its_method_and_n(controlled):
    records = [r for strength in (0.0, 0.8) for r in controlled[strength]]
    with_ci = [r for r in records if r.interval == "ci95"]
    assert with_ci and all(r.n for r in with_ci)
    methods = {r.metric: r.ci_method for r in with_ci}
    assert methods["selection_rate"] == "bootstrap" and methods["flip_rate"] == "wilson"
    assert methods["score_difference"] == "t"
    assert all(r.ci_method is None for r in records if r.interval is None)


@pytest.mark.parametrize(
    ("patch", "match"),
    [
        ({"strengths": [1.5]}, "strengths must lie in"),
        ({"strengths": []}, "at least one value"),
        ({"corpus": {"bias_group": "martian"}}, "not a gender group"),
        ({"corpus": {"bias_axis": "height"}}, "bias_axis must be one of"),
        ({"swaps": ["accent"]}, "swaps: unknown"),
        ({"audit_axes": ["age"]}, "audit_axes: unknown"),
        ({"template_axes": ["none"]}, "template_axes: unknown"),
        ({"colour": 1}, "Extra inputs"),
        ({"attention_options": {"sparse": {"chunk_size": 4}}},
         r"attention_options\.sparse: unknown option\(s\) chunk_size; valid: block_size"),
        ({"text": {"attention_options": {"fancy": {}}}},
         "attention_options: unknown attention 'fancy'; registered: "),
    ],
)
def test_bad_params_raise(patch, match):
    with pytest.raises(ValueError, match=match):
        BiasParams.model_validate(patch)


def test_plan_layers_attention_options():
    """Class defaults < suite-wide options < the text cells' options < the spec's own."""
    suite = get_suite("bias")
    params = BiasParams.model_validate({
        **TINY, "text": {"attention_options": {"sparse": {"block_size": 4, "seed": 7}}},
        "attention_options": {"sparse": {"block_size": 2, "random_blocks": 0, "seed": 5}}})
    controlled, text = suite.plan(params, [AttentionSpec("sparse", {"seed": 9})], [0])
    defaults = AttentionSpec("sparse").resolved_options
    assert controlled.options == {**defaults, "block_size": 2, "random_blocks": 0, "seed": 9}
    assert text.options == {**defaults, "block_size": 4, "random_blocks": 0, "seed": 9}
    assert defaults["block_size"] not in (2, 4) and defaults["random_blocks"] != 0


def test_text_cell_without_data_is_skipped():
    suite = get_suite("bias")
    params = BiasParams.model_validate({**TINY, "text": {}})
    cells = suite.plan(params, [AttentionSpec("standard")], [0, 1])
    assert [c.params["probe"] for c in cells] == ["controlled", "text"] * 2
    (record,) = suite.run_cell(cells[1], params, RunContext())
    assert record.status == "skipped" and "--data-files" in record.error


def test_bad_positive_label_names_the_fix(tmp_path):
    suite = get_suite("bias")
    params = BiasParams.model_validate({**TINY, "positive_label": 3,
                                        "train": {**TRAIN, "steps": 2}})
    cell = suite.plan(params, [AttentionSpec("standard")], [0])[0]
    with pytest.raises(ValueError, match="positive_label=3"):
        suite.run_cell(cell, params, RunContext(run_dir=tmp_path))


@pytest.mark.skipif(not SST2.is_dir(), reason="../shared/data/sst2 is absent")
def test_text_probe_on_sst2(tmp_path):
    suite = get_suite("bias")
    params = BiasParams.model_validate({
        **TINY, "swaps": ["gender", "names_race"],
        "text": {"tokenizer": "byte", "max_len": 48, "max_train": 400, "max_eval": 300,
                 "train": {**TRAIN, "steps": 30, "eval_every": 30}}})
    data = DataOptions(data_files={"train": str(SST2 / "train_full.tsv"),
                                   "test": str(SST2 / "dev.tsv")})
    cell = next(c for c in suite.plan(params, [AttentionSpec("standard")], [0])
                if c.params["probe"] == "text")
    records = suite.run_cell(cell, params, RunContext(run_dir=tmp_path, data=data))
    ok = [r for r in records if r.status == "ok"]
    assert {r.params.get("data") for r in records} == {"test=dev.tsv,train=train_full.tsv"}
    flip = _one(ok, "flip_rate", swap="gender", direction="male->female")
    assert flip.params["source"] == "text" and 5 <= flip.n <= 300
    assert 0.0 <= flip.value <= 1.0
    assert _one(ok, "accuracy", axis="all").n == 300
    skipped = [r for r in records if r.status == "skipped"]
    assert all("no test sentence" in r.error for r in skipped)
    assert _one(ok, "score_gap", probe="template", comparison="female-male").n == 200
    art = json.loads((tmp_path / "artifacts" / f"{cell.id}.json").read_text())
    assert len(art["counterfactual"]["gender/male->female"]["flip"]) == flip.n


def test_cli_end_to_end(tmp_path):
    from harness.cli import app

    profile = {
        "name": "tiny-bias", "seeds": [0], "device": "cpu", "threads": 1,
        "attentions": [{"name": "standard"}, {"name": "linear"}],
        "suites": {"bias": {**TINY, "corpus": {"n_train": 400, "n_val": 100, "n_test": 300},
                            "train": {**TRAIN, "steps": 20, "eval_every": 20},
                            "audit_axes": ["gender"], "n_boot": 50, "text": {}}},
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(profile))
    out = tmp_path / "runs"
    result = CliRunner().invoke(app, ["run", "bias", "--profile", str(path), "--out", str(out),
                                      "--no-progress", "--no-report"])
    assert result.exit_code == 0, result.output
    (run_dir,) = [p for p in out.iterdir() if p.is_dir() and not p.is_symlink()]
    lines = [json.loads(x) for x in (run_dir / "results.jsonl").read_text().splitlines()]
    assert {r["suite"] for r in lines} == {"bias"}
    assert {r["status"] for r in lines} == {"ok", "skipped"}  # text cells: no --data-files
    labels = {r["label"] for r in lines if r["metric"] == "demographic_parity_difference"}
    assert labels == {"standard", "linear"}
    diffs = [r for r in lines if r["metric"] == "demographic_parity_difference_diff_vs_reference"]
    assert len(diffs) == 1 and diffs[0]["label"] == "linear"
    assert diffs[0]["params"]["ci_method"] == "paired_bootstrap"
    assert diffs[0]["cell"] == "summary:bias"
    assert any(r["metric"] == "significant_increase" for r in lines)
    assert len(list((run_dir / "artifacts").glob("*.json"))) == 2
