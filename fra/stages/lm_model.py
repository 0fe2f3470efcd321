"""``fra lm-model``: a language model converted once into fra's format, for the stages after it.

Converting SmolLM2 (dequantising its GGUF, folding RMSNorm into TransformerLens' layout) takes ~40 s
on two CPU cores; the saved folder loads in about a second. The copy is checked before it is kept:
read back, it must give the converted model's logits bit for bit.
"""

from __future__ import annotations

import argparse
import shutil
import time

import torch
from jaxtyping import Int
from transformer_lens import HookedTransformer

from fra.errors import FRAError
from fra.io import output_dir
from fra.models import load_model, save_hooked

NAME = "lm-model"
HELP = "convert a language model once (smollm2, a hub name or a folder) into the folder the later stages load"
CHECK_TEXT = "The cat sat on the mat. The cat sat on the mat."


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="smollm2", help="smollm2, a hub name (gpt2-small) or a model folder")
    p.add_argument("--out", default="models/smollm2/model",
                   help="folder for the converted model (fra.models.load_model reads it)")


def _check_tokens(model: HookedTransformer) -> Int[torch.Tensor, "1 pos"]:
    """CHECK_TEXT through the model's tokenizer, or fixed ids for a model without one."""
    if model.tokenizer is None:
        return torch.arange(min(16, model.cfg.d_vocab))[None]
    return model.to_tokens(CHECK_TEXT)


def run(args: argparse.Namespace) -> int:
    out = output_dir(args.out, "--out")
    start = time.time()
    model = load_model(args.model, "cpu")
    loaded = time.time() - start
    tokens = _check_tokens(model)
    with torch.inference_mode():
        want = model(tokens)
    path = save_hooked(model, out, source=str(args.model))
    start = time.time()
    back = load_model(path, "cpu")
    reloaded = time.time() - start
    again = _check_tokens(back)
    # The weights must read back bit for bit; the logits only to float32 rounding, as the two copies' memory layout
    # can route the same product through another kernel.
    saved, read = model.state_dict(), back.state_dict()
    with torch.inference_mode():
        logits = back(again)
    same = (torch.equal(again, tokens) and saved.keys() == read.keys()
            and all(torch.equal(saved[k], read[k]) for k in saved)
            and torch.allclose(logits, want, rtol=1e-5, atol=1e-5 * float(want.abs().max())))
    if not same:
        shutil.rmtree(path)
        raise FRAError(f"--model {args.model} does not read back from fra's format as it was saved (tokens, weights or "
                       "logits differ), so nothing was kept; this is a bug in fra.models.save_hooked, please report it")
    print(f"{args.model}: converted in {loaded:.0f} s, saved to {path}, "
          f"reads back in {reloaded:.1f} s with identical weights (logits within float32 rounding)")
    return 0
