"""``fra lm-saes``: SAEs on chosen layers of a pretrained model, from the text corpus.

One activation cache feeds every layer (:mod:`fra.saes.cache`); with ``lm_saes.device`` on a GPU
both the model pass and SAE training run there. A model listed in ``pretrained_saes`` (or any
model with ``--pretrained``) gets released SAEs instead: loaded, validated and saved in the same
layout, no training. Reported per layer: L0, variance explained and dead fraction on held-out
text, quantiles of the feature firing rates, and context cards of a seeded sample of live features
(the channels' own features get cards in ``fra induction``).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from transformer_lens import HookedTransformer

from fra.analysis.features import sampled_cards, token_strings
from fra.config import Layers, load_params
from fra.devices import pick_device
from fra.errors import FRAError
from fra.io import atomic_files, output_dir, write_json
from fra.models import load_model, model_source
from fra.saes import load_saes
from fra.saes.training import copy_layers, train_layers
from fra.text.corpus import load_text_split

NAME = "lm-saes"
HELP = ("train SAEs on chosen layers of a language model from one activation cache, or copy released ones "
        "(params: lm_saes, pretrained_saes)")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--params", default="params.yaml")
    p.add_argument("--model", default="smollm2",
                   help="model directory (e.g. from `fra lm-model`), `smollm2` or a hub name")
    p.add_argument("--corpus", default="data/smollm2/corpus",
                   help="folder with train_tokens.npy and heldout_tokens.npy")
    p.add_argument("--out", default="models/smollm2/saes", help="one SAELens directory per layer: OUT/L17, ...")
    p.add_argument("--results", default="results/smollm2", help="folder for saes.json and feature_cards.json")
    p.add_argument("--pretrained", default=None, metavar="SOURCE",
                   help="copy these SAEs instead of training: a folder of SAELens folders (one per layer) or an "
                        "SAELens release (default: the --model entry of params.yaml's pretrained_saes, if any)")


def model_layers(layers: Layers, model: HookedTransformer, key: str) -> list[int]:
    """``layers`` (every layer for ``all``), refused when the model lacks one."""
    if layers == "all":
        return list(range(model.cfg.n_layers))
    if max(layers) >= model.cfg.n_layers:
        raise FRAError(f"{key} {list(layers)} exceed the model's {model.cfg.n_layers} layers")
    return list(layers)


def run(args: argparse.Namespace) -> int:
    out, results = output_dir(args.out, "--out"), output_dir(args.results, "--results")
    start = time.time()
    params = load_params(args.params)
    name = model_source(args.model)  # a converted folder answers to the name it came from
    cfg, pretrained = params.lm_saes, params.pretrained_saes.get(name)
    source = args.pretrained or (pretrained.release if pretrained else None)
    train_tokens, _ = load_text_split(args.corpus, "train")
    eval_tokens = load_text_split(args.corpus, "heldout")[0][: cfg.eval_sequences]
    device = pick_device(cfg.device)
    model = load_model(args.model, device)
    if int(train_tokens.max()) >= model.cfg.d_vocab:
        raise FRAError(f"{args.corpus} holds token ids beyond the model's vocabulary ({model.cfg.d_vocab}); "
                       "was it built with another tokenizer? Rebuild it with `fra text-corpus --model` for this model")
    if source is None:
        layers = model_layers(cfg.layers, model, "lm_saes.layers")
        summary, feats = train_layers(model, train_tokens, eval_tokens, layers, cfg, out, device)
        per_layer = ((layer, summary[f"L{layer}"], f) for layer, f in feats.items())
    else:
        key = f"pretrained_saes.{name}.layers"
        layers = model_layers(pretrained.layers if pretrained else "all", model, key)
        summary, per_layer = {}, copy_layers(model, load_saes(source, layers, model), eval_tokens,
                                             cfg.cache_batch_size, out)
    strs = token_strings(model, eval_tokens)
    rng = np.random.default_rng(cfg.seed)
    cards = {}
    for layer, metrics, f in per_layer:  # one layer's features at a time
        summary[f"L{layer}"] = metrics
        metrics["freq_quantiles"], cards[f"L{layer}"] = sampled_cards(f, strs, cfg.n_cards, cfg.top_tokens, rng)
    print(f"{len(cards)} SAEs in {time.time() - start:.0f} s")
    summary["run"] = {"device": device,
                      **({"pretrained": source} if source else {"train_sequences": len(train_tokens)}),
                      "eval_sequences": len(eval_tokens), "seq_len": eval_tokens.shape[1]}
    with atomic_files(results) as tmp:
        write_json(tmp / "saes.json", summary)
        write_json(tmp / "feature_cards.json", cards)
    return 0
