"""``fra paper``: build the paper (HTML + PDF + provenance.json) from a committed tree, or verify a built one
against dvc.lock, the files on disk and the commit it cites."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from fra.report.build import pandoc
from fra.report.build.build import build, verify

NAME = "paper"
HELP = "build the paper (HTML + PDF + provenance.json) with Quarto, or offline without it"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--paper-dir", default="paper", help="the Quarto project folder")
    p.add_argument("--out-dir", default=None,
                   help="where the HTML, PDF and provenance.json go (default: PAPER_DIR/_build)")
    p.add_argument("--route", default="auto", choices=["auto", "quarto", "offline"],
                   help="auto: Quarto when `quarto` is on PATH, else pandoc + Typst + Jupyter")
    p.add_argument("--allow-dirty", action="store_true",
                   help="build a draft from uncommitted code; its first page says so, and --verify refuses it")
    p.add_argument("--verify", action="store_true",
                   help="check a built paper's provenance.json against dvc.lock, the "
                        "files and the cited commit instead")


def run(args: argparse.Namespace) -> int:
    out_dir = args.out_dir or Path(args.paper_dir) / "_build"
    if args.verify:
        lines = verify(args.paper_dir, out_dir)
        for line in lines:
            print(line)
        print(f"fra paper: all {len(lines)} checks passed: results match dvc.lock and the files on disk, code and "
              "paper sources match the cited commit")
        return 0
    built = build(args.paper_dir, out_dir, args.route, allow_dirty=args.allow_dirty)
    how = ("Quarto" if built.route == "quarto" else
           f"the offline route (Quarto not on PATH): pandoc {pandoc.pandoc_version()}, Typst, Jupyter")
    print(f"fra paper: built with {how}")
    for note in built.notes:
        print(f"  note: {note}")
    for path in [*built.outputs, built.manifest]:
        print(f"  wrote {os.path.relpath(path)}")
    return 0
