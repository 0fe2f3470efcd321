"""The package's shape: imports point one way, and every DVC stage depends on exactly the code it runs."""

import ast
import importlib
import re
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).parents[1]
# Lower layers never import higher ones: base -> models -> saes -> engine -> analysis -> data worlds ->
# explorers / report -> stages -> cli.
LAYERS = [
    ("fra", "fra.errors", "fra.io", "fra.config", "fra.devices", "fra.repro", "fra.parallel"),
    ("fra.models",), ("fra.saes",), ("fra.engine",), ("fra.analysis",), ("fra.world", "fra.text", "fra.cot"),
    ("fra.explore", "fra.report"), ("fra.stages",), ("fra.cli",),
]


def module_path(name: str) -> Path | None:
    base = ROOT / Path(*name.split("."))
    for p in (base.with_suffix(".py"), base / "__init__.py"):
        if p.exists():
            return p
    return None


def modules() -> list[str]:
    out = []
    for p in sorted((ROOT / "fra").rglob("*.py")):
        parts = p.relative_to(ROOT).with_suffix("").parts
        out.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return out


def imports(name: str, source: str | None = None) -> set[str]:
    """The fra modules ``name`` (or ``source``) imports (``from a.b import c`` counts ``a.b.c`` when that is a module)."""
    found = set()
    for node in ast.walk(ast.parse(module_path(name).read_text() if source is None else source)):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "fra"}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "fra":
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names if module_path(f"{node.module}.{a.name}")}
    parents = {".".join(m.split(".")[:k]) for m in found for k in range(1, m.count(".") + 1)}  # run on import
    own = {".".join(name.split(".")[:k]) for k in range(1, name.count(".") + 1)}  # already running
    return {m for m in (found | parents) - own if module_path(m) and m != name}


def layer(name: str) -> int:
    for n, prefixes in enumerate(LAYERS):
        if name in prefixes or any(name.startswith(p + ".") for p in prefixes if p != "fra"):
            return n
    raise AssertionError(f"{name} is in no layer of LAYERS")


def closure(*names: str) -> set[str]:
    seen, todo = set(), list(names)
    while todo:
        m = todo.pop()
        if m not in seen:
            seen.add(m)
            todo += imports(m)
    return seen


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


PACKAGE_DATA = {  # files the modules of a package read at run time (pyproject.toml's package-data)
    "fra.explore": ["fra/explore/static"],
    "fra.report": ["fra/report/crossref.lua", "fra/report/paper.css"],
}


def stage_code_deps() -> dict[str, tuple[set[str], set[str]]]:
    """Per DVC stage: the fra files its commands import (transitively) and the fra files dvc.yaml lists."""
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    out = {}
    for name, stage in stages.items():
        stage = stage.get("do", stage)
        commands = re.findall(r"\bfra ([a-z0-9-]+)", stage["cmd"])
        roots = {"fra.stages." + command.replace("-", "_") for command in commands}
        if "paper" in commands:  # the paper's code cells run fra code too
            roots |= {m for qmd in (ROOT / "paper").glob("*.qmd") for m in imports("paper", "\n".join(
                re.findall(r"^```\{python\}\n(.*?)^```", qmd.read_text(), flags=re.S | re.M)))}
        modules = closure(*roots)
        need = {str(module_path(m).relative_to(ROOT)) for m in modules}
        need |= {f for package, files in PACKAGE_DATA.items() if any(m.startswith(package) for m in modules) for f in files}
        listed = {d for d in stage.get("deps") or [] if isinstance(d, str) and d.startswith("fra")}
        out[name] = (need, listed)
    return out


@pytest.mark.parametrize("stage", sorted(stage_code_deps()))
def test_dvc_stage_depends_on_exactly_its_code(stage):
    """A change to any module a stage runs must rerun it, and nothing else should (per-module deps)."""
    need, listed = stage_code_deps()[stage]
    assert need, f"stage {stage} runs no fra command"
    missing, extra = sorted(need - listed), sorted(listed - need)
    assert not missing and not extra, f"dvc.yaml stage {stage}: add {missing}, remove {extra}"


def test_package_data_is_a_dependency_of_the_stages_that_read_it():
    """Every file pyproject.toml ships as package data is in PACKAGE_DATA, so editing a page template reruns its stages."""
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    for package, patterns in data.items():
        shipped = {p for pattern in patterns for p in (ROOT / Path(*package.split("."))).glob(pattern)}
        covered = {p for f in PACKAGE_DATA[package] for p in ([ROOT / f] if (ROOT / f).is_file() else (ROOT / f).rglob("*"))}
        assert shipped and shipped <= covered, f"{package}: {sorted(map(str, shipped - covered))} missing from PACKAGE_DATA"
