"""``fra toy-saes``: one SAE per layer >= 1 of the toy model, with feature cards by token class."""

from __future__ import annotations

import argparse

from fra.config import load_params
from fra.io import atomic_files, output_dir, write_json
from fra.models import load_model
from fra.saes.training import train_layers
from fra.world.cards import feature_cards
from fra.world.corpus import load_split, token_classes, token_names, world_corpus

NAME = "toy-saes"
HELP = "train one SAE per layer >= 1 of the toy model on hook_resid_pre (params: toy_saes)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--params", default="params.yaml")
    p.add_argument("--model", default="models/toy/model")
    p.add_argument("--corpus", default="data/toy/corpus")
    p.add_argument("--out", default="models/toy/saes", help="one SAELens directory per layer: OUT/L1, OUT/L2, ...")
    p.add_argument("--results", default="results/toy", help="folder for saes.json and feature_cards.json")


def run(args: argparse.Namespace) -> int:
    out, results = output_dir(args.out, "--out"), output_dir(args.results, "--results")
    params = load_params(args.params)
    cfg, world = params.toy_saes, params.world
    corpus = world_corpus(args.corpus)
    model = load_model(args.model, device="cpu")
    train_tokens = load_split(corpus, "train").tokens
    eval_tokens = load_split(corpus, "heldout").tokens[: cfg.eval_sequences]
    summary, feats = train_layers(model, train_tokens, eval_tokens, list(range(1, model.cfg.n_layers)), cfg, out, "cpu")
    cards = {}
    for layer, f in feats.items():
        layer_cards = feature_cards(f, eval_tokens, token_names(world), token_classes(world), cfg.top_tokens)
        kinds = [c["kind"].split(":")[0] for c in layer_cards]
        summary[f"L{layer}"]["feature_kinds"] = {k: kinds.count(k) for k in ("current", "previous", "mixed", "dead")}
        cards[f"L{layer}"] = layer_cards
    with atomic_files(results) as tmp:
        write_json(tmp / "saes.json", summary)
        write_json(tmp / "feature_cards.json", cards)
    return 0
