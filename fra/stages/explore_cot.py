"""``fra explore-cot``: the chain-of-thought explorer of one trace (``trace_view.json`` of ``fra cot``)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from fra.errors import FRAError
from fra.explore.cot import FIX, cot_page
from fra.explore.encode import clean
from fra.io import output_file, write_text

NAME = "explore-cot"
HELP = "write a self-contained HTML explorer of one chain-of-thought trace: sentences, receiving heads, channels"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--view", required=True,
                   help="trace_view.json written by `fra cot` (results/<model>/cot/trace_view.json)")
    p.add_argument("--name", default=None,
                   help="model name in the title (default: the view's folder, or the one above it when that is `cot`)")
    p.add_argument("-o", "--out", required=True, help="the HTML file to write")


def read_view(path: str | Path) -> dict:
    """The trace view with NaN as None; FRAError when missing or not JSON."""
    path = Path(path)
    if not path.is_file():
        raise FRAError(f"--view {path} does not exist; {FIX}")
    try:
        return clean(json.loads(path.read_text()))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise FRAError(f"--view {path} is not JSON ({exc}); {FIX}") from exc


def run(args: argparse.Namespace) -> int:
    out = output_file(args.out, "--out")
    view = read_view(args.view)
    folder = Path(args.view).resolve().parent
    name = args.name or (folder.parent.name if folder.name == "cot" else folder.name)
    html, _ = cot_page(view, {"model": name})
    write_text(out, html)
    print(f"wrote {args.out} ({len(html.encode()) / 1e6:.2f} MB, {len(view['sentences'])} sentences, "
          f"{view['n_layers']} layers x {view['n_heads']} heads, {len(view['resolved'])} resolved)")
    return 0
