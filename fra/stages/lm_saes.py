"""``fra lm-saes``: SAEs on chosen layers of a pretrained model, from the text corpus.

One activation cache feeds every layer (:mod:`fra.saes.cache`); with ``lm_saes.device`` on a GPU
both the model pass and SAE training run there. Reported per layer: L0, variance explained and
dead fraction on held-out text, quantiles of the feature firing rates, and context cards of a
seeded sample of live features (the channels' own features get cards in ``fra induction``).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from fra.analysis.features import sampled_cards, token_strings
from fra.config import load_params
from fra.devices import pick_device
from fra.errors import FRAError
from fra.io import atomic_files, output_dir, write_json
from fra.models import load_model
from fra.saes.training import train_layers
from fra.text.corpus import load_text_split

NAME = "lm-saes"
HELP = "train SAEs on chosen layers of a language model from one activation cache (params: lm_saes)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--params", default="params.yaml")
    p.add_argument("--model", default="smollm2", help="model directory, `smollm2` or a hub name")
    p.add_argument("--corpus", default="data/smollm2/corpus", help="folder with train_tokens.npy and heldout_tokens.npy")
    p.add_argument("--out", default="models/smollm2/saes", help="one SAELens directory per layer: OUT/L17, ...")
    p.add_argument("--results", default="results/smollm2", help="folder for saes.json and feature_cards.json")


def run(args: argparse.Namespace) -> int:
    out, results = output_dir(args.out, "--out"), output_dir(args.results, "--results")
    start = time.time()
    cfg = load_params(args.params).lm_saes
    train_tokens, _ = load_text_split(args.corpus, "train")
    eval_tokens = load_text_split(args.corpus, "heldout")[0][: cfg.eval_sequences]
    device = pick_device(cfg.device)
    model = load_model(args.model, device)
    if max(cfg.layers) >= model.cfg.n_layers:
        raise FRAError(f"lm_saes.layers {list(cfg.layers)} exceed the model's {model.cfg.n_layers} layers")
    if int(train_tokens.max()) >= model.cfg.d_vocab:
        raise FRAError(f"{args.corpus} holds token ids beyond the model's vocabulary ({model.cfg.d_vocab}); "
                       "was it built with another tokenizer? Rebuild it with `fra text-corpus --model` for this model")
    summary, feats = train_layers(model, train_tokens, eval_tokens, list(cfg.layers), cfg, out, device)
    strs = token_strings(model, eval_tokens)
    rng = np.random.default_rng(cfg.seed)
    cards = {}
    for layer, f in feats.items():
        summary[f"L{layer}"]["freq_quantiles"], cards[f"L{layer}"] = sampled_cards(f, strs, cfg.n_cards, cfg.top_tokens, rng)
    summary["run"] = {"device": device, "seconds": round(time.time() - start, 1), "train_sequences": len(train_tokens),
                      "eval_sequences": len(eval_tokens), "seq_len": eval_tokens.shape[1]}
    with atomic_files(results) as tmp:
        write_json(tmp / "saes.json", summary)
        write_json(tmp / "feature_cards.json", cards)
    return 0
