"""``fra cot``: feature-resolved thought anchors on the traces of ``fra cot-traces`` (receivers, suppression,
channels)."""

from __future__ import annotations

import argparse
import time

import pandas as pd

from fra.config import load_params
from fra.cot.study import run as run_study
from fra.cot.traces import load_traces
from fra.errors import FRAError
from fra.io import output_dir
from fra.models import load_model
from fra.saes import load_saes
from fra.stages.args import at_least, token_ids

NAME = "cot"
HELP = ("chain of thought: receiver heads, attention suppression and receiver heads resolved into feature pairs "
        "(params: cot)")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="model directory or name (smollm2)")
    p.add_argument("--saes", required=True, help="directory of SAELens folders (one per layer) or a hub release")
    p.add_argument("--traces", required=True, help="folder written by `fra cot-traces`")
    p.add_argument("--corpus", required=True, help="token ids (.npy, [seq, pos]) for the feature cards")
    p.add_argument("--corpus-sequences", type=at_least(1), default=256, help="sequences of --corpus to use")
    p.add_argument("--induction", default=None, help="the induction study's results folder (heads.csv, channels.csv)")
    p.add_argument("--params", default="params.yaml")
    p.add_argument("--out", required=True, help="results folder, e.g. results/smollm2/cot")


def _table(folder: str, name: str) -> pd.DataFrame:
    try:
        return pd.read_csv(f"{folder}/{name}")
    except (OSError, pd.errors.ParserError) as exc:
        raise FRAError(f"--induction {folder} has no readable {name} ({exc}); run `dvc "
                       "repro lm_induction` first") from exc


def run(args: argparse.Namespace) -> int:
    out = output_dir(args.out, "--out")
    params = load_params(args.params)
    traces = load_traces(args.traces)
    heads = _table(args.induction, "heads.csv") if args.induction else None
    induction = _table(args.induction, "channels.csv") if args.induction else None
    corpus = token_ids(args.corpus, args.corpus_sequences, "--corpus")
    model = load_model(args.model, params.engine.device)
    if max(int(t.tokens.max()) for t in traces) >= model.cfg.d_vocab:
        raise FRAError(f"--traces {args.traces} holds token ids beyond the model's vocabulary; rebuild them with "
                       f"`fra cot-traces --model {args.model}`")
    saes = load_saes(args.saes, None, model)
    start = time.time()
    study = run_study(model, saes, traces, corpus, cfg=params.cot, channel_cfg=params.channels, engine=params.engine,
                      heads=heads, induction=induction, sae_spec=args.saes)
    study.write(out)
    m = study.metrics
    print(f"receivers: {', '.join(m['receivers'])}")
    s, c = m["stability"], m["suppression_correlation"]["heldout"]
    print(f"stability: Spearman {s['spearman']:.3f} over {s['n_heads']} heads, top-{s['top_n']} overlap {s['overlap']}")
    print(f"suppression vs receiver attention (held-out): Spearman {c['spearman']:.3f} over {c['n_pairs']} pairs")
    print(f"channels: {m['n_confirmed']} of {m['n_candidates']} confirmed on {', '.join(m['resolved_heads'])} "
          f"({time.time() - start:.0f} s)")
    return 0
