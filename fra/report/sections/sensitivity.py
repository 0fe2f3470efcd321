"""Would another SAE, threshold or basis change the answer? The SAE grid (``fra sae-sensitivity``), the threshold sweep
(``fra thresholds``), the basis comparison and Feucht et al.'s concept induction heads (``fra compare``)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from fra.report.build.markdown import absent
from fra.report.build.provenance import available
from fra.report.common import MODELS, head_name
from fra.report.data import read_csv, read_json
from fra.report.figures import figure
from fra.report.tables import fmt, table

SAE_COLUMNS = ["set", "seed", "expansion", "layer", "pipeline_sae", "d_sae", "l0", "variance_explained",
               "dead_fraction", "loss_recovered", "kl_sae"]
SWEEP_COLUMNS = ["parameter", "value", "pipeline_value", "h1_heads", "h1_low", "h1_high", "n_tih", "h2_heads",
                 "h2_low", "h2_high", "H1", "H2"]
BASIS_NAMES = {"fra": "FRA feature pairs", "svd": "SVD directions", "residual": "residual coordinates",
               "rotated": "random rotation"}


def sae_section(model: str, name: str) -> str:
    """The SAE grid: quality of every SAE and the verdicts of each (seed, width) set on its layers' heads."""
    paths = [f"results/{model}/sensitivity/{f}" for f in ("saes.csv", "heads.csv", "summary.json")]
    if not all(available(p) for p in paths):
        return absent(paths, "They hold SAEs at other seeds and widths and their verdicts.",
                      f"`dvc repro --force -s lm_sae_sensitivity@{model}`")
    saes, prov = read_csv(paths[0], SAE_COLUMNS)
    heads, hprov = read_csv(paths[1], ["set", "layer", "head", "is_tih", "n_cih", "n_cih_main_study"])
    summary, sprov = read_json(paths[2])
    sets = {k: v for k, v in summary.items() if k != "holds_for_every_sae"}
    robust = summary["holds_for_every_sae"]
    per_set = pd.DataFrame([{"set": k, "seed": v["seed"], "d_sae / d_model": v["expansion"],
                             "lift threshold": v["lift_threshold"], "channels": v["n_cih"],
                             "token": v["kinds"].get("token", 0), "conceptual": v["kinds"].get("conceptual", 0),
                             "H1 (TIHs)": v["H1"], "H2 (non-TIHs)": v["H2"]} for k, v in sets.items()])
    h1 = sorted({v["H1_answer"] for v in sets.values()})
    h2 = sorted({v["H2_answer"] for v in sets.values()})
    layers = ", ".join(f"L{x}" for x in sorted(saes.layer.unique()))
    lr = saes.loss_recovered
    every = ", ".join(robust["heads_with_channel_in_every_set"]) or "none"
    some = ", ".join(robust["heads_with_channel_in_some_sets"]) or "none"
    text = (f"Would another SAE change the answer? On {layers} of {name} we trained SAEs at seeds "
            f"{', '.join(map(str, sorted(saes.seed.unique())))} and widths "
            f"{', '.join(str(e) + '×' for e in sorted(saes.expansion.unique()))} d_model (the pipeline's own is seed "
            f"{int(saes[saes.pipeline_sae].seed.iloc[0])} at {int(saes[saes.pipeline_sae].expansion.iloc[0])}×), each "
            f"on the same activations, and put every set through the same induction study on those layers "
            f"(its own null and lift threshold, no controls). Spliced into the forward pass (sae_lens' evaluation) "
            f"they recover {fmt(lr.min(), 3)}–{fmt(lr.max(), 3)} of the next-token loss lost to zero ablation, with "
            f"variance explained {fmt(saes.variance_explained.min(), 3)}–{fmt(saes.variance_explained.max(), 3)} "
            f"(@tbl-{model}-sae-grid). Across the {robust['n_sets']} sets the restricted H1 reads "
            f"{' / '.join(h1)} and H2 {' / '.join(h2)} (@tbl-{model}-sae-sets). Heads with a confirmed channel under "
            f"every SAE: {every}; under some but not all: {some} (@fig-{model}-sae-heads). Per-head verdicts are "
            "therefore SAE-dependent wherever a head appears in the second list, and a head-level claim should be "
            "read with it.")
    grid = saes.assign(SAE=saes.set, pipeline=saes.pipeline_sae.map({True: "yes", False: ""}))[
        ["SAE", "layer", "d_sae", "pipeline", "l0", "variance_explained", "dead_fraction", "loss_recovered",
         "kl_sae"]].rename(columns={"variance_explained": "var. expl.", "dead_fraction": "dead",
                                    "loss_recovered": "loss recovered", "kl_sae": "KL"})
    return "\n".join([text,
                      table(grid, f"tbl-{model}-sae-grid", f"Every SAE of the sensitivity grid on {name} (s: seed, "
                            "x: d_sae / d_model): L0, variance explained and dead share on held-out text, loss "
                            "recovered and KL to the clean model with the reconstruction spliced in.", prov),
                      table(per_set, f"tbl-{model}-sae-sets", f"The induction study on {layers} of {name} with each "
                            "SAE set: its lift threshold, confirmed channels (non-sink) by kind, and the TIHs / "
                            "non-TIHs of these layers with a channel.", sprov),
                      figure(_heads_figure(heads), f"fig-{model}-sae-heads", f"Confirmed channels per head of {layers} "
                             f"of {name} under each SAE set (T: token induction head); heads with none in every set "
                             "left out.", hprov)])


def _heads_figure(heads: pd.DataFrame) -> plt.Figure:
    wide = heads.pivot_table(index=["layer", "head"], columns="set", values="n_cih", aggfunc="sum")
    wide = wide[wide.sum(axis=1) > 0]
    tih = heads.groupby(["layer", "head"]).is_tih.first()
    labels = [head_name(a, b) + (" (T)" if tih[(a, b)] else "") for a, b in wide.index]
    fig, ax = plt.subplots(figsize=(1.0 + 0.7 * wide.shape[1], 0.8 + 0.32 * len(wide)))
    im = ax.imshow(wide.to_numpy(), cmap="Blues", aspect="auto")
    for (r, c), v in np.ndenumerate(wide.to_numpy()):
        ax.text(c, r, f"{v:.0f}", ha="center", va="center", fontsize=7,
                color="white" if v > wide.to_numpy().max() / 2 else "black")
    ax.set_xticks(range(wide.shape[1]), wide.columns, fontsize=8)
    ax.set_yticks(range(len(wide)), labels, fontsize=8)
    fig.colorbar(im, ax=ax, label="confirmed channels", shrink=0.8)
    return fig


def threshold_section(model: str, name: str) -> str:
    """H1/H2 heads counted across each criterion parameter and the TIH threshold, with bands."""
    path, rpath = f"results/{model}/thresholds/sweep.csv", f"results/{model}/thresholds/region.json"
    if not (available(path) and available(rpath)):
        return absent([path, rpath])
    sweep, prov = read_csv(path, SWEEP_COLUMNS)
    region, rprov = read_json(rpath)
    held = [f"`{p}` at every value swept ({fmt(min(r['values']))}–{fmt(max(r['values']))})"
            if len(r["same_answers_at"]) == len(r["values"]) else
            f"`{p}` only at {', '.join(fmt(v) for v in r['same_answers_at'])} of {fmt(min(r['values']))}–"
            f"{fmt(max(r['values']))}" for p, r in region.items()]
    own = next(iter(region.values()))["answers"]
    text = (f"Would another threshold change the answer? With one parameter moved at a time "
            f"(@fig-{model}-thresholds, @tbl-{model}-thresholds), {name}'s answers (H1 {own['H1']}, H2 {own['H2']}) "
            f"hold for {'; '.join(held)}. Bands: for a criterion parameter, the counts with every channel's held-out "
            "lift at the low and at the high end of its 95% sequence-bootstrap interval (an outer envelope); for the "
            "TIH threshold, the 95% range over bootstrap resamples of the head-score sequences.")
    return "\n".join([text, figure(_sweep_figure(sweep), f"fig-{model}-thresholds",
                                   f"Heads counted for H1 (TIHs with a channel) and H2 (non-TIHs with one) in {name} "
                                   "across each parameter (band: see text; dotted: the pipeline's value).", prov),
                      table(sweep[["parameter", "value", "n_tih", "h1_heads", "h1_low", "h1_high", "h2_heads",
                                   "h2_low", "h2_high", "H1", "H2"]].rename(columns={"n_tih": "TIHs"}),
                            f"tbl-{model}-thresholds", f"The sweep of {name}'s criterion and TIH threshold.", prov,
                            rprov)])


def _sweep_figure(sweep: pd.DataFrame) -> plt.Figure:
    params = list(dict.fromkeys(sweep.parameter))
    fig, axes = plt.subplots(1, len(params), figsize=(2.3 * len(params), 2.4), sharey=True, squeeze=False)
    for ax, p in zip(axes[0], params):
        rows = sweep[sweep.parameter == p]
        for h, colour in (("h1", "C0"), ("h2", "C1")):
            ax.fill_between(rows.value, rows[f"{h}_low"], rows[f"{h}_high"], color=colour, alpha=0.2, lw=0)
            ax.plot(rows.value, rows[f"{h}_heads"], marker="o", ms=3, color=colour, label=h.upper())
        ax.axvline(rows[rows.pipeline_value].value.iloc[0], color="0.4", ls=":", lw=0.8)
        ax.set_xlabel(p, fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0][0].set_ylabel("heads counted")
    axes[0][-1].legend(fontsize=7)
    return fig


def basis_section(model: str, name: str) -> str:
    """How concentrated each head's score at the induction targets is in FRA's basis and three others."""
    path = f"results/{model}/compare/bases.csv"
    if not available(path):
        return absent(path)
    bases, prov = read_csv(path, ["layer", "head", "role", "basis", "n_pairs", "n_units", "n50", "n90", "best_unit",
                                  "best_unit_share", "max_residual", "max_abs_score"])
    med = bases.groupby("basis").n90.median()
    share = bases.groupby("basis").best_unit_share.median()
    text = (f"Is the score more concentrated in FRA's basis than in others? At {int(bases.n_pairs.iloc[0])} held-out "
            f"`text_repeat` induction targets of each of {bases[['layer', 'head']].drop_duplicates().shape[0]} heads "
            f"of {name}, every basis sums exactly to the score (largest residual {fmt(bases.max_residual.max(), 2)} "
            f"against scores up to {fmt(bases.max_abs_score.max(), 2)}). The units needed for 90% of |score| (median "
            "over heads): "
            + ", ".join(f"{BASIS_NAMES[b]} {fmt(med[b], 3)}" for b in BASIS_NAMES if b in med)
            + "; the best single unit's share of the summed score: "
            + ", ".join(f"{BASIS_NAMES[b]} {fmt(share[b], 2)}" for b in BASIS_NAMES if b in share)
            + f" (@tbl-{model}-bases, @fig-{model}-bases). SVD directions are few (d_head plus bias units) but each "
            "mixes every feature; FRA's units are interpretable feature pairs, and its dense terms (SAE error, b_dec) "
            "count as units, so a large share in them is what the decomposition cannot resolve.")
    rows = bases.assign(head=[head_name(a, b) for a, b in zip(bases.layer, bases["head"])])
    return "\n".join([text,
                      table(rows[["head", "role", "basis", "n_units", "n50", "n90", "best_unit", "best_unit_share"]]
                            .rename(columns={"best_unit_share": "best share"}), f"tbl-{model}-bases",
                            f"Concentration of each head's score at the induction targets of {name} per basis: the "
                            "median over targets of the units carrying 50% / 90% of |score|, and the unit whose "
                            "summed contribution is the largest share of the summed score.", prov),
                      figure(_basis_figure(rows), f"fig-{model}-bases", f"Units carrying 90% of |score| at the "
                             f"induction targets of {name}, per head and basis (log scale).", prov)])


def _basis_figure(rows: pd.DataFrame) -> plt.Figure:
    wide = rows.pivot_table(index="head", columns="basis", values="n90", sort=False)
    fig, ax = plt.subplots(figsize=(6.5, 2.6))
    x = np.arange(len(wide))
    for k, basis in enumerate(b for b in BASIS_NAMES if b in wide):
        ax.bar(x + 0.2 * (k - 1.5), wide[basis], width=0.2, label=BASIS_NAMES[basis])
    ax.set_yscale("log")
    ax.set_xticks(x, wide.index, rotation=45, fontsize=7, ha="right")
    ax.set_ylabel("units for 90% of |score|")
    ax.legend(fontsize=7, ncol=2)
    return fig


def concept_section(model: str, name: str) -> str:
    """Feucht et al.'s concept induction heads located in the model, and what FRA says of them."""
    path, spath = f"results/{model}/compare/concept_heads.csv", f"results/{model}/compare/concept_scores.csv"
    if not (available(path) and available(spath)):
        return absent([path, spath])
    top, prov = read_csv(path, ["layer", "head", "concept_score", "token_score", "last_token_words",
                                "last_token_random", "resolved", "n_cih", "n_conceptual", "planted", "recovered"])
    scores, sprov = read_csv(spath, ["layer", "head", "concept_score"])
    resolved = top[top.resolved]
    names = ", ".join(head_name(a, b) for a, b in zip(top.layer, top["head"]))
    verdicts = ("; ".join(f"{head_name(r.layer, r.head)}: {int(r.n_cih)} confirmed channel(s)"
                          + (f", {int(r.recovered)} of {int(r.planted)} planted channels recovered"
                             if r.planted == r.planted else ", no channel planted there")
                          for r in resolved.itertuples()) or "none of them lies in a layer with an SAE")
    text = (f"Where are the heads others call concept induction heads? With Feucht et al.'s attention score "
            "(value-weighted attention from the end of a repeated context to the last token of the multi-token word "
            "that followed it, minus the same for random n-grams), the top heads of "
            f"{name} are {names} (@tbl-{model}-concept-heads; median over all heads "
            f"{fmt(scores.concept_score.median(), 2)}). In the layers the pipeline resolves, FRA finds: {verdicts}.")
    view = top.assign(head=[head_name(a, b) for a, b in zip(top.layer, top["head"])])
    return "\n".join([text, table(view[["head", "concept_score", "token_score", "last_token_words",
                                        "last_token_random", "resolved", "n_cih", "n_conceptual", "planted",
                                        "recovered"]],
                                  f"tbl-{model}-concept-heads", f"{name}'s top concept induction heads by Feucht et "
                                  "al.'s score, with the induction study's confirmed channels (where the layer has an "
                                  "SAE) and the power study's planted channels recovered there.", prov, sprov)])


def sensitivity_sections(models: dict = MODELS) -> str:
    """Every part for every language model of ``models``."""
    return "\n\n".join(part(model, spec["name"]) for model, spec in models.items() if model != "toy"
                       for part in (sae_section, threshold_section, basis_section, concept_section))
