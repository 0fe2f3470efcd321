"""A small fixture project (results, their stages' code, dvc.lock, a git commit, a paper) and its offline build,
once per session."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pytest
import yaml

HEADS = "layer,head,induction,previous_token,duplicate_token,is_tih\n" + "\n".join(
    f"{layer},{head},{0.9 if (layer, head) == (1, 2) else 0.05 * head:.2f},"
    f"{0.8 if (layer, head) == (0, 1) else 0.02:.2f},0.01,{(layer, head) == (1, 2)}"
    for layer in range(2) for head in range(4)) + "\n"
METRICS = '{"token_repeat_accuracy": 0.82, "concept_repeat_accuracy": 0.79, "steps": 3000}\n'

QUARTO = """\
project:
  type: default
  output-dir: _build
jupyter: python3
execute:
  echo: false
  warning: false
bibliography: references.bib
format:
  html:
    html-math-method: mathml
    embed-resources: true
  typst:
    papersize: a4
"""

BIB = """\
@misc{olsson2022,
  author = {Olsson, Catherine and Elhage, Nelson},
  title = {In-context Learning and Induction Heads},
  year = {2022},
}
"""

PAPER = '''\
---
title: "Fixture paper"
abstract: "A small report built from fixture tables."
---

# Heads

The score is $s_{ij} = q_i \\cdot k_j / \\sqrt{d}$. @fig-heads plots the heads and @tbl-heads lists them
([-@tbl-heads] for short); induction heads follow @olsson2022.

```{python}
import pandas as pd
import matplotlib.pyplot as plt
from fra.report.build.markdown import absent, draft_notice
from fra.report.build.provenance import available, provenance
from fra.report.figures import figure, style
from fra.report.tables import table
from fra.report.values import Values
style()
heads_prov = provenance("results/toy/heads.csv")
heads = pd.read_csv(heads_prov.file)
```

```{python}
#| output: asis
print(draft_notice())
```

```{python}
#| output: asis
fig, ax = plt.subplots()
ax.scatter(heads.previous_token, heads.induction)
ax.set(xlabel="previous-token score", ylabel="induction score")
print(figure(fig, "fig-heads", "Induction against previous-token score per head.", heads_prov))
```

```{python}
#| output: asis
print(table(heads, "tbl-heads", "Scores of every head.", heads_prov))
metrics = provenance("results/toy/metrics.json")
toy = Values("toy")
toy.add("accuracy", pd.read_json(metrics.file, typ="series")["token_repeat_accuracy"], metrics)
```

Token-repeat accuracy is `{python} toy.accuracy` (*`{python} "exactly"`*); [the explorer](explorer/toy/showcase.html).

{{< include _part.qmd >}}

# A model without results

```{python}
#| output: asis
print(absent("results/gpt2/heads.csv", "GPT-2 needs hub access.", "`dvc repro heads@gpt2`")
      if not available("results/gpt2/heads.csv") else "unexpected")
```

# References

::: {#refs}
:::
'''


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


CODE = "code/stage.py"  # the code every fixture stage records as its dependency


def write_results(root: Path, files: dict[str, tuple[str, str]], code: str = CODE) -> None:
    """Write ``{path: (stage, text)}``, the stages' code file and a dvc.lock that records each file's md5 under its
    stage, with the code file as the stage's dependency."""
    (root / code).parent.mkdir(parents=True, exist_ok=True)
    if not (root / code).exists():
        (root / code).write_text("print('a stage')\n")
    dep = {"path": code, "hash": "md5", "md5": md5(root / code), "size": (root / code).stat().st_size}
    stages: dict[str, dict] = {}
    for path, (stage, text) in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)
        out = {"path": path, "hash": "md5", "md5": md5(root / path), "size": (root / path).stat().st_size}
        stages.setdefault(stage, {"cmd": "fra something", "deps": [dep], "outs": []})["outs"].append(out)
    (root / "dvc.lock").write_text(yaml.safe_dump({"schema": "2.0", "stages": stages}, sort_keys=False))
    (root / "dvc.yaml").write_text("stages: {}\n")


def commit(root: Path, message: str = "fixture") -> None:
    """Commit everything in ``root`` (a git repository is created if there is none)."""
    git = ["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@t"]
    if not (root / ".git").exists():
        subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", message], check=True)


def make_project(root: Path) -> Path:
    """A DVC-like project: results files, a dvc.lock recording them, one git commit, the paper."""
    write_results(root, {"results/toy/heads.csv": ("toy_heads", HEADS),
                         "results/toy/metrics.json": ("toy_train", METRICS),
                         "results/toy/explorer/showcase.html": ("toy_explore", "<html>a page</html>\n")})
    paper = root / "paper"
    paper.mkdir()
    (paper / "_quarto.yml").write_text(QUARTO)
    (paper / "references.bib").write_text(BIB)
    (paper / "index.qmd").write_text(PAPER)
    (paper / "_part.qmd").write_text("An included part: `{python} len(heads)` heads.\n")
    (paper / ".gitignore").write_text(".fra-build/\n_figures/\n")
    commit(root)
    return root


@pytest.fixture(scope="session")
def built(tmp_path_factory):
    """The fixture project built once through the offline route."""
    from fra.report.build.build import build

    root = make_project(tmp_path_factory.mktemp("project"))
    result = build(root / "paper", root / "paper/_build", route="offline")
    return root, result


@pytest.fixture
def root(tmp_path, monkeypatch):
    """An empty project folder the paper's sections read from (cells' working directory: figures go there)."""
    from fra.report.build.provenance import ROOT_ENV

    monkeypatch.setenv(ROOT_ENV, str(tmp_path))
    monkeypatch.chdir(tmp_path)
    return tmp_path
