"""Would another SAE, threshold or basis change the answer? Tables, figures and values of the SAE grid (``fra
sae-sensitivity``: ``results/<model>/sensitivity/``), the threshold sweep (``fra thresholds``: ``thresholds/``), the
basis comparison and Feucht et al.'s concept induction heads (``fra compare``: ``compare/``), and one compact table of
H1's and H2's answers under each variation."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from fra.report.build import markdown
from fra.report.build.provenance import available
from fra.report.common import MODELS, fmt_span, head_name
from fra.report.data import read_csv, read_json
from fra.report.figures import PRINT_IN, TEXT_PT, figure
from fra.report.tables import count, fmt, table
from fra.report.values import Values

SAE_COLUMNS = ["set", "seed", "expansion", "layer", "pipeline_sae", "d_sae", "l0", "variance_explained",
               "dead_fraction", "loss_recovered", "kl_sae"]
SWEEP_COLUMNS = ["parameter", "value", "pipeline_value", "n_tih", "n_non_tih", "h1_heads", "h1_low", "h1_high",
                 "h2_heads", "h2_low", "h2_high", "H1", "H2"]
BASES_COLUMNS = ["layer", "head", "role", "basis", "n_pairs", "n_units", "n50", "n90", "best_unit", "best_unit_share",
                 "max_residual", "max_abs_score"]
CONCEPT_COLUMNS = ["layer", "head", "concept_score", "token_score", "last_token_words", "last_token_random",
                   "resolved", "n_cih", "n_conceptual", "planted", "recovered"]
BASIS_NAMES = {"fra": "FRA feature pairs", "svd": "SVD directions", "residual": "residual coordinates",
               "rotated": "random rotation"}
SWEPT = ("lift_null_factor", "alpha", "min_effect", "min_scale_share", "tih_threshold")  # fra.analysis.sweep's
SENSITIVITY_VALUES = {  # the names each part of sensitivity_values gives ("–" where its results are absent)
    "sae": ("sae_layers", "sae_seeds", "sae_widths", "sae_pipeline", "sae_n_sets", "sae_loss_recovered",
            "sae_var_explained", "sae_h1", "sae_h1_kept", "sae_h2", "sae_h2_kept", "sae_heads_every", "sae_heads_some"),
    "thresholds": ("h1", "h2", "thr_holding", *(f"range_{p}" for p in SWEPT), "thr_changed_at", "thr_h1_heads",
                   "thr_h2_heads"),
    "bases": (*(f"{x}_{b}" for b in BASIS_NAMES for x in ("n90", "best", "units")), "bases_heads",
              "bases_targets", "bases_residual", "bases_max_score"),
    "concept": ("concept_n", "concept_heads", "concept_median", "concept_resolved", "concept_with_channels",
                "concept_channel_heads"),
}


def _sae_paths(model: str) -> list[str]:
    return [f"results/{model}/sensitivity/{f}" for f in ("saes.csv", "heads.csv", "summary.json")]


def _sweep_paths(model: str) -> list[str]:
    return [f"results/{model}/thresholds/sweep.csv", f"results/{model}/thresholds/region.json"]


def _concept_paths(model: str) -> list[str]:
    return [f"results/{model}/compare/concept_heads.csv", f"results/{model}/compare/concept_scores.csv"]


def _bases_path(model: str) -> str:
    return f"results/{model}/compare/bases.csv"


def _missing(paths: list[str], model: str) -> str | None:
    """The absent notice of ``paths`` (the SAE grid's names its forced stage), None when all exist."""
    if paths == _sae_paths(model):
        return markdown.missing(paths, "They hold SAEs at other seeds and widths and their verdicts.",
                                f"`dvc repro --force -s lm_sae_sensitivity@{model}`")
    return markdown.missing(paths)


def _sets(summary: dict) -> dict[str, dict]:
    return {k: v for k, v in summary.items() if k != "holds_for_every_sae"}


def _set_name(s: dict) -> str:
    return f"seed {s['seed']}, {s['expansion']}×"


# --- the SAE grid


def sae_grid_table(model: str = "smollm2") -> str:
    """``tbl-<model>-sae-grid``: quality of every SAE of the grid."""
    if notice := _missing(_sae_paths(model), model):
        return notice
    saes, prov = read_csv(_sae_paths(model)[0], SAE_COLUMNS)
    quality = {"l0": "L0", "variance_explained": "var. expl.", "dead_fraction": "dead",
               "loss_recovered": "loss recovered", "kl_sae": "KL"}
    grid = pd.DataFrame([{"SAE": name, "d_sae": int(rows.d_sae.iloc[0]),
                          "pipeline": "yes" if rows.pipeline_sae.iloc[0] else "",
                          **{label: " / ".join(fmt(x) for x in rows.sort_values("layer")[column])
                             for column, label in quality.items()}}
                         for name, rows in saes.groupby("set", sort=False)])
    return table(grid, f"tbl-{model}-sae-grid", f"Every SAE set of the sensitivity grid on {MODELS[model]['name']} "
                 f"(s: seed, x: d_sae / d_model), on {' / '.join(_layers(saes).split(', '))}: L0, variance explained "
                 "and dead share on held-out text, loss recovered and KL to the clean model with the reconstruction "
                 "spliced in.", prov)


def sae_sets_table(model: str = "smollm2") -> str:
    """``tbl-<model>-sae-sets``: the induction study on the grid's layers with each SAE set."""
    if notice := _missing(_sae_paths(model), model):
        return notice
    saes, _ = read_csv(_sae_paths(model)[0], SAE_COLUMNS)
    summary, sprov = read_json(_sae_paths(model)[2])
    per_set = pd.DataFrame([{"set": k, "seed": v["seed"], "width": f"{v['expansion']}×",
                             "lift threshold": v["lift_threshold"], "channels": v["n_cih"],
                             "token": v["kinds"].get("token", 0), "conceptual": v["kinds"].get("conceptual", 0),
                             "H1 (TIHs)": f"{v['H1_answer']} ({v['H1']})",
                             "H2 (non-TIHs)": f"{v['H2_answer']} ({v['H2']})"}
                            for k, v in _sets(summary).items()])
    return table(per_set, f"tbl-{model}-sae-sets", f"The induction study on {_layers(saes)} of "
                 f"{MODELS[model]['name']} with each SAE set (width: d_sae / d_model): its lift threshold, confirmed "
                 "channels (non-sink) by kind, and H1's and H2's answers with the TIHs / non-TIHs of these layers "
                 "that have a channel.", sprov)


def _layers(saes: pd.DataFrame) -> str:
    return ", ".join(f"L{x}" for x in sorted(saes.layer.unique()))


def heads_figure(heads: pd.DataFrame) -> plt.Figure:
    """Confirmed channels per head (rows; T: TIH) under each SAE set (columns), heads with none in every set left
    out; drawn at print size, its text at ``TEXT_PT``."""
    wide = heads.pivot_table(index=["layer", "head"], columns="set", values="n_cih", aggfunc="sum")
    wide = wide[wide.sum(axis=1) > 0][list(dict.fromkeys(heads.set))]  # the sets in the grid's order
    tih = heads.groupby(["layer", "head"]).is_tih.first()
    labels = [head_name(a, b) + (" (T)" if tih[(a, b)] else "") for a, b in wide.index]
    values = wide.to_numpy()
    fig, ax = plt.subplots(figsize=(1.0 + 0.5 * wide.shape[1], 0.5 + 0.25 * len(wide)))
    ax.imshow(values, cmap="Blues", aspect="auto", vmin=0)
    for (r, c), v in np.ndenumerate(values):
        ax.text(c, r, f"{v:.0f}", ha="center", va="center", fontsize=TEXT_PT,
                color="white" if v > values.max() / 2 else "black")
    ax.set_xticks(range(wide.shape[1]), wide.columns, fontsize=TEXT_PT)
    ax.set_yticks(range(len(wide)), labels, fontsize=TEXT_PT)
    ax.tick_params(length=0)
    ax.grid(False)
    return fig


def sae_heads_figure(model: str = "smollm2") -> str:
    """``fig-<model>-sae-heads``: :func:`heads_figure` of the grid."""
    if notice := _missing(_sae_paths(model), model):
        return notice
    saes, _ = read_csv(_sae_paths(model)[0], SAE_COLUMNS)
    heads, hprov = read_csv(_sae_paths(model)[1], ["set", "layer", "head", "is_tih", "n_cih"])
    fig = heads_figure(heads)
    width = f"{min(90, round(90 * fig.get_figwidth() / PRINT_IN))}%"
    return figure(fig, f"fig-{model}-sae-heads", f"Confirmed channels per head of {_layers(saes)} of "
                  f"{MODELS[model]['name']} under each SAE set (T: token induction head); heads with none in every "
                  "set left out.", hprov, width=width)


# --- the threshold sweep


def _sweep_figure(sweep: pd.DataFrame) -> plt.Figure:
    params = list(dict.fromkeys(sweep.parameter))
    cols = 3
    rows_n = -(-(len(params) + 1) // cols)  # one more panel for the legend
    fig, axes = plt.subplots(rows_n, cols, figsize=(PRINT_IN, 1.55 * rows_n), sharey=True, squeeze=False)
    for ax, p in zip(axes.flat, params):
        rows = sweep[sweep.parameter == p]
        for h, colour in (("h1", "C0"), ("h2", "C1")):
            ax.fill_between(rows.value, rows[f"{h}_low"], rows[f"{h}_high"], color=colour, alpha=0.2, lw=0)
            ax.plot(rows.value, rows[f"{h}_heads"], marker="o", ms=3, color=colour,
                    label=f"{h.upper()}: {'TIHs' if h == 'h1' else 'non-TIHs'} with a channel")
        ax.axvline(rows[rows.pipeline_value].value.iloc[0], color="0.4", ls=":", lw=0.8)
        ax.set_xlabel(p, fontsize=TEXT_PT)
        ax.tick_params(labelsize=TEXT_PT)
    for ax in axes[:, 0]:
        ax.set_ylabel("heads", fontsize=TEXT_PT)
    spare = list(axes.flat)[len(params):]
    spare[0].legend(*axes.flat[0].get_legend_handles_labels(), fontsize=TEXT_PT, loc="center")
    for ax in spare:
        ax.axis("off")
    fig.tight_layout()
    return fig


def thresholds_figure(model: str = "smollm2") -> str:
    """``fig-<model>-thresholds``: H1 and H2 heads counted across each parameter, with bands."""
    if notice := _missing(_sweep_paths(model), model):
        return notice
    sweep, prov = read_csv(_sweep_paths(model)[0], SWEEP_COLUMNS)
    return figure(_sweep_figure(sweep), f"fig-{model}-thresholds", "Heads counted for H1 (TIHs with a channel) and H2 "
                  f"(non-TIHs with one) in {MODELS[model]['name']} across each parameter (band: see text; dotted: "
                  "the pipeline's value).", prov)


def thresholds_table(model: str = "smollm2") -> str:
    """``tbl-<model>-thresholds``: the sweep, one row per parameter value."""
    if notice := _missing(_sweep_paths(model), model):
        return notice
    sweep, prov = read_csv(_sweep_paths(model)[0], SWEEP_COLUMNS)
    region, rprov = read_json(_sweep_paths(model)[1])
    view = sweep.assign(**{f"{h.upper()} heads": [f"{a} ({lo}–{hi})" for a, lo, hi in
                                                   zip(sweep[f"{h}_heads"], sweep[f"{h}_low"], sweep[f"{h}_high"])]
                           for h in ("h1", "h2")},
                        parameter=sweep.parameter + np.where(sweep.pipeline_value, " (pipeline)", ""))
    return table(view[["parameter", "value", "n_tih", "H1 heads", "H1", "n_non_tih", "H2 heads", "H2"]]
                 .rename(columns={"n_tih": "TIHs", "n_non_tih": "non-TIHs"}),
                 f"tbl-{model}-thresholds", f"The sweep of {MODELS[model]['name']}'s criterion and TIH threshold: "
                 "heads counted for H1 (TIHs with a channel) and H2 (non-TIHs with one), with their bands in "
                 "brackets, and the answers.", prov, rprov)


# --- other exact bases


def bases_table(model: str = "smollm2") -> str:
    """``tbl-<model>-bases``: concentration of each head's score in FRA's basis and three others."""
    if notice := _missing([_bases_path(model)], model):
        return notice
    bases, prov = read_csv(_bases_path(model), BASES_COLUMNS)
    rows = []
    for (layer, head), b in bases.groupby(["layer", "head"], sort=False):
        by = b.set_index("basis")
        rows.append({"head": head_name(layer, head), "TIH": "yes" if by.role.iloc[0] == "tih" else "",
                     **{x.upper() if x in ("fra", "svd") else x: f"{fmt(by.n50[x])} / {fmt(by.n90[x])}"
                        for x in BASIS_NAMES if x in by.index},
                     "best FRA unit": by.best_unit["fra"], "its share": by.best_unit_share["fra"]})
    return table(pd.DataFrame(rows), f"tbl-{model}-bases", "Concentration of each head's score at the induction "
                 f"targets of {MODELS[model]['name']} per basis: the median over targets of the units carrying 50% "
                 "/ 90% of |score|, and FRA's unit whose summed contribution is the largest share of the summed score "
                 "(a share above 1: other units pull the other way).", prov, digits=2)


def bases_figure(model: str = "smollm2") -> str:
    """``fig-<model>-bases``: units carrying 90% of |score| per head and basis."""
    if notice := _missing([_bases_path(model)], model):
        return notice
    bases, prov = read_csv(_bases_path(model), BASES_COLUMNS)
    rows = bases.assign(head=[head_name(a, b) for a, b in zip(bases.layer, bases["head"])])
    wide = rows.pivot_table(index="head", columns="basis", values="n90", sort=False)
    fig, ax = plt.subplots(figsize=(PRINT_IN, 2.3))
    x = np.arange(len(wide))
    for k, basis in enumerate(b for b in BASIS_NAMES if b in wide):
        ax.bar(x + 0.2 * (k - 1.5), wide[basis], width=0.2, label=BASIS_NAMES[basis])
    ax.set_yscale("log")
    ax.set_xticks(x, wide.index, rotation=45, fontsize=TEXT_PT, ha="right")
    ax.tick_params(labelsize=TEXT_PT)
    ax.set_ylabel("units for 90% of |score|", fontsize=TEXT_PT)
    ax.legend(fontsize=TEXT_PT, ncol=2, loc="lower center", bbox_to_anchor=(0.5, 1.0))
    return figure(fig, f"fig-{model}-bases", "Units carrying 90% of |score| at the induction targets of "
                  f"{MODELS[model]['name']}, per head and basis (log scale).", prov)


# --- concept induction heads


def concept_heads_table(model: str = "smollm2") -> str:
    """``tbl-<model>-concept-heads``: the top heads by Feucht et al.'s concept score and FRA's channels there."""
    if notice := _missing(_concept_paths(model), model):
        return notice
    top, prov = read_csv(_concept_paths(model)[0], CONCEPT_COLUMNS)
    _, sprov = read_csv(_concept_paths(model)[1], ["layer", "head", "concept_score"])
    view = top.assign(head=[head_name(a, b) for a, b in zip(top.layer, top["head"])],
                      resolved=top.resolved.map({True: "yes", False: "no"}))
    return table(view[["head", "concept_score", "token_score", "last_token_words", "last_token_random", "resolved",
                       "n_cih", "n_conceptual", "planted", "recovered"]]
                 .rename(columns={"concept_score": "concept score", "token_score": "token score",
                                  "last_token_words": "words", "last_token_random": "random", "n_cih": "channels",
                                  "n_conceptual": "conceptual"}),
                 f"tbl-{model}-concept-heads", f"{MODELS[model]['name']}'s top concept induction heads by Feucht et "
                 "al.'s score (words / random: the last-token attention terms of the score), with the induction "
                 "study's confirmed channels where the layer has an SAE (resolved) and the power study's planted "
                 "channels recovered there (–: none planted).", prov, sprov)


# --- the compact table and the values


def _answer(answer: str, heads: int, of: int) -> str:
    return f"{answer} ({heads}/{of})"


def sensitivity_table(model: str = "smollm2") -> str:
    """``tbl-<model>-sensitivity``: H1's and H2's answers (heads with a channel / heads) under the pipeline's
    settings, with each other SAE set (restricted to the grid's layers, beside the pipeline's SAE on the same
    layers), and with each swept parameter at the two ends of its sweep."""
    if notice := _missing(_sweep_paths(model) + _sae_paths(model), model):
        return notice
    sweep, prov = read_csv(_sweep_paths(model)[0], SWEEP_COLUMNS)
    saes, _ = read_csv(_sae_paths(model)[0], SAE_COLUMNS)
    summary, sprov = read_json(_sae_paths(model)[2])
    own = sweep[sweep.pipeline_value].iloc[0]
    rows = [("pipeline", "default", "all",
             _answer(own.H1, own.h1_heads, own.n_tih), _answer(own.H2, own.h2_heads, own.n_non_tih))]
    sets = _sets(summary)
    for expansion in sorted({s["expansion"] for s in sets.values()}):
        width = sorted((s for s in sets.values() if s["expansion"] == expansion), key=lambda s: s["seed"])
        seeds = ", ".join(f"{s['seed']}" + " (pipeline)" * s["pipeline_sae"] for s in width)
        rows.append((f"SAE {expansion}× d_model", f"seeds {seeds}", _layers(saes),
                     ", ".join(f"{s['H1_answer']} ({s['H1']})" for s in width),
                     ", ".join(f"{s['H2_answer']} ({s['H2']})" for s in width)))
    for parameter, rows_p in sweep.groupby("parameter", sort=False):
        ends = rows_p.sort_values("value").iloc[[0, -1]]
        rows.append((f"`{parameter}`", " / ".join(fmt(x) for x in ends.value), "all",
                     " / ".join(_answer(r.H1, r.h1_heads, r.n_tih) for r in ends.itertuples()),
                     " / ".join(_answer(r.H2, r.h2_heads, r.n_non_tih) for r in ends.itertuples())))
    df = pd.DataFrame(rows, columns=["variation", "settings", "layers", "H1 (TIHs with a channel)",
                                     "H2 (non-TIHs with one)"])
    return table(df, f"tbl-{model}-sensitivity", f"Would another SAE or threshold change {MODELS[model]['name']}'s "
                 "answers? H1 and H2 with the heads that have a channel, under the pipeline's settings, with SAEs of "
                 "other seeds and widths (the induction study on the grid's layers only, so beside the pipeline's own "
                 "SAE there) and with one parameter at a time at the two ends of its sweep.", prov, sprov)


def sensitivity_values(model: str = "smollm2") -> Values:
    """Every number the text gives of the four studies (``SENSITIVITY_VALUES``; "–" where a study's results are
    absent): see :func:`_sae_values`, :func:`_threshold_values`, :func:`_basis_values`, :func:`_concept_values`."""
    v = Values(f"{model}.sensitivity")
    for name, paths, part in (("sae", _sae_paths(model), _sae_values),
                              ("thresholds", _sweep_paths(model), _threshold_values),
                              ("bases", [_bases_path(model)], _basis_values),
                              ("concept", _concept_paths(model), _concept_values)):
        if all(available(p) for p in paths):
            part(v, model)
        v.fill(SENSITIVITY_VALUES[name], paths)
    return v


def _sae_values(v: Values, model: str) -> None:
    """The grid (``sae_layers``, ``sae_seeds``, ``sae_widths``, ``sae_pipeline``, ``sae_loss_recovered``,
    ``sae_var_explained``), the pipeline SAE's answers on those layers (``sae_h1``, ``sae_h2``), how many of the
    other sets keep each (``sae_h1_kept``, ``sae_h2_kept``: "3 of 5") and the heads with a channel under every SAE
    or only some (``sae_heads_every``, ``sae_heads_some``)."""
    saes, prov = read_csv(_sae_paths(model)[0], SAE_COLUMNS)
    summary, sprov = read_json(_sae_paths(model)[2])
    sets = _sets(summary)
    own = next(s for s in sets.values() if s["pipeline_sae"])
    others = [s for s in sets.values() if not s["pipeline_sae"]]
    v.add("sae_layers", _layers(saes), prov)
    v.add("sae_seeds", ", ".join(map(str, sorted(saes.seed.unique()))), prov)
    v.add("sae_widths", ", ".join(f"{e}×" for e in sorted(saes.expansion.unique())), prov)
    v.add("sae_pipeline", _set_name(own), sprov)
    v.add("sae_n_sets", len(sets), sprov)
    v.add("sae_loss_recovered", fmt_span(saes.loss_recovered.min(), saes.loss_recovered.max()), prov)
    v.add("sae_var_explained", fmt_span(saes.variance_explained.min(), saes.variance_explained.max()), prov)
    for h in ("H1", "H2"):
        v.add(f"sae_{h.lower()}", _answer(own[f"{h}_answer"], *own[h].split("/")), sprov)
        kept = sum(s[f"{h}_answer"] == own[f"{h}_answer"] for s in others)
        v.add(f"sae_{h.lower()}_kept", f"{kept} of {len(others)}", sprov)
    robust = summary["holds_for_every_sae"]
    v.add("sae_heads_every", ", ".join(robust["heads_with_channel_in_every_set"]) or "none", sprov)
    v.add("sae_heads_some", ", ".join(robust["heads_with_channel_in_some_sets"]) or "none", sprov)


def _threshold_values(v: Values, model: str) -> None:
    """The pipeline's answers (``h1``, ``h2``: "no (4/8)"), the parameters whose answers hold over the whole sweep
    (``thr_holding``: "5 of 5"), per parameter its swept range (``range_<parameter>``), the settings at which an
    answer changes (``thr_changed_at``: "no swept value" or "`min_effect` = 0.05, ..."), and the range of heads
    counted (``thr_h1_heads``, ``thr_h2_heads``)."""
    sweep, prov = read_csv(_sweep_paths(model)[0], SWEEP_COLUMNS)
    region, rprov = read_json(_sweep_paths(model)[1])
    own = sweep[sweep.pipeline_value].iloc[0]
    v.add("h1", _answer(own.H1, own.h1_heads, own.n_tih), prov)
    v.add("h2", _answer(own.H2, own.h2_heads, own.n_non_tih), prov)
    holding = [p for p, r in region.items() if len(r["same_answers_at"]) == len(r["values"])]
    v.add("thr_holding", f"{len(holding)} of {len(region)}", rprov)
    for p, r in region.items():
        v.add(f"range_{p}", fmt_span(min(r["values"]), max(r["values"])), rprov)
    changed = [f"`{p}` = {fmt(x)}" for p, r in region.items() for x in r["values"] if x not in r["same_answers_at"]]
    v.add("thr_changed_at", ", ".join(changed) or "no swept value", rprov)
    for h in ("h1", "h2"):
        v.add(f"thr_{h}_heads", fmt_span(sweep[f"{h}_heads"].min(), sweep[f"{h}_heads"].max()), prov)


def _basis_values(v: Values, model: str) -> None:
    """Per basis (fra, svd, residual, rotated) the median over heads of the units for 90% of |score|
    (``n90_<basis>``) and of the best unit's share (``best_<basis>``), its number of units (``units_<basis>``),
    and the study's size and exactness (``bases_heads``, ``bases_targets``, ``bases_residual``,
    ``bases_max_score``)."""
    bases, prov = read_csv(_bases_path(model), BASES_COLUMNS)
    by_basis = bases.groupby("basis")
    for basis in BASIS_NAMES:
        if basis in by_basis.groups:
            v.add(f"n90_{basis}", by_basis.n90.median()[basis], prov)
            v.add(f"best_{basis}", by_basis.best_unit_share.median()[basis], prov, digits=2)
            v.add(f"units_{basis}", int(by_basis.n_units.max()[basis]), prov)
    v.add("bases_heads", bases[["layer", "head"]].drop_duplicates().shape[0], prov)
    v.add("bases_targets", int(bases.n_pairs.iloc[0]), prov)
    v.add("bases_residual", bases.max_residual.max(), prov, digits=2)
    v.add("bases_max_score", bases.max_abs_score.max(), prov, digits=2)


def _concept_values(v: Values, model: str) -> None:
    """Feucht et al.'s top heads (``concept_n``, ``concept_heads``), the median score over all heads
    (``concept_median``), how many top heads lie in layers with an SAE (``concept_resolved``: "8 of 8"), how many of
    those have a confirmed channel (``concept_with_channels``: "1 head") and which, with their channels by kind
    (``concept_channel_heads``)."""
    top, prov = read_csv(_concept_paths(model)[0], CONCEPT_COLUMNS)
    scores, sprov = read_csv(_concept_paths(model)[1], ["layer", "head", "concept_score"])
    resolved = top[top.resolved]
    found = resolved[resolved.n_cih > 0]
    v.add("concept_n", len(top), prov)
    v.add("concept_heads", ", ".join(head_name(a, b) for a, b in zip(top.layer, top["head"])), prov)
    v.add("concept_median", scores.concept_score.median(), sprov, digits=2)
    v.add("concept_resolved", f"{len(resolved)} of {len(top)}", prov)
    v.add("concept_with_channels", count(len(found), "head"), prov)
    v.add("concept_channel_heads", "; ".join(
        f"{head_name(r.layer, r.head)} ({count(int(r.n_cih), 'channel')}, {int(r.n_conceptual)} conceptual)"
        for r in found.itertuples()) or "none", prov)
