"""``fra text-corpus``: the offline text corpus (Shakespeare, KJV Bible, Anarchist FAQ, Python) for LM SAEs."""

from __future__ import annotations

import argparse

from fra.config import load_params
from fra.io import output_dir, write_json
from fra.models import load_tokenizer
from fra.text.corpus import build_text_corpus

NAME = "text-corpus"
HELP = ("offline text corpus (Shakespeare, KJV Bible, Anarchist FAQ, Python) for language-model SAEs "
        "(params: text_corpus)")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--params", default="params.yaml")
    p.add_argument("--model", default="smollm2",
                   help="whose tokenizer: smollm2, gpt2 (or gpt2-small) or a folder with one .gguf file")
    p.add_argument("--out", default="data/smollm2/corpus")
    p.add_argument("--results", default=None, help="also copy the manifest to RESULTS/corpus.json")


def run(args: argparse.Namespace) -> int:
    out = output_dir(args.out, "--out")
    results = output_dir(args.results, "--results") if args.results else None
    cfg = load_params(args.params).text_corpus
    manifest = build_text_corpus(cfg, load_tokenizer(args.model), out)
    if results:
        write_json(results / "corpus.json", manifest)
    for source, s in manifest["per_source"].items():
        d, docs, seqs = s["dedup"], s["documents"], s["sequences"]
        print(f"{source}: {docs['train']} + {docs['heldout']} documents, {d['dropped_paragraphs']}/{d['paragraphs']} "
              f"paragraphs deduplicated ({d['dropped_chars']} characters), {s['tokens_before_cap']['train']} train "
              f"tokens before the cap, {seqs['train']} + {seqs['heldout']} sequences kept")
    n = manifest["sequences"]
    print(f"wrote {n['train']} + {n['heldout']} sequences of {cfg.seq_len} tokens to {args.out}")
    return 0
