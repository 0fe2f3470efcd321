"""Power in a language model: channels planted into its heads at known strengths (``fra power``:
``results/<model>/power/power.csv`` and ``power.json``): the recall curve and its table, the false discoveries among
control plants, where the model's own channels fall on the same strength scale, and the shares of each token induction
head's score the decomposition carries at the induction targets (``head_attention.csv``)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd

from fra.report.build import markdown
from fra.report.build.provenance import available
from fra.report.common import MODELS, fmt_span, head_name
from fra.report.data import read_csv, read_json
from fra.report.figures import PRINT_IN, TEXT_PT, figure
from fra.report.tables import count, fmt, table
from fra.report.values import Values

POWER_COLUMNS = ["probe", "role", "layer", "head", "pair_kind", "strength", "confirmed", "softmax_effect"]
ROLES = {"tih": "token induction head", "strongest": "strongest head (no TIH)", "same_layer": "non-TIH, same layer",
         "other_layer": "non-TIH, other layer"}
SHARES = ["pair_share_at_target", "error_share_at_target", "other_share_at_target"]
POWER_VALUES = ("heads", "strengths", "smallest", "largest", "plants", "recall_smallest", "recall_largest",
                "recall_best", "first_found", "target_recall", "reach_target", "false_discoveries", "real_n", "near_n",
                "real_share", "real_share_range", "real_effect", "first_over_real", "near_share")
DECOMPOSITION_VALUES = ("pair_share", "error_share")


def _paths(model: str) -> list[str]:
    return [f"results/{model}/power/power.csv", f"results/{model}/power/power.json"]


def _absent(model: str) -> str | None:
    return markdown.missing(_paths(model), "They hold channels planted into the model's heads and the search's recall.")


def recall_figure(curves: pd.DataFrame) -> plt.Figure:
    """Recall against strength, one panel per probe, one line per head role, Wilson intervals as bars; drawn at
    ``PRINT_IN`` so its text prints at ``TEXT_PT``."""
    probes = list(dict.fromkeys(curves.probe))
    fig, axes = plt.subplots(1, len(probes), figsize=(PRINT_IN, 2.3), sharey=True, squeeze=False)
    for ax, probe in zip(axes[0], probes):
        for i, (role, rows) in enumerate(curves[curves.probe == probe].groupby("role", sort=False)):
            low = rows.recall - rows.recall_ci95.map(lambda c: c[0])
            high = rows.recall_ci95.map(lambda c: c[1]) - rows.recall
            ax.errorbar(rows.strength * (1 + 0.06 * (i - 1)), rows.recall, yerr=[low, high], marker="o", ms=3,
                        capsize=2, lw=1, label=ROLES.get(role, role))
        ax.axhline(0.8, color="0.5", lw=0.7, ls=":")
        ax.set(xscale="log", ylim=(-0.03, 1.03))
        ax.set_xlabel("planted strength (share of score scale)", fontsize=TEXT_PT)
        ax.set_title(probe, fontsize=TEXT_PT)
        ax.tick_params(labelsize=TEXT_PT)
    axes[0][0].set_ylabel("recall", fontsize=TEXT_PT)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=TEXT_PT, ncol=len(labels), loc="lower center", bbox_to_anchor=(0.5, 1.0))
    fig.tight_layout()
    return fig


def power_figure(model: str = "smollm2") -> str:
    """``fig-<model>-power``: recall of the planted channels against their strength (absent notice without
    results)."""
    if notice := _absent(model):
        return notice
    plants, prov = read_csv(_paths(model)[0], POWER_COLUMNS)
    power, jprov = read_json(_paths(model)[1])
    return figure(recall_figure(pd.DataFrame(power["curves"])), f"fig-{model}-power",
                  f"Recall of channels planted into {MODELS[model]['name']}'s heads against their strength, per "
                  "probe and head (95% Wilson intervals; dotted: 0.8).", prov, jprov)


def power_table(model: str = "smollm2") -> str:
    """``tbl-<model>-power``: per probe and head, recall at each strength, the 95% interval at the largest, false
    discoveries among the control plants (all strengths) and the median attention an induction plant moves onto
    the target at the largest strength."""
    if notice := _absent(model):
        return notice
    _, prov = read_csv(_paths(model)[0], POWER_COLUMNS)
    power, jprov = read_json(_paths(model)[1])
    curves = pd.DataFrame(power["curves"])
    heads = {role: head_name(layer, h) for role, layer, h in power["heads"]}
    rows = []
    for (probe, role), c in curves.groupby(["probe", "role"], sort=False):
        last = c.loc[c.strength.idxmax()]
        rows.append({"probe": probe, "head": f"{heads.get(role, '')} ({ROLES.get(role, role)})",
                     "plants": int(c.n_induction.max()),
                     **{f"recall at {fmt(s)}": r for s, r in zip(c.strength, c.recall)},
                     "95% CI at largest": fmt_span(*last.recall_ci95, 2),
                     "false disc.": f"{int(c.false_discoveries.sum())}/{int(c.n_control.sum())}",
                     "attention moved": last.attention_moved})
    return table(pd.DataFrame(rows), f"tbl-{model}-power", f"The channels planted into {MODELS[model]['name']}: "
                 "recall per probe and head at each strength (induction plants per strength: plants), its 95% "
                 "Wilson interval at the largest, the control plants confirmed over all strengths, and the median "
                 "attention an induction plant moves onto the target at the largest strength.", prov, jprov,
                 digits=2)


def power_values(model: str = "smollm2") -> Values:
    """The numbers the text gives of the power study: what was planted where, recall at the smallest and largest
    strength (all probes and heads together), the strength from which any plant and 80% of them are found, the
    false discoveries, and the model's own confirmed channels on the same strength scale; "–" for each of
    ``POWER_VALUES`` the results do not give."""
    v = Values(f"{model}.power")
    if _absent(model):
        return v.fill(POWER_VALUES, _paths(model))
    plants, prov = read_csv(_paths(model)[0], POWER_COLUMNS)
    power, jprov = read_json(_paths(model)[1])
    induction = plants[plants.pair_kind == "induction"]
    recall = induction.groupby("strength").confirmed.mean()
    strengths = sorted(plants.strength.unique())
    v.add("heads", ", ".join(f"{head_name(layer, h)} ({ROLES.get(role, role)})" for role, layer, h in power["heads"]),
          jprov)
    v.add("strengths", ", ".join(fmt(s) for s in strengths), prov)
    v.add("smallest", strengths[0], prov)
    v.add("largest", strengths[-1], prov)
    v.add("plants", count(len(induction) // len(strengths), "induction plant"), prov)
    v.add("recall_smallest", recall.iloc[0], prov, digits=2)
    v.add("recall_largest", recall.iloc[-1], prov, digits=2)
    v.add("recall_best", pd.DataFrame(power["curves"]).recall.max(), jprov, digits=2)
    found = recall[recall > 0]
    first = found.index[0] if len(found) else None
    v.add("first_found", fmt(first) if first is not None else "none of the strengths", prov)
    target = recall[recall >= power["target_recall"]]
    v.add("target_recall", power["target_recall"], jprov)
    v.add("reach_target", f"at strength {fmt(target.index[0])}" if len(target) else "at none of the strengths", prov)
    v.add("false_discoveries", f"{power['false_discoveries']} of {power['n_control']}", jprov)
    real, near = power["real_channels"], power["near_misses"]
    v.add("real_n", count(real["n"], "confirmed channel"), jprov)
    v.add("near_n", count(near["n"], "significant unconfirmed candidate"), jprov)
    if real["n"]:
        share = real["scale_share"]
        v.add("real_share", share["50%"], jprov, digits=2)
        v.add("real_share_range", fmt_span(share["min"], share["max"], 2), jprov)
        v.add("real_effect", real["softmax_effect"]["50%"], jprov, digits=2)
        if first is not None:  # how far the model's own channels sit below the weakest planted channel found
            v.add("first_over_real", first / share["50%"], prov, jprov, digits=2)
    if near["n"]:
        v.add("near_share", near["scale_share"]["50%"], jprov, digits=2)
    return v.fill(POWER_VALUES, _paths(model))


def _tih_shares(model: str) -> tuple[pd.DataFrame, tuple] | None:
    path, hpath = f"results/{model}/head_attention.csv", f"results/{model}/heads.csv"
    if not (available(path) and available(hpath)):
        return None
    attn, prov = read_csv(path, ["probe", "layer", "head", *SHARES])
    heads, hprov = read_csv(hpath, ["layer", "head", "is_tih"])
    rows = attn.merge(heads[heads.is_tih][["layer", "head"]], on=["layer", "head"]).dropna(subset=SHARES)
    return rows[rows.probe.str.endswith("_repeat")], (prov, hprov)


def decomposition_table(model: str = "smollm2") -> str:
    """``tbl-<model>-decomposition``: for each TIH, the share of Σ|term| of its score at the induction targets of
    each exact-repeat probe carried by feature pairs, by error terms and by bias and the rest."""
    if (shares := _tih_shares(model)) is None:
        return markdown.absent([f"results/{model}/head_attention.csv", f"results/{model}/heads.csv"])
    rows, sources = shares
    wide = rows.assign(head=[head_name(a, b) for a, b in zip(rows.layer, rows["head"])])[["head", "probe", *SHARES]]
    return table(wide.rename(columns={"pair_share_at_target": "feature pairs", "error_share_at_target": "error",
                                      "other_share_at_target": "bias and rest"}),
                 f"tbl-{model}-decomposition", "Share of Σ|term| of each token induction head's score at the "
                 f"induction targets of {MODELS[model]['name']}, per exact-repeat probe.", *sources, digits=2)


def decomposition_values(model: str = "smollm2") -> Values:
    """The range over TIHs and exact-repeat probes of the share feature pairs carry (``pair_share``) and of the
    share of error terms (``error_share``); "–" without them."""
    v = Values(f"{model}.decomposition")
    if (shares := _tih_shares(model)) is not None and not shares[0].empty:
        rows, sources = shares
        for name, column in (("pair_share", "pair_share_at_target"), ("error_share", "error_share_at_target")):
            v.add(name, fmt_span(rows[column].min(), rows[column].max(), 2), *sources)
    return v.fill(DECOMPOSITION_VALUES, [f"results/{model}/head_attention.csv", f"results/{model}/heads.csv"])
