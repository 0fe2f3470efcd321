"""``fra induction``: token induction heads vs conceptual induction channels, with statistics, for one model."""

from __future__ import annotations

import argparse

from fra.analysis.induction import probe_sets
from fra.analysis.induction import run as run_study
from fra.config import load_params
from fra.errors import FRAError
from fra.io import output_dir, read_json
from fra.models import load_model
from fra.saes import load_saes
from fra.stages.args import token_ids
from fra.world.probes import world_probes
from fra.world.truth import calibration, planted_recall

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
    p.add_argument("--no-checks", action="store_true", help="skip the negative controls and the causal test")
    p.add_argument("--out", required=True, help="results directory, e.g. results/toy")


def run(args: argparse.Namespace) -> int:
    if args.corpus_sequences < 1:
        raise FRAError(f"--corpus-sequences must be >= 1, got {args.corpus_sequences}")
    out = output_dir(args.out, "--out")
    params = load_params(args.params)
    world = None
    if args.ground_truth:
        truth = read_json(args.ground_truth, "--ground-truth")
        world = params.world
        if not isinstance(truth, dict) or truth.get("d_vocab") != world.d_vocab or truth.get("n_conceptual") != world.n_conceptual:
            raise FRAError(f"--ground-truth {args.ground_truth} does not match params.yaml's world section; "
                           "rerun `dvc repro toy_data`")
    corpus = token_ids(args.corpus, args.corpus_sequences, "--corpus") if args.corpus else None
    model = load_model(args.model, params.engine.device)
    if corpus is not None and int(corpus.max()) >= model.cfg.d_vocab:
        raise FRAError(f"--corpus {args.corpus} holds token ids beyond the model's vocabulary ({model.cfg.d_vocab})")
    saes = load_saes(args.saes, args.layers, model)
    cfg = params.induction
    probes = probe_sets(model, cfg, corpus, templates=world is None)
    if world is not None:
        probes += list(zip(world_probes(world, cfg.n_discovery, seed=cfg.seed * 2),
                           world_probes(world, cfg.n_heldout, seed=cfg.seed * 2 + 1)))
    study = run_study(model, saes, params, probes, corpus, args.saes, checks=not args.no_checks)
    if world is not None:
        study.metrics["planted"] = planted_recall(study.channels, world)
        study.calibration = calibration(study.channels, world, params.channels)
    study.write(out)
    m = study.metrics
    print(f"{m['n_channels_tested']} channels tested, {m['n_cih']} confirmed (BH at {m['criterion']['alpha']}, lift >= {m['criterion']['min_lift']})")
    print(f"H1 {m['H1']['answer']}: {m['H1']['n_tih_with_cih']}/{m['H1']['n_tih']} TIH with a confirmed channel")
    print(f"H2 {m['H2']['answer']}: {m['H2']['n_non_tih_with_cih']}/{m['H2']['n_non_tih']} non-TIH heads with one")
    for kind, c in m.get("controls", {}).items():
        print(f"control {kind}: {c['n_confirmed']} of {c['n_tested']} channels confirmed")
    if "causal" in m:
        print(f"causal: {m['causal']['n_moves_output']}/{m['causal']['n_channels']} confirmed channels move the output")
    if "planted" in m:
        p = m["planted"]
        print(f"planted: recall {p['recall_conceptual']:.2f}, false discoveries {p['false_discovery_token_only']:.2f}")
    return 0
