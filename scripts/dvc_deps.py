"""The fra code every DVC stage runs, found from the imports, and a rewrite of dvc.yaml's fra/ deps to match.

A stage's code is every fra module its commands import (transitively; for the paper, also what its code cells
import) and the package data those modules read. tests/test_structure.py fails when dvc.yaml and the imports
disagree; run this to fix dvc.yaml:
    .venv/bin/python scripts/dvc_deps.py
"""

import ast
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).parents[1]
PACKAGE_DATA = {  # files the modules of a package read at run time (pyproject.toml's package-data)
    "fra.explore": ["fra/explore/static"],
    "fra.report.build": ["fra/report/build/crossref.lua", "fra/report/build/paper.css"],
}
STAGE = re.compile(r"^  ([a-z_]+):\s*$")
ITEM = re.compile(r"^(\s+)- (.*)$")


def module_path(name: str) -> Path | None:
    base = ROOT / Path(*name.split("."))
    for p in (base.with_suffix(".py"), base / "__init__.py"):
        if p.exists():
            return p
    return None


def imports(name: str, source: str | None = None) -> set[str]:
    """The fra modules ``name`` (or ``source``) imports (``from a.b import c`` counts ``a.b.c`` when that is a
    module)."""
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


def closure(*names: str) -> set[str]:
    seen, todo = set(), list(names)
    while todo:
        m = todo.pop()
        if m not in seen:
            seen.add(m)
            todo += imports(m)
    return seen


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
        need |= {f for package, files in PACKAGE_DATA.items() if any(m.startswith(package) for m in modules)
                 for f in files}
        listed = {d for d in stage.get("deps") or [] if isinstance(d, str) and d.startswith("fra")}
        out[name] = (need, listed)
    return out


def rewrite(text: str) -> str:
    deps, out, stage = stage_code_deps(), [], None
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        stage = STAGE.match(line).group(1) if STAGE.match(line) else stage
        out.append(line)
        i += 1
        if re.match(r"^\s+deps:\s*$", line):
            items = []
            while i < len(lines) and ITEM.match(lines[i]):
                indent, item = ITEM.match(lines[i]).groups()
                items.append(item)
                i += 1
            out += [f"{indent}- {x}" for x in items if not x.startswith("fra")]
            out += [f"{indent}- {x}" for x in sorted(deps[stage][0])]
    return "\n".join(out)


if __name__ == "__main__":
    path = ROOT / "dvc.yaml"
    path.write_text(rewrite(path.read_text()))
    print(f"rewrote the fra/ deps of {path}")
