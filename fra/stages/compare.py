"""``fra compare``: FRA beside the other ways of decomposing attention, on the same heads.

* Bases (:mod:`fra.analysis.bases`): the score at held-out ``text_repeat`` induction targets of every TIH in a layer
  with an SAE and ``compare.n_other_heads`` other heads (those with a confirmed channel first, then the top concept
  heads there), split exactly into SAE feature pairs, the head's SVD directions, residual coordinates and a random
  rotation -> ``bases.csv``.
* Concept induction heads (:mod:`fra.analysis.concept_heads`): Feucht et al.'s attention scores on repeated
  multi-token words of the corpus for every head -> ``concept_scores.csv``; the top ``compare.n_concept_heads`` with
  what the induction study (channels, kinds) and the power study say of them -> ``concept_heads.csv``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd
import torch

from fra.analysis.bases import compare_bases
from fra.analysis.concept_heads import concept_heads, concept_probes, concept_scores, multi_token_words
from fra.analysis.heads import bos_id
from fra.analysis.induction import probe_sets
from fra.config import load_params
from fra.errors import FRAError
from fra.io import atomic_files, output_dir, write_json
from fra.models import load_model
from fra.saes import load_saes
from fra.stages.args import token_ids

NAME = "compare"
HELP = "FRA beside SVD / residual / rotated bases, and Feucht et al.'s concept induction heads (params: compare)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="model directory or hub name")
    p.add_argument("--saes", required=True, help="directory of SAELens folders (one per layer)")
    p.add_argument("--corpus", required=True, help="token ids (.npy, [seq, pos]): probes' text and the words")
    p.add_argument("--study", required=True, help="the induction study's results folder (hypotheses.csv)")
    p.add_argument("--power", required=True, help="the power study's power.csv")
    p.add_argument("--params", default="params.yaml")
    p.add_argument("--out", required=True, help="results folder, e.g. results/smollm2/compare")


def run(args: argparse.Namespace) -> int:
    out = output_dir(args.out, "--out")
    params = load_params(args.params)
    cfg = params.compare
    try:
        hyp, power = pd.read_csv(Path(args.study) / "hypotheses.csv"), pd.read_csv(args.power)
    except OSError as exc:
        raise FRAError(f"{exc}; run `fra induction` and `fra power` (dvc repro) first") from exc
    corpus = token_ids(args.corpus, 256, "--corpus")
    model = load_model(args.model, params.engine.device)
    saes = load_saes(args.saes, None, model)
    scores = _concept_scores(model, corpus, cfg)
    top = concept_heads(scores, cfg.n_concept_heads)
    heads = _basis_heads(hyp, scores, cfg.n_other_heads)
    held = {d.kind: h for d, h in probe_sets(model, params.induction, corpus, templates=False)}["text_repeat"]
    pick = torch.arange(min(cfg.n_pairs, len(held.seq)))  # the first n_pairs targets, the same for every head
    bases = []
    for layer, rows in heads.groupby("layer"):
        with torch.no_grad():
            table = compare_bases(model, saes[int(layer)], held.tokens, int(layer), tuple(rows["head"]),
                                  held.seq[pick], held.query[pick], held.target[pick], seed=cfg.seed,
                                  engine=params.engine)
        bases.append(table.merge(rows, on=["layer", "head"]))
    fra_view = _fra_view(top, hyp, power)
    with atomic_files(out) as tmp:
        pd.concat(bases, ignore_index=True).to_csv(tmp / "bases.csv", index=False, float_format="%.6g")
        scores.to_csv(tmp / "concept_scores.csv", index=False, float_format="%.6g")
        fra_view.to_csv(tmp / "concept_heads.csv", index=False, float_format="%.6g")
        write_json(tmp / "compare.json", {"n_pairs": int(len(pick)), "probe": "text_repeat (held-out)",
                                          "concept_probes": cfg.concept_probes, "seq_len": cfg.concept_seq_len})
    print(json.dumps(fra_view[["layer", "head", "concept_score", "resolved", "n_cih"]].to_dict("records")))
    return 0


def _concept_scores(model, corpus: torch.Tensor, cfg) -> pd.DataFrame:
    tok = model.tokenizer
    if tok is None:
        raise FRAError("the model has no tokenizer: concept induction heads are found on words of its corpus")
    words = multi_token_words(tok, corpus)
    newline = tok.convert_tokens_to_ids("Ċ") if "Ċ" in tok.get_vocab() else tok.encode("\n")[-1]
    avoid = tuple(t for t in (tok.eos_token_id,) if t is not None)
    probes = [concept_probes(words, corpus, bos_id(model), newline, cfg.concept_seq_len, cfg.concept_probes,
                             cfg.seed, random_entities=r, avoid=avoid) for r in (False, True)]
    with torch.no_grad():
        return concept_scores(model, *probes, batch_size=cfg.batch_size)


def _basis_heads(hyp: pd.DataFrame, scores: pd.DataFrame, n_other: int) -> pd.DataFrame:
    """The resolved TIHs, then non-TIH heads with a confirmed channel and the top concept heads, ``n_other`` of them."""
    tih = hyp[hyp["is_tih"]].assign(role="tih")
    other = hyp[~hyp["is_tih"]].merge(scores[["layer", "head", "concept_score"]], on=["layer", "head"])
    other = other.sort_values(["n_cih", "concept_score"], ascending=False).head(n_other)
    other = other.assign(role=["non_tih_channel" if n > 0 else "concept_head" for n in other["n_cih"]])
    return pd.concat([tih, other])[["layer", "head", "role"]].reset_index(drop=True)


def _fra_view(top: pd.DataFrame, hyp: pd.DataFrame, power: pd.DataFrame) -> pd.DataFrame:
    """The concept heads with the induction study's verdicts (where their layer has an SAE) and the power study's
    recall in them (where it planted channels)."""
    cols = ["layer", "head", "is_tih", "induction", "n_cih", "n_token", "n_conceptual", "best_kind"]
    view = top.merge(hyp[cols], on=["layer", "head"], how="left")
    view["resolved"] = view["n_cih"].notna()
    planted = power[power["pair_kind"] == "induction"].groupby(["layer", "head"]).agg(
        planted=("confirmed", "size"), recovered=("confirmed", "sum")).reset_index()
    return view.merge(planted, on=["layer", "head"], how="left")
