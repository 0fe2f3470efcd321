"""``fra reproduce``: rerun the whole pipeline, then compare every results file with a commit's.

``dvc repro`` skips a stage whose dependencies and outputs match ``dvc.lock``. On a fresh clone that is every stage
whose outputs are all committed and whose inputs are all code and params (the seed table, the compiled model): their
committed tables would never be recomputed, and a reviewer would believe they reproduced. This command forces exactly
those stages (found from ``dvc.yaml`` through DVC's API), runs ``dvc repro`` for the rest, and prints the comparison
of :mod:`fra.report.build.rerun` with its verdict.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from dvc.repo import Repo

from fra.errors import FRAError
from fra.io import write_json
from fra.report.build.rerun import VERDICTS, compare
from fra.stages.args import non_negative

NAME = "reproduce"
HELP = ("rerun the pipeline (forcing the stages dvc repro would skip on a fresh clone) and compare every results file "
        "with a commit's: byte-identical, same decisions within tolerance, or decisions differ")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--check-only", action="store_true", help="compare the working tree's results; run nothing")
    p.add_argument("--against", default="HEAD", help="the commit whose results are the reference")
    p.add_argument("--rtol", type=non_negative, default=1e-3, help="relative tolerance of the numbers")
    p.add_argument("--report", default=None, help="also write the comparison as JSON to this file")
    p.add_argument("--strict", action="store_true",
                   help="exit 1 unless the verdict is byte-identical or within tolerance")


def skipped_on_a_fresh_clone(repo: Repo) -> list[str]:
    """Stages whose outputs are all committed (none in DVC's cache) and whose dependencies no stage writes."""
    written = {out.def_path for stage in repo.index.stages for out in stage.outs}
    return [stage.addressing for stage in repo.index.stages
            if stage.outs and not any(out.use_cache for out in stage.outs)
            and not any(dep.def_path in written for dep in stage.deps)]


def run(args: argparse.Namespace) -> int:
    root = Path.cwd()
    if not (root / "dvc.yaml").is_file():
        raise FRAError(f"no dvc.yaml in {root}; run `fra reproduce` from the repository root")
    if not args.check_only:
        # the stages' `fra`
        os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
        with Repo(str(root)) as repo:
            forced = skipped_on_a_fresh_clone(repo)
            print("forcing the stages dvc repro skips when their committed outputs match "
                  f"dvc.lock: {', '.join(forced)}")
            repo.reproduce(targets=forced, force=True, single_item=True)
            repo.reproduce()
    comparison = compare(root, args.against, args.rtol)
    print("\n".join(comparison.lines()))
    if args.report:
        write_json(args.report, comparison.to_dict())
    return 1 if args.strict and comparison.verdict not in VERDICTS[:2] else 0
