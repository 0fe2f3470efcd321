"""``fra power``: known channels planted into a model's heads, searched for as the induction study searches."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from fra.analysis.induction import probe_sets
from fra.analysis.power import chosen_heads, power_study, summary
from fra.analysis.schema import CHANNELS
from fra.config import load_params
from fra.errors import FRAError
from fra.io import atomic_files, output_dir, write_json
from fra.models import load_model
from fra.saes import load_saes
from fra.stages.args import token_ids

NAME = "power"
HELP = "plant known channels into real heads at known strengths and measure the search's recall (params: power)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="model directory or hub name")
    p.add_argument("--saes", required=True, help="directory of SAELens folders (one per layer)")
    p.add_argument("--corpus", required=True, help="token ids (.npy, [seq, pos]): the probes' text and the pairs")
    p.add_argument("--study", required=True, help="the induction study's results folder (heads.csv, channels.csv, "
                   "metrics.json), whose criterion and tests the plants are judged with")
    p.add_argument("--params", default="params.yaml")
    p.add_argument("--out", required=True, help="results folder, e.g. results/smollm2/power")


def _read(folder: str, name: str):
    path = Path(folder) / name
    try:
        return json.loads(path.read_text()) if name.endswith(".json") else pd.read_csv(path)
    except (OSError, ValueError) as exc:
        raise FRAError(f"--study {folder} has no readable {name} ({exc}); run `fra induction` (dvc repro) "
                       "first") from exc


def run(args: argparse.Namespace) -> int:
    out = output_dir(args.out, "--out")
    params = load_params(args.params)
    heads, metrics = _read(args.study, "heads.csv"), _read(args.study, "metrics.json")
    channels = CHANNELS.check(_read(args.study, "channels.csv"), f"{args.study}/channels.csv")
    corpus = token_ids(args.corpus, 256, "--corpus")
    model = load_model(args.model, params.engine.device)
    saes = load_saes(args.saes, None, model)
    kinds = {d.kind: (d, h) for d, h in probe_sets(model, params.induction, corpus, templates=False)}
    chosen = chosen_heads(heads, sorted(saes))
    plants = power_study(model, saes, {k: kinds[k] for k in params.power.probes}, chosen, channels,
                         metrics["criterion"]["lift_threshold"], corpus[:params.power.corpus_sequences],
                         params.power, params.channels, params.engine)
    result = summary(plants, channels, params.channels.alpha)
    with atomic_files(out) as tmp:
        plants.to_csv(tmp / "power.csv", index=False, float_format="%.6g")
        write_json(tmp / "power.json", {"heads": [list(h) for h in chosen], **result})
    for name, w in result["weakest_found"].items():
        print(f"{name}: recall >= {result['target_recall']} from strength "
              f"{w['strength'] if w else 'none of the grid'}")
    print(f"false discoveries among control plants: {result['false_discoveries']} of {result['n_control']}")
    return 0
