"""The import contract of nanoseg (issue #17), checked over the AST of every module in src/nanoseg.

Every import between nanoseg modules counts: top-level ones, those inside functions (that is where the
cycles and the upward edges used to hide), relative ones (``from . import x``) and the string forms
``importlib.import_module("nanoseg.x")`` / ``__import__("nanoseg.x")``. Three rules, each reporting every
violation as ``file:line``:

(a) layers only import downward (``LAYERS`` below, lowest first; packages in one layer are peers and may
    not import each other unless ``PEER_EDGES`` allows it with a reason);
(b) no import cycle between packages, and no cycle between the modules of one package;
(c) no private name (``_name``) or private module imported across modules, except from the package-wide
    private helpers (``SHARED_PRIVATE``: ``nanoseg._util``, ``_cache``, ``_lazy``, ``_pixel``) or
    ``PRIVATE_IMPORTS`` (with a reason).

docs/architecture.md draws the same layers; change both together.
"""

from __future__ import annotations

import ast
import functools
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
ROOT = "nanoseg"

# Lowest first. A package may import its own layer's package (itself) and every layer below.
LAYERS: list[set[str]] = [
    {"errors", "_util", "_cache", "_lazy", "_pixel"},  # the foundation: no nanoseg imports but errors
    {"report"},  # rendering only (HTML sections, tables): usable by every layer above
    {"io"},
    {"preprocess"},
    {"datasets", "simulate"},
    {"models"},
    {"particles"},  # the one particle definition (labels, per-particle table): numpy/scipy and errors only
    {"train", "infer"},
    {"evaluate"},
    {"insitu"},
    {"explain", "study"},  # analyses over trained networks and grids of train/evaluate runs
    {"workflows"},  # the recipes users call: predict files, evaluate a folder, run a study, explain, demo
    {"demo", "napari", "cli"},  # faces: the demo entry point, the napari plugin, the command line
    {ROOT, "__main__"},  # the top-level facade (``import nanoseg as ns``) and ``python -m nanoseg``
]

# Peer edges (same layer, different packages) that are allowed, with the reason.
PEER_EDGES: dict[tuple[str, str], str] = {
    ("_util", "errors"): "the shared helpers raise NanosegError",
    ("_cache", "errors"): "the cache helpers raise NanosegError",
    ("_pixel", "errors"): "mask arithmetic raises NanosegError on bad masks",
    ("simulate", "datasets"): "the simulator writes its images in the dataset format (datasets.DatasetWriter); "
                              "datasets never imports simulate",
}

# Private names imported across modules, allowed with the reason: (importer, imported module, name).
PRIVATE_IMPORTS: dict[tuple[str, str, str], str] = {}

# Module imports left out of the cycle check, each with the reason and what removes it (import-linter's
# ``ignore_imports``). Keep this short: every entry is a known cycle.
CYCLE_EXCEPTIONS: dict[tuple[str, str], str] = {}  # none: simulate.config's modality checks register themselves

# Importing the name ``__version__`` from the package root is metadata, not a dependency on the facade.
ROOT_METADATA = {"__version__"}

_LAZY_NAME = re.compile(r"nanoseg(\.\w+)+(:\w+)?")


@dataclass(frozen=True)
class Edge:
    """One import of ``target`` (a nanoseg module) by ``source``; ``name`` is the imported name, if any."""

    source: str
    target: str
    name: str | None
    path: Path
    line: int
    in_function: bool

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(SRC.parent)}:{self.line}"


def module_files() -> dict[str, Path]:
    """Every module of the package by dotted name (``nanoseg.infer.predict`` → its file)."""
    modules = {}
    for path in sorted((SRC / ROOT).rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def package_of(module: str) -> str:
    """The top-level package a module belongs to (``nanoseg.infer.predict`` → ``infer``)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ROOT


def _resolve_relative(module: str, is_package: bool, level: int, name: str | None) -> str:
    base = module.split(".")
    if not is_package:
        base = base[:-1]
    if level > 1:
        base = base[: len(base) - (level - 1)]
    return ".".join(base + ([name] if name else []))


def _known_prefix(dotted: str, modules: dict[str, Path]) -> str | None:
    """The longest nanoseg module that ``dotted`` names or lies in (``nanoseg.io.Micrograph`` → ``nanoseg.io``)."""
    parts = dotted.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in modules:
            return candidate
    return None


def _string_import(call: ast.Call) -> str | None:
    """The constant prefix of ``importlib.import_module("…")`` / ``__import__("…")``, else None."""
    func = call.func
    called = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None
    if called not in {"import_module", "__import__"} or not call.args:
        return None
    arg = call.args[0]
    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
        return arg.value
    if isinstance(arg, ast.JoinedStr) and arg.values and isinstance(arg.values[0], ast.Constant):
        return str(arg.values[0].value).rstrip(".")
    return None


class _ImportCollector(ast.NodeVisitor):
    """Collects the nanoseg imports of one module, noting whether each sits inside a function."""

    def __init__(self, module: str, path: Path, modules: dict[str, Path]):
        self.module, self.path, self.modules = module, path, modules
        self.is_package = path.name == "__init__.py"
        self.edges: list[Edge] = []
        self.module_aliases: dict[str, str] = {}  # local name bound to a nanoseg module
        self.private_attributes: list[tuple[str, str, int]] = []  # (module, attribute, line)
        self._depth = 0

    def _add(self, dotted: str, name: str | None, line: int) -> None:
        target = _known_prefix(dotted, self.modules)
        if target is not None and target != self.module:
            self.edges.append(Edge(self.module, target, name, self.path, line, self._depth > 0))

    def _function(self, node: ast.AST) -> None:
        self._depth += 1
        self.generic_visit(node)
        self._depth -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _function

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if alias.name.split(".")[0] == ROOT:
                self._add(alias.name, None, node.lineno)
                if alias.asname and alias.name in self.modules:
                    self.module_aliases[alias.asname] = alias.name

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        base = (_resolve_relative(self.module, self.is_package, node.level, node.module) if node.level
                else node.module or "")
        if base.split(".")[0] != ROOT:
            return
        for alias in node.names:
            submodule = f"{base}.{alias.name}"
            if submodule in self.modules:  # ``from nanoseg.infer import tiling``: the module itself
                self._add(submodule, None, node.lineno)
                self.module_aliases[alias.asname or alias.name] = submodule
            else:
                self._add(base, alias.name, node.lineno)

    def visit_Call(self, node: ast.Call) -> None:
        dotted = _string_import(node)
        if dotted and dotted.split(".")[0] == ROOT:
            self._add(dotted, None, node.lineno)
        self.generic_visit(node)

    def visit_Expr(self, node: ast.Expr) -> None:
        if not isinstance(node.value, ast.Constant):  # a bare string statement is a docstring, not a name
            self.generic_visit(node)

    def visit_Constant(self, node: ast.Constant) -> None:
        """A string that is exactly a nanoseg module (``"nanoseg.io"``, ``"nanoseg.insitu:track_movie"``) is a
        lazy import (tables of :mod:`nanoseg._lazy`)."""
        if isinstance(node.value, str) and _LAZY_NAME.fullmatch(node.value):
            dotted, _, name = node.value.partition(":")
            if dotted in self.modules:
                self._add(dotted, name or None, node.lineno)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if isinstance(node.value, ast.Call) and (_string_import(node.value) or "").split(".")[0] == ROOT:
            self._add(_string_import(node.value), node.attr, node.lineno)  # __import__("nanoseg").__version__
            return
        if isinstance(node.value, ast.Name) and node.attr.startswith("_") and not node.attr.startswith("__"):
            self.private_attributes.append((node.value.id, node.attr, node.lineno))
        self.generic_visit(node)


def collect() -> tuple[list[Edge], list[tuple[str, Path, str, str, int]]]:
    """All nanoseg → nanoseg import edges, and private attributes read off imported nanoseg modules."""
    return _collect(SRC)


@functools.lru_cache(maxsize=4)
def _collect(src: Path) -> tuple[list[Edge], list[tuple[str, Path, str, str, int]]]:
    """:func:`collect` for the tree under ``src`` (parsed once per test session)."""
    modules = module_files()
    edges, private_reads = [], []
    for module, path in modules.items():
        collector = _ImportCollector(module, path, modules)
        collector.visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
        edges.extend(collector.edges)
        for local, attribute, line in collector.private_attributes:
            target = collector.module_aliases.get(local)
            if target is not None and target != module:
                private_reads.append((module, path, target, attribute, line))
    return edges, private_reads


def layer_rank() -> dict[str, int]:
    return {package: rank for rank, layer in enumerate(LAYERS) for package in layer}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(graph.get(node, ())):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _report(title: str, lines: list[str]) -> str:
    return f"{len(lines)} {title}:\n  " + "\n  ".join(sorted(set(lines)))


def _is_root_metadata(edge: Edge) -> bool:
    return edge.target == ROOT and edge.name in ROOT_METADATA


# ---------------------------------------------------------------------------------------------- the rules


def test_every_package_has_a_layer():
    ranks = layer_rank()
    missing = sorted({package_of(m) for m in module_files()} - set(ranks))
    assert not missing, f"packages without a layer in tests/test_architecture.py:LAYERS: {missing}"


def layer_violations(edges: list[Edge]) -> list[str]:
    """Imports that go up a layer, or sideways to a peer that ``PEER_EDGES`` does not allow."""
    ranks = layer_rank()
    bad = []
    for edge in edges:
        low, high = package_of(edge.target), package_of(edge.source)
        if low == high or _is_root_metadata(edge) or (high, low) in PEER_EDGES:
            continue
        if low not in ranks or high not in ranks or ranks[low] >= ranks[high]:
            kind = "peer" if ranks.get(low) == ranks.get(high) else "upward"
            what = f"{edge.target}.{edge.name}" if edge.name else edge.target
            scope = " (in a function)" if edge.in_function else ""
            bad.append(f"{edge.where}: {kind} import {high} → {what}{scope}")
    return bad


def test_layers_only_import_downward():
    bad = layer_violations(collect()[0])
    assert not bad, _report("imports against the layer order (tests/test_architecture.py:LAYERS)", bad)


def _edge_lines(edges: list[Edge], members: set[str], key) -> list[str]:
    return sorted({f"{e.where}: {e.source} → {e.target}" for e in edges
                   if key(e.source) in members and key(e.target) in members and key(e.source) != key(e.target)})


def package_cycles(edges: list[Edge]) -> list[str]:
    graph: dict[str, set[str]] = defaultdict(set)
    for edge in edges:
        if not _is_root_metadata(edge) and package_of(edge.source) != package_of(edge.target):
            graph[package_of(edge.source)].add(package_of(edge.target))
    return [f"packages {' ↔ '.join(c)} via\n    " + "\n    ".join(_edge_lines(edges, set(c), package_of))
            for c in _cycles(graph)]


def module_cycles(edges: list[Edge]) -> list[str]:
    """Cycles between the modules of one package (a package ``__init__`` counts as a module)."""
    graph: dict[str, set[str]] = defaultdict(set)
    for edge in edges:
        if package_of(edge.source) == package_of(edge.target) != ROOT \
                and (edge.source, edge.target) not in CYCLE_EXCEPTIONS:
            graph[edge.source].add(edge.target)
    return [f"modules {' ↔ '.join(c)} via\n    " + "\n    ".join(_edge_lines(edges, set(c), lambda m: m))
            for c in _cycles(graph)]


def test_no_import_cycles():
    edges = collect()[0]
    cycles = package_cycles(edges) + module_cycles(edges)
    assert not cycles, _report("import cycles (function-level imports count)", cycles)


def _private_module(module: str) -> bool:
    return any(part.startswith("_") and not part.startswith("__") for part in module.split(".")[1:])


# The package-wide private helpers: private to nanoseg, shared by all of its packages.
SHARED_PRIVATE = {f"{ROOT}.{name}" for name in ("_util", "_cache", "_lazy", "_pixel")}


def _shared_private(module: str) -> bool:
    return module in SHARED_PRIVATE


def private_violations(edges: list[Edge], private_reads) -> list[str]:
    """Private names or private modules used outside the module (or package) that owns them."""
    bad = []
    for edge in edges:
        if _shared_private(edge.target):
            continue
        if edge.name and edge.name.startswith("_") and not edge.name.startswith("__"):
            if (edge.source, edge.target, edge.name) not in PRIVATE_IMPORTS:
                bad.append(f"{edge.where}: private name {edge.target}.{edge.name} imported by {edge.source}")
        if _private_module(edge.target):
            owner = edge.target.rsplit(".", 1)[0]
            if not (edge.source == owner or edge.source.startswith(owner + ".")):
                bad.append(f"{edge.where}: private module {edge.target} imported by {edge.source}")
    for module, path, target, attribute, line in private_reads:
        if not _shared_private(target) and (module, target, attribute) not in PRIVATE_IMPORTS:
            bad.append(f"{path.relative_to(SRC.parent)}:{line}: private name {target}.{attribute} read by {module}")
    return bad


def test_no_private_names_across_modules():
    bad = private_violations(*collect())
    assert not bad, _report("private names used across modules (tests/test_architecture.py:PRIVATE_IMPORTS)", bad)


def cli_cross_imports(edges: list[Edge]) -> list[str]:
    """A CLI verb module importing another verb module (shared CLI helpers live in ``cli._app``)."""
    shared = {f"{ROOT}.cli", f"{ROOT}.cli._app"}
    return [f"{e.where}: {e.source} imports the verb module {e.target}" for e in edges
            if package_of(e.source) == package_of(e.target) == "cli" and e.source not in shared
            and e.target not in shared]


def test_cli_verbs_do_not_import_each_other():
    bad = cli_cross_imports(collect()[0])
    assert not bad, _report("CLI verb modules importing another verb (move the helper to the library or cli._app)",
                            bad)


# ------------------------------------------------------------------------------- the checker itself works


def test_checker_sees_function_level_relative_and_string_imports(tmp_path, monkeypatch):
    """On a toy package: imports inside functions, relative ones and importlib strings are all found."""
    files = {
        "__init__.py": "",
        "infer/__init__.py": "",
        "evaluate/__init__.py": "",
        "infer/predict.py": "from nanoseg.infer import tiling\n\n"
                            "def run():\n    from nanoseg.evaluate.pixel import _threshold\n    return _threshold\n",
        "infer/tiling.py": "from . import predict\n",
        "evaluate/pixel.py": "import importlib\n\ndef f():\n    return importlib.import_module('nanoseg.infer.tiling')\n",
    }
    for name, text in files.items():
        (tmp_path / "src" / ROOT / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "src" / ROOT / name).write_text(text)
    monkeypatch.setitem(globals(), "SRC", tmp_path / "src")
    edges, reads = collect()
    found = {(e.source, e.target, e.name, e.in_function) for e in edges}
    assert ("nanoseg.infer.predict", "nanoseg.evaluate.pixel", "_threshold", True) in found
    assert ("nanoseg.infer.tiling", "nanoseg.infer.predict", None, False) in found
    assert ("nanoseg.evaluate.pixel", "nanoseg.infer.tiling", None, True) in found
    assert layer_violations(edges) == [
        "src/nanoseg/infer/predict.py:4: upward import infer → nanoseg.evaluate.pixel._threshold (in a function)"]
    assert [c.splitlines()[0] for c in package_cycles(edges)] == ["packages evaluate ↔ infer via"]
    assert [c.splitlines()[0] for c in module_cycles(edges)] == [
        "modules nanoseg.infer.predict ↔ nanoseg.infer.tiling via"]
    assert private_violations(edges, reads) == [
        "src/nanoseg/infer/predict.py:4: private name nanoseg.evaluate.pixel._threshold imported by nanoseg.infer.predict"]
