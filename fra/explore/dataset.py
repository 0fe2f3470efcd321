"""One model's channel statistics (``channels.csv``) as a page: one row per channel (layer, head, query feature,
key feature) with its probes grouped, column glossaries from :data:`fra.analysis.schema.CHANNELS`, example
contexts, feature cards and links into the single-text page.

Per head the page keeps the top channels by support, by induction score and by softmax effect, every confirmed one,
and the single-text page's strongest channels that ``channels.csv`` tested (:func:`shown_channels`). It opens on the
confirmed channels ranked by softmax effect: the attention to the induction target that the channel carries (the
drop when it is removed from the scores), the statistic of the criterion that measures what the head does with it.
Without rotary positions a feature pair is one test over the heads (:func:`fra.analysis.channels.test_ids`): the
page shows it as one row with each head's softmax effect. Channels with a dense feature (by the corpus,
:mod:`fra.analysis.dense`) are collapsed into one row. Each channel gets the corpus contexts where its contribution
``FRA[i, j, a, b]`` is largest in |value|; for the strongest, the head's attention over the keys of that query (a
one-query single-text view).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from jaxtyping import Int
from sae_lens import SAE
from torch import Tensor
from transformer_lens import HookedTransformer

from fra.analysis.channels import test_ids
from fra.analysis.dense import corpus_profile, dense_features, layer_profile
from fra.analysis.schema import CHANNELS
from fra.config import EngineConfig
from fra.engine.inputs import read_layers
from fra.engine.resolver import Projections, resolve
from fra.engine.result import FRA
from fra.errors import FRAError
from fra.explore.data import dense_slots
from fra.explore.encode import Strings, packed, rounded, unpacked

REQUIRED = ["layer", "head", "query_feature", "key_feature", "support"]  # of CHANNELS
INDUCTION = ["channel_induction_heldout", "channel_induction_discovery"]
KEY = ["layer", "head", "query_feature", "key_feature"]
PAIR = ["layer", "query_feature", "key_feature"]  # a feature pair: one test over the heads without rotary positions
Channel = tuple[int, int, int, int]  # (layer, head, query feature, key feature)
# Short headers for the page; each column's definition (the header's tooltip) is CHANNELS'.
LABELS = {
    "layer": "layer", "head": "head", "query_feature": "query f", "key_feature": "key f", "probe": "probe",
    "group": "group", "support": "support", "channel_induction_discovery": "CI disc.",
    "p_discovery": "p disc.", "support_heldout": "support h/o", "channel_induction_heldout": "CI",
    "null_channel_induction_heldout": "CI null", "lift_heldout": "lift", "softmax_effect": "softmax effect",
    "p_value": "p", "n_targets": "targets", "n_queries": "queries", "q_value": "q", "is_cih": "confirmed",
    "query_sink_share": "q sink", "key_sink_share": "k sink", "query_token_share": "q token",
    "key_token_share": "k token", "kind": "kind",
}
SHOWN = ["probe", "support", "channel_induction_heldout", "lift_heldout", "softmax_effect", "p_value", "q_value",
         "kind"]
ASCENDING = ["p_discovery", "p_value", "q_value"]  # sorted smallest first
EFFECT = "softmax_effect"  # the ranking the page opens on, confirmed channels first
TEXT_TOP = 5  # per head, the single-text page's strongest channels that the page keeps when channels.csv has them


def read_channels(path: str | Path) -> pd.DataFrame:
    """``channels.csv`` with at least the REQUIRED columns (extra columns are kept)."""
    path = Path(path)
    if not path.exists():
        raise FRAError(f"{path} does not exist; build it first (the channels stage writes "
                       "results/<model>/channels.csv)")
    return CHANNELS.check(pd.read_csv(path), path, REQUIRED)


def confirmed(df: pd.DataFrame) -> pd.Series:
    """Rows with ``is_cih`` true (all false without the column)."""
    if "is_cih" not in df.columns:
        return pd.Series(False, index=df.index)
    return df["is_cih"].astype(str).str.lower().isin(["true", "1"])


def induction_score(df: pd.DataFrame) -> pd.Series:
    """The held-out channel induction score where present, else the discovery one (NaN without either)."""
    score = pd.Series(np.nan, index=df.index)
    for c in reversed(INDUCTION):
        if c in df.columns:
            score = df[c].where(df[c].notna(), score)
    return score


def effect(df: pd.DataFrame) -> pd.Series:
    """The softmax effect (NaN without the column)."""
    return df[EFFECT] if EFFECT in df.columns else pd.Series(np.nan, index=df.index)


def pair_tests(df: pd.DataFrame) -> bool:
    """Whether ``channels.csv`` tests a feature pair once over the heads of its layer: its ``test`` ids are those of a
    model without rotary positions (:func:`fra.analysis.channels.test_ids`), where ``C[q, j] = alpha_a(q) beta_b(j)
    G_ab`` and only support and softmax effect differ between heads."""
    if df.empty or not {"test", "channel_induction_heldout"} <= set(df.columns):
        return False
    return bool((df["test"].astype(str) == test_ids(df, per_head=False)).all())


def best_first(df: pd.DataFrame) -> pd.DataFrame:
    """Rows ordered confirmed first, then by q-value, p-value (ascending) and support (descending)."""
    keys = pd.DataFrame({"c": ~confirmed(df), "s": -df["support"]}, index=df.index)
    for col in ("q_value", "p_value"):
        keys[col] = df[col] if col in df.columns else 0.0
    return df.loc[keys.sort_values(["c", "q_value", "p_value", "s"], kind="stable").index]


def shown_channels(df: pd.DataFrame, per_head: int, extra: Iterable[Channel] = ()) -> pd.DataFrame:
    """Every row (probe) of the channels kept: per (layer, head) the top ``per_head`` by support, by induction score
    and by softmax effect (a channel's best row counts), every confirmed channel, and the ``extra`` channels (the
    single-text page's strongest, :func:`text_page_top`) that ``df`` has; where a feature pair is one test
    (:func:`pair_tests`), the pair in every head. Rows best-first within each channel."""
    by = df.assign(_ind=induction_score(df), _eff=effect(df), _cih=confirmed(df)).groupby(KEY, sort=True)
    best = pd.DataFrame({"support": by["support"].max(), "ind": by["_ind"].max(), "eff": by["_eff"].max(),
                         "cih": by["_cih"].any()}).reset_index()
    extra = set(extra)
    keep = [i for i, c in zip(best.index, best[KEY].itertuples(index=False, name=None)) if c in extra]
    for _, g in best.groupby(["layer", "head"], sort=True):
        keep += list(g.nlargest(per_head, "support").index)
        keep += [i for col in ("ind", "eff") for i in g.dropna(subset=col).nlargest(per_head, col).index]
        keep += list(g.index[g["cih"]])
    chosen = best.loc[sorted(set(keep)), KEY]
    if pair_tests(df):  # a feature pair is one test: kept in every head that tested it
        chosen = best.merge(chosen[PAIR].drop_duplicates(), on=PAIR)[KEY]
    rows = df.reset_index(drop=True).merge(chosen, on=KEY)
    return best_first(rows).sort_values(KEY, kind="stable").reset_index(drop=True)


def layer_profiles(feats: dict[int, list[int]], features: pd.DataFrame | None,
                   model: HookedTransformer | None = None, saes: dict[int, SAE] | None = None,
                   corpus: Int[Tensor, "seq pos"] | None = None) -> dict[int, pd.DataFrame]:
    """Per layer, the profile (``feature``, ``firing_rate``, ``sink_share``) of each feature of ``feats[layer]``: from
    ``features`` (``features.csv`` indexed by (layer, feature)) where it has the feature, else, given the model, from
    the page's ``corpus`` (:func:`fra.analysis.dense.corpus_profile`); a feature in neither is left out."""
    out = {}
    for layer, fs in feats.items():
        known = layer_profile(features, layer)
        if not set(fs) <= set(known["feature"]) and model is not None:
            known = layer_profile(features, layer, corpus_profile(model, saes[layer], corpus))
        out[layer] = known[known["feature"].isin(fs)].reset_index(drop=True)
    return out


def dense_payload(feats: dict[int, list[int]], profiles: dict[int, pd.DataFrame], density: float,
                  sink_share: float, source: str) -> dict:
    """The page's dense features: per layer (``str``) the dense ones among ``feats`` (:func:`dense_features` of
    their ``profiles``), the two levels, how many features had no profile, and where the profiles came from."""
    dense = {str(la): dense_features(profiles[la], density, sink_share) for la in feats}
    unknown = sum(len(set(fs) - set(profiles[la]["feature"])) for la, fs in feats.items())
    return {"features": dense, "density": density, "sink_share": sink_share, "unknown": unknown, "source": source}


class Occurrences:
    """Each feature's occupied slots in a resolved batch as ``(seq, pos, slot)`` rows (sorted: by sequence) with
    their query-side and key-side vectors of every head (``resolved.q`` / ``resolved.k`` ``.vectors``), formed once per
    feature."""

    def __init__(self, resolved: FRA):
        self.resolved, self.q, self.k = resolved, {}, {}

    def query(self, f: int) -> tuple[Tensor, Tensor | None]:
        if f not in self.q:
            r = (self.resolved.feature_ids == f).nonzero()
            self.q[f] = r, self.resolved.q.vectors(r[:, 0], r[:, 1], r[:, 2]) if len(r) else None  # [head, m, d_head]
        return self.q[f]

    def key(self, f: int) -> tuple[Tensor, Tensor | None]:
        if f not in self.k:
            r = (self.resolved.k_ids == f).nonzero()
            self.k[f] = r, self.resolved.k.vectors(r[:, 0], r[:, 1], r[:, 2]) if len(r) else None
        return self.k[f]


def strongest(occ: Occurrences, slot: int, a: int, b: int, n: int) -> list[tuple[float, int, int, int]]:
    """Channel (a, b) of the head in ``slot``: for each query where it is nonzero its largest-|FRA[i, j, a, b]| key,
    and of those the ``n`` strongest, as ``(value, seq, query, key)`` (seq within the batch). Works one sequence at a
    time, so a feature active everywhere costs ``pos^2`` per sequence, not ``(batch * pos)^2``."""
    (qr, qv), (kr, kv) = occ.query(a), occ.key(b)
    if not len(qr) or not len(kr):
        return []
    qv, kv = qv[slot], kv[slot]
    qseq, kseq = qr[:, 0].contiguous(), kr[:, 0].contiguous()
    found = []
    for s in sorted(set(qseq.unique().tolist()) & set(kseq.unique().tolist())):
        q0, q1 = (int(x) for x in torch.searchsorted(qseq, torch.tensor([s, s + 1], device=qseq.device)))
        k0, k1 = (int(x) for x in torch.searchsorted(kseq, torch.tensor([s, s + 1], device=kseq.device)))
        v = qv[q0:q1] @ kv[k0:k1].T / occ.resolved.attn_scale  # [m_q, m_k]
        v = v.masked_fill(kr[k0:k1, 1][None, :] > qr[q0:q1, 1][:, None], 0.0)
        best = v.abs().argmax(1)
        val = v.gather(1, best[:, None])[:, 0]
        live = val != 0
        found.append(torch.stack([val[live], torch.full_like(val[live], s), qr[q0:q1, 1][live].to(val.dtype),
                                  kr[k0:k1, 1][best[live]].to(val.dtype)], 1))
    found = torch.cat(found) if found else torch.zeros(0, 4)
    top = found[found[:, 0].abs().topk(min(n, len(found))).indices].tolist()
    return [(v, int(s), int(i), int(j)) for v, s, i, j in top]


def channel_examples(
    model: HookedTransformer,
    saes: dict[int, SAE],
    tokens: Int[Tensor, "seq pos"],
    channels: list[Channel],
    n: int = 3,
    batch_size: int = 16,
    cfg: EngineConfig = EngineConfig(),
) -> tuple[dict[Channel, list[tuple[float, int, int, int]]], dict[Channel, np.ndarray]]:
    """Per channel, up to ``n`` examples ``(value, seq, query, key)`` on ``tokens``: the queries where its largest
    |FRA[i, j, a, b]| is largest, each with that key (:func:`strongest`), and the head's attention at the strongest
    one's query over keys ``0..query``. One model pass per batch reads every layer
    (:func:`fra.engine.inputs.read_layers`).
    """
    found: dict[Channel, list[tuple[float, int, int, int]]] = {c: [] for c in channels}
    rows: dict[Channel, np.ndarray] = {}
    layers = sorted({c[0] for c in channels})
    heads = {layer: tuple(sorted({c[1] for c in channels if c[0] == layer})) for layer in layers}
    projections = {}  # per layer, each feature projected once for every batch
    for s0 in range(0, len(tokens), batch_size):
        batch = tokens[s0:s0 + batch_size]
        inputs = read_layers(model, {layer: saes[layer] for layer in layers}, batch)
        for layer in layers:
            mine = [c for c in channels if c[0] == layer]
            if layer not in projections:
                projections[layer] = Projections(model, saes[layer], layer, heads[layer], inputs[layer].center)
            resolved = resolve(model, saes[layer], batch, layer, heads[layer], cfg, inputs=inputs[layer],
                               projections=projections[layer])
            occ = Occurrences(resolved)
            with torch.inference_mode():
                for c in mine:
                    new = [(v, s0 + s, i, j) for v, s, i, j in strongest(occ, heads[layer].index(c[1]), c[2], c[3], n)]
                    merged = sorted(found[c] + new, key=lambda e: -abs(e[0]))[:n]
                    if new and merged[0] is new[0]:  # a new strongest example: keep the head's attention at its query
                        _, s, i, _ = new[0]
                        rows[c] = torch.softmax(resolved.scores[s - s0, heads[layer].index(c[1]), i, :i + 1].float(),
                                                -1).cpu().numpy()
                    found[c] = merged
    return found, rows


def text_page_links(page: dict, channels: list[Channel]) -> dict[Channel, tuple[int, int, int]]:
    """Per channel of the single-text page's layer that the page lists at some pair: that page's head, query and
    key where it is strongest (its payload from :func:`fra.explore.encode.read_payload`)."""
    pr, heads = page["pairs"], page["heads"]
    ids, _ = dense_slots(page["feat"])
    h, i, j = (unpacked(pr[c]).astype(int) for c in "hij")
    sa, sb, val = unpacked(pr["slot_a"]), unpacked(pr["slot_b"]), unpacked(pr["value"]).astype(np.float32)
    n, r = np.nonzero(sa != page["empty_slot"])
    a, b = ids[i[n], sa[n, r]], ids[j[n], sb[n, r]]
    order = np.argsort(-np.abs(val[n, r]), kind="stable")
    best: dict[tuple[int, int, int], tuple[int, int, int]] = {}
    for m in order:  # strongest first: keep the first pair of each channel
        best.setdefault((heads[h[n[m]]], int(a[m]), int(b[m])), (heads[h[n[m]]], int(i[n[m]]), int(j[n[m]])))
    return {c: best[c[1:]] for c in channels if c[0] == page["layer"] and c[1:] in best}


def text_page_top(page: dict, n: int = TEXT_TOP) -> list[tuple[Channel, float]]:
    """Per head of the single-text page (its payload), its ``n`` strongest channels (sum of |value| over the pairs
    with detail) as ``((layer, head, a, b), total)``."""
    return [((page["layer"], page["heads"][h], int(r[0]), int(r[1])), float(r[3]))
            for h, rows in enumerate(page["top_channels"]) for r in rows[:n]]


def dataset_payload(rows: pd.DataFrame, name: str, examples: dict[Channel, list] | None = None,
                    attn_rows: dict[Channel, np.ndarray] | None = None, strs: list[list[str]] | None = None,
                    cards: tuple[dict, dict] | None = None, strings: Strings | None = None,
                    text_page: tuple[str, dict[Channel, tuple[int, int, int]]] | None = None) -> dict:
    """The page's data: ``rows`` (:func:`shown_channels`) with floats to 4 significant digits, ``channels``:
    ``[layer, head, a, b, [row, ...]]`` (rows best-first), and when a feature pair is one test over the heads
    (:func:`pair_tests`) ``pairs``: ``[layer, a, b, [channel, ...], [row, ...]]`` (rows best-first over its heads);
    per channel (by its index) its examples ``[value, seq, query, key]``, the strongest one's attention row (uint8,
    ``round(p * 255)``) and its link into the single-text page ``[head, query, key]``; the example sequences' tokens;
    ``cards`` = (cards keyed ``"L<layer>:<feature>"``, Neuronpedia bases per layer)."""
    strings = strings or Strings()
    cols = [c for c in rows.columns if c not in KEY]
    table = [[rounded(v) if isinstance(v, float) else v for v in r] for r in rows[cols].astype(object).values.tolist()]
    groups = rows.groupby(KEY, sort=True).indices
    chans = [(int(la), int(h), int(a), int(b)) for la, h, a, b in groups]
    out = {
        "model": name, "columns": cols, "rows": table,
        "channels": [[*c, sorted(groups[c].tolist())] for c in chans],
        "labels": {c: LABELS.get(c, c) for c in KEY + cols},
        "glossary": {c: CHANNELS.columns.get(c, "") for c in KEY + cols},
        "shown": [c for c in SHOWN if c in cols], "ascending": [c for c in ASCENDING if c in cols],
        "examples": None, "cards": cards[0] if cards else {}, "neuronpedia": cards[1] if cards else {},
    }
    if pair_tests(rows):
        by_pair: dict[tuple[int, int, int], list[int]] = {}
        for n, (la, _, a, b) in enumerate(chans):
            by_pair.setdefault((la, a, b), []).append(n)
        out["pairs"] = [[la, a, b, ns, best_first(rows.loc[[r for n in ns for r in groups[chans[n]]]]).index.tolist()]
                        for (la, a, b), ns in sorted(by_pair.items())]
    if examples is not None:
        used = sorted({s for c in chans for _, s, _, _ in examples.get(c, [])})
        out["examples"] = {n: [[rounded(v), s, i, j] for v, s, i, j in examples.get(c, [])]
                           for n, c in enumerate(chans)}
        out["seqs"] = {s: strings.ids(strs[s]) for s in used}
        held = [(n, attn_rows[c]) for n, c in enumerate(chans) if c in (attn_rows or {})]
        out["attn"] = {"channel": [n for n, _ in held], "offset": np.cumsum([0] + [len(r) for _, r in held]).tolist(),
                       "p": packed(np.round(np.concatenate([r for _, r in held] or [np.zeros(0)]) * 255), "uint8")}
    if text_page:
        href, links = text_page
        out["text_page"] = {"href": href, "links": {n: list(links[c]) for n, c in enumerate(chans) if c in links}}
    out["strings"] = strings.table
    return out


def load_corpus(path: str | Path, model: HookedTransformer, n_seqs: int, seq_len: int) -> Tensor:
    """Token sequences ``[n, pos]`` from a ``.npy`` array of token ids or a text file (tokenized and chunked)."""
    path = Path(path)
    if not path.exists():
        raise FRAError(f"corpus {path} does not exist; pass a .npy of token ids [n, pos] or a .txt file")
    if path.suffix == ".npy":
        tokens = torch.from_numpy(np.load(path).astype(np.int64))
        if tokens.ndim != 2:
            raise FRAError(f"{path} holds an array of shape {tokens.shape}; expected token ids [n, pos]")
        return tokens[:n_seqs, :seq_len]
    if model.tokenizer is None:
        raise FRAError(f"{path} is text but the model has no tokenizer; pass token ids as a .npy file")
    ids = model.tokenizer(path.read_text(), add_special_tokens=False)["input_ids"]  # BOS is added per chunk
    body = seq_len - 1
    chunks = [ids[s:s + body] for s in range(0, len(ids) - body + 1, body)][:n_seqs]
    if not chunks:
        raise FRAError(f"{path} has fewer than {body} tokens; use a longer text or a smaller --seq-len")
    bos = model.tokenizer.bos_token_id
    return torch.tensor([[bos, *c] for c in chunks])
