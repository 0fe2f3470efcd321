"""``fra induction``: token induction heads vs conceptual induction channels, with statistics, for one model."""

from __future__ import annotations

import argparse

from fra.analysis.induction import probe_sets
from fra.analysis.induction import run as run_study
from fra.analysis.probes import Probes
from fra.config import load_params
from fra.errors import FRAError
from fra.io import output_dir
from fra.models import load_model
from fra.saes import load_saes
from fra.stages.args import token_ids
from fra.world.probes import world_probes
from fra.world.truth import calibration, checked_world, planted_recall

NAME = "induction"
HELP = "token induction heads vs conceptual induction channels, with statistics"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="model directory or hub name")
    p.add_argument("--saes", required=True, help="directory of SAELens folders (one per layer), one SAELens folder, "
                   "or a hub release")
    p.add_argument("--layers", type=int, nargs="+", default=None, help="layers to resolve (default: every SAE found)")
    p.add_argument("--params", default="params.yaml")
    p.add_argument("--ground-truth", default=None, help="planted-world ground truth (the JSON of `fra toy-data`, "
                   "checked against the params' world section): adds the world's concept probes and planted recall")
    p.add_argument("--corpus", default=None, help="token ids (.npy, [seq, pos]) for the feature cards")
    p.add_argument("--corpus-sequences", type=int, default=256, help="sequences of --corpus to use")
    p.add_argument("--no-checks", action="store_true", help="skip the negative controls and the causal test")
    p.add_argument("--out", required=True, help="results directory, e.g. results/toy")


def run(args: argparse.Namespace) -> int:
    if args.corpus_sequences < 1:
        raise FRAError(f"--corpus-sequences must be >= 1, got {args.corpus_sequences}")
    out = output_dir(args.out, "--out")
    params = load_params(args.params)
    world = checked_world(args.ground_truth, args.params, params.world) if args.ground_truth else None
    corpus = token_ids(args.corpus, args.corpus_sequences, "--corpus") if args.corpus else None
    model = load_model(args.model, params.engine.device)
    if corpus is not None and int(corpus.max()) >= model.cfg.d_vocab:
        raise FRAError(f"--corpus {args.corpus} holds token ids beyond the model's vocabulary ({model.cfg.d_vocab})")
    if corpus is not None and corpus.shape[1] > model.cfg.n_ctx:
        raise FRAError(f"--corpus {args.corpus} has rows of {corpus.shape[1]} tokens but the model's context is "
                       f"{model.cfg.n_ctx}; pass a corpus with rows of at most {model.cfg.n_ctx} tokens")
    if world is not None and world.d_vocab > model.cfg.d_vocab:
        raise FRAError(f"--ground-truth {args.ground_truth}: the planted world has {world.d_vocab} tokens but the "
                       f"model's vocabulary only {model.cfg.d_vocab}; pass the model trained on this world")
    if world is not None and world.seq_len > model.cfg.n_ctx:
        raise FRAError(f"world.seq_len ({world.seq_len}) is longer than the model's context ({model.cfg.n_ctx} "
                       "tokens): the world probes are sequences of seq_len tokens; set world.seq_len <= "
                       f"{model.cfg.n_ctx} in {args.params}")
    saes = load_saes(args.saes, args.layers, model)
    cfg = params.induction
    probes = probe_sets(model, cfg, corpus, templates=world is None)
    if world is not None:
        probes += list(zip(world_probes(world, cfg.n_discovery, seed=cfg.seed * 2),
                           world_probes(world, cfg.n_heldout, seed=cfg.seed * 2 + 1)))
    check_lengths(probes, model.cfg.n_ctx, args.params)
    study = run_study(model, saes, params, probes, corpus, args.saes, checks=not args.no_checks)
    if world is not None:
        study.metrics["planted"] = planted_recall(study.channels, world)
        study.calibration = calibration(study.channels, world, params.channels)
    study.write(out)
    m = study.metrics
    print(f"{m['n_channels_tested']} channels tested ({m['n_tests']} tests), {m['n_cih']} confirmed (BH at "
          f"{m['criterion']['alpha']}, lift >= {m['criterion']['lift_threshold']:.4g}, this model's threshold)")
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


def check_lengths(probes: list[tuple[Probes, Probes]], n_ctx: int, params_path: str) -> None:
    """Refuse probes longer than the model's context, naming the parameter that sets their length."""
    long = {disc.kind: max(disc.tokens.shape[1], held.tokens.shape[1]) for disc, held in probes}
    long = {kind: n for kind, n in long.items() if n > n_ctx}
    fixes = []
    if set(long) & {"random_repeat", "text_repeat"}:
        fixes.append("repeats take 1 + 2 * induction.repeat_max tokens: set induction.repeat_max <= "
                     f"{(n_ctx - 1) // 2} in {params_path}")
    if "concept_templates" in long:
        fixes.append(f"the English concept templates take {long['concept_templates']} tokens: this model is too short "
                     "for them")
    if long:
        raise FRAError(f"probes longer than the model's context ({n_ctx} tokens): "
                       + ", ".join(f"{kind} {n}" for kind, n in long.items()) + "; " + "; ".join(fixes))
