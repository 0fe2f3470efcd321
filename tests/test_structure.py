"""The package's shape: imports point one way, and every DVC stage depends on exactly the code it runs."""

import ast
import importlib
import tomllib
from pathlib import Path

import pytest

from scripts.dvc_deps import PACKAGE_DATA, ROOT, imports, module_path, stage_code_deps

# Lower layers never import higher ones: base -> models -> saes -> engine -> analysis -> data worlds ->
# explorers / the paper's toolchain -> the helpers the paper's sections share -> its sections -> stages -> cli.
# A module belongs to the layer of its longest listed prefix.
LAYERS = [
    ("fra", "fra.errors", "fra.io", "fra.config", "fra.devices", "fra.repro", "fra.parallel"),
    ("fra.models",), ("fra.saes",), ("fra.engine",), ("fra.analysis",), ("fra.world", "fra.text", "fra.cot"),
    ("fra.explore", "fra.report.build"), ("fra.report",), ("fra.report.sections",), ("fra.stages",), ("fra.cli",),
]


def modules() -> list[str]:
    out = []
    for p in sorted((ROOT / "fra").rglob("*.py")):
        parts = p.relative_to(ROOT).with_suffix("").parts
        out.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return out


def layer(name: str) -> int:
    found = [(len(p), n) for n, prefixes in enumerate(LAYERS) for p in prefixes
             if name == p or (p != "fra" and name.startswith(p + "."))]
    assert found, f"{name} is in no layer of LAYERS"
    return max(found)[1]


def test_imports_point_one_way():
    wrong = [f"{m} (layer {layer(m)}) imports {i} (layer {layer(i)})"
             for m in modules() for i in imports(m) if layer(i) > layer(m)]
    assert not wrong, "\n".join(wrong)


def test_no_import_cycles():
    graph = {m: imports(m) for m in modules()}
    state: dict[str, int] = {}

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for i in graph[m]:
            if state.get(i) == 1:
                raise AssertionError("import cycle: " + " -> ".join(path[path.index(i):] + [i]))
            if i not in state:
                visit(i, path + [i])
        state[m] = 2

    for m in graph:
        if m not in state:
            visit(m, [m])


def test_fra_imports_sit_at_module_top():
    """Imports inside functions hide the dependency graph; only optional heavy packages may be imported late."""
    late = []
    for m in modules():
        for fn in ast.walk(ast.parse(module_path(m).read_text())):
            if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                late += [f"{m}.{fn.name}" for node in ast.walk(fn) if isinstance(node, ast.ImportFrom)
                         and (node.module or "").startswith("fra")]
    assert not late, late


def test_every_command_is_one_stage_module():
    from fra.cli import STAGES

    helpers = {"fra.stages.args"}  # argument types shared by the stages
    assert sorted(STAGES) == sorted(m.removeprefix("fra.stages.") for m in modules() if m.startswith("fra.stages.")
                                    and m not in helpers)
    for name in STAGES:
        assert importlib.import_module(f"fra.stages.{name}").NAME.replace("-", "_") == name


@pytest.mark.parametrize("stage", sorted(stage_code_deps()))
def test_dvc_stage_depends_on_exactly_its_code(stage):
    """A change to any module a stage runs must rerun it, and nothing else should (per-module deps)."""
    need, listed = stage_code_deps()[stage]
    assert need, f"stage {stage} runs no fra command"
    missing, extra = sorted(need - listed), sorted(listed - need)
    assert not missing and not extra, f"dvc.yaml stage {stage}: add {missing}, remove {extra}"


def test_package_data_is_a_dependency_of_the_stages_that_read_it():
    """Every file pyproject.toml ships as package data is in PACKAGE_DATA, so editing a page template reruns its
    stages."""
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    for package, patterns in data.items():
        shipped = {p for pattern in patterns for p in (ROOT / Path(*package.split("."))).glob(pattern)}
        covered = {p for f in PACKAGE_DATA[package]
                   for p in ([ROOT / f] if (ROOT / f).is_file() else (ROOT / f).rglob("*"))}
        assert shipped and shipped <= covered, (
            f"{package}: {sorted(map(str, shipped - covered))} missing from PACKAGE_DATA")
