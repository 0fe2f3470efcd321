"""``fra cot-traces``: reasoning-gym problems as teacher-forced traces, split into typed sentences."""

from __future__ import annotations

import argparse
from collections import Counter

from fra.config import load_params
from fra.cot.traces import build_traces, write_traces
from fra.io import output_dir
from fra.models import load_tokenizer

NAME = "cot-traces"
HELP = ("chain-of-thought traces: reasoning-gym question + worked solution, typed sentences, split by problem "
        "(params: cot)")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--params", default="params.yaml")
    p.add_argument("--model", default="smollm2",
                   help="whose tokenizer: smollm2, gpt2 (or gpt2-small) or a folder with one .gguf")
    p.add_argument("--out", default="data/smollm2/cot", help="folder for traces.json and sentences.csv")


def run(args: argparse.Namespace) -> int:
    out = output_dir(args.out, "--out")
    cfg = load_params(args.params).cot
    traces = build_traces(load_tokenizer(args.model), cfg)
    write_traces(traces, out)
    kinds = Counter(s.kind for t in traces for s in t.sentences)
    splits = Counter(t.split for t in traces)
    print(f"wrote {len(traces)} traces ({splits['discovery']} discovery, {splits['heldout']} held-out), "
          f"{sum(kinds.values())} sentences ({dict(kinds)}) to {args.out}")
    return 0
