"""Plugins: the generic registry, entry points, --plugin / profile plugins, the example package
run through every suite and the audit, in fresh processes (memory children included)."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

import harness.data
import harness.plugins as hplugins
import harness.run.executors
import harness.suites  # noqa: F401  (every grouped registry exists before `isolated` saves it)
from harness.attention import base, list_attentions, load_plugins, plugins
from harness.attention.plugins import PluginError, discover_entry_points, loaded_plugin_specs
from harness.cli import app
from harness.registry import Registry, RegistryError, grouped_registries

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "harness-sliding-window"
SRC = EXAMPLE / "src"


@pytest.fixture
def isolated():
    """Loading plugins changes process-wide state: put registries, path and modules back."""
    registries = grouped_registries()
    saved = {group: ({n: replace(e) for n, e in reg._entries.items()}, reg._discovered)
             for group, reg in registries.items()}
    loaded, eps = dict(hplugins._LOADED), list(hplugins._ENTRY_POINTS_LOADED)
    path, modules = list(sys.path), set(sys.modules)
    yield
    for group, reg in registries.items():
        entries, discovered = saved[group]
        reg._entries.clear()
        reg._entries.update(entries)
        reg._discovered = discovered
    hplugins._LOADED.clear()
    hplugins._LOADED.update(loaded)
    hplugins._ENTRY_POINTS_LOADED[:] = eps
    sys.path[:] = path
    kept = (sys.prefix, sys.base_prefix, str(REPO / "harness"))
    for name in set(sys.modules) - modules:  # plugin modules; not the libraries they imported
        file = getattr(sys.modules[name], "__file__", None)
        if file and not str(file).startswith(kept):
            del sys.modules[name]


def _module(tmp_path: Path, name: str, body: str) -> None:
    (tmp_path / f"{name}.py").write_text(body)
    sys.path.insert(0, str(tmp_path))


def _dist_info(root: Path, entry: str = "harness_sliding.attention:SlidingWindowAttention",
               name: str = "sliding_window") -> Path:
    """What pip writes for the example package: metadata with its entry point."""
    info = root / "harness_sliding_window-0.1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: harness-sliding-window\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text(f"[harness.attentions]\n{name} = {entry}\n")
    (info / "top_level.txt").write_text("harness_sliding\n")
    return root


# ----------------------------------------------------------------------------- registry
def test_registry_refuses_duplicates_naming_both_origins():
    reg: Registry[object] = Registry("widget")
    reg.add("a", int, origin="built-in")
    assert reg.add("a", int) is int  # the same object again: a no-op
    with pytest.raises(RegistryError, match=r"'a' from pkg 2\.0 clashes with .*'a' from built-in"):
        reg.add("a", float, origin="pkg", version="2.0")
    with pytest.raises(RegistryError, match="unknown widget 'b'; registered: a"):
        reg.entry("b")


def test_registry_lazy_entries_import_on_first_use():
    reg: Registry[object] = Registry("widget")
    reg.add_lazy("path", "os.path:join", origin="dist", version="1")
    reg.add_lazy("bad", "no_such_module_xyz:thing", origin="dist")
    assert reg.names() == ["bad", "path"]
    assert not reg._entries["path"].loaded
    assert reg["path"] is os.path.join and reg.origin("path") == "dist"
    with pytest.raises(RegistryError, match="cannot import no_such_module_xyz:thing"):
        reg.entry("bad")


def test_tasks_and_suites_share_the_registry():
    from harness.data.registry import _TASKS, register_task
    from harness.suites.base import _SUITES, get_suite

    assert isinstance(_TASKS, Registry) and isinstance(_SUITES, Registry)
    assert _TASKS.origin("recall") == "built-in" and _SUITES.origin("memory") == "built-in"
    with pytest.raises(ValueError, match=r"task 'recall' from .* clashes with"):
        register_task("recall")(lambda: None)
    with pytest.raises(ValueError, match="unknown suite 'speed'"):
        get_suite("speed")


# ----------------------------------------------------------------------------- loading
def test_plugin_spec_registers_with_origin_and_version(isolated):
    sys.path.insert(0, str(SRC))
    assert "sliding_window" not in list_attentions()
    (info,) = load_plugins(["harness_sliding"])
    assert info.attentions == ("sliding_window",) and info.version == "0.1.0"
    assert "sliding_window" in list_attentions()
    assert base.attention_origin("sliding_window") == ("module harness_sliding", "0.1.0")
    assert base.attention_origin("standard") == ("built-in", None)
    assert loaded_plugin_specs() == ["harness_sliding"]
    load_plugins(["harness_sliding"])  # idempotent


def test_failing_plugin_names_plugin_and_error(isolated, tmp_path):
    _module(tmp_path, "broken_plugin_mod", "import no_such_dependency_xyz\n")
    with pytest.raises(PluginError, match=r"plugin 'broken_plugin_mod' failed to import: "
                                          r"ModuleNotFoundError: .*no_such_dependency_xyz"):
        load_plugins(["broken_plugin_mod"])
    _module(tmp_path, "empty_plugin_mod", "X = 1\n")
    with pytest.raises(PluginError, match="registered nothing"):
        load_plugins(["empty_plugin_mod"])
    with pytest.raises(PluginError, match="is not an Attention, Suite or Executor subclass"):
        load_plugins(["empty_plugin_mod:X"])


def test_plugin_clash_with_builtin_names_both_origins(isolated, tmp_path):
    _module(tmp_path, "clash_plugin_mod", (
        "from harness.attention.standard import StandardAttention\n"
        "class Mine(StandardAttention):\n    name = 'standard'\n"))
    with pytest.raises(PluginError, match=r"'standard' from module clash_plugin_mod clashes with"
                                          r" attention 'standard' from built-in"):
        load_plugins(["clash_plugin_mod:Mine"])


def test_entry_point_is_discovered_lazily_with_distribution_origin(isolated, tmp_path):
    sys.path[:0] = [str(_dist_info(tmp_path)), str(SRC)]
    discover_entry_points(force=True)
    assert "sliding_window" in list_attentions()
    assert "harness_sliding" not in sys.modules  # listed, not imported
    infos = load_plugins()
    assert "harness_sliding" in sys.modules
    assert any(i.entry_point == "sliding_window" for i in infos)
    assert base.attention_origin("sliding_window") == ("harness-sliding-window", "0.1.0")


def test_entry_point_clashing_with_builtin_is_refused(isolated, tmp_path):
    sys.path.insert(0, str(_dist_info(tmp_path, name="linear")))
    with pytest.raises(RegistryError, match=r"'linear' from harness-sliding-window 0\.1\.0"
                                            r" .*clashes with attention 'linear' from built-in"):
        discover_entry_points(force=True)


def test_cli_bad_plugin_exits_2_and_runs_nothing(isolated, tmp_path):
    _module(tmp_path, "broken_cli_plugin", "raise RuntimeError('boom at import')\n")
    out = tmp_path / "runs"
    result = CliRunner().invoke(app, ["run", "--plugin", "broken_cli_plugin", "--out", str(out),
                                      "--no-progress"])
    assert result.exit_code == 2
    assert "broken_cli_plugin" in result.output and "boom at import" in result.output
    assert not out.exists()
    result = CliRunner().invoke(app, ["check", "standard", "--plugin", "broken_cli_plugin"])
    assert result.exit_code == 2


# ----------------------------------------------------------------------------- end to end
def _tiny_quick(plugin_in_profile: bool) -> dict:
    """The quick profile, shrunk (same suites and keys; tiny sizes), on standard + the plugin."""
    quick = yaml.safe_load((REPO / "suites" / "quick.yaml").read_text())
    quick.pop("variants", None)
    quick.update(name="quick-tiny", device="cpu", threads=1, memory_budget="2GiB",
                 attentions=[{"name": "standard"},
                             {"name": "sliding_window", "options": {"window": 8}}])
    if plugin_in_profile:
        quick["plugins"] = ["harness_sliding"]
    s = quick["suites"]
    small = {"hidden_size": 16, "num_layers": 1, "num_heads": 2, "ffn_size": 32}
    s["accuracy"].update(
        tasks=[{"name": "recall", "params": {"n_train": 64, "n_val": 24, "n_test": 40,
                                              "seq_len": 24, "n_pairs": 4, "n_queries": 2,
                                              "num_keys": 12, "num_values": 4}}],
        text=None, n_boot=50, attention_options={"sliding_window": {"window": 4}},
        train={**s["accuracy"]["train"], **small, "steps": 6, "eval_every": 3,
               "batch_size": 16})
    s["throughput"].update(seq_lens=[64, 128], heads=2, head_dim=8, min_run_time=0.01,
                           warmup=0, passes=["forward"],
                           model={"seq_lens": [16], "batch": 2, "hidden_size": 16,
                                  "num_layers": 1, "num_heads": 2})
    s["memory"].update(seq_lens=[128, 256], heads=2, head_dim=8, modes=["forward"])
    s["bias"].update(corpus={**s["bias"]["corpus"], "n_train": 300, "n_val": 60, "n_test": 200},
                     train={**s["bias"]["train"], **small, "steps": 10, "eval_every": 10},
                     audit_axes=["gender"], swaps=["gender"], template_axes=["gender"],
                     n_boot=50, text={}, attention_options={})
    return quick


def _forget_plugin(module: str) -> None:
    """Drop a --plugin/profile plugin from this process, as if it were a new one."""
    registries = {reg.kind: reg for reg in grouped_registries().values()}
    for name, info in list(plugins._LOADED.items()):
        if info.spec == module:
            for kind, reg in registries.items():
                for registered in getattr(info, f"{kind}s"):
                    del reg[registered]
            del plugins._LOADED[name]
    for name in [m for m in sys.modules if m == module or m.startswith(module + ".")]:
        del sys.modules[name]


def test_example_plugin_runs_the_quick_profile_end_to_end(isolated, tmp_path):
    """The profile's `plugins:` loads the example; every suite runs on it (the memory suite
    measures it in forked children, which load it again); run.json records it, and a resume in
    a process that has not loaded it asks for `--plugin` again instead of importing it."""
    sys.path.insert(0, str(SRC))
    profile = tmp_path / "quick-tiny.yaml"
    profile.write_text(yaml.safe_dump(_tiny_quick(plugin_in_profile=True)))
    out = tmp_path / "runs"
    done = CliRunner().invoke(app, ["run", "-p", str(profile), "--out", str(out),
                                    "--no-progress"])
    assert done.exit_code == 0, done.output
    run_dir = (out / "latest").resolve()
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["profile"]["plugins"] == ["harness_sliding"]
    assert [p["spec"] for p in meta["plugins"]] == ["harness_sliding"]
    lines = [json.loads(x) for x in (run_dir / "results.jsonl").read_text().splitlines()]
    mine = [r for r in lines if r["attention"] == "sliding_window"]
    assert {r["suite"] for r in mine} == {"accuracy", "throughput", "memory", "bias"}
    bad = [r for r in mine if r["status"] == "error"]
    assert not bad, bad
    peaks = [r for r in mine if r["metric"] == "peak_bytes"]
    assert peaks and all(r["status"] == "ok" and r["value"] > 0 for r in peaks)
    assert (run_dir / "index.html").is_file()

    _forget_plugin("harness_sliding")
    assert "sliding_window" not in list_attentions()
    refused = CliRunner().invoke(app, ["run", "--resume", str(run_dir), "--no-progress",
                                       "--no-report"])
    assert refused.exit_code == 2, refused.output
    assert "--plugin harness_sliding" in refused.output
    assert "sliding_window" not in list_attentions()
    resumed = CliRunner().invoke(app, ["run", "--resume", str(run_dir), "--no-progress",
                                       "--no-report", "--plugin", "harness_sliding"])
    assert resumed.exit_code == 0, resumed.output
    assert "sliding_window" in list_attentions()


def test_installed_entry_point_shows_in_list_and_check(isolated, tmp_path):
    sys.path[:0] = [str(_dist_info(tmp_path / "site")), str(SRC)]
    discover_entry_points(force=True)
    listed = CliRunner().invoke(app, ["list"])
    assert listed.exit_code == 0, listed.output
    row = next(line for line in listed.output.splitlines() if "sliding_window" in line)
    assert "harness-sliding-window" in row and "0.1.0" in row
    checked = CliRunner().invoke(app, [
        "check", "sliding_window", "--only", "exactness,causality,padding,bad_inputs",
        "--json", str(tmp_path / "audit")])
    assert checked.exit_code == 0, checked.output
    records = [json.loads(x) for x in (tmp_path / "audit" / "results.jsonl").read_text()
               .splitlines()]
    assert {r["params"]["check"] for r in records} == {"exactness", "causality", "padding",
                                                        "bad_inputs"}
    assert all(r["value"] == 1.0 for r in records)
    meta = json.loads((tmp_path / "audit" / "run.json").read_text())
    assert meta["plugins"][0]["origin"] == "harness-sliding-window"


# ----------------------------------------------------------------------------- every registry
FIDELITY_SRC = REPO / "examples" / "harness-example-suite" / "src"

PLANTED = """
from harness.attention.standard import StandardAttention
from harness.data.registry import register_task
from harness.data.recall import load_recall
from harness.run.executors import SerialExecutor, register_executor


class Planted(StandardAttention):
    name = "planted_attn"


@register_executor
class Inline(SerialExecutor):
    name = "inline"


@register_task("planted_recall")
def planted_recall(*, seq_len: int = 16):
    return load_recall(seq_len=seq_len)
"""


def test_one_plugin_registers_in_every_registry(isolated, tmp_path):
    """`--plugin MODULE` loads whatever a module registers: an attention named by ATTR, an
    executor and a task by their decorators, a suite from another package."""
    from harness.data import list_tasks
    from harness.run.executors import list_executors, make_executor
    from harness.suites import list_suites

    _module(tmp_path, "planted_mod", PLANTED)
    sys.path.insert(0, str(FIDELITY_SRC))
    infos = {i.spec: i for i in load_plugins(["planted_mod", "planted_mod:Planted",
                                              "harness_fidelity"])}
    assert infos["planted_mod"].executors == ("inline",)
    assert infos["planted_mod"].tasks == ("planted_recall",)
    assert infos["planted_mod:Planted"].attentions == ("planted_attn",)
    assert infos["harness_fidelity"].suites == ("fidelity",)
    assert infos["harness_fidelity"].version == "0.1.0"
    assert "inline" in list_executors() and "planted_recall" in list_tasks()
    assert "fidelity" in list_suites() and "planted_attn" in list_attentions()
    assert type(make_executor("inline")).__name__ == "Inline"
    assert base.attention_origin("standard") == ("built-in", None)  # imported by the plugin


@pytest.mark.slow
def test_suite_plugin_runs_through_the_cli_on_the_pool(isolated, tmp_path):
    """A suite module from another package, named by --plugin: its cells run in pool workers,
    run.json records it, the report shows it; a resume asks for the plugin again."""
    sys.path.insert(0, str(FIDELITY_SRC))
    profile = tmp_path / "fidelity.yaml"
    profile.write_text(yaml.safe_dump({
        "name": "fidelity-tiny", "device": "cpu", "attentions": [{"name": "standard"},
                                                                 {"name": "linear"}],
        "suites": {"fidelity": {"seq_lens": [16, 32], "heads": 1, "head_dim": 4}}}))
    out = tmp_path / "runs"
    done = CliRunner().invoke(app, ["run", "fidelity", "-p", str(profile), "--out", str(out),
                                    "--plugin", "harness_fidelity", "--executor", "pool",
                                    "--workers", "1", "--no-progress"])
    assert done.exit_code == 0, done.output
    run_dir = (out / "latest").resolve()
    records = [json.loads(x) for x in (run_dir / "results.jsonl").read_text().splitlines()]
    assert len(records) == 2 * 2 * 2 and {r["status"] for r in records} == {"ok"}
    errors = {r["attention"]: r["value"] for r in records if r["metric"] == "max_abs_error"
              and r["params"]["seq_len"] == 32}
    assert errors["standard"] < 1e-5 < errors["linear"]  # softmax is exact, linear is not
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["executor"]["name"] == "pool"
    assert meta["plugins"][0]["suites"] == ["fidelity"]
    html = (run_dir / "index.html").read_text(encoding="utf-8")
    assert 'id="fidelity"' in html and "max abs error vs softmax" in html


def test_plugin_exiting_at_import_is_exit_2_naming_it(isolated, tmp_path):
    """A plugin that calls sys.exit(0) while being imported stops run, check and a profile's
    plugins with exit 2 naming it, before anything runs (it used to end them with exit 0)."""
    _module(tmp_path, "exiting_plugin_mod", "import sys\nsys.exit(0)\n")
    with pytest.raises(PluginError, match=r"plugin 'exiting_plugin_mod' failed to import: "
                                          r"SystemExit: 0 \(it called sys.exit"):
        load_plugins(["exiting_plugin_mod"])
    out = tmp_path / "runs"
    ran = CliRunner().invoke(app, ["run", "--plugin", "exiting_plugin_mod", "--out", str(out),
                                   "--no-progress"])
    assert ran.exit_code == 2 and "exiting_plugin_mod" in ran.output
    assert not out.exists()
    checked = CliRunner().invoke(app, ["check", "standard", "--plugin", "exiting_plugin_mod"])
    assert checked.exit_code == 2 and "exiting_plugin_mod" in checked.output
    profile = tmp_path / "p.yaml"
    profile.write_text(yaml.safe_dump({"name": "p", "plugins": ["exiting_plugin_mod"],
                                       "attentions": [{"name": "standard"}],
                                       "suites": {"memory": {"seq_lens": [64]}}}))
    from_profile = CliRunner().invoke(app, ["run", "-p", str(profile), "--out", str(out),
                                            "--no-progress"])
    assert from_profile.exit_code == 2 and "exiting_plugin_mod" in from_profile.output
    assert not out.exists()
    _module(tmp_path, "exiting_entry_mod", "raise SystemExit(3)\n")
    reg: Registry[object] = Registry("widget")
    reg.add_lazy("w", "exiting_entry_mod:W", origin="dist")
    with pytest.raises(RegistryError, match="cannot import exiting_entry_mod:W: SystemExit: 3"):
        reg.entry("w")


def test_resume_never_imports_code_a_run_file_names(isolated, tmp_path, monkeypatch):
    """A run dir whose run.json names a plugin module kept in the run dir: resuming it from
    inside it imports nothing (exit 2 listing the --plugin to pass); the current directory is
    never put on the import path."""
    sys.path.insert(0, str(FIDELITY_SRC))
    planted = tmp_path / "planted"
    planted.mkdir()
    marker = tmp_path / "imported"
    (planted / "sneaky_plugin_mod.py").write_text(
        f"open({str(marker)!r}, 'w').write('ran')\n"
        "from harness.attention.standard import StandardAttention\n"
        "from harness.attention import register_attention\n"
        "@register_attention\nclass Sneaky(StandardAttention):\n    name = 'sneaky'\n")
    sys.path.insert(0, str(planted))
    profile = tmp_path / "p.yaml"
    profile.write_text(yaml.safe_dump({
        "name": "tiny", "device": "cpu", "attentions": [{"name": "standard"}],
        "suites": {"fidelity": {"seq_lens": [16], "heads": 1, "head_dim": 4}}}))
    out = tmp_path / "runs"
    done = CliRunner().invoke(app, ["run", "fidelity", "-p", str(profile), "--out", str(out),
                                    "--plugin", "harness_fidelity", "--plugin",
                                    "sneaky_plugin_mod", "--executor", "serial",
                                    "--no-progress", "--no-report"])
    assert done.exit_code == 0, done.output
    run_dir = (out / "latest").resolve()
    (planted / "sneaky_plugin_mod.py").rename(run_dir / "sneaky_plugin_mod.py")
    sys.path.remove(str(planted))
    _forget_plugin("sneaky_plugin_mod")
    marker.unlink()
    monkeypatch.chdir(run_dir)
    refused = CliRunner().invoke(app, ["run", "--resume", ".", "--no-progress", "--no-report",
                                       "--plugin", "harness_fidelity"])
    assert refused.exit_code == 2, refused.output
    assert "--plugin sneaky_plugin_mod" in refused.output
    assert "--plugin harness_fidelity" not in refused.output  # passed already
    assert not marker.exists() and "sneaky_plugin_mod" not in sys.modules
    named = CliRunner().invoke(app, ["run", "--resume", ".", "--no-progress", "--no-report",
                                     "--plugin", "harness_fidelity", "--plugin",
                                     "sneaky_plugin_mod"])
    assert named.exit_code == 2 and "current directory is not searched" in named.output
    assert not marker.exists()


def test_entry_points_of_every_group_are_listed_lazily_and_loaded(isolated, tmp_path):
    """One installed package enrolls an executor and a task through their groups: listed
    without importing, imported by load_plugins, origin the distribution."""
    from harness.data import list_tasks
    from harness.data.registry import _TASKS
    from harness.run.executors import _EXECUTORS, list_executors

    _module(tmp_path, "planted_ep_mod", PLANTED)
    info = tmp_path / "harness_planted-2.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: harness-planted\nVersion: 2.0\n")
    (info / "entry_points.txt").write_text(
        "[harness.executors]\ninline = planted_ep_mod:Inline\n"
        "[harness.tasks]\nplanted_recall = planted_ep_mod:planted_recall\n")
    discover_entry_points(force=True)
    assert "inline" in list_executors() and "planted_recall" in list_tasks()
    assert "planted_ep_mod" not in sys.modules  # listed, not imported
    infos = [i for i in load_plugins() if i.origin == "harness-planted"]
    assert sorted((i.executors, i.tasks) for i in infos) == [
        ((), ("planted_recall",)), (("inline",), ())]
    assert "planted_ep_mod" in sys.modules
    assert _EXECUTORS.origin("inline") == _TASKS.origin("planted_recall") == "harness-planted"
    assert _EXECUTORS.version("inline") == "2.0"
