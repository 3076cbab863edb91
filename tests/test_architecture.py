"""The package's shape, read from its source: no import cycle, HTTP only at the edges,
deferred imports only where Django needs them, typed operations.

``lint-imports`` checks the layers (``[tool.importlinter]`` in pyproject.toml); these tests
build their own import graph with ``ast``, imports inside functions included, so a cycle
hidden behind a function-level import is found too.
"""

from __future__ import annotations

import ast
import inspect
import io
import tokenize
import tomllib
import typing
from dataclasses import dataclass
from pathlib import Path

import wagtail_smi
from wagtail_smi import operations

ROOT = Path(wagtail_smi.__file__).parent
PACKAGE = "wagtail_smi"

# The modules that speak HTTP (docs/architecture.md): the only ones that may import
# django.http. A name ending in "." stands for a package and everything in it.
EDGES = (
    "wagtail_smi.api",
    "wagtail_smi.pages",
    "wagtail_smi.downloads",
    "wagtail_smi.webhooks",
    "wagtail_smi.http",
    "wagtail_smi.ratelimit",
    "wagtail_smi.urls",
    "wagtail_smi.wagtail_hooks",
    "wagtail_smi.admin.",
    "wagtail_smi.templatetags.",
    "wagtail_smi.management.",
)


@dataclass(frozen=True)
class Import:
    source: str  # the importing module
    target: str  # the module imported (a package's own name for its __init__)
    line: int
    deferred: bool  # inside a function: runs when called, not when the module loads


def find_modules(root: Path) -> dict[str, Path]:
    """Every module of the package at ``root``, by dotted name (a package by its own)."""
    modules = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


MODULES = find_modules(ROOT)


def resolve(importer: str, node: ast.ImportFrom, modules: dict[str, Path]) -> str:
    """The absolute module a ``from ... import`` reads from (relative imports resolved)."""
    if not node.level:
        return node.module or ""
    is_package = modules[importer].name == "__init__.py"
    base = importer.split(".") if is_package else importer.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def function_nodes(tree: ast.AST) -> set[int]:
    """ids of the import nodes that sit inside a function body."""
    inside: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for child in ast.walk(node):
                if isinstance(child, (ast.Import, ast.ImportFrom)):
                    inside.add(id(child))
    return inside


def imports_of(
    module: str, modules: dict[str, Path] = MODULES
) -> list[tuple[ast.Import | ast.ImportFrom, list[str], bool]]:
    """Each import statement of a module: the node, the names it imports (for ``from``
    imports each ``base.name`` and then ``base``), and whether it sits in a function."""
    tree = ast.parse(modules[module].read_text(encoding="utf-8"))
    deferred = function_nodes(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = resolve(module, node, modules)
            names = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        found.append((node, names, id(node) in deferred))
    return found


def internal_imports(modules: dict[str, Path] = MODULES) -> list[Import]:
    """The package's own imports, as module-to-module edges."""
    edges = []
    for module in modules:
        for node, names, deferred in imports_of(module, modules):
            targets = set()
            if isinstance(node, ast.ImportFrom):
                *members, base = names
                for member in members:
                    # ``from pkg import name``: the submodule when there is one, else pkg.
                    if member in modules:
                        targets.add(member)
                    elif base in modules:
                        targets.add(base)
            else:
                for name in names:  # ``import a.b.c``: the deepest of ours
                    parts = name.split(".")
                    while parts and ".".join(parts) not in modules:
                        parts.pop()
                    if parts:
                        targets.add(".".join(parts))
            edges.extend(Import(module, target, node.lineno, deferred) for target in targets)
    return edges


def find_cycles(edges: list[Import]) -> list[list[Import]]:
    """One cycle per strongly connected group of modules (Tarjan), as the imports that
    close it."""
    graph: dict[str, list[Import]] = {}
    for edge in edges:
        graph.setdefault(edge.target, [])
        if edge.source != edge.target:
            graph.setdefault(edge.source, []).append(edge)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for edge in graph[module]:
            if edge.target not in index:
                visit(edge.target)
                low[module] = min(low[module], low[edge.target])
            elif edge.target in on_stack:
                low[module] = min(low[module], index[edge.target])
        if low[module] == index[module]:
            group = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.add(member)
                if member == module:
                    break
            if len(group) > 1:
                groups.append(group)

    for module in sorted(graph):
        if module not in index:
            visit(module)

    cycles = []
    for group in groups:
        start = min(group)
        # Breadth-first inside the group, from start back to start: the shortest cycle.
        paths: dict[str, list[Import]] = {start: []}
        queue = [start]
        closing: list[Import] | None = None
        while queue and closing is None:
            current = queue.pop(0)
            for edge in graph[current]:
                if edge.target == start:
                    closing = paths[current] + [edge]
                    break
                if edge.target in group and edge.target not in paths:
                    paths[edge.target] = paths[current] + [edge]
                    queue.append(edge.target)
        cycles.append(closing or [])
    return cycles


def describe(cycle: list[Import]) -> str:
    return "\n".join(
        f"  {edge.source} -> {edge.target} (line {edge.line}"
        f"{', inside a function' if edge.deferred else ''})"
        for edge in cycle
    )


def test_the_import_graph_reads_relative_absolute_and_function_level_imports(tmp_path):
    package = tmp_path / "shop"
    (package / "models").mkdir(parents=True)
    sources = {
        "__init__.py": "",
        "models/__init__.py": "from .jobs import Job\n",
        "models/jobs.py": "from .. import tokens\nimport shop.conf\n",
        "tokens.py": "from shop.conf import SECRET\n",
        "conf.py": "SECRET = 1\n",
        "apps.py": "def ready():\n    from . import signals\n    from .models import Job\n",
        "signals.py": "import django.http\n",
    }
    for name, text in sources.items():
        (package / name).write_text(text)
    modules = find_modules(package)
    edges = {(e.source, e.target, e.deferred) for e in internal_imports(modules)}
    assert edges == {
        ("shop.models", "shop.models.jobs", False),
        ("shop.models.jobs", "shop.tokens", False),
        ("shop.models.jobs", "shop.conf", False),
        ("shop.tokens", "shop.conf", False),
        ("shop.apps", "shop.signals", True),
        ("shop.apps", "shop.models", True),
    }
    assert not find_cycles(internal_imports(modules))


def test_find_cycles_reports_a_cycle_through_a_function_level_import():
    edges = [
        Import("wagtail_smi.blocks", "wagtail_smi.catalog", 3, deferred=True),
        Import("wagtail_smi.catalog", "wagtail_smi.blocks", 7, deferred=False),
    ]
    [cycle] = find_cycles(edges)
    assert {(edge.source, edge.target) for edge in cycle} == {
        ("wagtail_smi.blocks", "wagtail_smi.catalog"),
        ("wagtail_smi.catalog", "wagtail_smi.blocks"),
    }
    assert "inside a function" in describe(cycle)


def test_no_import_cycles_even_counting_function_level_imports():
    cycles = find_cycles(internal_imports())
    report = "\n\n".join(describe(cycle) for cycle in cycles)
    assert not cycles, f"import cycles in {PACKAGE}:\n{report}"


def is_edge(module: str) -> bool:
    return any(module.startswith(edge) if edge.endswith(".") else module == edge for edge in EDGES)


def test_only_edge_modules_import_django_http():
    offenders = []
    for module in MODULES:
        for node, names, _deferred in imports_of(module):
            if isinstance(node, ast.ImportFrom):
                *members, base = names
                touches = (
                    base == "django.http"
                    or base.startswith("django.http.")
                    or (base == "django" and "django.http" in members)
                )
            else:
                touches = any(
                    name == "django.http" or name.startswith("django.http.") for name in names
                )
            if touches and not is_edge(module):
                offenders.append(f"{module} (line {node.lineno})")
    assert not offenders, "django.http imported outside the edges: " + ", ".join(offenders)


def test_the_edges_are_the_same_in_the_import_contract():
    """pyproject's import-linter contract and this file name the same edge modules."""
    config = tomllib.loads((ROOT.parent / "pyproject.toml").read_text(encoding="utf-8"))
    [contract] = [
        c for c in config["tool"]["importlinter"]["contracts"] if c["id"] == "http-at-the-edges"
    ]
    in_contract = {
        line.split("->")[0].strip().replace(".**", ".") for line in contract["ignore_imports"]
    }
    assert in_contract == set(EDGES)


def comment_lines(source: str) -> dict[int, bool]:
    """Line number -> whether the comment there stands alone on its line."""
    comments = {}
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            comments[token.start[0]] = not token.line[: token.start[1]].strip()
    return comments


def test_every_function_level_import_says_why():
    """Deferred imports are for Django's loading order (models, the app registry, a page
    model the site may swap): each one carries a comment that says so, on its own line
    just above (a run of imports may share it) or at the end of the import."""
    unexplained = []
    for module, path in MODULES.items():
        source = path.read_text(encoding="utf-8")
        comments = comment_lines(source)
        nodes = imports_of(module)
        import_lines = {
            line: node.lineno
            for node, _names, _deferred in nodes
            for line in range(node.lineno, node.end_lineno + 1)
        }
        for node, _names, deferred in nodes:
            if not deferred:
                continue
            if any(line in comments for line in range(node.lineno, node.end_lineno + 1)):
                continue
            above = node.lineno - 1
            while above in import_lines:  # the run of imports this one belongs to
                above = import_lines[above] - 1
            if not comments.get(above):
                unexplained.append(f"{path.relative_to(ROOT.parent)}:{node.lineno}")
    assert not unexplained, "function-level imports without a reason: " + ", ".join(unexplained)


def public_operations() -> list[tuple[str, typing.Callable]]:
    found = []
    for name in operations.__all__:
        value = getattr(operations, name)
        if inspect.isfunction(value):
            found.append((name, value))
        elif inspect.isclass(value) and "__init__" in vars(value):
            found.append((f"{name}.__init__", value.__init__))
    return found


def test_public_operations_are_fully_type_hinted():
    assert len(public_operations()) > 20  # the functions, not an empty list
    missing = []
    for name, function in public_operations():
        signature = inspect.signature(function)
        for parameter in signature.parameters.values():
            if parameter.name != "self" and parameter.annotation is inspect.Parameter.empty:
                missing.append(f"{name}({parameter.name})")
        if signature.return_annotation is inspect.Signature.empty:
            missing.append(f"{name} -> ?")
        # The hints name real things (they are strings under `from __future__ import
        # annotations`, so a typo would otherwise go unnoticed).
        typing.get_type_hints(function)
    assert not missing, "operations without type hints: " + ", ".join(missing)
