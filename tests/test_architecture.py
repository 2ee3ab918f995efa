"""The package layout: no import cycle between the harness's packages (imports inside functions
count too) and no import against the layers (scripts/import_cycles.py); every folder installed."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _script():
    spec = importlib.util.spec_from_file_location("import_cycles",
                                                  REPO / "scripts" / "import_cycles.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_no_import_cycle_between_the_harness_packages():
    script = _script()
    graph = script.import_graph()
    assert {"harness.run", "harness.suites", "harness.plugins"} <= set(graph)
    assert script.cycles(graph) == []
    assert script.layer_violations(graph) == []


def test_a_cycle_through_a_function_level_import_is_found(tmp_path):
    root = tmp_path / "harness"
    for package, body in (("run", "from harness.suites import x\n"),
                          ("suites", "x = 1\ndef f():\n    from ..run import y\n"),
                          ("data", "from harness import registry\n")):
        (root / package).mkdir(parents=True)
        (root / package / "__init__.py").write_text(body)
    (root / "__init__.py").write_text("")
    (root / "registry.py").write_text("import harness.data.things\n")
    script = _script()
    graph = script.import_graph(root)
    assert graph["harness.suites"] == {"harness.run": ["harness/suites/__init__.py:3"]}
    assert script.cycles(graph) == [["harness.data", "harness.registry"],
                                    ["harness.run", "harness.suites"]]
    assert script.layer_violations(graph) == [
        "harness.registry (layer 0) imports harness.data (layer 2) at harness/registry.py:1",
        "harness.suites (layer 5) imports harness.run (layer 6) at harness/suites/__init__.py:3"]


def test_every_folder_of_the_package_is_listed_for_installation():
    """A folder under harness/ missing from pyproject's explicit `packages` list is left out of
    (or only warned about in) a non-editable install such as asv's environments."""
    try:
        import tomllib
    except ImportError:  # Python 3.10
        tomllib = pytest.importorskip("tomli")
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
                 ["packages"])
    root = REPO / "harness"
    folders = {".".join(("harness", *d.relative_to(root).parts)).rstrip(".")
               for d in [root, *root.rglob("*")]
               if d.is_dir() and d.name != "__pycache__" and any(
                   f.is_file() and f.suffix != ".pyc" for f in d.iterdir())}
    assert folders - listed == set(), "add these to [tool.setuptools] packages in pyproject.toml"


def _long_functions_script():
    spec = importlib.util.spec_from_file_location("long_functions",
                                                  REPO / "scripts" / "long_functions.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_at_most_five_functions_over_80_lines():
    script = _long_functions_script()
    found = script.long_functions()
    assert len(found) <= 5, "split these into named helpers: " + ", ".join(
        f"{name} ({length} lines)" for name, length in found)
    assert script.main([]) == 0


def test_long_functions_counts_spans_methods_and_nested_functions(tmp_path, capsys):
    root = tmp_path / "harness"
    (root / "sub").mkdir(parents=True)
    body = "\n".join(f"    x{i} = {i}" for i in range(79))
    (root / "a.py").write_text(f"def short():\n{body}\n\n\ndef long():\n{body}\n    return 1\n")
    (root / "sub" / "b.py").write_text(
        "class K:\n    @property\n    def method(self):\n"
        + "\n".join(f"        y{i} = {i}" for i in range(90))
        + "\n        def inner():\n" + "\n".join(f"            z{i} = {i}" for i in range(85))
        + "\n")
    script = _long_functions_script()
    assert script.long_functions(root) == [("harness/sub/b.py:K.method", 177),
                                           ("harness/sub/b.py:K.method.inner", 86),
                                           ("harness/a.py:long", 81)]
    assert script.long_functions(root, lines=85) == [("harness/sub/b.py:K.method", 177),
                                                     ("harness/sub/b.py:K.method.inner", 86)]
    assert script.main([str(root), "--max", "3"]) == 0
    assert script.main([str(root), "--max", "2"]) == 1
    out = capsys.readouterr().out
    assert "  177  harness/sub/b.py:K.method\n" in out
    assert "3 functions over 80 lines (at most 2 allowed)" in out


#: what starting a process looks like in Python source
_PROCESS_CALLS = re.compile(r"ProcessPoolExecutor|multiprocessing|subprocess")


def process_starters(root: Path) -> list[str]:
    """``path:line`` of every line under ``root`` that names a way to start a process."""
    return [f"{path.relative_to(root.parent)}:{n}" for path in sorted(root.rglob("*.py"))
            for n, line in enumerate(path.read_text().splitlines(), 1)
            if _PROCESS_CALLS.search(line)]


def test_suites_never_start_processes(tmp_path):
    """The executors own every worker process (a suite declares replicas, `Suite.replicas`);
    the memory suite's fork server is a measuring instrument in harness/measure."""
    assert process_starters(REPO / "harness" / "suites") == []
    planted = tmp_path / "suites"
    planted.mkdir()
    (planted / "timed.py").write_text("import os\nimport multiprocessing\n")
    assert process_starters(planted) == ["suites/timed.py:2"]
