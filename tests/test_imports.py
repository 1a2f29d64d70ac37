"""The module graph: no import circles anywhere in rag/, app/ and bench/, between packages or inside one;
rag/ never imports app/; the query path never loads the build path.

The graph is read from the source (ast), counting every import: also the ones inside functions (a deferred
import still ties two modules together), the ones under `if TYPE_CHECKING:` (a circle kept only for type
hints is still two modules that each need the other), and a module's import of its own package (`from
rag.embed import X` inside rag/embed/onnx.py, while rag/embed/__init__.py imports onnx, is a circle too).
The query-path check imports the modules in a fresh interpreter and looks at what got loaded.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

from rag.config import PROJECT_ROOT

PACKAGES = ("rag", "app", "bench")
QUERY_PATH = ("rag.pipeline", "rag.retrieve.hybrid", "rag.retrieve.fusion", "rag.index.local", "rag.index.factory",
              "rag.answer.extractive", "rag.answer.question", "rag.answer.spans", "rag.answer.guard", "rag.answer.llm")
BUILD_PATH = ("rag.index.build",)


def _modules() -> dict[str, Path]:
    out = {}
    for package in PACKAGES:
        for path in sorted((PROJECT_ROOT / package).rglob("*.py")):
            parts = path.relative_to(PROJECT_ROOT).with_suffix("").parts
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The modules of `known` that module `name` imports."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            for alias in node.names:
                found.add(f"{base}.{alias.name}")  # `from rag.index import build` imports the module build
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    out = set()
    for target in found:
        while target and target not in known:  # `rag.index.local.Index` -> the module rag.index.local
            target = target.rpartition(".")[0]
        if target and target != name:
            out.add(target)
    return out


def _graph() -> dict[str, set[str]]:
    known = _modules()
    return {name: _imports(name, path, known) for name, path in known.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for v in sorted(graph):
        if v not in index:
            strong(v)
    return out


def test_the_checker_sees_a_circle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_the_checker_reads_every_import(tmp_path: Path) -> None:
    """Inside functions, under TYPE_CHECKING, and of the module's own package: each ties two modules."""
    module = tmp_path / "m.py"
    module.write_text("import os\ndef f():\n    from rag.index import build\n"
                      "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import rag.pipeline\n", encoding="utf-8")
    known = {"rag.index": Path(), "rag.index.build": Path(), "rag.pipeline": Path(), "x.m": module}
    assert _imports("x.m", module, known) == {"rag.index", "rag.index.build", "rag.pipeline"}
    package, inner = tmp_path / "__init__.py", tmp_path / "inner.py"
    package.write_text("from x.inner import Thing\n", encoding="utf-8")
    inner.write_text("def f():\n    from x import Other\n", encoding="utf-8")
    known = {"x": package, "x.inner": inner}
    assert _cycles({name: _imports(name, path, known) for name, path in known.items()}) == [["x", "x.inner"]]


def test_no_import_circles() -> None:
    assert _cycles(_graph()) == []


def test_rag_never_imports_app() -> None:
    bad = {name: sorted(t for t in targets if t == "app" or t.startswith("app."))
           for name, targets in _graph().items() if name == "rag" or name.startswith("rag.")}
    assert {k: v for k, v in bad.items() if v} == {}


def test_the_query_path_does_not_load_the_build_path() -> None:
    code = ("import json, sys\n" + "".join(f"import {m}\n" for m in QUERY_PATH)
            + f"print(json.dumps(sorted(m for m in sys.modules if m in {list(BUILD_PATH)!r})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=PROJECT_ROOT, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
