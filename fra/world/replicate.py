"""One replicate of the planted world on fresh seeds, end to end, as the pipeline runs it.

Corpus (``world.seed``), toy model (``toy_train.seed``), the ground-truth check (:func:`trained`)
and, when it holds, SAEs, the induction study and the planted recall / false discoveries
(:func:`studied`): one row of the seed table. Everything else (recipe, thresholds) is the pipeline's
own params. The two steps can run in different processes (the trained weights and tokens travel).
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from pathlib import Path

import torch
from jaxtyping import Int

from fra.analysis.heads import head_check, head_scores
from fra.analysis.induction import probe_sets, run
from fra.config import Params
from fra.saes import load_saes
from fra.saes.training import train_layers
from fra.world.corpus import generate
from fra.world.probes import world_probes
from fra.world.train import build_model, curriculum_data, train
from fra.world.truth import calibration, planted_recall

CORPUS_SEQUENCES = 256  # held-out sequences for text probes and cards, as `fra induction --corpus` takes


@dataclasses.dataclass(frozen=True)
class Trained:
    """A replicate after training: its row so far and, when the ground truth holds, what the study needs."""

    row: dict
    weights: dict[str, torch.Tensor] | None = None
    train_tokens: Int[torch.Tensor, "seq pos"] | None = None
    heldout_tokens: Int[torch.Tensor, "seq pos"] | None = None


def replicate(params: Params, world_seed: int, train_seed: int) -> dict:
    """The seed-table row of one (world seed, training seed) pair."""
    return studied(params, trained(params, (world_seed, train_seed)))


def trained(params: Params, run: tuple[int, int]) -> Trained:
    """Corpus, model and ground-truth check of one (world seed, training seed) pair."""
    world_seed, train_seed = run
    world = dataclasses.replace(params.world, seed=world_seed)
    recipe = dataclasses.replace(params.toy_train, seed=train_seed)
    start = time.time()
    data = generate(world, world.n_train, seed=(world.seed, 0))  # as `fra toy-data` writes its splits
    heldout = generate(world, world.n_heldout, seed=(world.seed, 1))
    model = build_model(world, recipe)
    final = train(model, data, heldout, recipe, curriculum_data(world, recipe))[-1]
    print(f"world {world_seed}, training seed {train_seed}: trained in {time.time() - start:.0f} s")
    heads = head_scores(model, params.heads)
    check = head_check(model, params.heads, heads)
    later = heads[heads.layer >= 1]
    best = later.loc[later.induction_min.idxmax()]
    earlier = heads[heads.layer < 1]
    partner = earlier.loc[earlier.previous_token.idxmax()]
    row = {
        "world_seed": world_seed, "train_seed": train_seed,
        "acc_token_repeat": round(final["acc_token_repeat"], 4),
        "acc_concept_repeat": round(final["acc_concept_repeat"], 4),
        "best_induction_head": f"L{int(best.layer)}H{int(best['head'])}",
        "best_induction_min": round(float(best.induction_min), 4),
        "previous_token_head": f"L{int(partner.layer)}H{int(partner['head'])}",
        "previous_token_score": round(float(partner.previous_token), 4),
        "max_positional_control": check["max_positional_control"], "ground_truth_ok": check["ground_truth_ok"],
    }
    if not check["ground_truth_ok"]:
        return Trained(row)
    return Trained(row, model.state_dict(), data.tokens, heldout.tokens)


def studied(params: Params, done: Trained) -> dict:
    """The finished row: SAEs, the induction study and planted recall when the ground truth holds."""
    if done.weights is None:
        return done.row
    world = dataclasses.replace(params.world, seed=done.row["world_seed"])
    model = build_model(world, dataclasses.replace(params.toy_train, seed=done.row["train_seed"]))
    model.load_state_dict(done.weights)
    model.eval()
    cfg = params.induction
    corpus = done.heldout_tokens[:CORPUS_SEQUENCES]
    with tempfile.TemporaryDirectory() as tmp:
        summary, _ = train_layers(model, done.train_tokens, done.heldout_tokens[: params.toy_saes.eval_sequences],
                                  list(range(1, model.cfg.n_layers)), params.toy_saes, Path(tmp), "cpu")
        saes = load_saes(tmp, None, model)
        probes = probe_sets(model, cfg, corpus, templates=False) + list(zip(
            world_probes(world, cfg.n_discovery, seed=cfg.seed * 2),
            world_probes(world, cfg.n_heldout, seed=cfg.seed * 2 + 1)))
        study = run(model, saes, params, probes, corpus, checks=False)
    planted = planted_recall(study.channels, world)
    curve = calibration(study.channels, world, params.channels)
    return {**done.row,
            "calibration": curve[["lift_null_factor", "recall_conceptual",
                                  "false_discovery_token_only"]].to_dict("list"),
            "sae_variance_explained": min(s["variance_explained"] for s in summary.values()),
            "lift_threshold": round(study.metrics["criterion"]["lift_threshold"], 6),
            "n_cih": study.metrics["n_cih"], "n_cih_tests": study.metrics["n_cih_tests"],
            "recall_conceptual": planted["recall_conceptual"], "n_conceptual": planted["n_conceptual"],
            "false_discoveries": len(planted["token_only_found"]), "n_token_only": planted["n_token_only_tested"],
            "H1": study.metrics["H1"]["answer"], "H2": study.metrics["H2"]["answer"]}
