"""``fra toy-data``: the planted-concept world's corpus and ground truth."""

from __future__ import annotations

import argparse
import dataclasses

from fra.config import load_params
from fra.io import output_dir, output_file
from fra.world.corpus import write_corpus

NAME = "toy-data"
HELP = "generate the planted-concept world corpus and its ground truth (params: world)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--params", default="params.yaml")
    p.add_argument("--out", default="data/toy/corpus", help="corpus directory (.npy files)")
    p.add_argument("--ground-truth", default="data/toy/ground_truth.json")
    p.add_argument("--concept-prob", type=float, default=None,
                   help="override world.concept_prob (0: the ablation without concept repeats)")


def run(args: argparse.Namespace) -> int:
    out, truth = output_dir(args.out, "--out"), output_file(args.ground_truth, "--ground-truth")
    cfg = load_params(args.params).world
    if args.concept_prob is not None:
        cfg = dataclasses.replace(cfg, concept_prob=args.concept_prob)  # validated again
    write_corpus(cfg, out, truth)
    print(f"wrote {cfg.n_train} + {cfg.n_heldout} sequences of {cfg.seq_len} tokens to {args.out}")
    return 0
