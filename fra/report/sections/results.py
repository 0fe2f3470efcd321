"""One model's results, as tables, figures and the values the text quotes: the corpus and SAEs of a language model
(``corpus.json``, ``saes.json``, ``feature_cards.json``), its token induction heads (``heads.csv``), each resolvable
head's attention to the induction target per probe kind (``head_attention.csv``) and the links to its explorers.
H1/H2 and the channels themselves are in ``fra.report.sections.hypotheses``."""

from __future__ import annotations

import re

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from fra.report.build.provenance import available, provenance
from fra.report.common import (
    ATTN_COLUMNS,
    EXACT_PROBES,
    HEAD_COLUMNS,
    HYP_COLUMNS,
    MODELS,
    SHORT,
    fmt_range,
    head_name,
    probe_order,
    yes_no,
)
from fra.report.data import read_csv, read_json
from fra.report.figures import TEXT_PT, WIDTH_IN, figure, label_points
from fra.report.sections.hypotheses import contexts, missing, span, with_links
from fra.report.tables import count, fmt, table
from fra.report.values import Values

CARDS_PER_LAYER = 2  # randomly drawn feature cards of each SAE shown
TIH_EXACT, TIH_NONE, H2_HEAD, OTHER = ("token induction head, channel on exact repeats",
                                       "token induction head, no such channel", "other head with a channel",
                                       "other head")
FLOOR = 0.005  # smallest previous-token score the heads figure's log axis shows
LOG_TICKS = [0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0]  # previous-token scores marked on the heads figure's log axis


def names_of(rows: pd.DataFrame) -> str:
    """``L<l>H<h>`` of each row (``layer``, ``head``), comma-separated."""
    return ", ".join(head_name(layer, h) for layer, h in zip(rows.layer, rows["head"]))


# --- corpus and SAEs ------------------------------------------------------------------------------------------

def corpus_table(model: str) -> str:
    """``tbl-<model>-corpus``: the text corpus of a language model's SAEs, per source."""
    if notice := missing(model, "corpus.json"):
        return notice
    corpus, prov = read_json(f"results/{model}/corpus.json")
    rows = [{"source": name,
             "documents (train / held-out)": f"{fmt(s['documents']['train'])} / {fmt(s['documents']['heldout'])}",
             "train tokens before the cap": s["tokens_before_cap"]["train"],
             "sequences (train / held-out)": f"{fmt(s['sequences']['train'])} / {fmt(s['sequences']['heldout'])}",
             "paragraphs deduplicated": f"{fmt(s['dedup']['dropped_paragraphs'])} of {fmt(s['dedup']['paragraphs'])}"}
            for name, s in corpus["per_source"].items()]
    return table(pd.DataFrame(rows), f"tbl-{model}-corpus", f"Text corpus of {MODELS[model]['name']}'s SAEs, per "
                 "source.", prov)


def sae_rows(saes: dict) -> pd.DataFrame:
    """One row per layer of a language model's ``saes.json`` (its ``run`` entry left out), in layer order: size,
    quality on held-out text, median firing rate."""
    rows = [{"layer": int(name.removeprefix("L")), "d_sae": s["d_sae"], "L0": s["l0"],
             "variance explained": s["variance_explained"], "dead fraction": s["dead_fraction"],
             "median firing rate": s.get("freq_quantiles", {}).get("0.5", np.nan)}
            for name, s in saes.items() if name != "run"]
    return pd.DataFrame(rows).sort_values("layer", ignore_index=True)


def saes_table(model: str) -> str:
    """``tbl-<model>-saes``: the SAEs of a language model, one row per layer."""
    if notice := missing(model, "saes.json"):
        return notice
    saes, prov = read_json(f"results/{model}/saes.json")
    released = saes.get("run", {}).get("pretrained")
    return table(sae_rows(saes), f"tbl-{model}-saes", f"SAEs of {MODELS[model]['name']}, per layer: dictionary size, "
                 "sparsity (L0), variance explained and dead fraction on held-out text, median feature firing rate"
                 + (" (released: copied, not trained)." if released else "."), prov)


def card_rows(cards: dict, per_layer: int = CARDS_PER_LAYER) -> pd.DataFrame:
    """The first ``per_layer`` feature cards of each layer of ``feature_cards.json``, in layer and feature order:
    one row per feature (a Neuronpedia link where the cards have one)."""
    shown = sorted(((int(layer.lstrip("L")), int(feature), card) for layer, feats in cards.items()
                    for feature, card in list(feats.items())[:per_layer]), key=lambda t: t[:2])
    return with_links([{"layer": layer, "feature": feature, "fires on (%)": 100 * card["freq"],
                        "top activations (token in bold)": contexts(card, "")} for layer, feature, card in shown],
                      [card for *_, card in shown])


def cards_table(model: str) -> str:
    """``tbl-<model>-cards``: randomly drawn feature cards of each SAE of a language model."""
    if notice := missing(model, "feature_cards.json"):
        return notice
    cards, prov = read_json(f"results/{model}/feature_cards.json")
    return table(card_rows(cards), f"tbl-{model}-cards", f"The first {count(CARDS_PER_LAYER, 'feature card')} drawn "
                 f"at random from each SAE of {MODELS[model]['name']}: share of held-out tokens the feature fires "
                 "on, and its two top activations on held-out text, shortened to three tokens before the activating "
                 "one and one after.", prov, digits=2)


# --- token induction heads ------------------------------------------------------------------------------------

def head_kinds(heads: pd.DataFrame, hyp: pd.DataFrame | None) -> pd.Series:
    """Each head of ``heads.csv`` as the heads figure marks it: a TIH with or without a counted channel on exact
    repeats (``hypotheses.csv``), another head with a counted channel, or another head."""
    exact = pd.Series(0, index=heads.index)
    channel = pd.Series(0, index=heads.index)
    if hyp is not None:
        joined = heads[["layer", "head"]].merge(hyp, on=["layer", "head"], how="left")
        cols = [f"n_cih_{p}" for p in EXACT_PROBES if f"n_cih_{p}" in joined]
        exact = joined[cols].fillna(0).sum(axis=1).set_axis(heads.index)
        channel = joined.n_cih.fillna(0).set_axis(heads.index)
    return pd.Series(np.where(heads.is_tih, np.where(exact > 0, TIH_EXACT, TIH_NONE),
                              np.where(channel > 0, H2_HEAD, OTHER)), index=heads.index)


STYLES = {OTHER: dict(marker=".", s=14, color="0.7", zorder=1),
          H2_HEAD: dict(marker="^", s=26, color="C0", zorder=3),
          TIH_NONE: dict(marker="o", s=26, facecolor="white", edgecolor="C3", zorder=3),
          TIH_EXACT: dict(marker="o", s=26, color="C3", zorder=3)}


def heads_plot(heads: pd.DataFrame, kinds: pd.Series, threshold: float | None) -> plt.Figure:
    """Induction against previous-token score, one point per head: TIH marked and each named (leader lines where
    crowded), other heads with a counted channel marked (they lie too close together to name), every other head a
    grey dot; previous-token scores on a log axis, those below ``FLOOR`` drawn at it. Drawn at the text width, its
    text at ``TEXT_PT``."""
    heads = heads.assign(previous_token=heads.previous_token.clip(lower=FLOOR))
    fig, ax = plt.subplots(figsize=(WIDTH_IN, 3.1))
    shown = [k for k in (TIH_EXACT, TIH_NONE, H2_HEAD, OTHER) if (kinds == k).any()]
    for kind in shown:
        sel = kinds == kind
        ax.scatter(heads.previous_token[sel], heads.induction[sel], label=kind, **STYLES[kind])
    if threshold is not None:
        ax.axhline(threshold, color="0.5", ls="--", lw=0.8)
    ax.set_xlabel("previous-token score (log scale)", fontsize=TEXT_PT + 1)
    ax.set_ylabel("induction score", fontsize=TEXT_PT + 1)
    ax.tick_params(labelsize=TEXT_PT)
    ax.set_xscale("log")
    ax.set_xticks(LOG_TICKS, [fmt(t) for t in LOG_TICKS])
    ax.minorticks_off()
    ax.set(xlim=(heads.previous_token.min() / 1.3, 1.0), ylim=(-0.03, 1.03))
    ax.legend(loc="upper right", fontsize=TEXT_PT, handletextpad=0.3, borderaxespad=0.2)
    named = kinds.isin([TIH_EXACT, TIH_NONE])
    label_points(ax, heads.previous_token[named], heads.induction[named],
                 [head_name(layer, h) for layer, h in zip(heads.layer[named], heads["head"][named])],
                 avoid=(heads.previous_token[~named], heads.induction[~named]), fontsize=TEXT_PT - 0.5)
    return fig


def heads_figure(model: str) -> str:
    """``fig-<model>-heads``: every head's induction against its previous-token score, the token induction heads
    named (printed in the main text for SmolLM2)."""
    if notice := missing(model, "heads.csv"):
        return notice
    heads, prov = read_csv(f"results/{model}/heads.csv", HEAD_COLUMNS)
    sources = [prov]
    threshold = hyp = None
    if available(f"results/{model}/metrics.json"):
        metrics, mprov = read_json(f"results/{model}/metrics.json")
        threshold = metrics["tih_threshold"]
        sources.append(mprov)
    if available(f"results/{model}/hypotheses.csv"):
        hyp, hprov = read_csv(f"results/{model}/hypotheses.csv", HYP_COLUMNS)
        sources.append(hprov)
    kinds = head_kinds(heads, hyp)
    h2 = heads[kinds == H2_HEAD]
    others = (f"; triangles: the other heads with a confirmed channel (H2), {names_of(h2)}, too close together to "
              "name one by one" if len(h2) else "")
    rule = "; dashed: the induction threshold of a TIH" if threshold is not None else ""
    return figure(heads_plot(heads, kinds, threshold), f"fig-{model}-heads",
                  f"Induction against previous-token score for each of the {fmt(len(heads))} heads of "
                  f"{MODELS[model]['name']}: the token induction heads named, filled when they have a confirmed "
                  f"non-sink channel on exact repeats (what H1 asks for){others}{rule}.", *sources, width="100%")


def top_heads(heads: pd.DataFrame, n: int = 8) -> pd.DataFrame:
    """The ``n`` heads of ``heads.csv`` with the highest induction score, as the heads table shows them."""
    top = heads.sort_values("induction", ascending=False).head(n)
    top = top.assign(head=[head_name(layer, h) for layer, h in zip(top.layer, top["head"])],
                     is_tih=top.is_tih.map(yes_no))
    cols = ["head", "induction", "induction_min", "previous_token", "duplicate_token", "positional_control", "is_tih"]
    return top[[c for c in cols if c in top.columns]].rename(columns={
        "induction_min": "induction, min over N", "previous_token": "previous token", "duplicate_token":
        "duplicate token", "positional_control": "positional control", "is_tih": "TIH"})


def heads_table(model: str) -> str:
    """``tbl-<model>-heads``: the heads with the highest induction scores."""
    if notice := missing(model, "heads.csv"):
        return notice
    heads, prov = read_csv(f"results/{model}/heads.csv", HEAD_COLUMNS)
    return table(top_heads(heads), f"tbl-{model}-heads", f"The heads of {MODELS[model]['name']} with the highest "
                 "induction scores on `[BOS] r r`, with their other scores.", prov)


# --- attention to the induction target ------------------------------------------------------------------------

def head_attention(model: str) -> tuple[pd.DataFrame, pd.Series, object]:
    """Mean attention to the induction target per head (rows ``L<l>H<h>``) and probe kind (columns; mean over
    queries, then over groups), whether each head is a TIH, and the file's provenance."""
    attn, prov = read_csv(f"results/{model}/head_attention.csv", ATTN_COLUMNS)
    heads, _ = read_csv(f"results/{model}/heads.csv", HEAD_COLUMNS)
    mean = attn.groupby(["probe", "layer", "head"], as_index=False).attention_to_target.mean()
    mean["name"] = [head_name(layer, h) for layer, h in zip(mean.layer, mean["head"])]
    wide = mean.pivot_table(index="name", columns="probe", values="attention_to_target", sort=False)
    wide = wide[probe_order(wide.columns)]
    tih = pd.Series({head_name(layer, h): bool(t) for layer, h, t in zip(heads.layer, heads["head"], heads.is_tih)})
    return wide, tih.reindex(wide.index, fill_value=False), prov


def attention_plot(wide: pd.DataFrame, tih: pd.Series, channel: set[str]) -> plt.Figure:
    """One row per named head (TIH first, then other heads with a counted channel), and one for the median of the
    other heads; a marker per probe kind at the head's mean attention to the target."""
    named = [h for h in wide.index if tih[h]] + [h for h in wide.index if not tih[h] and h in channel]
    rest = wide.drop(index=named)
    rows = wide.loc[named]
    if len(rest):
        rows = pd.concat([rows, rest.median().to_frame(f"median of {count(len(rest), 'other head')}").T])
    fig, ax = plt.subplots(figsize=(WIDTH_IN, 0.24 * len(rows) + 1.1))
    y = np.arange(len(rows))
    markers = "osD^vP*X"
    for k, probe in enumerate(rows.columns):
        ax.scatter(rows[probe], y, marker=markers[k % len(markers)], s=22, color=f"C{k}", zorder=3,
                   label=SHORT.get(probe, probe))
    ax.set_yticks(y, rows.index)
    ax.set_ylim(len(rows) - 0.5, -0.5)
    ax.set_xlim(-0.02, 1.02)
    ax.set_xlabel("mean attention to the induction target", fontsize=TEXT_PT + 1)
    ax.tick_params(labelsize=TEXT_PT)
    n_tih = int(tih[named].sum())
    if 0 < n_tih < len(rows):
        ax.axhline(n_tih - 0.5, color="0.6", lw=0.6)
    ax.legend(ncols=len(rows.columns), fontsize=TEXT_PT, loc="lower center", bbox_to_anchor=(0.5, 1.0),
              handletextpad=0.2, columnspacing=0.9)
    return fig


def attention_figure(model: str) -> str:
    """``fig-<model>-attention``: each named head's attention to the induction target per probe kind."""
    if notice := missing(model, "head_attention.csv", "heads.csv"):
        return notice
    wide, tih, prov = head_attention(model)
    channel, sources = set(), [prov]
    if available(f"results/{model}/hypotheses.csv"):
        hyp, hprov = read_csv(f"results/{model}/hypotheses.csv", HYP_COLUMNS)
        channel = {head_name(r.layer, r.head) for r in hyp[hyp.n_cih > 0].itertuples()}
        sources.append(hprov)
    fig = attention_plot(wide, tih, channel)
    with_channel = [h for h in wide.index if not tih[h] and h in channel]
    n_other = len(wide) - int(tih.sum()) - len(with_channel)
    below = " (above the line) and of the other heads with a confirmed channel (below it)" if with_channel else ""
    rest = f"; last row: the median over the {count(n_other, 'other resolvable head')}" if n_other else ""
    return figure(fig, f"fig-{model}-attention", f"Mean attention to the induction target (over queries, then "
                  f"groups) per probe kind of the token induction heads of {MODELS[model]['name']}{below}{rest}.",
                  *sources)


# --- values ---------------------------------------------------------------------------------------------------

def explorers(model: str) -> tuple[str, list]:
    """Markdown links to the model's interactive explorers that exist (``explorer/<model>/<page>``: ``fra paper``
    ships each linked page beside the HTML), and their provenance."""
    links, provs = [], []
    for name, what in (("channels.html", "dataset explorer of the channels"),
                       ("showcase.html", "single-text explorer")):
        path = f"results/{model}/explorer/{name}"
        if available(path):
            provs.append(provenance(path))
            links.append(f"[{what}](explorer/{model}/{name})")
    return "; ".join(links), provs


def results_values(model: str) -> Values:
    """The numbers the appendix gives of a model's corpus and SAEs, its token induction heads, their attention to
    the induction target, and its explorers."""
    read = ["heads.csv", "metrics.json", "head_attention.csv"]
    read += ["saes.json", "corpus.json"] if model != "toy" else []
    v = Values(f"{model}.results", [f"results/{model}/{n}" for n in read])
    if available(f"results/{model}/saes.json") and model != "toy":
        saes, prov = read_json(f"results/{model}/saes.json")
        run, df = saes.get("run", {}), sae_rows(saes)
        v.add("saes", count(len(df), "SAE"), prov)
        v.add("sae_layers", ", ".join(map(str, df.layer)), prov)
        v.add("sae_hooks", ", ".join(f"`{h}`" for h in sorted({re.sub(r"^blocks\.\d+\.", "blocks.L.", s["hook_name"])
                                                             for k, s in saes.items() if k != "run"})), prov)
        v.add("sae_explained", fmt_range(df["variance explained"].min(), df["variance explained"].max()), prov)
        v.add("sae_l0", fmt_range(df.L0.min(), df.L0.max()), prov)
        v.add("sae_dead", df["dead fraction"].max(), prov)
        v.add("sae_origin", f"released (`{run['pretrained']}`), copied and evaluated here" if run.get("pretrained")
              else "trained here", prov)
        device = run.get("device")
        v.add("sae_device", device.upper().replace("CUDA", "a GPU (CUDA)") if device else "an unrecorded device", prov)
    if available(f"results/{model}/corpus.json"):
        corpus, prov = read_json(f"results/{model}/corpus.json")
        v.add("seq_len", corpus["config"]["seq_len"], prov)
        v.add("sources", count(len(corpus["per_source"]), "source"), prov)
    if available(f"results/{model}/heads.csv"):
        heads, prov = read_csv(f"results/{model}/heads.csv", HEAD_COLUMNS)
        v.add("heads", count(len(heads), "head"), prov)
        v.add("n_tih", count(int(heads.is_tih.sum()), "token induction head"), prov)
        v.add("tih", names_of(heads[heads.is_tih]), prov)
        prev = heads.sort_values("previous_token", ascending=False).iloc[0]
        v.add("top_previous", f"{head_name(prev.layer, prev['head'])} ({fmt(prev.previous_token, 2)})", prov)
    if available(f"results/{model}/metrics.json"):
        metrics, prov = read_json(f"results/{model}/metrics.json")
        v.add("tih_threshold", metrics["tih_threshold"], prov)
    if available(f"results/{model}/head_attention.csv") and available(f"results/{model}/heads.csv"):
        wide, tih, prov = head_attention(model)
        v.add("attention_heads", count(len(wide), "resolvable head"), prov)
        v.add("tih_attention", "; ".join(
            f"{SHORT.get(p, p)} {span(wide.loc[tih, p], 2)}"
            for p in wide.columns) if tih.any() else "none (no TIH)", prov)
    links, provs = explorers(model)
    v.add("explorers", links or "none here", *provs, **({} if provs else {"note": "no explorer was produced"}))
    return v
