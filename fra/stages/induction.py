"""``fra induction``: token induction heads vs conceptual induction channels, with statistics, for one model."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from fra.analysis.induction import load_saes, probe_sets
from fra.analysis.induction import run as run_study
from fra.config import load_params
from fra.errors import FRAError
from fra.models import load_model
from fra.world.probes import world_probes
from fra.world.truth import planted_recall

NAME = "induction"
HELP = "token induction heads vs conceptual induction channels, with statistics"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="model directory or hub name")
    p.add_argument("--saes", required=True, help="directory of SAELens folders (one per layer) or a hub release")
    p.add_argument("--layers", type=int, nargs="+", default=None, help="layers to resolve (default: every SAE found)")
    p.add_argument("--params", default="params.yaml")
    p.add_argument("--ground-truth", default=None, help="planted-world ground truth: adds concept probes and recall")
    p.add_argument("--corpus", default=None, help="token ids (.npy, [seq, pos]) for the feature cards")
    p.add_argument("--corpus-sequences", type=int, default=256, help="sequences of --corpus to use")
    p.add_argument("--out", required=True, help="results directory, e.g. results/toy")


def run(args: argparse.Namespace) -> int:
    params = load_params(args.params)
    model = load_model(args.model, params.engine.device)
    saes = load_saes(args.saes, args.layers, model)
    world = None
    if args.ground_truth:
        truth = json.loads(Path(args.ground_truth).read_text())
        world = params.world
        if truth["d_vocab"] != world.d_vocab or truth["n_conceptual"] != world.n_conceptual:
            raise FRAError(f"{args.ground_truth} does not match params.yaml's world section; rerun `dvc repro toy_data`")
    corpus = None
    if args.corpus:
        corpus = torch.from_numpy(np.load(args.corpus).astype(np.int64))[: args.corpus_sequences]
    cfg = params.induction
    probes = probe_sets(model, cfg, corpus, templates=world is None)
    if world is not None:
        probes += list(zip(world_probes(world, cfg.n_discovery, seed=cfg.seed * 2),
                           world_probes(world, cfg.n_heldout, seed=cfg.seed * 2 + 1)))
    study = run_study(model, saes, params, probes, corpus, args.saes)
    if world is not None:
        study.metrics["planted"] = planted_recall(study.channels, world)
    study.write(Path(args.out))
    m = study.metrics
    print(f"{m['n_channels_tested']} channels tested, {m['n_cih']} confirmed (BH at {m['alpha']})")
    print(f"H1 {m['H1']['answer']}: {m['H1']['n_tih_with_cih']}/{m['H1']['n_tih']} TIH with a confirmed channel")
    print(f"H2 {m['H2']['answer']}: {m['H2']['n_non_tih_with_cih']}/{m['H2']['n_non_tih']} non-TIH heads with one")
    if "planted" in m:
        p = m["planted"]
        print(f"planted: recall {p['recall_conceptual']:.2f}, false discoveries {p['false_discovery_token_only']:.2f}")
    return 0
