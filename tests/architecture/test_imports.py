"""Architecture rules, checked on the source with an AST walk (no import is executed).

* ``pes_core`` (the science) never imports ``workflows`` (the orchestration);
* no import cycle between modules of ``pes_core`` and ``workflows``, counting
  function-local imports too (a local import must not be the way a cycle is
  hidden);
* inside ``workflows`` no function-local import of another ``workflows``
  module: the job packages import one way (spec -> state -> logic -> report
  -> tasks -> builders), so there is never a reason to defer one.  The
  command line (``workflows.cli``) is the exception: it loads a command's
  job modules when the command runs, so ``pes --help`` stays fast.

Imports under ``if TYPE_CHECKING:`` are annotations only and are ignored.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("pes_core", "workflows")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for path in (ROOT / pkg).rglob("*.py"):
            out[_module_name(path)] = path
    return out


MODULES = _modules()


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _resolve(name: str) -> str | None:
    """The project module ``name`` refers to (the longest known prefix), or None outside the project."""
    parts = name.split(".")
    while parts:
        cand = ".".join(parts)
        if cand in MODULES:
            return cand
        parts.pop()
    return None


def _imports(module: str) -> list[tuple[str, int, bool]]:
    """``(target module, line, local)`` for every project import of ``module``."""
    path = MODULES[module]
    tree = ast.parse(path.read_text(), filename=str(path))
    is_pkg = path.name == "__init__.py"
    out: list[tuple[str, int, bool]] = []

    def visit(node: ast.AST, local: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for sub in child.orelse:
                    visit(sub, local)
                continue
            if isinstance(child, ast.Import):
                for alias in child.names:
                    target = _resolve(alias.name)
                    if target:
                        out.append((target, child.lineno, local))
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    pkg_parts = module.split(".") if is_pkg else module.split(".")[:-1]
                    pkg_parts = pkg_parts[: len(pkg_parts) - (child.level - 1)]
                    base = ".".join(pkg_parts + ([base] if base else []))
                for alias in child.names:
                    target = _resolve(f"{base}.{alias.name}") or _resolve(base)
                    if target:
                        out.append((target, child.lineno, local))
            visit(child, local or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)))

    visit(tree, False)
    return [(t, line, local) for t, line, local in out if t != module]


GRAPH = {m: _imports(m) for m in MODULES}


def _cycles() -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    comps: list[list[str]] = []
    counter = [0]

    import sys

    sys.setrecursionlimit(10000)

    def strong(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w, _, _ in GRAPH[v]:
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                comps.append(sorted(comp))

    for v in sorted(GRAPH):
        if v not in index:
            strong(v)
    return comps


def test_the_science_never_imports_the_orchestration():
    bad = [f"{MODULES[m].relative_to(ROOT)}:{line} imports {t}"
           for m in GRAPH if m.startswith("pes_core") for t, line, _ in GRAPH[m] if t.startswith("workflows")]
    assert not bad, "pes_core must not import workflows:\n" + "\n".join(bad)


def _package_init_edge(src: str, dst: str) -> bool:
    """``src`` imports its own package's ``__init__`` (``from pes_core.active import X`` inside it)."""
    return src.startswith(dst + ".") and MODULES[dst].name == "__init__.py"


def test_no_import_cycles():
    comps = _cycles()
    lines = []
    for comp in comps:
        members = set(comp)
        edges = [f"    {a} -> {b} (line {line}{', local' if local else ''})"
                 for a in comp for b, line, local in GRAPH[a] if b in members]
        lines.append("  cycle: " + ", ".join(comp) + "\n" + "\n".join(edges))
    assert not comps, f"{len(comps)} import cycle(s):\n" + "\n".join(lines)


def test_no_local_imports_between_workflows_modules():
    bad = [f"{MODULES[m].relative_to(ROOT)}:{line} imports {t} inside a function"
           for m in GRAPH if m.startswith("workflows") and not m.startswith("workflows.cli")
           for t, line, local in GRAPH[m]
           if local and t.startswith("workflows")]
    assert not bad, "move these imports to the top of the module:\n" + "\n".join(bad)


@pytest.mark.parametrize("rule", ["science", "cycles", "local"])
def test_rules_detect_a_violation(rule):
    """The checks above can fail: a planted violation is reported."""
    fake = {
        "pes_core.x": [("workflows.y", 1, False)],
        "workflows.y": [("workflows.z", 2, True)],
        "workflows.z": [("workflows.y", 3, False)],
    }
    globals_ = globals()
    saved_graph, saved_modules = globals_["GRAPH"], globals_["MODULES"]
    globals_["GRAPH"] = fake
    globals_["MODULES"] = {k: ROOT / (k.replace(".", "/") + ".py") for k in fake}
    try:
        check = {"science": test_the_science_never_imports_the_orchestration,
                 "cycles": test_no_import_cycles,
                 "local": test_no_local_imports_between_workflows_modules}[rule]
        with pytest.raises(AssertionError):
            check()
    finally:
        globals_["GRAPH"], globals_["MODULES"] = saved_graph, saved_modules
