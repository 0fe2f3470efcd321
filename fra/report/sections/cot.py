"""The paper's chain-of-thought section, from ``results/<model>/cot/`` (stage ``cot``, ``fra.cot.study``)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from fra.report.build.markdown import absent
from fra.report.build.provenance import available, provenance
from fra.report.data import read_csv, read_json
from fra.report.figures import figure
from fra.report.tables import fmt, table

CHANNEL_COLUMNS = {"layer": "layer", "head": "head", "query_feature": "query feature", "key_feature": "key feature",
                   "support_heldout": "support", "anchor_share": "anchor share", "lift_heldout": "lift",
                   "softmax_effect": "effect", "q_value": "q", "confirmed": "confirmed",
                   "attention_lost_share": "attention lost", "kl_share": "KL share"}

KIND_COLUMNS = {"n_sentences": "sentences", "share": "share", "n_top": "anchors", "top_share": "share of anchors",
                "enrichment": "enrichment"}


def _corr(c: dict) -> str:
    return f"Spearman {fmt(c['spearman'])} (Pearson {fmt(c['pearson'])}, {c['n_pairs']} sentence pairs)"


def kurtosis_grid(receivers: pd.DataFrame) -> plt.Figure:
    """Layers × heads: mean kurtosis of vertical scores on discovery traces; receiver heads outlined."""
    grid = receivers.pivot(index="layer", columns="head", values="kurt_discovery")
    fig, ax = plt.subplots(figsize=(6.5, 0.13 * len(grid) + 1.2))
    sns.heatmap(grid, cmap="viridis", linewidths=0.3, linecolor="white", cbar_kws={"label": "kurtosis (discovery)"},
                ax=ax)
    rows, cols = list(grid.index), list(grid.columns)
    for r in receivers[receivers["is_receiver"]].itertuples():
        ax.add_patch(plt.Rectangle((cols.index(r.head), rows.index(r.layer)), 1, 1, fill=False, ec="red", lw=1.5))
    ax.set(xlabel="head", ylabel="layer")
    ax.tick_params(axis="y", rotation=0, labelsize=6.5)
    return fig


def trace_maps(pairs: pd.DataFrame, sentences: pd.DataFrame, trace: int) -> plt.Figure:
    """One trace: the receiver heads' sentence attention and the suppression KL, sentence × sentence."""
    mine, kinds = pairs[pairs["trace"] == trace], sentences[sentences["trace"] == trace]
    n = len(kinds)
    labels = [f"{s} {k}" + (" *" if a else "") for s, k, a in zip(kinds["sentence"], kinds["kind"], kinds["is_anchor"])]
    fig, axes = plt.subplots(1, 2, figsize=(7, 4.2))
    for ax, col, title in zip(axes, ("attention", "kl"), ("receiver attention", "suppression KL (nats)")):
        M = np.full((n, n), np.nan)
        M[mine["i"], mine["j"]] = mine[col]
        sns.heatmap(M, cmap="magma", square=True, ax=ax, cbar_kws={"shrink": 0.7}, xticklabels=labels,
                    yticklabels=labels if ax is axes[0] else False)
        ax.set(title=title, xlabel="key sentence j", ylabel="query sentence i" if ax is axes[0] else "")
        ax.tick_params(labelsize=7)
    return fig


def suppression_scatter(pairs: pd.DataFrame, proximity: int) -> plt.Figure:
    """Held-out sentence pairs i > j + proximity: receiver attention against suppression KL."""
    p = pairs[(pairs["split"] == "heldout") & (pairs["i"] > pairs["j"] + proximity)].dropna(subset=["attention", "kl"])
    fig, ax = plt.subplots(figsize=(4.5, 3.2))
    ax.scatter(p["attention"], p["kl"], s=8, alpha=0.5)
    ax.set(xscale="log", yscale="log", xlabel="receiver heads' mean sentence attention", ylabel="suppression KL (nats)")
    return fig


def cot_section(model: str = "smollm2") -> str:
    """Receiver heads, their stability, what they receive, suppression vs attention and the resolved channels."""
    base = f"results/{model}/cot"
    paths = [f"{base}/{n}"
             for n in ("metrics.json", "receivers.csv", "sentences.csv", "pairs.csv", "channels.csv", "kinds.csv")]
    if not all(available(p) for p in paths):
        return absent(paths[0], "It holds the chain-of-thought study (`fra cot`).")
    m, mprov = read_json(paths[0])
    receivers, rprov = read_csv(paths[1], ["layer", "head", "kurt_discovery", "is_receiver"])
    sentences, sprov = read_csv(paths[2], ["trace", "sentence", "kind", "split", "is_anchor"])
    pairs, pprov = read_csv(paths[3], ["trace", "split", "i", "j", "attention", "kl"])
    channels, cprov = read_csv(paths[4], ["layer", "head", "query_feature", "key_feature", "confirmed"])
    kinds, kprov = read_csv(paths[5], ["kind", "share", "top_share", "enrichment"])
    stab, corr = m["stability"], m["suppression_correlation"]
    out = [f"{m['n_traces']} teacher-forced traces ({m['splits']['discovery']} discovery, {m['splits']['heldout']} "
           f"held-out problems) give {len(sentences)} sentences. The {len(m['receivers'])} receiver heads "
           f"(highest mean kurtosis of vertical scores on discovery traces, @fig-{model}-cot-kurtosis) are "
           f"{', '.join(m['receivers'])}. Their ranking carries over to held-out traces with Spearman "
           f"{fmt(stab['spearman'])} over {stab['n_heads']} heads; {stab['overlap']} of the top {stab['top_n']} are "
           f"also in the top {stab['top_n']} on held-out traces."]
    if m.get("receivers_tih") is not None:
        out.append(f" {m['receivers_tih']} of them are token induction heads (mean induction score "
                   f"{fmt(m['receivers_mean_induction'])}).")
    scored = kinds.assign(kind=kinds["kind"].str.replace("_", " ")).rename(columns=KIND_COLUMNS)
    out.append(table(scored, f"tbl-{model}-cot-kinds",
                     f"Sentence kinds: their share of the {fmt(int(kinds['n_sentences'].sum()))} scored sentences (a "
                     "trace's last sentences have no later sentence beyond the ignored neighbours, so no vertical "
                     "score) and of the anchors (the sentences with the highest vertical score under the receiver "
                     "heads), and the enrichment (ratio).", kprov))
    out.append(figure(kurtosis_grid(receivers), f"fig-{model}-cot-kurtosis",
                      "Kurtosis of vertical scores by head (mean over discovery traces); receiver heads outlined.",
                      rprov))
    first = int(sentences.loc[sentences["split"] == "heldout", "trace"].min())
    out.append(figure(trace_maps(pairs, sentences, first), f"fig-{model}-cot-trace",
                      f"Held-out trace {first}: the receiver heads' mean sentence attention (left) and the KL "
                      "divergence of later predictions when all attention to sentence j is suppressed (right); * marks "
                      "anchors.", pprov, sprov))
    h, ha = corr["heldout"], corr["heldout_all_heads"]
    out.append(f"\nReceiver-head attention predicts the suppression effect on held-out traces with {_corr(h)}; "
               f"the mean attention of every head gives {_corr(ha)} (@fig-{model}-cot-suppression)"
               + ("; on these short traces, choosing the receiver heads does not improve the prediction."
                  if h["spearman"] <= ha["spearman"] else "."))
    out.append(figure(suppression_scatter(pairs, 0), f"fig-{model}-cot-suppression",
                      "Held-out sentence pairs: receiver heads' mean attention against the suppression KL.", pprov,
                      width="60%"))
    n_conf = int(channels["confirmed"].sum())
    out.append(f"\nResolved into feature pairs ({', '.join(m['resolved_heads'])}: the best-ranked heads "
               f"in layers with an SAE), {m['n_candidates']} candidate channels from discovery traces were tested on "
               f"held-out traces; {n_conf} pass Benjamini–Hochberg and the induction study's rule, with the lift "
               f"threshold {fmt(m.get('lift_threshold'))} from the traces' own shuffled-key null "
               f"(@tbl-{model}-cot-channels). {m['channels_sharing_an_induction_feature']} candidates share a query or "
               "key feature with a confirmed induction channel of the same layer.")
    shown = channels.sort_values(["confirmed", "support_heldout"], ascending=[False, False]).head(12)
    shown = shown[[c for c in CHANNEL_COLUMNS if c in shown.columns]].rename(columns=CHANNEL_COLUMNS)
    shown["confirmed"] = shown["confirmed"].map({True: "yes", False: "no"})
    out.append(table(shown, f"tbl-{model}-cot-channels",
                     "Receiver-head channels on held-out traces (confirmed first, then by support): support at the "
                     "anchors, anchor share and its lift over the sentence-permutation null, softmax effect on the "
                     "attention to the anchors, BH q-value, and (for the ablated channels) the share of the head's "
                     "attention to the anchors and of the anchors' suppression KL lost when the channel is "
                     "removed.", cprov, mprov))
    page = f"results/{model}/explorer/cot.html"
    if available(page):
        out.append(f"\nOne held-out trace can be explored interactively (sentence → the heads that receive it → the "
                   f"resolved heads' channels): [chain-of-thought explorer](../../{page}) (`{page}`, md5 "
                   f"`{provenance(page).md5}`).")
    return "\n".join(out)
