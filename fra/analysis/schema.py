"""One definition per results table: its columns in file order and what each means.

Writers order their columns by it, readers (explorers, the paper) check for it and take their
column glossaries from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from fra.errors import FRAError


@dataclass(frozen=True)
class Table:
    file: str
    columns: dict[str, str]  # name -> definition

    @property
    def names(self) -> list[str]:
        return list(self.columns)

    def check(self, df: pd.DataFrame, path: str | Path, needed: list[str] | None = None) -> pd.DataFrame:
        """``df`` (read from ``path``) when it has the ``needed`` columns (default: all), else a clear error."""
        needed = self.names if needed is None else needed
        missing = [c for c in needed if c not in df.columns]
        if missing:
            raise FRAError(f"{path} lacks column(s) {missing}; a {self.file} table needs {needed} "
                           "(rebuild it with `dvc repro`)")
        return df


CHANNELS = Table("channels.csv", {
    "probe": "probe kind: random_repeat, frequent_repeat, text_repeat, concept_templates or, in the planted world, "
             "token_repeat, "
             "concept_repeat and the token-only concept_control",
    "group": "query group within the probe: planted class, template family, or all",
    "layer": "layer of the head",
    "head": "head index within the layer",
    "query_feature": "SAE feature a at the query position",
    "key_feature": "SAE feature b at the key position",
    "support": "discovery: the channel's share of the head's |score| terms at the induction target, where present",
    "channel_induction_discovery": "discovery CI: sum of the channel at the targets / sum "
                                   "of its |value| over causal keys",
    "p_discovery": "discovery one-sided permutation p-value of the channel's sum at the targets",
    "support_heldout": "support on held-out probes",
    "channel_induction_heldout": "held-out channel induction score CI, in [-1, 1]",
    "null_channel_induction_heldout": "held-out CI expected under the null (target redrawn among the causal keys "
                                      "after BOS, the target included)",
    "lift_heldout": "effect size: held-out CI minus the null's CI",
    "lift_low": "held-out lift's 95% interval, low end (bootstrap over probe sequences)",
    "lift_high": "held-out lift's 95% interval, high end",
    "lift_matched": "held-out CI minus the matched null's CI (the target redrawn among the keys where the key feature "
                    "is active)",
    "informative_share": "share of the |value| at the targets on queries where the key feature is active at other keys "
                         "too (where the matched null can tell anything)",
    "scale_share": "mean |value| at the targets over the head's score scale there (RMS of its scores over the keys)",
    "softmax_effect": "held-out mean drop of attention to the target when the channel is removed from the scores",
    "p_value": "held-out one-sided permutation p-value",
    "p_matched": "held-out one-sided p-value under the matched null",
    "n_targets": "held-out queries where the channel is nonzero at the target (>= min_queries on discovery too)",
    "n_queries": "held-out queries where the channel is nonzero on some causal key",
    "null_lift_heldout": "held-out lift of the same channel with key features shuffled across positions (the null of "
                         "the model's lift threshold)",
    "test": "the test this row belongs to: without rotary positions one feature pair (and sign) for every head, whose "
            "position statistics cannot differ between heads",
    "q_value": "Benjamini-Hochberg q-value over every test made (distinct `test`)",
    "q_matched": "Benjamini-Hochberg q-value of p_matched over the informative channels (informative_share > "
                 "max_informative_share); empty elsewhere",
    "is_cih": "confirmed induction channel: q <= alpha, held-out lift >= the model's threshold with its interval "
              "above 0, softmax effect >= min_effect, scale_share >= min_scale_share, >= min_queries held-out "
              "targets, and the matched null rejected where informative",
    "query_sink_share": "share of the query feature's activation on BOS / position 0 / special tokens (corpus)",
    "key_sink_share": "the same for the key feature",
    "query_token_share": "share of the query feature's activation on the current token "
                         "that carries most of it (corpus)",
    "key_token_share": "share of the key feature's activation on the previous token that carries most of it (corpus)",
    "feature_kind": "token when both features carry >= token_share of their activation on one (current / previous) "
                    "token, multi-token when neither does, mixed otherwise (unknown: a feature never fires)",
    "kind": "confirmed channels only: sink (a feature with sink share >= sink_share), conceptual (confirmed where the "
            "earlier occurrence is another token of the concept, or both features span several tokens) or token",
    "no_repeat_effect": "counted channels of exact-repeat probes: held-out softmax effect at the would-be target "
                        "when the earlier occurrence of each query's token is replaced (no repeat); an induction "
                        "channel loses it",
    "no_repeat_lift": "the same channel's lift without the repeat",
})
TESTED = CHANNELS.names[:CHANNELS.names.index("q_value")]  # the search's columns; ``confirm`` adds q_value and is_cih
