"""``fra sae-sensitivity``: would another SAE change the answer? SAEs at other seeds and widths, each evaluated and
put through the induction study on its layers.

One activation cache of the ``sensitivity.layers`` feeds every SAE of the grid ``seeds x expansions`` (the
other hyperparameters are ``lm_saes``'); ``lm_saes``' own (seed, expansion) is its committed SAE, read from
``--saes``, not trained again. Each SAE gets its variance explained, L0 and dead share on held-out text and its loss
recovered when spliced into the forward pass (:func:`fra.saes.evals.loss_recovered`); each (seed, expansion) set of
layers gets the induction study (``fra induction`` without the controls and causal test, its own lift threshold
from its own null). Written to ``--out``: ``saes.csv`` (one row per SAE), ``heads.csv`` (one row per set and head
of these layers) and ``summary.json`` (per set: threshold, H1/H2 over these layers' heads, channel counts).
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import pandas as pd
import torch

from fra.analysis.heads import bos_id
from fra.analysis.induction import counted, probe_sets
from fra.analysis.induction import run as run_study
from fra.config import load_params
from fra.errors import FRAError
from fra.io import atomic_dir, atomic_files, output_dir, write_json
from fra.models import load_model
from fra.saes import load_saes
from fra.saes.cache import cache_resid_pre
from fra.saes.evals import loss_recovered
from fra.saes.loading import RESID_PRE, validate_sae
from fra.saes.training import evaluate, train_sae
from fra.stages.args import token_ids
from fra.text.corpus import load_text_split

NAME = "sae-sensitivity"
HELP = ("SAEs at other seeds and widths on the TIH layers: quality (loss recovered) and the induction study's "
        "verdicts for each (params: sensitivity, lm_saes)")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--params", default="params.yaml")
    p.add_argument("--model", required=True, help="model directory (e.g. from `fra lm-model`)")
    p.add_argument("--corpus", required=True, help="folder with train_tokens.npy and heldout_tokens.npy")
    p.add_argument("--saes", required=True, help="the pipeline's SAEs (lm_saes): not retrained")
    p.add_argument("--study", required=True, help="the main induction study's results folder (hypotheses.csv)")
    p.add_argument("--saes-out", required=True, help="folder for the trained SAEs: OUT/s{seed}_x{expansion}/L{layer}")
    p.add_argument("--out", required=True, help="results folder, e.g. results/smollm2/sensitivity")


def _set_name(seed: int, expansion: int) -> str:
    return f"s{seed}_x{expansion}"


def run(args: argparse.Namespace) -> int:
    out, saes_out = output_dir(args.out, "--out"), output_dir(args.saes_out, "--saes-out")
    params = load_params(args.params)
    cfg, base = params.sensitivity, params.lm_saes
    main_hyp = Path(args.study) / "hypotheses.csv"
    if not main_hyp.exists():
        raise FRAError(f"--study {args.study} has no hypotheses.csv; run `fra induction` (dvc repro) first")
    model = load_model(args.model, params.engine.device)
    main = load_saes(args.saes, None, model)
    if missing := sorted(set(cfg.layers) - set(main)):
        raise FRAError(f"sensitivity.layers {missing} have no SAE in {args.saes} (lm_saes.layers {list(main)}); "
                       "pick layers among lm_saes.layers")
    train_tokens, _ = load_text_split(args.corpus, "train")
    heldout, _ = load_text_split(args.corpus, "heldout")
    corpus = token_ids(str(Path(args.corpus) / "heldout_tokens.npy"), 256, "--corpus")
    layers, device = list(cfg.layers), str(model.cfg.device)
    start = time.time()
    train_acts = cache_resid_pre(model, train_tokens, layers, base.cache_batch_size)
    eval_acts = cache_resid_pre(model, heldout[: base.eval_sequences], layers, base.cache_batch_size, skip_bos=False)
    print(f"cached layers {layers} in {time.time() - start:.0f} s")
    probes = probe_sets(model, params.induction, corpus)
    sae_rows, head_rows, summary = [], [], {}
    with atomic_dir(saes_out) as saved:
        for expansion in cfg.expansions:
            for seed in cfg.seeds:
                name, start = _set_name(seed, expansion), time.time()
                own = (seed, expansion) == (base.seed, base.expansion)
                recipe = dataclasses.replace(base, seed=seed, expansion=expansion)
                saes = {}
                for layer in layers:
                    if own:
                        saes[layer] = main[layer]
                    else:
                        saes[layer] = train_sae(train_acts[layer], RESID_PRE.format(layer=layer), recipe,
                                                saved / name / f"L{layer}", device)
                        validate_sae(saes[layer], model, layer)
                    metrics, _ = evaluate(saes[layer], eval_acts[layer].cpu(), heldout.shape[1])
                    quality = loss_recovered(saes[layer], model, heldout[: cfg.loss_sequences], cfg.loss_batch_size,
                                             [bos_id(model)])
                    sae_rows.append({"set": name, "seed": seed, "expansion": expansion, "layer": layer,
                                     "pipeline_sae": own, **metrics, **quality})
                with torch.no_grad():
                    study = run_study(model, saes, params, probes, corpus, checks=False)
                head_rows.append(_heads(study, name, seed, expansion, own))
                summary[name] = _summary(study, seed, expansion, own)
                print(f"{name} ({time.time() - start:.0f} s): H1 {summary[name]['H1']}, H2 {summary[name]['H2']}, "
                      f"{summary[name]['n_cih']} channels")
    heads = pd.concat(head_rows, ignore_index=True)
    heads = heads.merge(_main_verdicts(main_hyp, layers), on=["layer", "head"], how="left")
    summary["holds_for_every_sae"] = _robust(heads)
    with atomic_files(out) as tmp_out:
        pd.DataFrame(sae_rows).to_csv(tmp_out / "saes.csv", index=False, float_format="%.6g")
        heads.to_csv(tmp_out / "heads.csv", index=False, float_format="%.6g")
        write_json(tmp_out / "summary.json", summary)
    return 0


def _heads(study, name: str, seed: int, expansion: int, own: bool) -> pd.DataFrame:
    """One row per head of the set's layers: TIH, confirmed channels (all, token, conceptual, sink), best channel."""
    cols = ["layer", "head", "induction", "is_tih", "n_cih", "n_token", "n_conceptual", "n_sink",
            "best_probe", "best_query_feature", "best_key_feature", "best_kind", "best_lift_heldout"]
    return study.hypotheses[cols].assign(set=name, seed=seed, expansion=expansion, pipeline_sae=own)


def _summary(study, seed: int, expansion: int, own: bool) -> dict:
    m, ch = study.metrics, study.channels
    kinds = ch[counted(ch)]["kind"].value_counts().to_dict()
    return {"seed": seed, "expansion": expansion, "pipeline_sae": own,
            "lift_threshold": m["criterion"]["lift_threshold"], "n_channels_tested": m["n_channels_tested"],
            "n_cih": m["n_cih"], "kinds": kinds,
            "H1": f"{m['H1']['n_tih_with_cih']}/{m['H1']['n_tih']}", "H1_answer": m["H1"]["answer"],
            "H2": f"{m['H2']['n_non_tih_with_cih']}/{m['H2']['n_non_tih']}", "H2_answer": m["H2"]["answer"]}


def _main_verdicts(path: Path, layers: list[int]) -> pd.DataFrame:
    """Each head's confirmed-channel count in the main study (all of lm_saes' layers, controls and causal test)."""
    hyp = pd.read_csv(path)
    return hyp[hyp["layer"].isin(layers)][["layer", "head", "n_cih"]].rename(columns={"n_cih": "n_cih_main_study"})


def _robust(heads: pd.DataFrame) -> dict:
    """Per head: in how many SAE sets it has a confirmed channel; which heads have one in every set, in none, in
    some."""
    per = heads.groupby(["layer", "head"]).agg(is_tih=("is_tih", "first"), sets=("set", "nunique"),
                                               with_channel=("n_cih", lambda n: int((n > 0).sum())))
    label = [f"L{layer}H{head}" for layer, head in per.index]
    every = [h for h, r in zip(label, per.itertuples()) if r.with_channel == r.sets]
    some = [h for h, r in zip(label, per.itertuples()) if 0 < r.with_channel < r.sets]
    return {"heads_with_channel_in_every_set": every, "heads_with_channel_in_some_sets": some,
            "n_sets": int(per["sets"].max())}
