"""The paper's account of its own provenance: the commit it cites (as values), and every pipeline stage in dvc.lock
with the code it records for it (``lock.StageCode``), so a reader can check both."""

from __future__ import annotations

import pandas as pd

from fra.report.build.lock import LOCK, md5sum, stages
from fra.report.build.markdown import absent
from fra.report.build.provenance import checked_stage, repo_root, tree_state
from fra.report.tables import table
from fra.report.values import Values

PAPER_STAGE = "paper"


def build_values() -> Values:
    """The commit the document cites and the results files that were pipeline outputs not yet committed."""
    state = tree_state(repo_root())
    v = Values("build")
    v.add("commit", f"`{state.commit}`", note="git HEAD when the paper was built")
    v.add("code", "no uncommitted code" if state.clean else "uncommitted code (a draft)", note="git status")
    v.add("pending", len([p for p in state.outputs if p.startswith("results/")]), note="git status of results/")
    return v


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
                 note=f"`{LOCK}`, md5 `{md5sum(root / LOCK)}`, commit `{tree_state(root).commit[:10]}`; "
                      "provenance.json lists every code file with its md5")
