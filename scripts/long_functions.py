"""Functions longer than N lines in the harness package, found by walking each module's syntax
tree.

A function's length is its span in the source, from its ``def`` line (decorators excluded) to its
last line, docstring and blank lines included. A function nested in another is listed on its own
and also counts in its parent's span. Methods are named ``Class.method``.

    python scripts/long_functions.py [--lines N] [--max M] [HARNESS_DIR]
        # each function over N lines (default 80), longest first, and their total;
        # exit 1 when more than M (default 5) are listed
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "harness"


def _functions(tree: ast.AST, prefix: str = "") -> list[tuple[str, int]]:
    """(qualified name, length in lines) of every function and method in ``tree``, nested ones
    included."""
    found = []
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            name = f"{prefix}{node.name}"
            found.append((name, node.end_lineno - node.lineno + 1))
            found += _functions(node, f"{name}.")
        elif isinstance(node, ast.ClassDef):
            found += _functions(node, f"{prefix}{node.name}.")
        else:
            found += _functions(node, prefix)
    return found


def long_functions(root: Path = ROOT, lines: int = 80) -> list[tuple[str, int]]:
    """(``path:function``, length) of each function under ``root`` longer than ``lines`` lines,
    longest first (ties by name)."""
    found = []
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        where = path.relative_to(root.parent).as_posix()
        found += [(f"{where}:{name}", length) for name, length in _functions(tree)
                  if length > lines]
    return sorted(found, key=lambda item: (-item[1], item[0]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", nargs="?", type=Path, default=ROOT,
                        help="the package folder to walk (default: harness/)")
    parser.add_argument("--lines", type=int, default=80,
                        help="list functions longer than this many lines (default 80)")
    parser.add_argument("--max", type=int, default=5,
                        help="exit 1 when more functions than this are listed (default 5)")
    args = parser.parse_args(argv)
    if not args.root.is_dir():
        parser.error(f"{args.root} is not a folder: name the package folder to walk")
    found = long_functions(args.root, args.lines)
    for name, length in found:
        print(f"{length:5d}  {name}")
    print(f"{len(found)} functions over {args.lines} lines (at most {args.max} allowed)")
    return 1 if len(found) > args.max else 0


if __name__ == "__main__":
    sys.exit(main())
