"""Language-model SAEs (``fra lm-saes``): SAEs on chosen layers of a pretrained model, from the text corpus.

One activation cache feeds every layer (:mod:`fra.saes.cache`); with ``lm_saes.device`` on a GPU
both the model pass and SAE training run there. Reported per layer: L0, variance explained and
dead fraction on held-out text, quantiles of the feature firing rates, and context cards of a
seeded sample of live features (the channels' own features get cards in ``fra induction``).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from fra.errors import FRAError


def main(args) -> int:
    from fra.config import load_params
    from fra.explore.cards import cards_from_acts, token_strings
    from fra.io import write_json
    from fra.models import load_model
    from fra.models.loading import pick_device
    from fra.saes.training import train_layers
    from fra.text.corpus import load_text_split

    start = time.time()
    cfg = load_params(args.params).lm_saes
    device = pick_device(cfg.device)
    model = load_model(args.model, device)
    if max(cfg.layers) >= model.cfg.n_layers:
        raise FRAError(f"lm_saes.layers {list(cfg.layers)} exceed the model's {model.cfg.n_layers} layers")
    train_tokens, _ = load_text_split(args.corpus, "train")
    eval_tokens = load_text_split(args.corpus, "heldout")[0][: cfg.eval_sequences]
    if int(train_tokens.max()) >= model.cfg.d_vocab:
        raise FRAError(f"{args.corpus} holds token ids beyond the model's vocabulary ({model.cfg.d_vocab}); "
                       "was it built with another tokenizer? Rebuild it with `fra text-corpus --model` for this model")
    summary, feats = train_layers(model, train_tokens, eval_tokens, list(cfg.layers), cfg, Path(args.out), device)
    strs = token_strings(model, eval_tokens)
    S, P = eval_tokens.shape
    rng = np.random.default_rng(cfg.seed)
    cards = {}
    for layer, f in feats.items():
        freq = (f > 0).float().mean(0)  # [d_sae]
        live = np.flatnonzero(freq.numpy() > 0)
        sample = sorted(int(a) for a in rng.choice(live, min(cfg.n_cards, len(live)), replace=False))
        summary[f"L{layer}"]["freq_quantiles"] = {
            str(q): round(float(freq[live].quantile(q)), 6) for q in (0.1, 0.5, 0.9, 0.99)} if len(live) else {}
        top = cards_from_acts(f.view(S, P, -1)[..., sample], strs, sample, cfg.top_tokens)
        cards[f"L{layer}"] = {str(a): {"freq": round(float(freq[a]), 6), "top": top[a]} for a in sample}
    summary["run"] = {"device": device, "seconds": round(time.time() - start, 1), "train_sequences": len(train_tokens),
                      "eval_sequences": len(eval_tokens), "seq_len": P}
    write_json(Path(args.results) / "saes.json", summary)
    write_json(Path(args.results) / "feature_cards.json", cards)
    return 0
