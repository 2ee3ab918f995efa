"""One reference attention, named in the profile and used by every suite's comparisons."""

from __future__ import annotations

import pytest

from harness.records import Record
from harness.suites import RunContext, get_suite


def _rec(suite: str, label: str, metric: str, value: float, **params) -> Record:
    name = label.split("[")[0]
    return Record(suite=suite, attention=name, options={}, params=params, metric=metric,
                  value=value, unit="fraction", higher_is_better=False, ci_low=value - 0.01,
                  ci_high=value + 0.01, interval="ci95", stderr=0.005, n=100, label=label,
                  cell=f"{label}-{metric}")


@pytest.mark.parametrize("reference", ["standard", "standard[sdpa]", "linear"])
def test_bias_compares_with_the_named_reference(reference: str) -> None:
    labels = ["standard", "standard[sdpa]", "linear"]
    where = {"probe": "controlled", "axis": "gender", "seed": 0}
    records = [_rec("bias", lb, "demographic_parity_difference", 0.1 + 0.1 * i, **where)
               for i, lb in enumerate(labels)]
    suite = get_suite("bias")
    params = suite.Params()
    out = suite.summarize(records, params, RunContext(reference=reference))
    diffs = {r.label: r.value for r in out
             if r.metric == "demographic_parity_difference_diff_vs_reference"}
    values = {r.label: r.value for r in records}
    assert set(diffs) == set(labels) - {reference}  # every other label, against the named one
    for label, d in diffs.items():
        assert d == pytest.approx(values[label] - values[reference])
    assert suite.summarize(records, params, RunContext(reference=None)) == []


def test_bias_tests_every_attention_but_the_named_reference_s_own() -> None:
    """The flags test each variant against the run's reference; only other backends of the
    reference's own attention are left out of the tests (a sanity check), whatever it is."""
    labels = ["linear", "linear[relu]", "standard", "standard[sdpa]"]
    records = [_rec("bias", lb, "demographic_parity_difference", 0.1 + 0.1 * i, probe="controlled",
                    axis="gender", seed=0) for i, lb in enumerate(labels)]
    suite = get_suite("bias")
    out = suite.summarize(records, suite.Params(), RunContext(reference="linear"))
    diffs = {r.label for r in out if r.metric == "demographic_parity_difference_diff_vs_reference"}
    tested = {r.label for r in out if r.metric == "increase_p_value"}
    assert diffs == {"linear[relu]", "standard", "standard[sdpa]"}
    assert tested == {"standard", "standard[sdpa]"}


def test_throughput_crossover_against_the_named_reference() -> None:
    fwd = []
    for label, ms in (("standard[sdpa]", (1.0, 4.0)), ("linear", (2.0, 3.0))):
        for n, value in zip((256, 512), ms, strict=True):
            r = _rec("throughput", label, "forward_ms", value, kind="attention", seq_len=n,
                     batch=1)
            r.unit = "ms"
            fwd.append(r)
    suite = get_suite("throughput")
    out = suite.summarize(fwd, suite.Params(), RunContext(reference="standard[sdpa]"))
    crossover = [(r.label, r.value) for r in out if r.metric == "crossover_seq_len"]
    assert crossover == [("linear", 512)]
    other = suite.summarize(fwd, suite.Params(), RunContext(reference="standard"))
    assert [r for r in other if r.metric == "crossover_seq_len"] == []
