"""No import cycle in pea_deploy: every `import` statement counts, at module level or inside a
function (a lazy import that only breaks a loop at load time is still a loop in the design), and
importing `a.b.c` counts as importing the packages `a.b` whose __init__ runs first."""

from __future__ import annotations

import ast
from pathlib import Path

import pea_deploy


def module_names(root: Path) -> dict[str, tuple[Path, bool]]:
    """Dotted name -> (file, is a package __init__) for every .py file under the package `root`."""
    found = {}
    for path in root.rglob("*.py"):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        found[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return found


def import_graph(root: Path) -> dict[str, set[str]]:
    """Module -> the package's modules it imports (anywhere in its file), parents included."""
    modules = module_names(root)
    top = root.name

    def owner(name: str) -> str | None:  # the module a dotted name lives in (an attribute's module)
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    def parents(name: str) -> set[str]:
        parts = name.split(".")
        return {".".join(parts[:i]) for i in range(2, len(parts))}

    graph: dict[str, set[str]] = {}
    for name, (path, is_package) in modules.items():
        package = name if is_package else name.rpartition(".")[0]
        imported = []
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                imported += [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1]
                                    + ([node.module] if node.module else []))
                else:
                    base = node.module or ""
                imported += [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
        targets = {owner(t) for t in imported if t.split(".")[0] == top} - {None, name}
        graph[name] = targets | {p for t in targets for p in parents(t) - parents(name)} - {name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_pea_deploy_has_no_import_cycle():
    root = Path(pea_deploy.__file__).parent
    graph = import_graph(root)
    assert len(graph) > 100 and "pea_deploy.pea.own" in graph["pea_deploy.pea.convert"]
    assert cycles(graph) == []


def test_the_checker_finds_a_lazy_cycle_and_one_through_a_package_init(tmp_path):
    pkg = tmp_path / "toy"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from .b import g\n")
    (pkg / "b.py").write_text("from . import a\n")
    (pkg / "sub" / "__init__.py").write_text("from ..c import x\n")
    (pkg / "sub" / "leaf.py").write_text("")
    (pkg / "c.py").write_text("from toy.sub.leaf import y\n")
    assert cycles(import_graph(pkg)) == [["toy.a", "toy.b"], ["toy.c", "toy.sub"]]


def test_the_checker_of_the_op_rules_does_not_import_its_vela_harness():
    graph = import_graph(Path(pea_deploy.__file__).parent)
    checker = {name for name in graph if name.startswith("pea_deploy.verify")}
    assert not {t for name in checker for t in graph[name] if t.startswith("pea_deploy.agreement")}
