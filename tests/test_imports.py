"""The import graph of vbfast points downward: no cycles, and no function-level imports except
of optional dependencies (imported only when a user asks for what needs them)."""
import ast
import importlib.machinery
import os

import vbfast

# Imported inside functions on purpose: optional dependencies, imported only when used.
OPTIONAL = {"sklearn", "matplotlib", "dask", "distributed", "pandas", "polars"}


def _modules():
    """{module name: (parsed source, is a package)} for every vbfast module of the installed
    package; compiled kernels as empty modules (they import no vbfast module)."""
    root = os.path.dirname(os.path.abspath(vbfast.__file__))
    out = {}
    for dirpath, _, files in os.walk(root):
        for f in files:
            if f.endswith(".py"):
                path = os.path.join(dirpath, f)
                rel = os.path.relpath(path, os.path.dirname(root))[:-3].replace(os.sep, ".")
                name = rel[:-len(".__init__")] if rel.endswith(".__init__") else rel
                with open(path, encoding="utf-8") as fh:
                    out[name] = (ast.parse(fh.read(), path), f == "__init__.py")
            for suffix in importlib.machinery.EXTENSION_SUFFIXES:
                if f.endswith(suffix):
                    rel = os.path.relpath(os.path.join(dirpath, f[:-len(suffix)]),
                                          os.path.dirname(root))
                    out[rel.replace(os.sep, ".")] = (ast.parse(""), False)
    return out


def _resolve(module, is_package, node, modules):
    """Absolute names of the modules an Import/ImportFrom node imports: ``from p import m``
    imports the submodule p.m when there is one, else names from p itself."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if node.level:
        base = module.split(".")
        base = base if is_package else base[:-1]
        base = base[:len(base) - (node.level - 1)]
        prefix = ".".join(base + ([node.module] if node.module else []))
    else:
        prefix = node.module
    subs = [f"{prefix}.{a.name}" for a in node.names if f"{prefix}.{a.name}" in modules]
    return subs if len(subs) == len(node.names) else [prefix] + subs


def _graph(modules):
    graph, nested = {}, []
    for name, (tree, is_package) in modules.items():
        edges = set()
        top_level = set(map(id, tree.body))
        for node in ast.walk(tree):
            if not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            targets = _resolve(name, is_package, node, modules)
            if id(node) not in top_level:
                roots = {t.split(".")[0] for t in targets}
                if not roots <= OPTIONAL:
                    nested.append((name, node.lineno, targets[0]))
                continue
            edges |= {t for t in targets if t in modules and t != name}
        graph[name] = edges
    return graph, nested


def test_no_function_level_imports():
    _, nested = _graph(_modules())
    assert nested == [], f"function-level imports (not optional dependencies): {nested}"


def test_no_import_cycles():
    graph, _ = _graph(_modules())
    # A package's __init__ imports its submodules; a submodule importing its own package's
    # __init__ would be a cycle too, so packages are nodes like modules.
    state, stack, cycles = {}, [], []

    def visit(node):
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    assert cycles == [], f"import cycles: {cycles}"


def test_the_checker_sees_cycles_and_nested_imports():
    """The checks above would fail on a cycle or a nested import (a test that can fail)."""
    a = ast.parse("from . import b\n")
    b = ast.parse("from .a import x\ndef f():\n    from . import c\n")
    graph, nested = _graph({"p.a": (a, False), "p.b": (b, False), "p.c": (ast.parse(""), False)})
    assert graph["p.a"] == {"p.b"} and graph["p.b"] == {"p.a"}
    assert nested == [("p.b", 3, "p.c")]
