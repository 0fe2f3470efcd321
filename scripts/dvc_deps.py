"""Rewrite the fra/ code deps of every stage in dvc.yaml to the files its commands import (transitively).

tests/test_structure.py fails when dvc.yaml and the imports disagree; run this to fix dvc.yaml:
    .venv/bin/python scripts/dvc_deps.py
"""

import re
import sys
from pathlib import Path

ROOT = Path(__file__).parents[1]
sys.path.insert(0, str(ROOT))
from tests.test_structure import stage_code_deps  # noqa: E402

STAGE = re.compile(r"^  ([a-z_]+):\s*$")
ITEM = re.compile(r"^(\s+)- (.*)$")


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
