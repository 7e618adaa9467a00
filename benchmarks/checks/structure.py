"""The shape of the package in numbers: the longest public signature, root exports, function-level internal imports,
import cycles, the largest module and function, and the files under benchmarks/results.

    python benchmarks/checks/structure.py        # a second, reads the source only
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src"


def module_name(path: Path) -> str:
    """assft.x.y of src/assft/x/y.py (a package's __init__ is the package)."""
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(node: ast.Import | ast.ImportFrom, known: set[str]) -> set[str]:
    """The internal modules an import statement names (a `from pkg import module` names the module)."""
    if isinstance(node, ast.Import):
        return {a.name for a in node.names if a.name in known}
    base = node.module or ""
    out = {f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in known}
    return out or ({base} if base in known else set())


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's components of size > 1."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def measure() -> dict:
    """Every number, from the source tree."""
    files = sorted((SRC / "assft").rglob("*.py"))
    known = {module_name(p) for p in files}
    graph: dict[str, set[str]] = {m: set() for m in known}
    in_functions = at_top = 0
    longest = ("", 0)
    longest_library = ("", 0)  # outside assft.cli, whose commands take one parameter per option
    largest_function = ("", 0)
    largest_module = ("", 0)
    for path in files:
        text = path.read_text()
        tree = ast.parse(text)
        name = module_name(path)
        rel = str(path.relative_to(ROOT))
        if len(text.splitlines()) > largest_module[1]:
            largest_module = (rel, len(text.splitlines()))
        functions = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
        inner = {id(n) for f in functions for n in ast.walk(f)
                 if n is not f and isinstance(n, ast.Import | ast.ImportFrom)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                targets = imported(node, known)
                if targets:
                    graph[name] |= targets - {name}
                    if id(node) in inner:
                        in_functions += 1
                    else:
                        at_top += 1
        public_defs = [n for n in tree.body if isinstance(n, ast.FunctionDef) and not n.name.startswith("_")]
        public_defs += [m for c in tree.body if isinstance(c, ast.ClassDef) and not c.name.startswith("_")
                        for m in c.body if isinstance(m, ast.FunctionDef) and not m.name.startswith("_")]
        for f in public_defs:
            a = f.args
            bound = 1 if a.args and a.args[0].arg in ("self", "cls") else 0
            n = len(a.posonlyargs) + len(a.args) + len(a.kwonlyargs) - bound
            if n > longest[1]:
                longest = (f"{name}.{f.name}", n)
            if n > longest_library[1] and not name.startswith("assft.cli"):
                longest_library = (f"{name}.{f.name}", n)
        for f in functions:
            length = (f.end_lineno or f.lineno) - f.lineno + 1
            if length > largest_function[1]:
                largest_function = (f"{name}.{f.name}", length)
    # A package's __init__ that only hands names on is not a cycle of concepts: drop the package -> child arrows.
    for m in known:
        graph[m] = {t for t in graph[m] if not t.startswith(m + ".")}
    import assft

    results = ROOT / "benchmarks" / "results"
    engine = SRC / "assft" / "campaign" / "engine.py"
    return {"longest_public_signature": list(longest),
            "longest_library_signature": list(longest_library), "root_exports": len(assft.__all__),
            "internal_imports": {"in_functions": in_functions, "at_module_level": at_top},
            "import_cycles": strongly_connected(graph), "largest_module": list(largest_module),
            "largest_function": list(largest_function),
            "engine_py_lines": len(engine.read_text().splitlines()) if engine.exists() else 0,
            "benchmark_result_files": sum(1 for p in results.rglob("*") if p.is_file()) if results.exists() else 0}


if __name__ == "__main__":
    print(json.dumps(measure(), indent=1))
