"""One model's results subsection: corpus and SAEs (language models), token induction heads, H1/H2, channels,
attention to the induction target, explorers. Every model of ``MODELS`` gets its subsection; without
results it says which command produces them."""

from __future__ import annotations

import re

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from fra.report.build.markdown import absent
from fra.report.build.provenance import available, provenance
from fra.report.common import (
    ATTN_COLUMNS,
    EXACT,
    HEAD_COLUMNS,
    SHORT,
    card_line,
    files,
    fmt_range,
    head_name,
    probe_order,
    yes_no,
)
from fra.report.data import read_csv, read_json
from fra.report.figures import figure, label_points
from fra.report.sections.hypotheses import channels_part, hypotheses_part
from fra.report.tables import fmt, table

STUDY = ["heads.csv", "channels.csv", "head_attention.csv", "hypotheses.csv", "metrics.json"]  # fra induction's files
CARD_LINES = 16  # feature cards a language model's SAE section lists at most (at most four per layer)
BARS_UP_TO = 12  # resolvable heads shown as bars; beyond, a scatter of each probe kind against exact repeats
TIH, OTHER = "token induction head", "other head"


def heads_part(model: str, spec: dict, metrics: dict | None) -> str:
    """Token induction heads: scatter of induction against previous-token score, the top heads."""
    heads, prov = read_csv(f"results/{model}/heads.csv", HEAD_COLUMNS)
    threshold = metrics["tih_threshold"] if metrics else None
    fig, ax = plt.subplots(figsize=(6.5, 3.0))
    kind = heads.is_tih.map({True: TIH, False: OTHER})
    sns.scatterplot(data=heads.assign(kind=kind), x="previous_token", y="induction", hue="kind", style="kind",
                    hue_order=[TIH, OTHER], style_order=[TIH, OTHER], s=40, ax=ax)
    if threshold is not None:
        ax.axhline(threshold, color="0.5", ls="--", lw=0.8)
    ax.set(xlabel="previous-token score", ylabel="induction score")
    ax.legend(title=None, loc="center right")
    named = heads[heads.is_tih | (heads.previous_token >= heads.previous_token.max() * 0.8)]
    label_points(ax, named.previous_token, named.induction,
                 [head_name(layer, h) for layer, h in zip(named.layer, named["head"])])
    top = heads.sort_values("induction", ascending=False).head(8)
    top = top.assign(head=[head_name(layer, h) for layer, h in zip(top.layer, top["head"])],
                     is_tih=top.is_tih.map(yes_no))
    cols = ["head", "induction", "induction_min", "previous_token", "duplicate_token", "positional_control", "is_tih"]
    top = top[[c for c in cols if c in top.columns]].rename(columns={
        "induction_min": "induction, min over N", "previous_token": "previous token", "duplicate_token":
        "duplicate token", "positional_control": "positional control", "is_tih": "TIH"})
    n_tih = int(heads.is_tih.sum())
    tih = ", ".join(head_name(r.layer, r.head) for r in heads[heads.is_tih].itertuples()) or "none"
    rule = f" (induction score ≥ {fmt(threshold)}, dashed line)" if threshold is not None else ""
    return "\n".join([
        f"Of the {fmt(len(heads))} heads of {spec['name']}, {fmt(n_tih)} are token induction heads{rule}: {tih} "
        f"(@fig-{model}-heads, @tbl-{model}-heads).",
        figure(fig, f"fig-{model}-heads", f"Induction against previous-token score for every head of "
               f"{spec['name']}; token induction heads and the strongest previous-token heads named (names of nearby "
               "points share a label).", prov),
        table(top, f"tbl-{model}-heads", f"The heads of {spec['name']} with the highest induction scores on "
              "`[BOS] r r`.", prov),
    ])


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


def attention_figure(wide: pd.DataFrame, tih: pd.Series) -> plt.Figure:
    """Bars per head and probe kind for a few heads; for many, one panel per probe kind against exact repeats."""
    others = [p for p in wide.columns if p != EXACT]
    if len(wide) <= BARS_UP_TO or EXACT not in wide or not others:
        fig, ax = plt.subplots(figsize=(6.5, 3.0))
        long = wide.reset_index().melt(id_vars="name", var_name="probe", value_name="attention")
        sns.barplot(data=long, x="name", y="attention", hue="probe", hue_order=list(wide.columns), ax=ax)
        ax.set(xlabel=None, ylabel="attention to the target", ylim=(0, 1))
        ax.legend(title=None, ncols=wide.shape[1], fontsize="small", loc="lower center", bbox_to_anchor=(0.5, 1.0),
                  handlelength=1)
        return fig
    fig, axes = plt.subplots(1, len(others), figsize=(6.5, 3.0), sharey=True, squeeze=False)
    for ax, probe in zip(axes[0], others):
        for is_tih, style in ((False, dict(color="0.6", s=14, label=OTHER)), (True, dict(color="C3", s=26, label=TIH))):
            sel = tih == is_tih
            ax.scatter(wide.loc[sel, EXACT], wide.loc[sel, probe], marker="o" if is_tih else ".", **style)
        ax.plot([0, 1], [0, 1], color="0.75", lw=0.8, ls=":")
        ax.set(xlim=(-0.03, 1.03), ylim=(-0.03, 1.03), xlabel=f"on {SHORT.get(EXACT, EXACT)} repeats",
               title=f"on {SHORT.get(probe, probe)}" + (" repeats" if probe.endswith("repeat") else ""))
        ax.title.set_fontsize("medium")
        named = wide[tih]
        label_points(ax, named[EXACT], named[probe], list(named.index), fontsize=6.5, near=(0.3, 0.06))
    axes[0][0].set_ylabel("attention to the target")
    axes[0][0].legend(loc="upper left", fontsize="small")
    return fig


def attention_part(model: str, spec: dict) -> str:
    """Each resolvable head's attention to the induction target per probe kind (head_attention.csv)."""
    wide, tih, prov = head_attention(model)
    parts = [f"{SHORT.get(p, p)} {fmt_range(wide.loc[tih, p].min(), wide.loc[tih, p].max(), 2)}" for p in wide.columns]
    text = (f" The {int(tih.sum())} token induction heads among them attend to the target with: " + "; ".join(parts)
            + "." if tih.any() else "")
    layout = ("each probe kind against exact repeats of random tokens, one point per head (dotted: equal attention)"
              if len(wide) > BARS_UP_TO and EXACT in wide else "bars per head and probe kind")
    return "\n".join([
        f"@fig-{model}-attention shows how much each of the {len(wide)} resolvable heads attends to the induction "
        f"target on each probe kind (mean over queries, then over groups).{text}",
        figure(attention_figure(wide, tih), f"fig-{model}-attention", f"Attention of the resolvable heads of "
               f"{spec['name']} to the induction target: {layout}; token induction heads in colour.", prov),
    ])


def sae_rows(saes: dict) -> pd.DataFrame:
    """One row per layer of a language model's ``saes.json`` (its ``run`` entry left out), in layer order: size,
    quality on held-out text, median firing rate."""
    rows = [{"layer": int(name.removeprefix("L")), "d_sae": s["d_sae"], "L0": s["l0"],
             "variance explained": s["variance_explained"], "dead fraction": s["dead_fraction"],
             "median firing rate": s.get("freq_quantiles", {}).get("0.5", np.nan)}
            for name, s in saes.items() if name != "run"]
    return pd.DataFrame(rows).sort_values("layer", ignore_index=True)


def lm_saes_part(model: str, spec: dict) -> str:
    """The text corpus and the SAEs, trained or released, of a language model (stages lm_corpus and lm_saes)."""
    saes, prov = read_json(f"results/{model}/saes.json")
    run = saes.get("run", {})
    released = run.get("pretrained")
    out = []
    if available(f"results/{model}/corpus.json"):
        corpus, cprov = read_json(f"results/{model}/corpus.json")
        rows = [{"source": name,
                 "documents (train / held-out)": f"{s['documents']['train']} / {s['documents']['heldout']}",
                 "train tokens before the cap": s["tokens_before_cap"]["train"],
                 "sequences (train / held-out)": f"{s['sequences']['train']} / {s['sequences']['heldout']}",
                 "paragraphs deduplicated": f"{s['dedup']['dropped_paragraphs']} of {s['dedup']['paragraphs']}"}
                for name, s in corpus["per_source"].items()]
        out += [f"The SAEs of {spec['name']} were {'evaluated' if released else 'trained'} on an offline corpus of "
                f"packaged text, deduplicated by paragraph and split into train and held-out by document, in sequences "
                f"of {fmt(corpus['config']['seq_len'])} tokens (@tbl-{model}-corpus).",
                table(pd.DataFrame(rows), f"tbl-{model}-corpus", f"Text corpus of {spec['name']}'s SAEs, per source.",
                      cprov)]
    df = sae_rows(saes)
    hooks = ", ".join(f"`{h}`" for h in sorted({re.sub(r"^blocks\.\d+\.", "blocks.L.", s["hook_name"])
                                                for name, s in saes.items() if name != "run"}))
    origin = (f"They are released SAEs (`{released}`), copied and evaluated here, not trained. " if released
              else "")
    where = (f" on the {run['device'].upper()}" if run.get("device") == "cpu"
             else f" on {run['device']}" if "device" in run else "")
    explained = df["variance explained"]
    out += [f"Its {fmt(len(df))} SAEs, one per layer ({', '.join(map(str, df.layer))}; read at {hooks}; "
            f"@tbl-{model}-saes), explain {fmt_range(explained.min(), explained.max())} of the variance of held-out "
            f"attention inputs (BOS left out) with an L0 of {fmt_range(df.L0.min(), df.L0.max())}; the largest dead "
            f"fraction is {fmt(df['dead fraction'].max())}. {origin}They were "
            f"{'evaluated' if released else 'trained'}{where}. What the SAEs do not explain stays in the error terms.",
            table(df, f"tbl-{model}-saes", f"SAEs of {spec['name']}, per layer: dictionary size, sparsity (L0), "
                  "variance explained and dead fraction on held-out text, median feature firing rate"
                  + (" (released: copied, not trained)." if released else "."), prov)]
    if available(f"results/{model}/feature_cards.json"):
        cards, kprov = read_json(f"results/{model}/feature_cards.json")
        per = min(4, max(1, CARD_LINES // max(1, len(cards))))
        lines = [card_line(int(layer.lstrip("L")), feature, {layer: feats},
                           f"fires on {fmt(100 * card['freq'], 2)}% of held-out tokens", {}, sep="")
                 for layer, feats in cards.items() for feature, card in list(feats.items())[:per]]
        out += [f"\nThe first {per} of the randomly drawn feature cards of each SAE (top activations on held-out "
                f"text, the activating token in bold): [Source: {kprov.line()}.]{{.provenance}}\n", *lines, ""]
    return "\n".join(out)


def explorers_part(model: str) -> str:
    """Links to the model's interactive explorers, if produced."""
    links = []
    for name, what in (("channels.html", "dataset explorer of the channels"),
                       ("showcase.html", "single-text explorer")):
        path = f"results/{model}/explorer/{name}"
        if available(path):
            prov = provenance(path)
            links.append(f"[{what}](../../{path}) (`{path}`, md5 `{prov.md5}`)")
    if not links:
        return ""
    return ("Interactive explorers (self-contained HTML pages next to the results; relative links from the built "
            "HTML paper): " + "; ".join(links) + ".")


def model_results(model: str, spec: dict) -> str:
    """One model's results subsection: corpus and SAEs (language models), heads, H1/H2, channels, attention; a
    notice naming the command that produces whatever is missing."""
    out = [f"\n## {spec['title']}\n"]

    def missing(*names: str) -> str:
        return absent(files(model, *names), spec["why"], spec["command"])

    def has(name: str) -> bool:
        return available(f"results/{model}/{name}")

    if not any(has(f) for f in STUDY):
        return "\n".join([*out, missing("heads.csv", "channels.csv", "hypotheses.csv", "metrics.json")])
    metrics, mprov = read_json(f"results/{model}/metrics.json") if has("metrics.json") else (None, None)
    if model != "toy" and has("saes.json"):
        out += ["### Corpus and SAEs\n", lm_saes_part(model, spec)]
    out += ["### Token induction heads\n",
            heads_part(model, spec, metrics) if has("heads.csv") else missing("heads.csv")]
    out += ["\n### H1 and H2\n", hypotheses_part(model, spec, metrics, mprov) if metrics and has("hypotheses.csv")
            else missing("hypotheses.csv", "metrics.json")]
    out += ["\n### Channels\n", channels_part(model, spec, metrics) if metrics and has("channels.csv")
            else missing("channels.csv", "metrics.json")]
    out += ["\n### Attention to the induction target\n",
            attention_part(model, spec) if has("head_attention.csv") and has("heads.csv")
            else missing("head_attention.csv", "heads.csv")]
    out.append("\n" + explorers_part(model) + "\n")
    return "\n".join(out)
