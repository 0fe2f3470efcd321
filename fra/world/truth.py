"""The planted world's ground truth as a judge of the channel search: recall and false discoveries."""

from __future__ import annotations

import pandas as pd

from fra.config import WorldConfig
from fra.world.probes import token_only_classes


def planted_recall(channels: pd.DataFrame, world: WorldConfig) -> dict:
    """Conceptual classes with a confirmed class-level channel, and token-only classes with one (false)."""
    def classes_with_cih(probe: str) -> set[str]:
        sel = channels[(channels["probe"] == probe) & channels["is_cih"]]
        return set(sel["group"])

    conceptual = {f"class{c:02d}" for c in range(world.n_conceptual)}
    token_only = {f"class{c:02d}" for c in token_only_classes(world)}  # world_probes tests every one
    found, false = classes_with_cih("concept_repeat") & conceptual, classes_with_cih("concept_control") & token_only
    return {
        "recall_conceptual": len(found) / len(conceptual), "conceptual_found": sorted(found),
        "false_discovery_token_only": len(false) / len(token_only), "token_only_found": sorted(false),
        "n_conceptual": len(conceptual), "n_token_only_tested": len(token_only),
    }
