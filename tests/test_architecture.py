"""The shape of the code base, checked by walking the imports (docs/ARCHITECTURE.md, "Layers").

Every `import` and `from ... import` counts, at module level and inside functions (a lazy import is still
a dependency). The checks: no import cycle in `stereo` or `automl`; no upward import in either (LAYERS and
AUTOML_LAYERS below); `stereo` never imports `automl`; no module over MAX_LINES lines; no exception is
recognised by its class name (a CLI maps exceptions to exit codes by type: stereo/errors.py, automl/errors.py).
"""
from __future__ import annotations

import ast
import collections
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MAX_LINES = 420

#: stereo's layers, bottom first. A module may import its own unit (top-level module or subpackage of
#: stereo) and the units of LOWER layers only; units that share a layer do not import each other.
LAYERS: list[tuple[str, ...]] = [
    ("errors",),                             # the exception hierarchy with exit codes; imports nothing of stereo
    ("atomic_io", "gpus", "progress"),       # plumbing: crash-safe writes, visible GPUs, the first console line
    ("checkpoints",),                        # weight files: safe reading, sidecars, TAO .pth, remap tables
    ("config",),                             # typed spec sections, loading, validation (reads checkpoint sidecars)
    ("data",),                               # file formats, datasets, transforms, loaders
    ("models",),                             # layers, backbones, FS/FFS, the registry
    ("metrics",),                            # pure metric functions
    ("losses", "visualize"),                 # the training loss (uses the metrics' valid mask); images of disparity
    ("training",),                           # LightningModule, trainer, callbacks, TAO checkpoints, weights
    ("tracking",),                           # Tracker interface, MLflow (its logged model loads through training)
    ("deploy",),                             # ONNX export, the runtime registry, ONNX Runtime / TensorRT
    ("actions",),                            # one library function per depth_net action, the runner
    ("cli",),                                # depth_net: a table of actions
]
RANK = {unit: rank for rank, units in enumerate(LAYERS) for unit in units}
#: automl's layers, bottom first (automl imports any of stereo; stereo never imports automl)
AUTOML_LAYERS: list[tuple[str, ...]] = [
    ("errors", "commands"),                  # the exit-coded errors; the commands we print to paste
    ("policy",),                             # the pure decision: sweep or plain, and why
    ("space",),                              # TAO's schema dialect -> a search space (Optuna's distributions)
    ("plan",),                               # skills, the three configs, the launch plan, pre-flight, the review
    ("tune",),                               # Ray Tune + Optuna while a sweep runs: trials, events, the ledger
    ("report",),                             # leaderboard, results.json, plots, importance, HTML, the run's note
    ("ui",),                                 # the MLflow UI: server, guard, sweep links, headless browser
    ("server",),                             # a team's tracking server (MLflow on PostgreSQL), promote
    ("handoff",),                            # --then deploy: the best trial handed to depth_net flow
    ("plain", "driver"),                     # the plain run; a sweep from plan to report
    ("cli",),                                # automl run|ui|server|promote
    ("demo",),                               # make demo
]
AUTOML_RANK = {unit: rank for rank, units in enumerate(AUTOML_LAYERS) for unit in units}


def _modules(package: str) -> dict[str, Path]:
    mods = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        mods[name.removesuffix(".__init__")] = path
    return mods


MODULES = {**_modules("stereo"), **_modules("automl")}


def _imported_names(module: str, path: Path) -> list[tuple[str, int]]:
    """(dotted name, line) of everything `module` imports, relative imports resolved."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
                parts = parts[: len(parts) - (node.level - 1)]
                base = ".".join(parts + ([base] if base else []))
            out += [(f"{base}.{alias.name}", node.lineno) for alias in node.names]
    return out


def _resolve(name: str) -> str | None:
    """The module of ours that `name` (a module, or a name inside one) belongs to; None outside our packages."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _graph() -> dict[str, dict[str, int]]:
    """{module: {imported module: line}}; a module's import of its own ancestor package is left out (Python
    imports a package before its submodules anyway)."""
    graph: dict[str, dict[str, int]] = collections.defaultdict(dict)
    for module, path in MODULES.items():
        for name, line in _imported_names(module, path):
            target = _resolve(name)
            if target and target != module and not module.startswith(target + "."):
                graph[module].setdefault(target, line)
    return graph


GRAPH = _graph()


def _cycles(package: str) -> list[list[str]]:
    """Strongly connected components (size > 1) of the import graph restricted to `package` (Tarjan)."""
    nodes = [m for m in MODULES if m.split(".")[0] == package]
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in GRAPH.get(v, {}):
            if w.split(".")[0] != package:
                continue
            if w not in index:
                visit(w)
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
                found.append(sorted(component))

    for v in nodes:
        if v not in index:
            visit(v)
    return found


def _unit(module: str) -> str:
    return module.split(".")[1] if module.count(".") else ""


@pytest.mark.parametrize("package", ["stereo", "automl"])
def test_no_import_cycle(package):
    assert _cycles(package) == []


@pytest.mark.parametrize("package, ranks", [("stereo", RANK), ("automl", AUTOML_RANK)])
def test_every_unit_has_a_layer(package, ranks):
    units = {_unit(m) for m in MODULES if m.startswith(f"{package}.")}
    assert sorted(units - set(ranks)) == [], "add the new module/subpackage to its LAYERS (and docs/ARCHITECTURE.md)"


@pytest.mark.parametrize("package, ranks", [("stereo", RANK), ("automl", AUTOML_RANK)])
def test_imports_go_only_downwards(package, ranks):
    upward = []
    for module, targets in GRAPH.items():
        if not module.startswith(f"{package}."):
            continue
        for target, line in targets.items():
            if not target.startswith(f"{package}.") or _unit(target) == _unit(module):
                continue
            if ranks[_unit(target)] >= ranks[_unit(module)]:
                upward.append(f"{MODULES[module].relative_to(ROOT)}:{line}: {module} imports {target} "
                              f"(layer {ranks[_unit(module)]} -> {ranks[_unit(target)]})")
    assert upward == []


def test_stereo_never_imports_automl():
    found = [f"{MODULES[m].relative_to(ROOT)}:{line}: {name}" for m in MODULES if m.startswith("stereo")
             for name, line in _imported_names(m, MODULES[m]) if name.split(".")[0] == "automl"]
    assert found == []


@pytest.mark.parametrize("package", ["stereo", "automl"])
def test_modules_stay_small(package):
    big = {str(p.relative_to(ROOT)): n for m, p in MODULES.items() if m.split(".")[0] == package
           if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert big == {}


def _matches_by_class_name(package: str) -> list[str]:
    """`type(exc).__name__ == "X"` / `... in ("X", "Y")`: an exception recognised by a string."""
    def is_name(node: ast.AST) -> bool:
        return isinstance(node, ast.Attribute) and node.attr == "__name__"

    def is_text(node: ast.AST) -> bool:
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            return bool(node.elts) and all(is_text(e) for e in node.elts)
        return isinstance(node, ast.Constant) and isinstance(node.value, str)

    found = []
    for module, path in MODULES.items():
        if module.split(".")[0] != package:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Compare):
                sides = [node.left, *node.comparators]
                if any(is_name(s) for s in sides) and any(is_text(s) for s in sides):
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


@pytest.mark.parametrize("package", ["stereo", "automl"])
def test_exceptions_are_mapped_by_type_not_by_name(package):
    assert _matches_by_class_name(package) == []


def test_the_walker_sees_lazy_and_relative_imports(tmp_path):
    """The checks above are only as good as the walk: a function-level import and a relative one count."""
    path = tmp_path / "mod.py"
    path.write_text("from . import b\n\ndef f():\n    from stereo.errors import StereoError\n    import stereo.gpus\n")
    names = dict(_imported_names("stereo.deploy.mod", path))
    assert {"stereo.deploy.b": 1, "stereo.errors.StereoError": 4, "stereo.gpus": 5}.items() <= names.items()
    assert _resolve("stereo.errors.StereoError") == "stereo.errors"
