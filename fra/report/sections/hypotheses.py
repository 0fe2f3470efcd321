"""A model's H1/H2 and its channels: the answers ``metrics.json`` records (overall and per probe kind), the heads
behind them (``hypotheses.csv``), the channels tested and confirmed per probe kind, the confirmed channels
(``channels.csv``) and the feature cards of the strongest (``channel_features.json``), as tables, figures and the
values the text quotes.

Numbers the pipeline already decided are read, not recomputed: H1 and H2 come from ``metrics.json`` (written by
``fra.analysis.induction.answers``), the per-head view from ``hypotheses.csv``; the channel table's columns are
``fra.analysis.schema.CHANNELS``.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.ticker import MaxNLocator

from fra.analysis.schema import CHANNELS
from fra.report.build import markdown
from fra.report.common import (
    CONCEPTS,
    CONTROL,
    EXACT_PROBES,
    HYP_COLUMNS,
    MODELS,
    SHORT,
    escape_markdown,
    files,
    fmt_p,
    fmt_span,
    head_name,
    probe_order,
    yes_no,
)
from fra.report.data import read_csv, read_json
from fra.report.figures import figure
from fra.report.sections.planted import toy_feature_kinds
from fra.report.tables import count, fmt, table
from fra.report.values import Values

GRID_FROM = 24  # more resolvable heads than this: a layer × head grid, and a table of the heads with a channel only
ALL_UP_TO = 60  # the channel table lists every confirmed channel up to this many, else the strongest TOP
TOP = 10
CARDS = 4  # channels whose feature cards are shown
LIFT_TICKS = (-1, -0.3, -0.1, 0, 0.1, 0.3, 1)  # held-out lifts marked on the symmetric log axis


def missing(model: str, *names: str) -> str | None:
    """The absent-results notice for ``results/<model>/<names>``, or None when all are there."""
    return markdown.missing(files(model, *names), MODELS[model]["why"], MODELS[model]["command"])


def counted(channels: pd.DataFrame) -> pd.Series:
    """Channels H1 and H2 count: confirmed, not sink channels, not on the control probe."""
    return channels.is_cih & (channels.kind != "sink") & (channels.probe != CONTROL)


# --- H1 and H2 ------------------------------------------------------------------------------------------------

def hypotheses_summary(metrics: dict) -> pd.DataFrame:
    """H1 and H2 as ``metrics.json`` answers them, overall and per probe kind (``by_probe``)."""
    h1, h2 = metrics["H1"], metrics["H2"]
    rows = [("H1", "all exact repeats", h1["n_tih"], h1["n_tih_with_cih"], h1["n_tih_with_conceptual"],
             h1["answer"])]
    by1, by2 = h1.get("by_probe", {}), h2.get("by_probe", {})
    rows += [("H1", p, h1["n_tih"], by1[p]["n_tih_with_cih"], None, by1[p]["answer"]) for p in probe_order(by1)]
    rows += [("H2", "all but the control", h2["n_non_tih"], h2["n_non_tih_with_cih"],
              h2["n_non_tih_with_conceptual"], h2["answer"])]
    rows += [("H2", p, h2["n_non_tih"], by2[p]["n_non_tih_with_cih"], None, by2[p]["answer"]) for p in probe_order(by2)]
    df = pd.DataFrame(rows, columns=["", "probe", "heads asked", "with confirmed channel", "with conceptual channel",
                                     "answer"])
    df["with conceptual channel"] = df["with conceptual channel"].map(lambda v: "–" if v is None else fmt(v))
    df["answer"] = df.answer.map(escape_markdown)
    return df


def hypotheses_table(model: str) -> str:
    """``tbl-<model>-hypotheses``: H1 and H2, overall and per probe kind."""
    if notice := missing(model, "metrics.json"):
        return notice
    metrics, prov = read_json(f"results/{model}/metrics.json")
    return table(hypotheses_summary(metrics), f"tbl-{model}-hypotheses",
                 f"H1 (token induction heads, TIH) and H2 (other resolvable heads) for {MODELS[model]['name']}: heads "
                 "asked, heads with a confirmed non-sink channel and with a conceptual one, and the answer; overall "
                 "(H1: any exact-repeat probe; H2: any probe kind but the control), then per probe kind.", prov)


def span(values: pd.Series, digits: int = 3) -> str:
    """``min–max`` of ``values`` for a table cell; one value when they agree."""
    lo, hi = values.min(), values.max()
    return fmt(lo, digits) if fmt(lo, digits) == fmt(hi, digits) else fmt_span(lo, hi, digits)


def h2_rows(hyp: pd.DataFrame, channels: pd.DataFrame) -> pd.DataFrame:
    """Per non-TIH head with counted channels: how many, on which probes, of which kinds, their lift and effect."""
    other = hyp[~hyp.is_tih & (hyp.n_cih > 0)]
    cih = channels[counted(channels)].merge(other[["layer", "head"]], on=["layer", "head"])
    return pd.DataFrame([{
        "head": head_name(layer, head), "channels": len(g),
        "probes": ", ".join(SHORT.get(p, p) for p in probe_order(g.probe.unique())),
        "kinds": ", ".join(sorted(g.kind.unique())),
        "held-out lift": span(g.lift_heldout, 2), "softmax effect": span(g.softmax_effect, 2),
        "targets": span(g.n_targets.astype(int))}
        for (layer, head), g in cih.groupby(["layer", "head"])],
        columns=["head", "channels", "probes", "kinds", "held-out lift", "softmax effect", "targets"])


def h2_table(model: str) -> str:
    """``tbl-<model>-h2``: the heads behind H2 (non-TIH heads with counted channels)."""
    if notice := missing(model, "hypotheses.csv", "channels.csv"):
        return notice
    hyp, prov = read_csv(f"results/{model}/hypotheses.csv", HYP_COLUMNS)
    channels, cprov = read_csv(f"results/{model}/channels.csv", CHANNELS.names)
    return table(h2_rows(hyp, channels), f"tbl-{model}-h2",
                 f"The heads of {MODELS[model]['name']} that are not token induction heads and have confirmed "
                 "non-sink channels: how many, on which probe kinds, of which kinds, and the range of their held-out "
                 "lift, softmax effect and held-out induction targets.", prov, cprov)


def best_channel(r) -> str:
    """A ``hypotheses.csv`` row's best channel: features, probe kind and group, kind, held-out lift; ``–`` if none."""
    if not isinstance(r.best_probe, str):
        return "–"
    grp = "" if r.best_group == "all" else f" {r.best_group}"
    return (f"{int(r.best_query_feature)}→{int(r.best_key_feature)}, {SHORT.get(r.best_probe, r.best_probe)}{grp}, "
            f"{r.best_kind}, lift {fmt(r.best_lift_heldout, 2)}")


def per_head_table(hyp: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """``hypotheses.csv`` rows for the paper: confirmed channels per probe kind and in all, by kind, the best
    channel; and the probe kinds of the counts."""
    kinds = probe_order([c.removeprefix("n_cih_") for c in hyp.columns if c.startswith("n_cih_")])
    show = pd.DataFrame({"head": [head_name(layer, h) for layer, h in zip(hyp.layer, hyp["head"])],
                         "induction": hyp.induction, "TIH": hyp.is_tih.map(yes_no)})
    show["confirmed per probe kind"] = [" / ".join(str(int(v)) for v in r)
                                        for r in hyp[[f"n_cih_{k}" for k in kinds]].itertuples(index=False)]
    show["all"] = hyp.n_cih.astype(int)
    for col, name in (("n_token", "token"), ("n_conceptual", "conceptual"), ("n_sink", "sink")):
        show[name] = hyp[col].astype(int)
    if "best_probe" in hyp.columns:
        show["best channel"] = [best_channel(r) for r in hyp.itertuples()]
    return show, kinds


def hypotheses_heads_table(model: str) -> str:
    """``tbl-<model>-hypotheses-heads``: every resolvable head, or beyond ``GRID_FROM`` heads those with a
    counted channel or a TIH, with its channels per probe kind and its best channel."""
    if notice := missing(model, "hypotheses.csv"):
        return notice
    hyp, prov = read_csv(f"results/{model}/hypotheses.csv", HYP_COLUMNS)
    few = len(hyp) <= GRID_FROM
    show, kinds = per_head_table(hyp if few else hyp[(hyp.n_cih > 0) | hyp.is_tih])
    which = "Every resolvable head" if few else "The token induction heads and the heads with a counted channel"
    return table(show, f"tbl-{model}-hypotheses-heads",
                 f"{which} of {MODELS[model]['name']}: confirmed non-sink channels by probe kind "
                 f"({' / '.join(SHORT.get(k, k) for k in kinds)}) and in all (control left out), distinct feature "
                 "pairs by kind (token, conceptual; sink channels not counted), and the best channel (query "
                 "feature→key feature, probe kind and group, kind, held-out lift; lowest q, then highest lift).",
                 prov)


def heads_grid(hyp: pd.DataFrame) -> plt.Figure:
    """Layers × heads of ``hypotheses.csv``: counted channels (``n_cih``) as colour and number (blank: none, not a
    TIH), TIH outlined, ``*`` on a TIH with a channel on exact repeats (what H1 asks for)."""
    counts = hyp.pivot(index="layer", columns="head", values="n_cih")
    labels = pd.DataFrame("", index=counts.index, columns=counts.columns)
    exact = hyp[[f"n_cih_{p}" for p in EXACT_PROBES if f"n_cih_{p}" in hyp]].sum(axis=1)
    for r, e in zip(hyp.itertuples(), exact):
        if r.n_cih or r.is_tih:
            labels.loc[r.layer, r.head] = f"{int(r.n_cih)}{'*' if r.is_tih and e else ''}"
    fig, ax = plt.subplots(figsize=(6.5, 0.32 * len(counts) + 1.3))
    sns.heatmap(counts, mask=counts.isna(), annot=labels, fmt="", cmap="rocket_r", vmin=0,
                vmax=max(1, int(counts.max().max())), linewidths=0.5, linecolor="white", xticklabels=True,
                yticklabels=True, cbar_kws={"label": "counted channels", "ticks": MaxNLocator(integer=True)}, ax=ax)
    rows, cols = list(counts.index), list(counts.columns)
    for r in hyp[hyp.is_tih].itertuples():
        ax.add_patch(plt.Rectangle((cols.index(r.head), rows.index(r.layer)), 1, 1, fill=False, ec="black", lw=1.8))
    ax.set(xlabel="head", ylabel="layer")
    ax.tick_params(axis="y", rotation=0)
    return fig


def grid_figure(model: str) -> str:
    """``fig-<model>-hypotheses-grid``: every resolvable head as a layer × head cell."""
    if notice := missing(model, "hypotheses.csv"):
        return notice
    hyp, prov = read_csv(f"results/{model}/hypotheses.csv", HYP_COLUMNS)
    return figure(heads_grid(hyp), f"fig-{model}-hypotheses-grid",
                  f"Every resolvable head of {MODELS[model]['name']} (layer × head): counted channels (confirmed, "
                  "non-sink, any probe kind but the control) as colour and number; token induction heads outlined, "
                  "numbered even when 0, and marked * when a channel is on exact repeats (the channel H1 asks for).",
                  prov)


# --- channels -------------------------------------------------------------------------------------------------

def probe_counts(channels: pd.DataFrame) -> pd.DataFrame:
    """Per probe kind of ``channels.csv``: groups, candidates tested and confirmed, median held-out lift."""
    order = probe_order(channels.probe.unique())
    by = {p: channels[channels.probe == p] for p in order}
    return pd.DataFrame({
        "probe": order,
        "groups": [by[p].group.nunique() for p in order],
        "tested": [len(by[p]) for p in order],
        "confirmed": [int((by[p].is_cih & (by[p].kind != "sink")).sum()) for p in order],
        "sink": [int((by[p].is_cih & (by[p].kind == "sink")).sum()) for p in order],
        "median held-out lift": [by[p].lift_heldout.median() for p in order],
    })


def probes_table(model: str) -> str:
    """``tbl-<model>-probes``: candidate channels tested and confirmed per probe kind."""
    if notice := missing(model, "channels.csv"):
        return notice
    channels, prov = read_csv(f"results/{model}/channels.csv", CHANNELS.names)
    return table(probe_counts(channels), f"tbl-{model}-probes",
                 f"Candidate channels of {MODELS[model]['name']} per probe kind: groups (classes of the planted-world "
                 "concept probes), candidates tested, confirmed (non-sink) and sink channels, median held-out lift of "
                 "the candidates.", prov)


def lift_figure(model: str) -> str:
    """``fig-<model>-ci``: the held-out lift of every candidate channel per probe kind, threshold dashed."""
    if notice := missing(model, "channels.csv", "metrics.json"):
        return notice
    channels, prov = read_csv(f"results/{model}/channels.csv", CHANNELS.names)
    metrics, mprov = read_json(f"results/{model}/metrics.json")
    order = probe_order(channels.probe.unique())
    threshold = metrics["criterion"]["lift_threshold"]
    fig, ax = plt.subplots(figsize=(6.5, 0.45 * len(order) + 1.4))
    data = channels.assign(status=channels.is_cih.map({True: "confirmed", False: "not confirmed"}))
    np.random.seed(0)  # seaborn draws the strip jitter from numpy's global generator: the same figure every build
    sns.stripplot(data=data, x="lift_heldout", y="probe", order=order, hue="status",
                  hue_order=["not confirmed", "confirmed"], palette=["0.65", sns.color_palette()[3]],
                  size=3.5, alpha=0.75, jitter=0.25, ax=ax)
    ax.axvline(threshold, color="0.4", lw=0.8, ls="--")
    ax.set(xlabel="held-out lift (channel induction minus the null's; symmetric log scale)", ylabel=None)
    ax.set_xscale("symlog", linthresh=max(threshold, 1e-4) / 2)
    lo, hi = ax.get_xlim()
    ticks = [t for t in LIFT_TICKS if lo <= t <= hi]
    ax.set_xticks(ticks, [fmt(t) for t in ticks])
    ax.minorticks_off()
    ax.legend(title=None, ncols=2, loc="lower center", bbox_to_anchor=(0.5, 1.0))
    return figure(fig, f"fig-{model}-ci", f"Held-out lift of every candidate channel of {MODELS[model]['name']}, by "
                  "probe kind; confirmed channels (sink channels included) in colour, the lift threshold dashed.",
                  prov, mprov)


def top_channels(confirmed: pd.DataFrame) -> pd.DataFrame:
    """Confirmed channels as the paper's channel table shows them (held-out statistics, q as ``fmt_p`` writes it)."""
    return pd.DataFrame({
        "head": [head_name(layer, h) for layer, h in zip(confirmed.layer, confirmed["head"])],
        "probe": [SHORT.get(p, p) + ("" if g == "all" else f" {g}") for p, g in zip(confirmed.probe, confirmed.group)],
        "q→k": [f"{int(a)}→{int(b)}" for a, b in zip(confirmed.query_feature, confirmed.key_feature)],
        "kind": confirmed.kind, "token share q / k": [f"{fmt(a, 2)} / {fmt(b, 2)}" for a, b in zip(
            confirmed.query_token_share, confirmed.key_token_share)],
        "support": confirmed.support_heldout, "CI": confirmed.channel_induction_heldout,
        "null CI": confirmed.null_channel_induction_heldout, "lift": confirmed.lift_heldout,
        "effect": confirmed.softmax_effect, "targets": confirmed.n_targets, "q": confirmed.q_value.map(fmt_p)})


def strongest(channels: pd.DataFrame) -> pd.DataFrame:
    """Confirmed channels (sink channels included), highest held-out lift first."""
    return channels[channels.is_cih].sort_values(["lift_heldout", "q_value"], ascending=[False, True])


def channels_table(model: str) -> str:
    """``tbl-<model>-channels``: every confirmed channel (up to ``ALL_UP_TO``, else the ``TOP`` strongest)."""
    if notice := missing(model, "channels.csv"):
        return notice
    channels, prov = read_csv(f"results/{model}/channels.csv", CHANNELS.names)
    confirmed = strongest(channels)
    shown = confirmed if len(confirmed) <= ALL_UP_TO else confirmed.head(TOP)
    which = ("Every confirmed channel" if len(shown) == len(confirmed)
             else f"The {fmt(TOP)} confirmed channels (of {fmt(len(confirmed))}) with the highest held-out lift")
    return table(top_channels(shown), f"tbl-{model}-channels",
                 f"{which} of {MODELS[model]['name']}, highest held-out lift first: probe kind (random, frequent, "
                 "text, token, concept = `*_repeat`, templates = `concept_templates`, control = `concept_control`) "
                 "and group, query feature→key feature, kind, token shares of the query feature (current token) and "
                 "of the key feature (previous token; near 1: a token-identity feature), then on the held-out probes "
                 "support, channel induction (CI), its null mean, lift, softmax effect, induction targets where the "
                 "channel is present, and q.", prov, digits=2)


def contexts(card: dict, sep: str, n: int = 2, left: int = 3) -> str:
    """The top ``n`` activations of a feature card, each as ``act: … left **token** right …``, shortened to
    ``left`` tokens before the activating one and one after."""
    shown = []
    for act, before, token, after in (card.get("top") or [])[:n]:
        pre = f"…{escape_markdown(sep.join(before[-left:]))}{sep}" if before else ""
        post = f"{sep}{escape_markdown(after[0])}…" if after else ""
        lead = " " if token[:1].isspace() and pre else ""  # emphasis must not start with a space
        shown.append(f"{fmt(float(act), 2)}: {pre}{lead}**{escape_markdown(token.strip() or token)}**{post}")
    return "; ".join(shown) or "no activation in the card corpus"


def with_links(rows: list[dict], linked: list[dict]) -> pd.DataFrame:
    """``rows`` as a table, with a Neuronpedia column when any of their cards (``linked``, in row order) has a
    link."""
    df = pd.DataFrame(rows)
    if any(c.get("neuronpedia") for c in linked):
        df["Neuronpedia"] = [f"[page]({c['neuronpedia']})" if c.get("neuronpedia") else "–" for c in linked]
    return df


def channel_card_rows(top: pd.DataFrame, cards: dict, kinds: dict, sep: str) -> pd.DataFrame:
    """Query- and key-side feature card of each channel in ``top``: one row per feature (a Neuronpedia link where
    the cards have one)."""
    rows, linked = [], []
    for r in top.itertuples():
        for side, feature in (("query", r.query_feature), ("key", r.key_feature)):
            card = cards.get(f"L{int(r.layer)}", {}).get(str(int(feature)), {})
            linked.append(card)
            rows.append({"channel": f"{head_name(r.layer, r.head)} {int(r.query_feature)}→{int(r.key_feature)}",
                         "side": side, "feature": f"L{int(r.layer)} {int(feature)}",
                         **({"planted label": escape_markdown(kinds.get((int(r.layer), int(feature)), "–")
                                                              .split(";")[0])}
                            if kinds else {}),
                         "top activations (token in bold)": contexts(card, sep)})
    return with_links(rows, linked)


def channel_cards_table(model: str) -> str:
    """``tbl-<model>-channel-cards``: feature cards of the ``CARDS`` strongest distinct channels."""
    if notice := missing(model, "channels.csv", "channel_features.json"):
        return notice
    channels, prov = read_csv(f"results/{model}/channels.csv", CHANNELS.names)
    cards, cprov = read_json(f"results/{model}/channel_features.json")
    kinds, kprovs = toy_feature_kinds(model)
    top = strongest(channels).drop_duplicates(["layer", "query_feature", "key_feature"]).head(CARDS)
    return table(channel_card_rows(top, cards, kinds, " " if model == "toy" else ""), f"tbl-{model}-channel-cards",
                 f"Feature cards of the {count(len(top), 'strongest channel')} of {MODELS[model]['name']} (distinct "
                 "feature pairs, highest held-out lift first): for the query- and the key-side feature, "
                 + ("its planted-world label and " if kinds else "")
                 + "its two top activations in the card corpus, shortened to three tokens before the activating one "
                 "and one after.", prov, cprov, *kprovs)


# --- values ---------------------------------------------------------------------------------------------------

def hypotheses_values(model: str) -> Values:
    """The numbers the text gives of H1, H2 and the channels: answers and counts from ``metrics.json``, the lift
    threshold and minimum effect, the non-TIH heads with channels."""
    v = Values(f"{model}.hypotheses",
               [f"results/{model}/{n}" for n in ("metrics.json", "hypotheses.csv", "channels.csv")])
    if missing(model, "metrics.json", "hypotheses.csv", "channels.csv"):
        return v
    metrics, prov = read_json(f"results/{model}/metrics.json")
    hyp, hprov = read_csv(f"results/{model}/hypotheses.csv", HYP_COLUMNS)
    channels, cprov = read_csv(f"results/{model}/channels.csv", CHANNELS.names)
    h1, h2, crit = metrics["H1"], metrics["H2"], metrics["criterion"]
    layers = sorted(int(x) for x in hyp.layer.unique())
    v.add("heads", count(len(hyp), "resolvable head"), hprov)
    v.add("layers", count(len(layers), "layer"), hprov)
    v.add("layer_list", ", ".join(map(str, layers)), hprov)
    v.add("h1", escape_markdown(h1["answer"]), prov)
    v.add("h1_n", f"{fmt(h1['n_tih_with_cih'])} of {fmt(h1['n_tih'])}", prov)
    v.add("h1_conceptual", h1["n_tih_with_conceptual"], prov)
    v.add("h2", escape_markdown(h2["answer"]), prov)
    v.add("h2_n", f"{fmt(h2['n_non_tih_with_cih'])} of {fmt(h2['n_non_tih'])}", prov)
    v.add("h2_conceptual", h2["n_non_tih_with_conceptual"], prov)
    for probe, a in h1.get("by_probe", {}).items():  # h1_random, h1_frequent, h1_text, h1_token
        v.add(f"h1_{SHORT.get(probe, probe)}", a["n_tih_with_cih"], prov)
    v.fill([f"h1_{SHORT[p]}" for p in EXACT_PROBES], [f"results/{model}/metrics.json"])  # "–": a probe not run
    others = h2_rows(hyp, channels)
    v.add("h2_heads", ", ".join(others["head"]) or "none", hprov, cprov)
    v.add("tested", count(metrics["n_channels_tested"], "candidate channel"), prov)
    v.add("confirmed", metrics["n_cih"], prov)
    v.add("sink", count(metrics["n_sink"], "sink channel"), prov)
    confirmed = channels[counted(channels)]
    for kind in ("token", "conceptual"):
        v.add(f"n_{kind}", int((confirmed.kind == kind).sum()), cprov)
    v.add("concept_probes", ", ".join(f"`{c}`" for c in CONCEPTS if c in set(channels.probe)) or "none", cprov)
    v.add("lift_threshold", crit["lift_threshold"], prov, digits=2)
    v.add("min_effect", crit["min_effect"], prov)
    n_shown = int(channels.is_cih.sum())
    v.add("channels_shown", "every confirmed channel" if n_shown <= ALL_UP_TO
          else f"the {fmt(TOP)} with the highest held-out lift", cprov)
    return v
