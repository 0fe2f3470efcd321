"""The chain-of-thought study's tables, figures and numbers, from ``results/<model>/cot/`` (stage ``cot``,
``fra.cot.study``): sentence kinds, receiver heads, attention suppression and the receiver heads' resolved channels,
with the dense features (``fra.analysis.dense``) the channels hold."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from fra.report.build import markdown
from fra.report.common import fmt_range
from fra.report.data import read_csv, read_json
from fra.report.figures import figure
from fra.report.tables import count, fmt, table
from fra.report.values import Values

# fra.cot.traces.KINDS and fra.analysis.dense.DENSITY, not imported: those modules load torch into the paper's kernel
KINDS = ("problem", "instruction", "plan", "computation", "check", "final_answer")
DENSITY = 0.5  # corpus firing rate above which a feature is dense

FILES = ("metrics.json", "receivers.csv", "sentences.csv", "pairs.csv", "channels.csv", "kinds.csv")
CHANNEL_COLUMNS = {"layer": "layer", "head": "head", "query_feature": "query feature", "key_feature": "key feature",
                   "dense": "dense", "support_heldout": "support", "anchor_share": "anchor share",
                   "lift_heldout": "lift", "softmax_effect": "effect", "q_value": "q", "confirmed": "confirmed",
                   "attention_lost_share": "attention lost", "kl_share": "KL share"}
KIND_COLUMNS = {"n_all": "sentences", "n_sentences": "scored", "share": "share of scored", "n_top": "anchors",
                "top_share": "share of anchors", "enrichment": "enrichment"}
# every value cot_values gives; "–" for each where the study's results are absent
NAMES = ("n_traces", "n_discovery", "n_heldout", "n_sentences", "n_scored", "n_receivers", "receivers", "stability",
         "stability_heads", "overlap", "top_n", "receivers_tih", "mean_induction", "n_anchors", "anchor_kind",
         "anchor_kind_share", "anchor_kind_enrichment", "empty_kinds", "unscored_kinds", "corr_receivers",
         "corr_receivers_pearson", "corr_all", "corr_all_pearson", "corr_pairs", "resolved",
         "n_candidates", "n_confirmed", "lift_threshold", "sharing", "n_ablated", "attention_lost", "kl_share",
         "n_dense", "dense_features", "density")


def paths(model: str) -> list[str]:
    """The study's results files, then the induction study's features.csv and metrics.json (dense features)."""
    return [f"results/{model}/cot/{n}" for n in FILES] + [f"results/{model}/features.csv",
                                                          f"results/{model}/metrics.json"]


def _absent(model: str) -> str | None:
    """The notice for missing results, or None when every file is there."""
    return markdown.missing(paths(model), "They hold the chain-of-thought study (`fra cot`).")


def dense_sides(channels: pd.DataFrame, features: pd.DataFrame, sink_share: float) -> pd.Series:
    """Per channel, which of its features is dense ("q", "k", "q, k" or ""): corpus firing rate above ``DENSITY``
    or sink share at least ``sink_share`` (``features``: the induction study's features.csv)."""
    dense = features[(features.firing_rate > DENSITY) | (features.sink_share.fillna(0.0) >= sink_share)]
    marked = set(zip(dense.layer, dense.feature))
    return pd.Series([", ".join(s for s, f in (("q", r.query_feature), ("k", r.key_feature)) if (r.layer, f) in marked)
                      for r in channels.itertuples()], index=channels.index, dtype=object)


def kinds_frame(kinds: pd.DataFrame, sentence_kinds: dict) -> pd.DataFrame:
    """Every sentence kind of ``KINDS`` (0 where none occurs): all sentences, the scored ones, their share, the
    anchors and their share, and the enrichment (share of anchors / share)."""
    df = pd.DataFrame({"kind": KINDS}).merge(kinds, on="kind", how="left")
    df[["n_sentences", "share", "n_top", "top_share"]] = df[["n_sentences", "share", "n_top", "top_share"]].fillna(0)
    df["n_all"] = [int(sentence_kinds.get(k, 0)) for k in KINDS]
    df = df.astype({"n_sentences": int, "n_top": int})
    return df[["kind", *KIND_COLUMNS]]


def kinds_table(model: str = "smollm2") -> str:
    """The sentence kinds (all of ``KINDS``), as tbl-<model>-cot-kinds."""
    if note := _absent(model):
        return note
    m, mprov = read_json(paths(model)[0])
    kinds, kprov = read_csv(paths(model)[5], ["kind", "n_sentences", "share", "n_top", "top_share", "enrichment"])
    df = kinds_frame(kinds, m["sentence_kinds"])
    shown = df.assign(kind=df["kind"].str.replace("_", " ")).rename(columns=KIND_COLUMNS)
    return table(shown, f"tbl-{model}-cot-kinds",
                 "Sentence kinds: all sentences; the scored ones (a trace's last sentences have no later sentence "
                 "beyond the ignored neighbours, so no vertical score) and their share; the anchors and their "
                 "share; enrichment = share of anchors / share of scored (– for a kind never scored).", kprov, mprov)


def kurtosis_grid(receivers: pd.DataFrame) -> plt.Figure:
    """Layers × heads: mean kurtosis of vertical scores on discovery traces; receiver heads outlined."""
    grid = receivers.pivot(index="layer", columns="head", values="kurt_discovery")
    fig, ax = plt.subplots(figsize=(6.5, 0.085 * len(grid) + 1.0))
    sns.heatmap(grid, cmap="viridis", linewidths=0.3, linecolor="white", cbar_kws={"label": "kurtosis (discovery)"},
                ax=ax)
    rows, cols = list(grid.index), list(grid.columns)
    for r in receivers[receivers["is_receiver"]].itertuples():
        ax.add_patch(plt.Rectangle((cols.index(r.head), rows.index(r.layer)), 1, 1, fill=False, ec="red", lw=1.5))
    ax.set(xlabel="head", ylabel="layer")
    ax.tick_params(axis="y", rotation=0, labelsize=6)
    return fig


def kurtosis_figure(model: str = "smollm2") -> str:
    """``kurtosis_grid`` of the study, as fig-<model>-cot-kurtosis."""
    if note := _absent(model):
        return note
    receivers, rprov = read_csv(paths(model)[1], ["layer", "head", "kurt_discovery", "is_receiver"])
    return figure(kurtosis_grid(receivers), f"fig-{model}-cot-kurtosis",
                  "Kurtosis of vertical scores by head (mean over discovery traces); receiver heads outlined in "
                  "red.", rprov, width="80%")


def shown_trace(sentences: pd.DataFrame) -> int:
    """The trace the trace figure shows: the first held-out one."""
    return int(sentences.loc[sentences["split"] == "heldout", "trace"].min())


def trace_maps(pairs: pd.DataFrame, sentences: pd.DataFrame, trace: int) -> plt.Figure:
    """One trace: the receiver heads' sentence attention and the suppression KL, sentence × sentence."""
    mine, kinds = pairs[pairs["trace"] == trace], sentences[sentences["trace"] == trace]
    n = len(kinds)
    labels = [f"{s} {k.replace('_', ' ')}" + (" *" if a else "")
              for s, k, a in zip(kinds["sentence"], kinds["kind"], kinds["is_anchor"])]
    fig, axes = plt.subplots(1, 2, figsize=(7, 3.3), layout="constrained")
    for ax, col, title in zip(axes, ("attention", "kl"), ("receiver heads' attention", "suppression KL (nats)")):
        M = np.full((n, n), np.nan)
        M[mine["i"], mine["j"]] = mine[col]
        # the kinds label the rows once; the columns are the same sentences, by number
        sns.heatmap(M, cmap="magma", square=True, ax=ax, cbar_kws={"shrink": 0.8}, xticklabels=list(kinds["sentence"]),
                    yticklabels=labels if ax is axes[0] else False)
        ax.set(xlabel="key sentence j", ylabel="query sentence i" if ax is axes[0] else "")
        ax.set_title(title, fontsize=9.5)
        ax.tick_params(labelsize=9)
        ax.tick_params(axis="x", rotation=0)
    return fig


def trace_figure(model: str = "smollm2") -> str:
    """``trace_maps`` of the first held-out trace, as fig-<model>-cot-trace (printed in the main text)."""
    if note := _absent(model):
        return note
    sentences, sprov = read_csv(paths(model)[2], ["trace", "sentence", "kind", "split", "is_anchor"])
    pairs, pprov = read_csv(paths(model)[3], ["trace", "split", "i", "j", "attention", "kl"])
    trace = shown_trace(sentences)
    return figure(trace_maps(pairs, sentences, trace), f"fig-{model}-cot-trace",
                  f"Held-out trace {trace}, sentence × sentence: the receiver heads' mean attention from sentence i to "
                  "sentence j (left) and the KL divergence of sentence i's next-token predictions when all attention "
                  "to sentence j is suppressed (right); * marks the anchors.", pprov, sprov)


def suppression_scatter(pairs: pd.DataFrame, proximity: int) -> plt.Figure:
    """Held-out sentence pairs i > j + proximity: receiver attention against suppression KL."""
    p = pairs[(pairs["split"] == "heldout") & (pairs["i"] > pairs["j"] + proximity)].dropna(subset=["attention", "kl"])
    fig, ax = plt.subplots(figsize=(4.5, 3.2))
    ax.scatter(p["attention"], p["kl"], s=8, alpha=0.5)
    ax.set(xscale="log", yscale="log", xlabel="receiver heads' mean sentence attention", ylabel="suppression KL (nats)")
    return fig


def suppression_figure(model: str = "smollm2") -> str:
    """``suppression_scatter`` of the held-out pairs, as fig-<model>-cot-suppression."""
    if note := _absent(model):
        return note
    pairs, pprov = read_csv(paths(model)[3], ["trace", "split", "i", "j", "attention", "kl"])
    return figure(suppression_scatter(pairs, 0), f"fig-{model}-cot-suppression",
                  "Held-out sentence pairs: the receiver heads' mean attention against the suppression KL.", pprov,
                  width="60%")


def _channels(model: str) -> tuple[pd.DataFrame, list]:
    """channels.csv with the ``dense`` column, and the sources it comes from."""
    channels, cprov = read_csv(paths(model)[4], ["layer", "head", "query_feature", "key_feature", "confirmed",
                                                 "ablated", "attention_lost_share", "kl_share"])
    features, fprov = read_csv(paths(model)[6], ["layer", "feature", "firing_rate", "sink_share"])
    metrics, iprov = read_json(paths(model)[7])
    channels["dense"] = dense_sides(channels, features, metrics["criterion"]["sink_share"])
    return channels, [cprov, fprov, iprov]


def channels_table(model: str = "smollm2", rows: int = 12) -> str:
    """The receiver heads' channels (confirmed first, then by support; at most ``rows``), as
    tbl-<model>-cot-channels."""
    if note := _absent(model):
        return note
    channels, sources = _channels(model)
    shown = channels.sort_values(["confirmed", "support_heldout"], ascending=[False, False]).head(rows)
    shown = shown[[c for c in CHANNEL_COLUMNS if c in shown.columns]].rename(columns=CHANNEL_COLUMNS)
    shown["confirmed"] = shown["confirmed"].map({True: "yes", False: "no"})
    shown[["query feature", "key feature"]] = shown[["query feature", "key feature"]].astype(str)  # ids, not numbers
    return table(shown, f"tbl-{model}-cot-channels",
                 "Receiver-head channels on held-out traces (confirmed first, then by support): the side whose "
                 "feature is dense (firing rate above 0.5 or a sink feature), support at the anchors, anchor share "
                 "and its lift over the sentence-permutation null, softmax effect on the attention to the anchors, "
                 "BH q-value, and (for the ablated channels) the share of the head's attention to the anchors and "
                 "of the anchors' suppression KL lost when the channel is removed.", *sources)


def cot_values(model: str = "smollm2") -> Values:
    """Every number of the study's text (``NAMES``): traces, receiver heads and their stability, anchors and sentence
    kinds, the suppression correlation, the resolved channels, their ablation and dense features; "–" for each when
    the results are absent."""
    v = Values("cot")
    if _absent(model):
        return v.fill(NAMES, paths(model))
    m, mprov = read_json(paths(model)[0])
    sentences, sprov = read_csv(paths(model)[2], ["trace", "split", "kind", "is_anchor"])
    kinds, kprov = read_csv(paths(model)[5], ["kind", "n_sentences", "share", "n_top", "top_share", "enrichment"])
    receivers, rprov = read_csv(paths(model)[1], ["layer", "head", "is_receiver"])
    stab, corr = m["stability"], m["suppression_correlation"]
    v.add("n_traces", m["n_traces"], mprov)
    v.add("n_discovery", m["splits"]["discovery"], mprov)
    v.add("n_heldout", m["splits"]["heldout"], mprov)
    v.add("n_sentences", len(sentences), sprov)
    v.add("n_scored", int(kinds["n_sentences"].sum()), kprov)
    v.add("n_receivers", len(m["receivers"]), mprov)
    v.add("receivers", ", ".join(m["receivers"]), mprov)
    v.add("stability", stab["spearman"], mprov, digits=2)
    v.add("stability_heads", stab["n_heads"], mprov)
    v.add("overlap", stab["overlap"], mprov)
    v.add("top_n", stab["top_n"], mprov)
    v.add("receivers_tih", m["receivers_tih"], mprov, rprov)
    v.add("mean_induction", m["receivers_mean_induction"], mprov, digits=2)
    v.add("n_anchors", int(sentences["is_anchor"].sum()), sprov)
    df = kinds_frame(kinds, m["sentence_kinds"])
    top = df.loc[df["top_share"].idxmax()]
    v.add("anchor_kind", top["kind"].replace("_", " "), kprov)
    v.add("anchor_kind_share", top["top_share"], kprov, digits=2)
    v.add("anchor_kind_enrichment", top["enrichment"], kprov, digits=2)
    v.add("empty_kinds", ", ".join(df.loc[df["n_all"] == 0, "kind"].str.replace("_", " ")) or "none", kprov, mprov)
    unscored = df.loc[(df["n_all"] > 0) & (df["n_sentences"] == 0), "kind"].str.replace("_", " ")
    v.add("unscored_kinds", ", ".join(unscored) or "none", kprov, mprov)
    h, ha = corr["heldout"], corr["heldout_all_heads"]
    v.add("corr_receivers", h["spearman"], mprov, digits=2)
    v.add("corr_receivers_pearson", h["pearson"], mprov, digits=2)
    v.add("corr_all", ha["spearman"], mprov, digits=2)
    v.add("corr_all_pearson", ha["pearson"], mprov, digits=2)
    v.add("corr_pairs", h["n_pairs"], mprov)
    v.add("resolved", ", ".join(m["resolved_heads"]), mprov)
    channels, sources = _channels(model)
    v.add("n_candidates", count(m["n_candidates"], "candidate channel"), mprov)
    v.add("n_confirmed", int(channels["confirmed"].sum()), *sources)
    v.add("lift_threshold", m["lift_threshold"], mprov, digits=2)
    v.add("sharing", m["channels_sharing_an_induction_feature"], mprov)
    ablated = channels[channels["ablated"]]
    v.add("n_ablated", len(ablated), *sources)
    lost = ablated["attention_lost_share"]
    v.add("attention_lost", fmt_range(lost.min(), lost.max(), 2) if len(ablated) else "–", *sources)
    v.add("kl_share", ablated["kl_share"].max() if len(ablated) else "–", *sources, digits=2)
    dense = channels[channels["dense"] != ""]
    v.add("n_dense", f"{fmt(len(dense))} of {fmt(len(channels))}", *sources)
    q = dense.loc[dense["dense"].str.contains("q"), ["layer", "query_feature"]].to_numpy().tolist()
    k = dense.loc[dense["dense"].str.contains("k"), ["layer", "key_feature"]].to_numpy().tolist()
    v.add("dense_features", ", ".join(f"L{a} {b}" for a, b in sorted({tuple(x) for x in q + k})) or "none", *sources)
    v.add("density", DENSITY, note="fra.analysis.dense.DENSITY")
    return v
