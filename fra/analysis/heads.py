"""Token-level head scores (Olsson et al. 2022): induction, previous-token, duplicate-token.

On ``[BOS] r_1..r_N r_1..r_N`` (random tokens) a head's score is the mean attention along one
diagonal of its pattern, over the query rows where that diagonal means something:

* induction: second-half query ``N+t`` -> key ``t+1`` (offset ``1-N``), the token after the earlier copy;
* duplicate-token: second-half query ``N+t`` -> key ``t`` (offset ``-N``), the earlier copy itself;
* previous-token: every query ``i >= 1`` -> key ``i-1`` (offset ``-1``).

A head that attends to offset ``1-N`` by position alone would also score on non-repeated tokens, and
only at one ``N``; :func:`head_scores` therefore also scores several ``N`` and a no-repeat control.
"""

from __future__ import annotations

import pandas as pd
import torch
from jaxtyping import Float, Int
from transformer_lens import HookedTransformer

from fra.config import HeadScoreConfig
from fra.errors import FRAError

Pattern = Float[torch.Tensor, "batch head query key"]


def diagonal_score(pattern: Pattern, offset: int, first_query: int) -> Float[torch.Tensor, " head"]:
    """Mean of ``pattern[b, h, q, q + offset]`` over the batch and the queries ``q >= first_query``."""
    diag = pattern.diagonal(offset=offset, dim1=-2, dim2=-1)  # [batch head n_diag], entry d is query d - offset
    start = first_query - max(-offset, 0)
    return diag[..., start:].mean(dim=(0, -1))


def induction_score(pattern: Pattern, n: int) -> Float[torch.Tensor, " head"]:
    return diagonal_score(pattern, 1 - n, n + 1)


def duplicate_token_score(pattern: Pattern, n: int) -> Float[torch.Tensor, " head"]:
    return diagonal_score(pattern, -n, n + 1)


def previous_token_score(pattern: Pattern) -> Float[torch.Tensor, " head"]:
    return diagonal_score(pattern, -1, 1)


def random_tokens(
    pool: Int[torch.Tensor, " n_pool"], bos: int, n: int, batch: int, generator: torch.Generator, repeat: bool = True
) -> Int[torch.Tensor, "batch 2n+1"]:
    """``[BOS] r_1..r_N r_1..r_N`` (``repeat``) or ``[BOS] r_1..r_N s_1..s_N`` from ``pool``; no repeats within a
    half."""
    if len(pool) < n:
        raise FRAError(f"cannot draw {n} distinct random tokens from {len(pool)} ordinary tokens; lower heads.n_rep")

    def half() -> torch.Tensor:
        return torch.stack([pool[torch.randperm(len(pool), generator=generator)[:n]] for _ in range(batch)])

    first = half()
    second = first if repeat else half()
    return torch.cat([torch.full((batch, 1), bos), first, second], dim=1)


def _patterns(
    model: HookedTransformer, tokens: torch.Tensor, fwd_hooks: list | None = None
) -> Float[torch.Tensor, "batch layer head query key"]:
    store: dict[int, torch.Tensor] = {}

    def keep(pattern: torch.Tensor, hook) -> None:
        store[hook.layer()] = pattern.detach().cpu()

    hooks = [(f"blocks.{layer}.attn.hook_pattern", keep) for layer in range(model.cfg.n_layers)]
    with torch.no_grad():
        model.run_with_hooks(tokens.to(model.cfg.device), return_type=None, fwd_hooks=(fwd_hooks or []) + hooks)
    return torch.stack([store[layer] for layer in range(model.cfg.n_layers)], dim=1)


def _flat(pattern: Float[torch.Tensor, "batch layer head q k"]) -> Pattern:
    return pattern.flatten(1, 2)  # heads of all layers, layer-major


def bos_id(model: HookedTransformer) -> int:
    tok = model.tokenizer
    return int(tok.bos_token_id) if tok is not None and tok.bos_token_id is not None else 0


def special_ids(model: HookedTransformer) -> set[int]:
    """BOS and the tokenizer's special and added tokens (chat markers, padding), which random probes avoid."""
    tok = model.tokenizer
    ids = {bos_id(model)}
    if tok is not None:
        ids |= set(tok.all_special_ids) | set(getattr(tok, "added_tokens_decoder", {}))
    return ids


def token_pool(model: HookedTransformer) -> Int[torch.Tensor, " n_pool"]:
    """Ordinary token ids: the vocabulary less :func:`special_ids`."""
    special = special_ids(model)
    return torch.tensor([t for t in range(model.cfg.d_vocab) if t not in special])


def head_scores(model: HookedTransformer, cfg: HeadScoreConfig) -> pd.DataFrame:
    """One row per head: induction (at ``n_rep`` and each offset), duplicate, previous-token, positional control."""
    ns = sorted({cfg.n_rep, *cfg.offsets})
    if 2 * ns[-1] + 1 > model.cfg.n_ctx:
        raise FRAError(f"repeat length {ns[-1]} needs {2 * ns[-1] + 1} positions but the model's n_ctx is "
                       f"{model.cfg.n_ctx}; lower heads.n_rep / heads.offsets")
    gen = torch.Generator().manual_seed(cfg.seed)
    bos, pool = bos_id(model), token_pool(model)
    L, H = model.cfg.n_layers, model.cfg.n_heads
    df = pd.DataFrame({"layer": torch.arange(L).repeat_interleave(H), "head": torch.arange(H).repeat(L)})
    for n in ns:
        pattern = _flat(_patterns(model, random_tokens(pool, bos, n, cfg.batch_size, gen)))
        df[f"induction_n{n}"] = induction_score(pattern, n).numpy()
        if n == cfg.n_rep:
            df["induction"] = df[f"induction_n{n}"]
            df["duplicate_token"] = duplicate_token_score(pattern, n).numpy()
            df["previous_token"] = previous_token_score(pattern).numpy()
    df["induction_min"] = df[[f"induction_n{n}" for n in ns]].min(axis=1)
    control = _flat(_patterns(model, random_tokens(pool, bos, cfg.n_rep, cfg.batch_size, gen, repeat=False)))
    df["positional_control"] = induction_score(control, cfg.n_rep).numpy()  # same stripe, nothing repeated
    return df


def ablated_induction(model: HookedTransformer, cfg: HeadScoreConfig, ablate: tuple[int, int]
                      ) -> Float[torch.Tensor, "layer head"]:
    """Induction scores (at ``n_rep``) with head ``ablate = (layer, head)``'s output zeroed."""
    l_a, h_a = ablate

    def zero(z: torch.Tensor, hook) -> torch.Tensor:
        z[:, :, h_a] = 0.0
        return z

    tokens = random_tokens(token_pool(model), bos_id(model), cfg.n_rep, cfg.batch_size,
                           torch.Generator().manual_seed(cfg.seed))
    pattern = _patterns(model, tokens, [(f"blocks.{l_a}.attn.hook_z", zero)])
    return induction_score(_flat(pattern), cfg.n_rep).view(model.cfg.n_layers, model.cfg.n_heads)


def head_check(model: HookedTransformer, cfg: HeadScoreConfig, df: pd.DataFrame) -> dict:
    """Is there a canonical, content-based induction head with a previous-token partner, and no positional shortcut?"""
    canonical = df[(df.layer >= 1) & (df.induction_min >= cfg.induction_threshold)
                   & (df.positional_control < cfg.positional_threshold)]
    heads = []
    for row in canonical.sort_values("induction", ascending=False).itertuples():
        earlier = df[df.layer < row.layer]
        partner = earlier.loc[earlier.previous_token.idxmax()]
        l_p, h_p = int(partner["layer"]), int(partner["head"])  # Series.head is a method
        ablated = ablated_induction(model, cfg, (l_p, h_p))[row.layer, row.head].item()
        heads.append({
            "head": f"L{row.layer}H{row.head}", "induction": round(row.induction, 4),
            "induction_min_over_offsets": round(row.induction_min, 4),
            "positional_control": round(row.positional_control, 4),
            "previous_token_partner": f"L{l_p}H{h_p}",
            "partner_previous_token": round(float(partner.previous_token), 4),
            "induction_with_partner_ablated": round(ablated, 4),
            "has_partner": bool(partner.previous_token >= cfg.previous_threshold),
        })
    positional = df[df.positional_control >= cfg.positional_threshold]
    return {
        "canonical_induction_heads": heads,
        "positional_shortcut_heads": [f"L{r.layer}H{r.head}" for r in positional.itertuples()],
        "max_positional_control": round(float(df.positional_control.max()), 4),
        "ground_truth_ok": bool(any(h["has_partner"] for h in heads) and positional.empty),
        "criteria": (f"canonical: layer >= 1, induction >= {cfg.induction_threshold} at every N in "
                     f"{sorted({cfg.n_rep, *cfg.offsets})}, positional_control < {cfg.positional_threshold}; partner: "
                     f"earlier-layer head with the top previous-token score, >= {cfg.previous_threshold}; no head with "
                     f"positional_control >= {cfg.positional_threshold}"),
    }



def ground_truth_failure(check: dict, df: pd.DataFrame, cfg: HeadScoreConfig) -> str | None:
    """Why :func:`head_check` failed, by how much, and what to try; None when it passed."""
    if check["ground_truth_ok"]:
        return None
    later = df[df.layer >= 1]
    best = later.loc[later.induction_min.idxmax()]
    why = []
    if not check["canonical_induction_heads"]:
        why.append(f"no layer>=1 head has an induction score >= {cfg.induction_threshold} at every repeat length "
                   f"(best: L{int(best.layer)}H{int(best['head'])} at {best.induction_min:.3f})")
    elif not any(h["has_partner"] for h in check["canonical_induction_heads"]):
        h = check["canonical_induction_heads"][0]
        why.append(f"induction head {h['head']} has no previous-token partner (best: {h['previous_token_partner']} at "
                   f"{h['partner_previous_token']:.3f} < {cfg.previous_threshold})")
    if check["positional_shortcut_heads"]:
        why.append(f"heads {check['positional_shortcut_heads']} attend by position alone (positional control up to "
                   f"{check['max_positional_control']:.3f} >= {cfg.positional_threshold})")
    return ("the toy model is no ground truth for induction: " + "; ".join(why) + ". The channel search is not "
            "validated on it. Check toy_train / world in params.yaml against the recipe in README (the seed table "
            "results/toy/seeds.csv shows how often it trains induction heads), e.g. more toy_train.steps")
