"""``fra explore``: the single-text explorer page for one text and one layer (all heads)."""

from __future__ import annotations

import argparse
from pathlib import Path

from fra.engine.inputs import tokenize
from fra.explore.data import Detail
from fra.explore.single import single_page
from fra.io import output_file, write_text
from fra.models import load_model
from fra.saes import load_sae
from fra.stages.args import at_least, positive, share

NAME = "explore"
HELP = "write a self-contained HTML explorer of one text at one layer (all heads)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="model directory or hub name (gpt2-small)")
    p.add_argument("--sae", required=True, help="SAELens directory or hub release (gpt2-small-res-jb)")
    p.add_argument("--layer", type=int, required=True, help="layer whose heads the page resolves (all of them)")
    p.add_argument("--text", required=True, help="the text (the model's BOS is prepended)")
    p.add_argument("-o", "--out", required=True, help="the HTML file to write")
    p.add_argument("--keys-per-query", type=at_least(0), default=8,
                   help="most keys per (head, query) with channel detail (0: all)")
    p.add_argument("--mass", type=share, default=0.9, help="detail for the keys holding this share of each query's attention")
    p.add_argument("--top-n", type=positive, default=8, help="feature-pair channels listed per (query, key) pair")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])


def run(args: argparse.Namespace) -> int:
    out = output_file(args.out, "--out")
    model = load_model(args.model, args.device)
    sae = load_sae(args.sae, args.layer, args.device)
    tokens = tokenize(model, args.text)
    detail = Detail(max_keys=args.keys_per_query, mass=args.mass, top_n=args.top_n)
    names = {"model": Path(args.model).name or str(args.model), "sae": str(args.sae)}
    html, _ = single_page(model, sae, tokens, args.layer, detail, names=names)
    write_text(out, html)
    print(f"wrote {args.out} ({len(html.encode()) / 1e6:.2f} MB, {tokens.shape[1]} tokens, {model.cfg.n_heads} heads)")
    return 0
