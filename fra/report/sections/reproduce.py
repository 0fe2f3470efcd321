"""The paper's account of its own provenance: the commit it cites, and every pipeline stage in dvc.lock with the
code it records for it (``lock.StageCode``), so a reader can check both."""

from __future__ import annotations

import pandas as pd

from fra.report.build.lock import stages
from fra.report.build.markdown import absent
from fra.report.build.provenance import checked_stage, repo_root, tree_state
from fra.report.tables import table

PAPER_STAGE = "paper"


def commit_sentence() -> str:
    """Which commit the document cites, whether the code was committed, and which results were not yet."""
    state = tree_state(repo_root())
    if not state.clean:
        return ("This is a draft built from uncommitted code (see the notice on the first page): its provenance "
                "lines cannot be checked against a commit.")
    results = [p for p in state.outputs if p.startswith("results/")]
    pending = (f" {len(results)} results files (and dvc.lock) were pipeline outputs not yet committed when it was "
               "built, as in any `dvc repro` that ends with this paper; dvc.lock vouches for them by md5, and "
               "`fra paper --verify` rechecks them." if results else "")
    return (f"This document was built from commit `{state.commit}` with no uncommitted code.{pending}")


def stages_table() -> str:
    """Every stage in dvc.lock but the paper's own: its code files, their digest and the params it read, checked
    against the working tree (``provenance.checked_stage``)."""
    root = repo_root()
    rows = []
    for stage in sorted(s for s in stages(root) if s != PAPER_STAGE):
        code = checked_stage(root, stage)
        rows.append({"stage": stage, "code files": len(code.code), "code digest": code.digest[:8],
                     "params.yaml sections": ", ".join(sorted(code.params)) or "–"})
    if not rows:
        return absent("dvc.lock", "It records every stage's code, params and outputs.")
    return table(pd.DataFrame(rows), "tbl-stages", "The pipeline's stages as dvc.lock records them: the number of "
                 "code files each ran (the `fra` modules it imports and their package data), the first eight hex "
                 "digits of their digest, and the params.yaml sections it read. Every stage was checked to be in step "
                 "with the working tree when this document was built.",
                 note="dvc.lock's stage records; provenance.json lists every code file with its md5")
