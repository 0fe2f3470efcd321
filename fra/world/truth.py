"""The planted world's ground truth as a judge of the channel search: recall, false discoveries, and the
criterion's calibration curve."""

from __future__ import annotations

import dataclasses
import json

import pandas as pd

from fra.analysis.kinds import is_sink
from fra.analysis.stats import confirm, lift_threshold, null_lifts
from fra.config import ChannelConfig, WorldConfig
from fra.errors import FRAError
from fra.io import read_json
from fra.world.corpus import ground_truth
from fra.world.probes import token_only_classes

TRUTH_KEYS = ("d_vocab", "bos_id", "n_conceptual", "classes", "tokens")  # of fra.world.corpus.ground_truth
FACTOR_GRID = (0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0)  # lift_null_factor values of the curve


def planted_recall(channels: pd.DataFrame, world: WorldConfig) -> dict:
    """Conceptual classes with a confirmed non-sink class-level channel, and token-only classes with one (false)."""
    def classes_with_cih(probe: str) -> set[str]:
        sel = channels[(channels["probe"] == probe) & channels["is_cih"] & (channels["kind"] != "sink")]
        return set(sel["group"])

    conceptual = {f"class{c:02d}" for c in range(world.n_conceptual)}
    token_only = {f"class{c:02d}" for c in token_only_classes(world)}  # world_probes tests every one
    found, false = classes_with_cih("concept_repeat") & conceptual, classes_with_cih("concept_control") & token_only
    return {
        "recall_conceptual": len(found) / len(conceptual), "conceptual_found": sorted(found),
        "false_discovery_token_only": len(false) / len(token_only), "token_only_found": sorted(false),
        "n_conceptual": len(conceptual), "n_token_only_tested": len(token_only),
    }


def calibration(channels: pd.DataFrame, world: WorldConfig, cfg: ChannelConfig) -> pd.DataFrame:
    """Planted recall and false discoveries of ``channels`` re-confirmed at every ``lift_null_factor`` of
    :data:`FACTOR_GRID` (the other parts of the rule as in ``cfg``), with the lift threshold each factor gives on
    this model: the curve the factor is read from on the tuning worlds (README)."""
    sink = is_sink(channels, cfg)
    rows = []
    for factor in FACTOR_GRID:
        rule = dataclasses.replace(cfg, lift_null_factor=factor)
        threshold = lift_threshold(null_lifts(channels), rule)
        again = confirm(channels.drop(columns=["q_value", "q_matched", "is_cih"]), rule, threshold)
        again["kind"] = sink.map({True: "sink", False: ""})
        p = planted_recall(again, world)
        rows.append({"lift_null_factor": factor, "lift_threshold": threshold,
                     "recall_conceptual": p["recall_conceptual"],
                     "false_discovery_token_only": p["false_discovery_token_only"],
                     "n_confirmed": int((again["is_cih"] & ~sink).sum()), "chosen": factor == cfg.lift_null_factor})
    return pd.DataFrame(rows)


def checked_world(path: str, params_path: str, world: WorldConfig) -> WorldConfig:
    """``world`` when the ground truth in ``path`` is the one it generates (:func:`fra.world.corpus.ground_truth`).

    The file holds the vocabulary only; the probes (:func:`fra.world.probes.world_probes`) need the episode shapes
    too, so the world comes from the params and the file is checked against it: an error names each world field
    the file implies (``n_classes``, ``class_size``, ``n_filler``, ``n_conceptual``) that differs, else the first
    entry of ``classes`` / ``tokens`` that the world would not generate.
    """
    truth = read_json(path, "--ground-truth")
    missing = [key for key in TRUTH_KEYS if not isinstance(truth, dict) or key not in truth]
    if missing:
        raise FRAError(f"--ground-truth {path} is not a planted-world ground truth: it lacks {missing} (keys of the "
                       f"file `fra toy-data --ground-truth FILE` writes: {list(TRUTH_KEYS)})")
    try:
        implied = {"n_classes": len(truth["classes"]), "class_size": len(truth["classes"][0]["member_ids"]),
                   "n_filler": sum(t["role"] == "filler" for t in truth["tokens"]),
                   "n_conceptual": truth["n_conceptual"]}
    except (TypeError, KeyError, IndexError) as exc:
        raise FRAError(f"--ground-truth {path} is not a planted-world ground truth: `classes` must be a list of "
                       "{class, kind, member_ids, members} and `tokens` a list of {id, name, role, class} "
                       f"({type(exc).__name__}: {exc}); write it with `fra toy-data --ground-truth FILE`") from exc
    differ = {field: value for field, value in implied.items() if value != getattr(world, field)}
    if differ:
        raise FRAError(
            f"--ground-truth {path} was built with another world than {params_path}'s world section: "
            + "; ".join(f"{field} is {value} in the file but {getattr(world, field)} in {params_path}"
                        for field, value in differ.items())
            + ". Set " + ", ".join(f"world.{field}: {value}" for field, value in differ.items())
            + f" in {params_path} (or pass --params FILE with the world this ground truth was built with)")
    expected = ground_truth(world)
    for key in TRUTH_KEYS:
        if truth[key] != expected[key]:
            raise FRAError(
                f"--ground-truth {path}: `{key}` is not what the world of {params_path} generates "
                f"({_first_difference(truth[key], expected[key])}); fra's planted world numbers its tokens one way "
                "(BOS 0, class c's member m at 1 + c * class_size + m, then the fillers; fra.world.corpus): write the "
                f"file with `fra toy-data --params {params_path} --ground-truth {path}`")
    return world


def _first_difference(got, want) -> str:
    if isinstance(got, list) and isinstance(want, list) and len(got) == len(want):
        i = next(i for i, (a, b) in enumerate(zip(got, want)) if a != b)
        return f"entry {i} is {json.dumps(got[i])} in the file, {json.dumps(want[i])} generated"
    if isinstance(got, list) and isinstance(want, list):
        return f"{len(got)} entries in the file, {len(want)} generated"
    return f"{json.dumps(got)} in the file, {json.dumps(want)} generated"
