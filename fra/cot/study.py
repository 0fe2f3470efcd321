"""The chain-of-thought study: receiver heads, suppression, and receiver heads resolved into channels.

:func:`run` composes the steps; :meth:`CotStudy.write` writes to ``results/<model>/cot/``:

* ``sentences.csv``: every sentence of every trace with its kind, split, vertical score under the receiver
  heads, whether it is an anchor (the ``cot.n_anchors`` highest of its trace) and its suppression effect;
* ``receivers.csv``: every head's mean kurtosis of vertical scores (discovery, held-out, all), rank, whether
  it is a receiver head, and, from the induction study, its induction score and ``is_tih``;
* ``kinds.csv``: which sentence kinds the receiver heads receive (enrichment among the anchors);
* ``pairs.csv``: per trace and sentence pair (i >= j) the receiver heads' mean sentence attention and the
  suppression KL (NaN for i = j);
* ``channels.csv``: candidate channels of the resolved receiver heads with held-out statistics, BH q-values,
  ``confirmed``, the ablation shares and the overlap with the induction study's confirmed channels;
* ``channel_features.json`` (feature cards), ``metrics.json`` (counts, stability, correlations) and
  ``trace_view.json``: one held-out trace for the explorer (:func:`trace_view`).

Receiver heads and anchors are chosen on discovery traces only where a statistic is tested: channel
candidates come from discovery traces and are tested on held-out traces; the stability and the
suppression correlation are reported on held-out traces, beside the all-head baseline.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sae_lens import SAE
from torch import Tensor
from tqdm.auto import tqdm
from transformer_lens import HookedTransformer

from fra.analysis.channels import NULL_SEED
from fra.analysis.induction import feature_study
from fra.analysis.stats import BY_SEQUENCE, SUMS, channel_statistics, confirm, lift_threshold, null_lifts, positive
from fra.config import ChannelConfig, CotConfig, EngineConfig
from fra.cot import channels as ch
from fra.cot.ablation import channel_ablation
from fra.cot.anchors import (
    forward,
    kurtosis,
    receiver_kinds,
    receiver_table,
    sentence_attention,
    stability,
    vertical_scores,
)
from fra.cot.suppression import pooled_correlation, sentence_kl, token_kl
from fra.cot.traces import Trace
from fra.engine import FRA, resolve
from fra.engine.inputs import read_layers
from fra.engine.resolver import Projections
from fra.io import atomic_files, write_json

N_ABLATED = 5  # candidates per resolved head ablated besides the confirmed ones (best discovery support first)


@dataclass
class CotStudy:
    """Every table of the chain-of-thought study (module docstring)."""

    sentences: pd.DataFrame
    receivers: pd.DataFrame
    kinds: pd.DataFrame
    pairs: pd.DataFrame
    channels: pd.DataFrame
    cards: dict
    metrics: dict
    view: dict

    def write(self, out: Path) -> None:
        with atomic_files(out) as tmp:
            for name in ("sentences", "receivers", "kinds", "pairs", "channels"):
                getattr(self, name).to_csv(tmp / f"{name}.csv", index=False, float_format="%.6g")
            write_json(tmp / "channel_features.json", self.cards)
            write_json(tmp / "metrics.json", self.metrics)
            write_json(tmp / "trace_view.json", self.view)


def _top_finite(v: torch.Tensor, n: int) -> list[int]:
    finite = torch.isfinite(v).nonzero().ravel()
    return sorted(finite[v[finite].topk(min(n, len(finite))).indices].tolist())


@dataclass
class AttentionStudy:
    """Every trace's sentence attention and suppression, the receiver heads and their anchors
    (:func:`attention_study`)."""

    maps: list[Tensor]  # per trace, every head's sentence attention [layer, head, S, S]
    table: pd.DataFrame  # every head's kurtosis and rank (``receivers.csv`` before the induction columns)
    receivers: pd.DataFrame  # the n_receivers best-ranked heads
    vertical: list[Tensor]  # per trace, the receivers' mean vertical score of each sentence [S]
    anchors: list[list[int]]  # per trace, its anchor sentences
    token_kl: list[Tensor]  # per trace, the suppression KL of each sentence on each later token [S, pos]
    kl: list[Tensor]  # per trace, the sentence x sentence suppression KL [S, S]

    def receiver_mean(self, n: int) -> Tensor:
        """The receivers' mean sentence attention on trace ``n`` [S, S]."""
        return self.maps[n][self._heads].nanmean(0)

    @property
    def _heads(self) -> tuple[Tensor, Tensor]:
        return torch.tensor(self.receivers["layer"].to_numpy()), torch.tensor(self.receivers["head"].to_numpy())


def attention_study(model: HookedTransformer, traces: list[Trace], cfg: CotConfig) -> AttentionStudy:
    """Sentence attention of every head, receivers (discovery ranking), anchors and suppression per trace."""
    maps, verticals, token_kls, kls = [], [], [], []
    for t in tqdm(traces, desc="sentence attention and suppression"):
        S = len(t.sentences)
        logits, pattern = forward(model, t.tokens)  # one clean pass: the patterns and the base of the suppression KL
        M = sentence_attention(pattern, t.sentence_of, S)  # [layer, head, S, S]
        maps.append(M)
        verticals.append(vertical_scores(M, cfg.proximity))
        token_kls.append(token_kl(model, t.tokens, t.sentence_of, S, js=range(S - 1), base=logits))
        kls.append(sentence_kl(token_kls[-1], t.sentence_of, S))
    table = receiver_table(torch.stack([kurtosis(v) for v in verticals]), [t.split for t in traces])
    recv = table.dropna(subset=["rank"]).sort_values("rank").head(cfg.n_receivers)
    li, hi = torch.tensor(recv["layer"].to_numpy()), torch.tensor(recv["head"].to_numpy())
    table["is_receiver"] = table.set_index(["layer", "head"]).index.isin(recv.set_index(["layer", "head"]).index)
    recv_vertical = [v[li, hi].nanmean(0) for v in verticals]
    anchors = [_top_finite(v, cfg.n_anchors) for v in recv_vertical]
    return AttentionStudy(maps, table, recv, recv_vertical, anchors, token_kls, kls)


def _tables(traces: list[Trace], att: AttentionStudy) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``sentences.csv`` and ``pairs.csv`` (module docstring)."""
    sent, pairs = [], []
    for n, t in enumerate(traces):
        M = att.receiver_mean(n)  # receivers' mean sentence attention [S, S]
        effect = att.kl[n].nanmean(0) if len(t.sentences) > 1 else torch.full((len(t.sentences),), float("nan"))
        for s, sentence in enumerate(t.sentences):
            sent.append({"trace": n, "problem": t.problem, "split": t.split, "sentence": s, "kind": sentence.kind,
                         "n_tokens": sentence.end - sentence.start, "vertical_score": float(att.vertical[n][s]),
                         "is_anchor": s in att.anchors[n], "suppression_kl": float(effect[s]), "text": sentence.text})
        i, j = torch.tril_indices(len(t.sentences), len(t.sentences))
        pairs.append(pd.DataFrame({"trace": n, "split": t.split, "i": i.numpy(), "j": j.numpy(),
                                   "attention": M[i, j].numpy(), "kl": att.kl[n][i, j].numpy()}))
    return pd.DataFrame(sent), pd.concat(pairs, ignore_index=True)


def _correlations(traces: list[Trace], att: AttentionStudy, proximity: int) -> dict:
    """Receiver attention vs suppression KL (pooled over pairs i > j + proximity) on held-out and all traces, and the
    same with every head's mean attention (the baseline a receiver ranking must beat)."""
    out = {}
    for split in ("heldout", "all"):
        use = [n for n, t in enumerate(traces) if split == "all" or t.split == split]
        out[split] = pooled_correlation([(att.receiver_mean(n), att.kl[n]) for n in use], proximity)
        out[f"{split}_all_heads"] = pooled_correlation([(att.maps[n].flatten(0, 1).nanmean(0), att.kl[n]) for n in use],
                                                       proximity)
    return out


def resolved_heads(table: pd.DataFrame, saes: dict[int, SAE], n: int) -> pd.DataFrame:
    """The ``n`` best-ranked heads (discovery kurtosis) in layers with an SAE."""
    return table[table["layer"].isin(list(saes))].dropna(subset=["rank"]).sort_values("rank").head(n)


class TraceResolver:
    """One model pass per trace for every resolved layer, each feature projected once per head, and each head
    resolved once per trace for discovery, evaluation, ablation and the explorer's view."""

    def __init__(self, model: HookedTransformer, saes: dict[int, SAE], traces: list[Trace], engine: EngineConfig):
        self.model, self.saes, self.traces, self.engine = model, saes, traces, engine

    @functools.cache  # noqa: B019  (one resolver per study run: the cache keeping it alive is harmless)
    def inputs(self, n: int) -> dict:
        return read_layers(self.model, self.saes, self.traces[n].tokens[None])

    @functools.cache  # noqa: B019
    def _projections(self, layer: int, head: int) -> Projections:
        return Projections(self.model, self.saes[layer], layer, (head,), self.inputs(0)[layer].center)

    @functools.cache  # noqa: B019
    def resolved(self, n: int, layer: int, head: int) -> FRA:
        return resolve(self.model, self.saes[layer], self.traces[n].tokens[None], layer, heads=(head,), cfg=self.engine,
                       inputs=self.inputs(n)[layer], projections=self._projections(layer, head))


def channel_study(att: AttentionStudy, heads: pd.DataFrame, cfg: CotConfig, channel_cfg: ChannelConfig,
                  resolver: TraceResolver) -> tuple[pd.DataFrame, float]:
    """Candidates on discovery traces, held-out statistics (each held-out trace one sample of the lift's bootstrap),
    the lift threshold from the same candidates with key features shuffled, BH and the criterion, then channel
    ablation. Returns the table and the threshold."""
    traces = resolver.traces
    rows = {n: ch.anchor_rows(t.sentence_of, len(t.sentences), att.anchors[n], cfg.proximity)
            for n, t in enumerate(traces)}
    split = {s: [n for n, t in enumerate(traces) if t.split == s and len(rows[n].query)]
             for s in ("discovery", "heldout")}
    parts = []
    for layer, head in tqdm(list(zip(heads["layer"], heads["head"])), desc="receiver channels (discovery)"):
        for n in split["discovery"]:
            t = traces[n]
            parts.append(ch.discover(resolver.resolved(n, layer, head), rows[n], t.sentence_of, len(t.sentences))
                         .assign(layer=layer, head=head))
    cands = ch.candidates(ch.pooled_support(parts), channel_cfg, cfg.max_candidates) if parts else pd.DataFrame()
    if cands.empty:
        return pd.DataFrame(columns=["layer", "head", "query_feature", "key_feature", "confirmed"]), 0.0
    tested, null_parts = [], []
    for (layer, head), group in cands.groupby(["layer", "head"], sort=False):
        a, b = torch.tensor(group["query_feature"].to_numpy()), torch.tensor(group["key_feature"].to_numpy())
        held = split["heldout"]
        acc, null = ({k: np.zeros(len(group)) for k in SUMS} for _ in range(2))
        acc |= {f"{k}_by_seq": np.zeros((len(group), len(held))) for k in BY_SEQUENCE}
        for i, n in enumerate(held):
            t, resolved = traces[n], resolver.resolved(n, layer, head)
            for k, v in ch.evaluate(resolved, rows[n], t.sentence_of, len(t.sentences), a, b).items():
                acc[k] += v
                if k in BY_SEQUENCE:
                    acc[f"{k}_by_seq"][:, i] = v
            shuffled = resolved.with_shuffled_keys(torch.Generator().manual_seed(NULL_SEED + n))
            for k, v in ch.evaluate(shuffled, rows[n], t.sentence_of, len(t.sentences), a, b).items():
                null[k] += v
        tested.append(ch.statistics(group.reset_index(drop=True), acc, channel_cfg.n_bootstrap))
        null_parts.append(channel_statistics(null)["lift"].to_numpy())
    table = pd.concat(tested, ignore_index=True)
    table["null_lift_heldout"] = np.concatenate(null_parts)
    threshold = lift_threshold(null_lifts(table), channel_cfg)
    table = confirm(table, channel_cfg, threshold, column="confirmed")
    return _ablate(table, rows, split["heldout"], att.token_kl, resolver, cfg.proximity), threshold


def _ablate(table: pd.DataFrame, rows: dict[int, ch.AnchorRows], heldout: list[int], token_kls: list[Tensor],
            resolver: TraceResolver, proximity: int) -> pd.DataFrame:
    """Attention-to-anchor and suppression-KL shares lost when a channel is removed (confirmed + the first N_ABLATED);
    one clean pass per trace, each ablated pass from its head's layer."""
    model, traces = resolver.model, resolver.traces
    table = table.copy()
    first = table.groupby(["layer", "head"]).cumcount() < N_ABLATED
    table["ablated"] = table["confirmed"] | first
    lost_num, att_den, kl_num, kl_den = (np.zeros(len(table)) for _ in range(4))
    groups = list(table[table["ablated"]].groupby(["layer", "head"]))
    for n in heldout if groups else []:
        t, r = traces[n], rows[n]
        logits, pattern = forward(model, t.tokens)
        for (layer, head), group in groups:
            a, b = torch.tensor(group["query_feature"].to_numpy()), torch.tensor(group["key_feature"].to_numpy())
            C = resolver.resolved(n, layer, head).channel(0, a, b)[0]  # [channel, pos, pos]
            start = resolver.inputs(n)[layer]
            resid = start.sae_in[0] if start.hook.endswith("hook_resid_pre") else None
            lost, base, kl = channel_ablation(model, t.tokens, layer, head, C, t.sentence_of, r,
                                              (logits, pattern[layer, head]), resid)
            lost_num[group.index] += lost.numpy()
            att_den[group.index] += base
            for j in sorted(set(r.anchor.tolist())):
                later = t.sentence_of >= j + proximity + 1
                kl_num[group.index] += kl[:, later].sum(1).numpy()
                kl_den[group.index] += float(token_kls[n][j, later].sum())
    table["attention_lost_share"] = np.where(table["ablated"], lost_num / positive(att_den), np.nan)
    table["kl_share"] = np.where(table["ablated"], kl_num / positive(kl_den), np.nan)
    return table


def _nulls(x: Tensor) -> list:
    """``x`` as nested lists with NaN as None (JSON null: undefined, never 0)."""
    if x.ndim > 1:
        return [_nulls(r) for r in x]
    return [v if math.isfinite(v) else None for v in x.tolist()]


def trace_view(n: int, att: AttentionStudy, channels: pd.DataFrame, cards: dict, cfg: CotConfig,
               resolver: TraceResolver) -> dict:
    """Trace ``n`` for the explorer: its tokens and sentences, every head's vertical scores, and for each resolved
    head every tested channel's mean contribution to the scores of later queries (``i >= j + proximity + 1``) on
    each sentence j; the cards of every channel feature. A sentence with no later query has no vertical score and
    no channel value: null."""
    trace, M, vertical, anchors = resolver.traces[n], att.maps[n], att.vertical[n], att.anchors[n]
    S = len(trace.sentences)
    heads_v = vertical_scores(M, cfg.proximity)  # [layer, head, S]
    W = ch.key_means(trace.sentence_of, S)
    later = trace.sentence_of[:, None] >= torch.arange(S)[None] + cfg.proximity + 1  # [query, key sentence]
    n_later = later.sum(0)
    resolved = []
    for (layer, head), group in channels.groupby(["layer", "head"], sort=False):
        a, b = torch.tensor(group["query_feature"].to_numpy()), torch.tensor(group["key_feature"].to_numpy())
        C = (resolver.resolved(n, layer, head).channel(0, a, b)[0].cpu()
             * torch.ones(len(trace.tokens), len(trace.tokens)).tril())
        X = (C @ W) * later  # [channel, query, sentence]
        by_sentence = (X.sum(1) / n_later.clamp(min=1)).masked_fill(n_later == 0, float("nan"))
        resolved.append({"layer": int(layer), "head": int(head), "channels": [
            {"query_feature": int(r.query_feature), "key_feature": int(r.key_feature), "confirmed": bool(r.confirmed),
             "by_sentence": v} for r, v in zip(group.itertuples(), _nulls(by_sentence))]})
    used: dict[str, set[int]] = {}
    for r in resolved:
        used.setdefault(f"L{r['layer']}", set()).update(f for c in r["channels"]
                                                        for f in (c["query_feature"], c["key_feature"]))
    recv = att.receivers
    return {"trace": n, "problem": trace.problem, "split": trace.split, "proximity": cfg.proximity,
            "n_layers": int(M.shape[0]), "n_heads": int(M.shape[1]), "tokens": trace.tokens.tolist(),
            "sentences": [{"text": s.text, "kind": s.kind, "anchor": j in anchors, "vertical": v}
                          for j, (s, v) in enumerate(zip(trace.sentences, _nulls(vertical)))],
            "vertical": _nulls(heads_v),
            "receivers": [[int(layer), int(h)] for layer, h in zip(recv["layer"], recv["head"])],
            "resolved": resolved,
            "cards": {layer: {str(f): cards.get(layer, {}).get(str(f)) for f in sorted(fs)}
                      for layer, fs in used.items()}}


def relation(channels: pd.DataFrame, receivers: pd.DataFrame, induction: pd.DataFrame | None) -> pd.DataFrame:
    """Mark CoT channels whose query or key feature (or both, as a pair) is in a confirmed induction channel of the
    same layer."""
    out = channels.copy()
    for col in ("shares_query_feature", "shares_key_feature", "same_pair_as_induction"):
        out[col] = False
    if induction is None or out.empty:
        return out
    conf = induction[induction["is_cih"] & (induction["kind"] != "sink")]
    for layer, rows in out.groupby("layer"):
        mine = conf[conf["layer"] == layer]
        feats = set(mine["query_feature"]) | set(mine["key_feature"])
        pairs = set(zip(mine["query_feature"], mine["key_feature"]))
        out.loc[rows.index, "shares_query_feature"] = rows["query_feature"].isin(feats)
        out.loc[rows.index, "shares_key_feature"] = rows["key_feature"].isin(feats)
        out.loc[rows.index, "same_pair_as_induction"] = [
            p in pairs for p in zip(rows["query_feature"], rows["key_feature"])]
    return out


def run(model: HookedTransformer, saes: dict[int, SAE], traces: list[Trace], corpus: torch.Tensor, *, cfg: CotConfig,
        channel_cfg: ChannelConfig, engine: EngineConfig, heads: pd.DataFrame | None = None,
        induction: pd.DataFrame | None = None, sae_spec: str = "") -> CotStudy:
    """Every step of the study (module docstring); ``corpus``: token ids for the feature cards; ``heads`` /
    ``induction``: the induction study's heads.csv / channels.csv."""
    att = attention_study(model, traces, cfg)
    table = att.table
    if heads is not None:
        table = table.merge(heads[["layer", "head", "induction", "is_tih"]], on=["layer", "head"], how="left")
    sentences, pairs = _tables(traces, att)
    kinds = receiver_kinds(att.vertical, [[s.kind for s in t.sentences] for t in traces], cfg.n_anchors)
    chosen = resolved_heads(table, saes, cfg.n_resolved)
    resolver = TraceResolver(model, {layer: saes[layer] for layer in sorted(set(chosen["layer"]))}, traces, engine)
    tested, threshold = channel_study(att, chosen, cfg, channel_cfg, resolver)
    channels = relation(tested, table, induction)
    used = {layer: saes[layer] for layer in sorted(set(channels["layer"]))}
    cards = feature_study(model, used, channels, corpus, sae_spec)[1] if used else {}
    receivers = table[table["is_receiver"]]
    confirmed = channels[channels["confirmed"]]
    shown = min(n for n, t in enumerate(traces) if t.split == "heldout")
    view = trace_view(shown, att, channels, cards, cfg, resolver)
    recv = att.receivers
    metrics = {
        "n_traces": len(traces), "splits": {s: sum(t.split == s for t in traces) for s in ("discovery", "heldout")},
        "sentence_kinds": sentences["kind"].value_counts().to_dict(),
        "receivers": [f"L{layer}H{h}" for layer, h in zip(recv["layer"], recv["head"])],
        "stability": stability(table, cfg.n_receivers),
        "suppression_correlation": _correlations(traces, att, cfg.proximity),
        "resolved_heads": [f"L{layer}H{h}" for layer, h in zip(chosen["layer"], chosen["head"])],
        "resolved_are_receivers": [bool(x) for x in chosen["is_receiver"]],
        "n_candidates": len(channels), "n_confirmed": len(confirmed), "lift_threshold": threshold,
        "confirmed": [f"L{r.layer}H{r.head} {r.query_feature}x{r.key_feature}" for r in confirmed.itertuples()],
        "receivers_tih": int(receivers["is_tih"].fillna(False).astype(bool).sum()) if "is_tih" in receivers else None,
        "receivers_mean_induction": float(receivers["induction"].mean()) if "induction" in receivers else None,
        "channels_sharing_an_induction_feature":
            int((channels["shares_query_feature"] | channels["shares_key_feature"]).sum()),
    }
    return CotStudy(sentences, table, kinds, pairs, channels, cards, metrics, view)
