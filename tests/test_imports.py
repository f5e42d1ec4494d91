"""The module graph of textgym, agents, discriminators and train.py: no cycles, one direction.

The graph is read from the source with ``ast``, not by importing: every ``import`` and
``from ... import`` statement counts, at module level or inside a function or class (an import
inside a function still couples the two modules, and a cycle through one fails at call time
instead of import time). ``from pkg import name`` is an edge to the submodule ``pkg.name`` when
that module exists, else to ``pkg``. Importing a submodule is not counted as importing its
parent package (``import a.b`` runs ``a/__init__.py`` first, but a package that imports its
own submodules would otherwise always be a cycle).

Rules:

- no cycle among the modules;
- ``discriminators`` imports nothing from ``textgym``, ``agents`` or ``train``;
- ``textgym`` imports nothing from ``agents`` or ``train``; ``agents`` nothing from ``train``;
  except the application layer ``APPLICATIONS`` (``textgym.study``, which drives ``agents`` like
  ``train.py`` does), which no module of the packages may import;
- the generic machinery of ``textgym`` (rewards, scorers, sampling, masks, protocols, env,
  metrics, the SB3 bridge) does not import the concrete benchmark oracle ``textgym.oracle``:
  a scorer that wraps the oracle takes any object of a protocol of ``textgym.protocols``.
"""
from __future__ import annotations

import ast
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Set, Tuple

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("textgym", "agents", "discriminators")
SCRIPTS = ("train.py",)

#: textgym modules that must work with any model and so must not import the concrete oracle.
GENERIC = ("textgym.rewards", "textgym.scorers", "textgym.sampling", "textgym.masks", "textgym.protocols",
           "textgym.env", "textgym.metrics", "textgym.sb3")

#: modules above agents (run as ``python -m``): exempt from FORBIDDEN, imported by none of the packages.
APPLICATIONS = ("textgym.study",)

#: package -> the packages (and scripts) it must never import.
FORBIDDEN = {
    "discriminators": ("textgym", "agents", "train"),
    "textgym": ("agents", "train"),
    "agents": ("train",),
}


def module_files(root: Path = ROOT) -> Dict[str, Path]:
    """Dotted module name -> source file, for every module of PACKAGES and every script."""
    out: Dict[str, Path] = {}
    for pkg in PACKAGES:
        for path in sorted((root / pkg).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    for script in SCRIPTS:
        if (root / script).is_file():
            out[Path(script).stem] = root / script
    return out


def _imported_names(tree: ast.AST, module: str, is_package: bool) -> Iterator[Tuple[str, Optional[str], int]]:
    """``(base, name, line)`` of every import in ``tree``: ``import a.b`` gives ``("a.b", None)``,
    ``from a import b`` gives ``("a", "b")`` (relative imports resolved against ``module``)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, None, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module.split(".") if is_package else module.split(".")[:-1]
                anchor = package[: len(package) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                yield base, alias.name, node.lineno
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and node.func.attr == "import_module" and node.args
              and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            yield node.args[0].value, None, node.lineno  # importlib.import_module("a.b")


def _resolve(base: str, name: Optional[str], modules: Set[str]) -> Optional[str]:
    """The module of ours that an import reaches, or None for a third-party one."""
    if name is not None and name != "*" and f"{base}.{name}" in modules:
        return f"{base}.{name}"
    parts = base.split(".")
    for i in range(len(parts), 0, -1):  # the longest prefix that is one of our modules
        candidate = ".".join(parts[:i])
        if candidate in modules:
            return candidate
    return None


def import_graph(root: Path = ROOT) -> Dict[str, Dict[str, int]]:
    """module -> {imported module of ours: line of the first such import}."""
    files = module_files(root)
    modules = set(files)
    graph: Dict[str, Dict[str, int]] = {}
    for module, path in files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        edges: Dict[str, int] = {}
        for base, name, line in _imported_names(tree, module, path.name == "__init__.py"):
            target = _resolve(base, name, modules)
            if target is not None and target != module:
                edges.setdefault(target, line)
        graph[module] = edges
    return graph


def find_cycle(graph: Dict[str, Dict[str, int]]) -> Optional[List[str]]:
    """One cycle of ``graph`` as a path ``[m0, m1, ..., m0]``, or None."""
    WHITE, GREY, BLACK = 0, 1, 2
    color = dict.fromkeys(graph, WHITE)
    for start in sorted(graph):
        if color[start] != WHITE:
            continue
        stack: List[Tuple[str, Iterator[str]]] = [(start, iter(sorted(graph[start])))]
        path = [start]
        color[start] = GREY
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                color[node] = BLACK
                stack.pop()
                path.pop()
            elif color.get(child, BLACK) == GREY:
                return path[path.index(child):] + [child]
            elif color.get(child) == WHITE:
                color[child] = GREY
                stack.append((child, iter(sorted(graph[child]))))
                path.append(child)
    return None


def _describe(graph: Dict[str, Dict[str, int]], cycle: List[str]) -> str:
    files = module_files()
    steps = [f"{a} -> {b} ({files[a].relative_to(ROOT)}:{graph[a][b]})" for a, b in zip(cycle[:-1], cycle[1:], strict=True)]
    return "import cycle: " + " -> ".join(cycle) + "\n  " + "\n  ".join(steps)


def _top(module: str) -> str:
    return module.split(".")[0]


# ---------------------------------------------------------------------------- the checker itself
def test_graph_reader_sees_function_level_and_from_imports(tmp_path):
    pkg = tmp_path / "textgym"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("from textgym.a import f\n")
    (pkg / "a.py").write_text("def f():\n    from textgym import b\n    return b\n")
    (pkg / "b.py").write_text("from . import a\nimport numpy\n")
    graph = import_graph(tmp_path)
    assert graph == {"textgym": {"textgym.a": 1}, "textgym.a": {"textgym.b": 2}, "textgym.b": {"textgym.a": 1}}
    assert find_cycle(graph) == ["textgym.a", "textgym.b", "textgym.a"]
    assert find_cycle({"x": {"y": 1}, "y": {}}) is None


# ---------------------------------------------------------------------------- the rules
def test_no_import_cycle():
    graph = import_graph()
    assert {"textgym", "textgym.env", "agents", "discriminators", "train"} <= set(graph)
    cycle = find_cycle(graph)
    assert cycle is None, _describe(graph, cycle)


def test_dependency_direction():
    graph = import_graph()
    files = module_files()
    def app(name: str) -> bool:  # an application module, or a module of an application package
        return any(name == a or name.startswith(a + ".") for a in APPLICATIONS)

    bad = [f"{files[m].relative_to(ROOT)}:{line} ({m}) imports {t}"
           for m, edges in graph.items() for t, line in edges.items()
           if _top(t) in FORBIDDEN.get(_top(m), ()) and not app(m)]
    bad += [f"{files[m].relative_to(ROOT)}:{line} ({m}) imports the application {t}"
            for m, edges in graph.items() for t, line in edges.items() if app(t) and not app(m)]
    assert not bad, "imports against the dependency direction (discriminators <- textgym <- agents <- train):\n  " + \
        "\n  ".join(bad)


def test_generic_code_does_not_import_the_oracle():
    graph = import_graph()
    bad = [f"{m} imports textgym.oracle (line {graph[m]['textgym.oracle']})"
           for m in GENERIC if m in graph and "textgym.oracle" in graph[m]]
    assert not bad, "generic code must take any model of a textgym.protocols protocol:\n  " + "\n  ".join(bad)
