"""The planted world's ground truth as a judge of the channel search: recall, false discoveries, and the
criterion's calibration curve."""

from __future__ import annotations

import dataclasses

import pandas as pd

from fra.analysis.channels import confirm
from fra.analysis.kinds import is_sink
from fra.config import ChannelConfig, WorldConfig
from fra.world.probes import token_only_classes

LIFT_GRID = tuple(round(0.05 * n, 2) for n in range(11))  # min_lift values of the calibration curve


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
    """Planted recall and false discoveries of ``channels`` re-confirmed at every ``min_lift`` of :data:`LIFT_GRID`
    (the other thresholds as in ``cfg``): the curve the frozen ``min_lift`` was read from."""
    sink = is_sink(channels, cfg)
    rows = []
    for lift in LIFT_GRID:
        again = confirm(channels.drop(columns=["q_value", "is_cih"]), dataclasses.replace(cfg, min_lift=lift))
        again["kind"] = sink.map({True: "sink", False: ""})
        p = planted_recall(again, world)
        rows.append({"min_lift": lift, "recall_conceptual": p["recall_conceptual"],
                     "false_discovery_token_only": p["false_discovery_token_only"],
                     "n_confirmed": int((again["is_cih"] & ~sink).sum()),
                     "frozen": lift == round(cfg.min_lift, 2)})
    return pd.DataFrame(rows)
