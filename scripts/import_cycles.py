"""Import cycles between the harness's packages (imports inside functions count too), and
imports that go against the layers of docs/ARCHITECTURE.md.

Each sub-package (``harness.run``, ``harness.suites``, ...) and each top-level module
(``harness.cli``, ``harness.registry``, ...) is one node; an edge A -> B is any ``import``
statement in A (at module level or inside a function) that names something in B. A cycle is a
strongly connected set of two or more nodes. Imports by name at run time (``importlib``, the
plugin loader's entry-point groups) are not statements and are not counted.

    python scripts/import_cycles.py [HARNESS_DIR]   # cycles, their import sites; exit 1 if any
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "harness"

#: The layers of docs/ARCHITECTURE.md: a package imports only from its own layer or those above
#: (smaller numbers).
LAYERS: dict[str, int] = {
    "harness": 0, "harness.registry": 0, "harness.plugins": 0, "harness.records": 0,
    "harness.attention": 1, "harness.integrations": 1,
    "harness.data": 2, "harness.metrics": 2,
    "harness.models": 3,
    "harness.measure": 4,
    "harness.suites": 5,
    "harness.run": 6,
    "harness.report": 7, "harness.gate": 7, "harness.check": 7,
    "harness.cli": 8,
}


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _node(module: str, root: Path = ROOT) -> str | None:
    """The package-level node of a ``harness...`` module name (None outside the harness);
    ``harness.NAME`` where NAME is no module of the package (``from harness import
    __version__``) is ``harness`` itself."""
    parts = module.split(".")
    if parts[0] != "harness":
        return None
    if len(parts) == 1 or not ((root / parts[1]).is_dir() or (root / f"{parts[1]}.py").is_file()):
        return "harness"
    return f"harness.{parts[1]}"


def _imported(tree: ast.AST, module: str, is_package: bool) -> list[tuple[str, int]]:
    """Every module an import statement names (with its line), relative imports resolved."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module.split(".") if is_package else module.split(".")[:-1]
                package = package[: len(package) - node.level + 1]
                base = ".".join([*package, *([node.module] if node.module else [])])
            # `from harness import run` names the sub-package, not harness/__init__
            found += [(f"{base}.{alias.name}" if base == "harness" else base, node.lineno)
                      for alias in node.names]
    return found


def import_graph(root: Path = ROOT) -> dict[str, dict[str, list[str]]]:
    """node -> imported node -> ``file:line`` of each import statement."""
    graph: dict[str, dict[str, list[str]]] = {}
    for path in sorted(root.rglob("*.py")):
        module = _module_name(path, root)
        source = _node(module, root)
        assert source is not None
        graph.setdefault(source, {})
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for name, line in _imported(tree, module, path.name == "__init__.py"):
            target = _node(name, root)
            if target is not None and target != source:
                where = f"{path.relative_to(root.parent)}:{line}"
                sites = graph[source].setdefault(target, [])
                if where not in sites:
                    sites.append(where)
    return graph


def cycles(graph: dict[str, dict[str, list[str]]]) -> list[list[str]]:
    """Strongly connected sets of two or more nodes (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, {}):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def layer_violations(graph: dict[str, dict[str, list[str]]]) -> list[str]:
    """Imports from a lower layer (or from a package no layer names)."""
    found = []
    for source, targets in sorted(graph.items()):
        for target, sites in sorted(targets.items()):
            if source not in LAYERS or target not in LAYERS:
                unknown = source if source not in LAYERS else target
                found.append(f"{unknown}: no layer; add it to LAYERS and docs/ARCHITECTURE.md")
            elif LAYERS[target] > LAYERS[source]:
                found.append(f"{source} (layer {LAYERS[source]}) imports {target} (layer"
                             f" {LAYERS[target]}) at {', '.join(sites)}")
    return sorted(set(found))


def main() -> int:
    graph = import_graph(Path(sys.argv[1]).resolve() if len(sys.argv) > 1 else ROOT)
    found = cycles(graph)
    edges = sum(len(targets) for targets in graph.values())
    print(f"{len(graph)} packages/modules, {edges} import edges, {len(found)} cycle(s)")
    for group in found:
        print("cycle: " + " <-> ".join(group))
        for a in group:
            for b in group:
                for where in graph[a].get(b, []):
                    print(f"  {a} -> {b}  {where}")
    upward = layer_violations(graph)
    for line in upward:
        print("layer: " + line)
    return 1 if found or upward else 0


if __name__ == "__main__":
    sys.exit(main())
