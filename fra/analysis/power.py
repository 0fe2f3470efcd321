"""Power of the channel search inside a real model: known channels planted into real heads at known strengths.

A *plant* (:mod:`fra.engine.plant`) adds ``beta * (f_ia / s_i) * (f_jb / s_j)`` to one head's scores, in the model
and in its decomposition alike. Per probe kind and head this study plants

* *induction pairs* (a, b): feature b is active where the previous token activated feature a, read from the corpus
  (``P(b at j | a at j-1)`` high, neither feature dense), present at enough discovery targets of the probe; a channel
  of such a pair attends from a query to the token after an earlier a: induction in one feature pair;
* *control pairs* (a, b'): the same query features with key features of similar density that do not follow a
  (``P(b' at j | a at j-1)`` no higher than ``P(b')``): a channel of the same strength that does no induction;

at every strength of ``power.strengths``, in units of the head's own scores (the plant's mean value at the targets
where it is present over the head's score scale there, ``fra.analysis.stats.score_scale``). Each plant is searched
for exactly as the study searches: discovery, candidates, held-out statistics, the shuffled-key null, and the study's
criterion with the model's lift threshold and Benjamini–Hochberg over the study's tests with the planted head's rows
replaced. Recall at a strength is the share of induction plants confirmed; false discoveries are confirmed control
plants. The x axis a reader can use is the attention the planted channel moves onto the target (its held-out
softmax effect): "a channel moving at least X of attention is found with probability >= 0.8".
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import torch
from sae_lens import SAE
from tqdm.auto import tqdm
from transformer_lens import HookedTransformer

from fra.analysis.cache import ProbeCache, Resolved
from fra.analysis.channels import search
from fra.analysis.features import layer_acts
from fra.analysis.heads import special_ids
from fra.analysis.kinds import feature_profiles, with_shares
from fra.analysis.probes import Probes
from fra.analysis.stats import confirm, score_scale, wilson_interval
from fra.config import ChannelConfig, EngineConfig, PowerConfig
from fra.engine.plant import Plant, planted


class HeadBatches:
    """The study's resolved probe batches of one layer, kept per probe set and restricted to one head: resolved once
    for every plant of that head (a plant changes the head's scores and one pair, nothing a resolve computes)."""

    def __init__(self, cache: ProbeCache, sae: SAE, layer: int, head: int, engine: EngineConfig):
        self.cache, self.sae, self.layer, self.head, self.engine = cache, sae, layer, head, engine
        self._held: dict[int, tuple[Probes, list[Resolved]]] = {}

    def __call__(self, probes: Probes) -> list[Resolved]:
        if id(probes) not in self._held:
            self._held[id(probes)] = (probes, [
                Resolved(b.resolved.head(b.resolved.heads.index(self.head)), b.seq, b.query, b.target, b.group)
                for b in self.cache.resolved(self.sae, self.layer, probes, self.engine)])
        return self._held[id(probes)][1]


class PlantedCache:
    """A :class:`fra.analysis.cache.ProbeCache` stand-in for :func:`fra.analysis.channels.search`: the head's batches
    (:class:`HeadBatches`) with the plant in them, planted before the shuffled-key null shuffles the keys, as a real
    planted model would be."""

    def __init__(self, batches: HeadBatches, plant: Plant):
        self.batches, self.plant, self.model = batches, plant, batches.cache.model

    def check(self, batch_size: int, saes: dict[int, SAE]) -> None:
        self.batches.cache.check(batch_size, saes)

    def resolved(self, sae: SAE, layer: int, probes: Probes, engine: EngineConfig, shuffle_seed: int | None = None):
        for n, batch in enumerate(self.batches(probes)):
            one = planted(batch.resolved, self.plant)
            if shuffle_seed is not None:  # the same permutation as ProbeCache.resolved draws for this batch
                one = one.with_shuffled_keys(torch.Generator().manual_seed(shuffle_seed * 1_000_003 + n))
            yield Resolved(one, batch.seq, batch.query, batch.target, batch.group)


@dataclass(frozen=True)
class PairStats:
    """Per (a, b): how often b is active at j when a was at j - 1 on the corpus, and the features' densities; and the
    corpus activations, for the profiles (sink and token shares) the criterion reads of the planted features."""

    follows: torch.Tensor  # [d_sae, d_sae]: P(b at j | a at j-1)
    density: torch.Tensor  # [d_sae]: share of positions where the feature is active
    acts: torch.Tensor  # [seq, pos, d_sae]
    corpus: torch.Tensor  # [seq, pos]
    special: set[int]
    layer: int

    def profiles(self, feats: list[int]) -> pd.DataFrame:
        return feature_profiles(self.acts[..., feats], self.corpus, feats, self.special).assign(layer=self.layer)


def pair_stats(model: HookedTransformer, saes: dict[int, SAE], corpus: torch.Tensor) -> dict[int, PairStats]:
    """:class:`PairStats` of every SAE of ``saes`` on ``corpus`` from one model pass (BOS left out of the pair
    counts)."""
    acts_by_layer = layer_acts(model, saes, corpus)[0]  # layer -> [seq, pos, d_sae]
    out = {}
    for layer, acts in acts_by_layer.items():
        on = (acts[:, 1:] > 0).float()
        prev, nxt = on[:, :-1].flatten(0, 1), on[:, 1:].flatten(0, 1)
        together = prev.T @ nxt  # [a, b]: positions j with a at j - 1 and b at j
        out[layer] = PairStats(together / prev.sum(0).clamp(min=1)[:, None], on.flatten(0, 1).mean(0), acts, corpus,
                               special_ids(model), layer)
    return out


def target_counts(batches: HeadBatches, probes: Probes, d_sae: int) -> torch.Tensor:
    """``[d_sae, d_sae]``: probe targets where a is active at the query and b at the target."""
    out = torch.zeros(d_sae * d_sae)
    for batch in batches(probes):
        r = batch.resolved
        qa, kb = r.feature_ids[batch.seq, batch.query].cpu(), r.k_ids[batch.seq, batch.target].cpu()
        n, sa, sb = torch.nonzero((qa[:, :, None] >= 0) & (kb[:, None, :] >= 0), as_tuple=True)
        out.index_add_(0, qa[n, sa] * d_sae + kb[n, sb], torch.ones(len(n)))
    return out.view(d_sae, d_sae)


def choose_pairs(stats: PairStats, at_targets: torch.Tensor, cfg: PowerConfig, min_targets: int,
                 tested: set[tuple[int, int]]) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """``cfg.n_pairs`` induction pairs and ``cfg.n_control_pairs`` control pairs (module docstring), deterministic.

    Induction: b follows a (``P(b | a before) >= cfg.min_follow``), both features at most ``cfg.max_density`` dense,
    a != b, the pair at ``min_targets`` discovery targets or more, and not among the study's ``tested`` pairs of this
    head and probe (a pair the unplanted search already tests would be found without the plant); the
    strongest-following first, one pair per query feature. Control: for the first query features, the key feature
    of closest density among those that do not follow a, are active at ``min_targets`` or more discovery targets of
    a's queries and are not in ``tested``."""
    sparse = stats.density <= cfg.max_density
    ok = (stats.follows >= cfg.min_follow) & sparse[:, None] & sparse[None, :] & (at_targets >= min_targets)
    ok.fill_diagonal_(False)
    for qa, kb in tested:
        ok[qa, kb] = False
    a, b = torch.nonzero(ok, as_tuple=True)
    order = torch.argsort(stats.follows[a, b] * 1e6 + at_targets[a, b], descending=True, stable=True)
    induction, used = [], set()
    for i in order.tolist():
        if int(a[i]) not in used:
            induction.append((int(a[i]), int(b[i])))
            used.add(int(a[i]))
        if len(induction) == cfg.n_pairs:
            break
    control = []
    for qa, kb in induction[:cfg.n_control_pairs]:
        unrelated = (stats.follows[qa] <= stats.density) & sparse & (at_targets[qa] >= min_targets)
        unrelated[[qa, kb] + [k for q, k in tested if q == qa]] = False
        if unrelated.any():
            cand = torch.nonzero(unrelated)[:, 0]
            control.append((qa, int(cand[torch.argmin((stats.density[cand] - stats.density[kb]).abs())])))
    return induction, control


def plant_strength(batches: HeadBatches, probes: Probes, a: int, b: int) -> float:
    """``beta`` per unit strength: the head's mean score scale at the targets where the pair is present over the
    mean of ``(f_qa / s_q) (f_tb / s_t)`` there (so a plant of strength c adds c score scales on average)."""
    product, scale, n = 0.0, 0.0, 0
    for batch in batches(probes):
        r = batch.resolved
        cq = r.q.amount(torch.tensor([a]))[:, 0][batch.seq, batch.query].cpu()
        ck = r.k.amount(torch.tensor([b]))[:, 0][batch.seq, batch.target].cpu()
        on = (cq != 0) & (ck != 0)
        product += float((cq * ck)[on].sum())
        scale += float(score_scale(r.scores[batch.seq, 0, batch.query].cpu())[on].sum())
        n += int(on.sum())
    return scale / product if n and product else float("nan")


def planted_row(model: HookedTransformer, sae: SAE, layer: int, disc: Probes, held: Probes, plant: Plant,
                batches: HeadBatches, cfg: ChannelConfig, engine: EngineConfig, tested: pd.DataFrame,
                threshold: float, stats: PairStats) -> dict:
    """Search one planted head and judge its (a, b) row with the study's criterion (module docstring).

    ``others_confirmed``: rows of the planted head confirmed here that the unplanted study did not confirm (what
    the plant made pass besides itself)."""
    found = search(model, {layer: sae}, disc, held, cfg, engine, cache=PlantedCache(batches, plant)).table
    feats = sorted(set(found["query_feature"].astype(int)) | set(found["key_feature"].astype(int)))
    found = with_shares(found, stats.profiles(feats), cfg)  # the key feature's token share decides the matched null
    head = (tested["probe"] == disc.kind) & (tested["layer"] == layer) & (tested["head"] == plant.head)
    others = tested[~head]
    judged = confirm(pd.concat([others, found], ignore_index=True), cfg, threshold)
    mine = judged.iloc[len(others):]
    keys = ["group", "query_feature", "key_feature"]
    before = mine[keys].merge(tested[head & tested["is_cih"]][keys].assign(_was=True), on=keys, how="left")
    new = mine["is_cih"].to_numpy() & before["_was"].isna().to_numpy()
    row = mine[(mine["query_feature"] == plant.a) & (mine["key_feature"] == plant.b)]
    hit = row.iloc[0] if len(row) else None
    get = (lambda c: float(hit[c])) if hit is not None else (lambda c: float("nan"))
    found_it = bool(hit is not None and hit["is_cih"])
    return {"candidate": hit is not None, "confirmed": found_it,
            "support": get("support_heldout"), "lift": get("lift_heldout"), "lift_low": get("lift_low"),
            "softmax_effect": get("softmax_effect"), "q_value": get("q_value"), "n_targets": get("n_targets"),
            "others_confirmed": int(new.sum()) - int(found_it)}


def power_study(model: HookedTransformer, saes: dict[int, SAE], probes: dict[str, tuple[Probes, Probes]],
                heads: list[tuple[str, int, int]], tested: pd.DataFrame, threshold: float, corpus: torch.Tensor,
                cfg: PowerConfig, channel_cfg: ChannelConfig, engine: EngineConfig) -> pd.DataFrame:
    """One row per plant: probe, head (with its role), pair kind and features, strength and beta, and the search's
    verdict (:func:`planted_row`). ``heads``: (role, layer, head); ``tested``: the study's channels.csv."""
    cache = ProbeCache(model, saes, channel_cfg.batch_size)
    stats = pair_stats(model, {layer: saes[layer] for layer in sorted({h[1] for h in heads})}, corpus)
    rows = []
    for kind, (disc, held) in probes.items():
        for role, layer, head in heads:
            sae = saes[layer]
            batches = HeadBatches(cache, sae, layer, head, engine)
            at_targets = target_counts(batches, disc, sae.cfg.d_sae)
            mine = tested[(tested["probe"] == kind) & (tested["layer"] == layer) & (tested["head"] == head)]
            done = set(zip(mine["query_feature"].astype(int), mine["key_feature"].astype(int)))
            induction, control = choose_pairs(stats[layer], at_targets, cfg, 2 * channel_cfg.min_queries, done)
            pairs = [("induction", a, b) for a, b in induction] + [("control", a, b) for a, b in control]
            for pair_kind, a, b in tqdm(pairs, desc=f"plants ({kind}, L{layer}H{head})"):
                unit = plant_strength(batches, disc, a, b)
                for strength in cfg.strengths:
                    plant = Plant(head, a, b, strength * unit)
                    rows.append({"probe": kind, "role": role, "layer": layer, "head": head, "pair_kind": pair_kind,
                                 "query_feature": a, "key_feature": b, "strength": strength, "beta": plant.beta,
                                 "follows": float(stats[layer].follows[a, b]),
                                 **planted_row(model, sae, layer, disc, held, plant, batches, channel_cfg, engine,
                                               tested, threshold, stats[layer])})
    return pd.DataFrame(rows)


def chosen_heads(heads: pd.DataFrame, layers: list[int]) -> list[tuple[str, int, int]]:
    """The heads planted into: the strongest token induction head of the resolved layers (``tih``; the strongest
    head, ``strongest``, when none is a TIH), the head of that layer with the lowest induction score
    (``same_layer``), and the lowest-scoring head of the earliest other resolved layer (``other_layer``)."""
    rows = heads[heads["layer"].isin(layers)]
    any_tih = bool(rows["is_tih"].any())
    tih = rows[rows["is_tih"]] if any_tih else rows
    best = tih.loc[tih["induction"].idxmax()]
    same = rows[rows["layer"] == best["layer"]]
    low = same.loc[same["induction"].idxmin()]
    out = [("tih" if any_tih else "strongest", int(best["layer"]), int(best["head"])),
           ("same_layer", int(low["layer"]), int(low["head"]))]
    others = rows[rows["layer"] != best["layer"]]
    if len(others):
        first = others[others["layer"] == others["layer"].min()]
        low = first.loc[first["induction"].idxmin()]
        out.append(("other_layer", int(low["layer"]), int(low["head"])))
    return out


def summary(plants: pd.DataFrame, channels: pd.DataFrame, alpha: float, target: float = 0.8) -> dict:
    """Recall and false discoveries per probe, head role and strength (Wilson intervals), the weakest strength with
    recall >= ``target`` and the attention its plants move (median over the plants that became candidates: the
    others have no measured effect), and where the study's own channels and its significant unconfirmed candidates
    (q <= ``alpha``) fall on that scale (their ``scale_share`` is the same unit as a plant's strength)."""
    curves = []
    for (probe, role, strength), rows in plants.groupby(["probe", "role", "strength"]):
        ind, ctl = rows[rows["pair_kind"] == "induction"], rows[rows["pair_kind"] == "control"]
        found, false = int(ind["confirmed"].sum()), int(ctl["confirmed"].sum())
        curves.append({"probe": probe, "role": role, "strength": strength, "n_induction": len(ind),
                       "recall": found / len(ind) if len(ind) else None,
                       "recall_ci95": [round(x, 4) for x in wilson_interval(found, len(ind))],
                       "n_control": len(ctl), "false_discoveries": false,
                       "false_ci95": [round(x, 4) for x in wilson_interval(false, len(ctl))],
                       "attention_moved": float(ind["softmax_effect"].median()) if len(ind) else None})
    curves = pd.DataFrame(curves)
    weakest = {}
    for (probe, role), rows in curves.groupby(["probe", "role"]):
        ok = rows[rows["recall"] >= target].sort_values("strength")
        weakest[f"{probe}/{role}"] = ({"strength": float(ok["strength"].iloc[0]),
                                       "attention_moved": ok["attention_moved"].iloc[0]} if len(ok) else None)
    real = channels[channels["is_cih"] & (channels["kind"] != "sink")]
    near = channels[~channels["is_cih"] & (channels["q_value"] <= alpha)]
    return {"target_recall": target, "curves": curves.to_dict("records"), "weakest_found": weakest,
            "false_discoveries": int(plants.loc[plants["pair_kind"] == "control", "confirmed"].sum()),
            "n_control": int((plants["pair_kind"] == "control").sum()),
            "untouched_rows_confirmed": int(plants["others_confirmed"].sum()),
            "real_channels": {"n": len(real), "scale_share": real["scale_share"].describe().to_dict(),
                              "softmax_effect": real["softmax_effect"].describe().to_dict()},
            "near_misses": {"n": len(near), "scale_share": near["scale_share"].describe().to_dict(),
                            "softmax_effect": near["softmax_effect"].describe().to_dict()}}
