"""A model's H1/H2 and its channels: the answers metrics.json records, the heads behind them, the channels
tested and confirmed per probe kind, the strongest with their feature cards (``hypotheses.csv``,
``channels.csv``, ``channel_features.json``).

Numbers the pipeline already decided are read, not recomputed: H1 and H2 come from ``metrics.json``
(written by ``fra.analysis.induction.answers``), the per-head view from ``hypotheses.csv``; the
channel table's columns are ``fra.analysis.schema.CHANNELS``.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.ticker import MaxNLocator

from fra.analysis.schema import CHANNELS
from fra.report.build.provenance import Provenance, available
from fra.report.common import (
    CONCEPTS,
    CONTROL,
    EXACT,
    EXACT_PROBES,
    HYP_COLUMNS,
    SHORT,
    card_line,
    escape_markdown,
    fmt_p,
    fmt_range,
    head_name,
    probe_order,
    yes_no,
)
from fra.report.data import read_csv, read_json
from fra.report.figures import figure
from fra.report.sections.planted import toy_feature_kinds
from fra.report.tables import count, fmt, table

GRID_FROM = 24  # more resolvable heads than this: a layer × head grid, and a table of the heads with a channel only

def hypotheses_summary(metrics: dict) -> tuple[str, pd.DataFrame]:
    """The H1/H2 answers and counts that ``metrics.json`` records: a sentence and a two-row table."""
    h1, h2 = metrics["H1"], metrics["H2"]
    others = (f"{fmt(h2['n_non_tih_with_cih'])} of {fmt(h2['n_non_tih'])} heads that are not token induction heads "
              f"have one, {fmt(h2['n_non_tih_with_conceptual'])} of them a conceptual one" if h2["n_non_tih"]
              else "every resolvable head is a token induction head")
    sentence = (f"**H1: {escape_markdown(h1['answer'])}** — {fmt(h1['n_tih_with_cih'])} of {fmt(h1['n_tih'])} token "
                "induction heads have a confirmed (non-sink) CIH channel on exact repeats, "
                f"{fmt(h1['n_tih_with_conceptual'])} of them a conceptual one. **H2: "
                f"{escape_markdown(h2['answer'])}** — {others}{by_probe(h1, h2)}")
    exact = ", ".join(f"`{p}`" for p in EXACT_PROBES if p in h1.get("by_probe", {})) or f"`{EXACT}`"
    rows = [("H1", f"every TIH has a confirmed CIH channel on exact repeats ({exact})", "resolvable TIH",
             h1["n_tih"], h1["n_tih_with_cih"], h1["n_tih_with_conceptual"], h1["answer"]),
            ("H2", "some non-TIH head has a confirmed CIH channel (any probe kind but the control)",
             "resolvable non-TIH", h2["n_non_tih"], h2["n_non_tih_with_cih"], h2["n_non_tih_with_conceptual"],
             h2["answer"])]
    columns = ["", "hypothesis", "heads asked", "n", "with confirmed channel", "with conceptual channel", "answer"]
    return sentence, pd.DataFrame(rows, columns=columns)


def by_probe(h1: dict, h2: dict) -> str:
    """The answers per probe kind (metrics.json ``by_probe``), as a sentence's tail."""
    parts = [f"H1 on `{p}` {a['answer']} ({fmt(a['n_tih_with_cih'])} of {fmt(h1['n_tih'])})"
             for p, a in h1.get("by_probe", {}).items()]
    parts += [f"H2 on `{p}` {a['answer']} ({fmt(a['n_non_tih_with_cih'])} of {fmt(h2['n_non_tih'])})"
              for p, a in h2.get("by_probe", {}).items()]
    return f". Probe by probe: {'; '.join(parts)}" if parts else ""


def h2_details(hyp: pd.DataFrame, channels: pd.DataFrame) -> list[str]:
    """Per non-TIH head with confirmed channels (``hypotheses.csv``): how many, on which probes, their effect."""
    other = hyp[~hyp.is_tih & (hyp.n_cih > 0)]
    real = channels.is_cih & (channels.kind != "sink") & (channels.probe != CONTROL)
    cih = channels[real].merge(other[["layer", "head"]], on=["layer", "head"])
    return [f"{head_name(layer, head)}: {count(len(g), 'channel')} on {', '.join(probe_order(g.probe.unique()))} "
            f"({', '.join(sorted(g.kind.unique()))}), held-out lift "
            f"{fmt_range(g.lift_heldout.min(), g.lift_heldout.max())}, softmax effect "
            f"{fmt_range(g.softmax_effect.min(), g.softmax_effect.max())}, present at "
            f"{fmt_range(g.n_targets.min(), g.n_targets.max())} held-out induction targets each"
            for (layer, head), g in cih.groupby(["layer", "head"])]


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


def hypotheses_part(model: str, spec: dict, metrics: dict, mprov: Provenance) -> str:
    """H1 and H2 as metrics.json answers them, the H2 confirmations in detail, and head by head: a table of every
    head, or beyond ``GRID_FROM`` heads a layer × head grid and a table of the heads with a counted channel."""
    hyp, prov = read_csv(f"results/{model}/hypotheses.csv", HYP_COLUMNS)
    sentence, summary = hypotheses_summary(metrics)
    layers = sorted(int(x) for x in hyp.layer.unique())
    grid = len(hyp) > GRID_FROM
    shown = hyp[hyp.n_cih > 0] if grid else hyp
    where = [f"@fig-{model}-hypotheses-grid"] if grid else []
    if len(shown):
        where.append(f"@tbl-{model}-hypotheses-heads")
    none = "; no resolvable head has a counted channel" if grid and shown.empty else ""
    out = [f"Over the {fmt(len(hyp))} resolvable heads of {spec['name']}, every head of {count(len(layers), 'layer')} "
           f"({', '.join(map(str, layers))}), {fmt(metrics['H1']['n_tih'])} token induction heads and "
           f"{fmt(metrics['H2']['n_non_tih'])} others: {sentence} (@tbl-{model}-hypotheses; head by head in "
           f"{' and '.join(where)}{none}).",
           table(summary, f"tbl-{model}-hypotheses", f"H1 and H2 for {spec['name']}.", mprov)]
    path = f"results/{model}/channels.csv"
    if (~hyp.is_tih & (hyp.n_cih > 0)).any() and available(path):
        channels, cprov = read_csv(path, CHANNELS.names)
        c = metrics.get("criterion", {})
        floor = f" (lift threshold {fmt(c.get('lift_threshold'))}, `min_effect` = {fmt(c.get('min_effect'))})"
        out.append(f"\nThe H2 confirmations in detail{floor} — " + "; ".join(h2_details(hyp, channels)) + ". "
                   f"[Source: {cprov.line()}.]{{.provenance}}\n")
    if grid:
        out.append(figure(heads_grid(hyp), f"fig-{model}-hypotheses-grid", f"Every resolvable head of {spec['name']} "
                          "(layer × head): its counted channels (confirmed, non-sink, on every probe kind but the "
                          "control) as colour and number; token induction heads outlined, with a number even when "
                          "0, and marked * when a channel is on exact repeats (any exact-repeat probe), the channel H1 "
                          "asks for.",
                          prov))
    if len(shown):
        show, kinds = per_head_table(shown)
        why = " with a counted channel" if grid else ""
        out.append(table(show, f"tbl-{model}-hypotheses-heads", f"Confirmed non-sink CIH channels per resolvable head"
                         f"{why} of {spec['name']}, by probe kind ({' / '.join(f'`{k}`' for k in kinds)}) and in all "
                         "(control left out); distinct feature pairs confirmed on exact repeats (token) and across "
                         "different tokens of a concept (conceptual); sink channels (not counted); and the head's best "
                         "channel (query feature→key feature, probe kind and group, kind, held-out lift; lowest q, "
                         "then highest lift).", prov))
    return "\n".join(out)


def probe_counts(channels: pd.DataFrame) -> pd.DataFrame:
    """Per probe kind of ``channels.csv``: groups, candidates tested and confirmed, median held-out CI."""
    order = probe_order(channels.probe.unique())
    by = {p: channels[channels.probe == p] for p in order}
    return pd.DataFrame({
        "probe": order,
        "groups": [by[p].group.nunique() for p in order],
        "tested": [len(by[p]) for p in order],
        "confirmed": [int((by[p].is_cih & (by[p].kind != "sink")).sum()) for p in order],
        "sink": [int((by[p].kind == "sink").sum()) for p in order],
        "median held-out lift": [by[p].lift_heldout.median() for p in order],
    })


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


def channels_part(model: str, spec: dict, metrics: dict) -> str:
    """Channels tested and confirmed (counts from metrics.json), per probe kind, the strongest, their cards."""
    channels, prov = read_csv(f"results/{model}/channels.csv", CHANNELS.names)
    counts = probe_counts(channels)
    order = list(counts.probe)
    out = [f"{fmt(metrics['n_channels_tested'])} candidate channels of {spec['name']} were tested and "
           f"{fmt(metrics['n_cih'])} confirmed as induction channels; {fmt(metrics['n_sink'])} more passed the "
           f"criterion but are sink channels (@tbl-{model}-probes).",
           table(counts, f"tbl-{model}-probes", f"Candidate channels of {spec['name']} tested and confirmed per probe "
                 "kind (groups: classes for the planted-world concept probes; sink channels apart), and the median "
                 "held-out lift of the candidates.", prov)]
    # Held-out channel induction per probe kind.
    fig, ax = plt.subplots(figsize=(6.5, 0.5 * len(order) + 1.6))
    data = channels.assign(status=channels.is_cih.map({True: "confirmed", False: "not confirmed"}))
    np.random.seed(0)  # seaborn draws the strip jitter from numpy's global generator: the same figure every build
    sns.stripplot(data=data, x="lift_heldout", y="probe", order=order, hue="status",
                  hue_order=["not confirmed", "confirmed"], palette=["0.65", sns.color_palette()[3]],
                  size=3.5, alpha=0.75, jitter=0.25, ax=ax)
    if "criterion" in metrics:
        ax.axvline(metrics["criterion"]["lift_threshold"], color="0.4", lw=0.8, ls="--")
    ax.set(xlabel="held-out lift (CI minus the null's CI; symmetric log scale)", ylabel=None)
    ax.set_xscale("symlog", linthresh=max(metrics.get("criterion", {}).get("lift_threshold") or 0, 1e-4) / 2)
    ax.legend(title=None, loc="lower left")
    out += [f"@fig-{model}-ci compares the held-out lift of the candidates on exact repeats "
            f"(`{EXACT}`) and on concept repeats ({', '.join(f'`{c}`' for c in CONCEPTS if c in order)}) and the "
            "other probe kinds.",
            figure(fig, f"fig-{model}-ci", f"Held-out lift of every candidate channel of {spec['name']}, by probe "
                   "kind; confirmed channels (sink channels included) in colour, the model's lift threshold dashed.",
                   prov)]
    confirmed = channels[channels.is_cih].sort_values(["lift_heldout", "q_value"], ascending=[False, True])
    if confirmed.empty:
        out.append(f"\nNo channel of {spec['name']} passed the CIH test.")
        return "\n".join(out)
    top = confirmed.head(8)
    out.append(table(top_channels(top), f"tbl-{model}-channels", f"The confirmed channels of {spec['name']} with "
                     "the highest held-out lift: probe kind (random, text, token, concept = "
                     "`*_repeat`, control = `concept_control`) and group, query feature→key feature, kind, the "
                     "token shares of the query feature (current token) and key feature (previous token; near 1: a "
                     "token-identity feature), then on the held-out probes support, CI, its null mean, lift, softmax "
                     "effect, number of induction targets where the channel is present, and q.", prov, digits=2))
    cards_path = f"results/{model}/channel_features.json"
    if available(cards_path):
        cards, cprov = read_json(cards_path)
        kinds, kprovs = toy_feature_kinds(model)
        sep = " " if model == "toy" else ""
        lines = []
        for r in top.drop_duplicates(["layer", "query_feature", "key_feature"]).head(4).itertuples():
            lines.append(f"\n*Channel {int(r.query_feature)}→{int(r.key_feature)} of {head_name(r.layer, r.head)}:*\n")
            lines.append(card_line(r.layer, r.query_feature, cards, "query side", kinds, sep))
            lines.append(card_line(r.layer, r.key_feature, cards, "key side", kinds, sep))
        srcs = "; ".join(p.line() for p in [cprov, *kprovs])
        out += [f"\nFeature cards of the strongest channels (top activations in the card corpus, the "
                f"activating token in bold): [Sources: {srcs}.]{{.provenance}}\n", *lines, ""]
    return "\n".join(out)
