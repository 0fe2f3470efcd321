"""Causal test of confirmed channels in a real forward pass.

For a confirmed channel (a, b) of head h in layer L, ``C[i, j] = FRA[i, j, a, b]`` is subtracted from
the head's scores at ``blocks.L.attn.hook_attn_scores`` on the channel's held-out probes, and the
model runs on to its logits. At the induction queries where the channel is present (as for the
softmax effect) we report the mean drop in the head's attention to the target -- which must equal
the softmax effect computed from the decomposition -- and the mean drop in log-probability of the
induction token (the token at the target, which the repeat continues with), with its standard
error and a one-sided z-test of a positive mean drop; a channel *moves the output* when its
Benjamini–Hochberg q-value over all channels tested is at most ``alpha``.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import torch
from sae_lens import SAE
from transformer_lens import HookedTransformer

from fra.analysis.cache import ProbeCache
from fra.analysis.channels import is_present
from fra.analysis.probes import Probes
from fra.analysis.stats import benjamini_hochberg, z_pvalue
from fra.config import ChannelConfig, EngineConfig
from fra.engine import resolve
from fra.engine.inputs import AttentionInputs

KEYS = ["probe", "group", "layer", "head", "query_feature", "key_feature"]


def _run(model: HookedTransformer, tokens, layers: list[int], ablate: tuple[int, int, torch.Tensor] | None = None,
         start: AttentionInputs | None = None):
    """Logits and the attention patterns of ``layers``; ``ablate = (layer, head, C)`` removes C from that head's scores.

    ``start`` (layer ``ablate[0]``'s cached inputs on ``blocks.L.hook_resid_pre``) runs the model from that layer's
    residual instead of from the tokens: the layers below are unchanged by the ablation.
    """
    saved = {}

    def remove(scores, hook):
        _, head, C = ablate
        scores[:, head] = scores[:, head] - C.to(scores.device)
        return scores

    def keep(pattern, hook):
        saved[hook.layer()] = pattern.cpu()

    hooks = [(f"blocks.{layer}.attn.hook_pattern", keep) for layer in layers]
    if ablate is not None:
        hooks.insert(0, (f"blocks.{ablate[0]}.attn.hook_attn_scores", remove))
    with torch.inference_mode(), model.hooks(fwd_hooks=hooks):
        if start is None:
            return model(tokens), saved
        return model(start.sae_in, start_at_layer=ablate[0], tokens=tokens,
                     shortformer_pos_embed=start.pos_embed), saved


def _logp(logits: torch.Tensor, s: torch.Tensor, q: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Log-probability of token ``y_n`` at position ``q_n`` of sequence ``s_n``."""
    return logits[s, q].float().log_softmax(-1).cpu()[torch.arange(len(y)), y]


def _subset(inputs: AttentionInputs, used: torch.Tensor) -> AttentionInputs | None:
    """The cached residual of the sequences ``used`` (None unless the SAE reads ``hook_resid_pre``)."""
    if not inputs.hook.endswith("hook_resid_pre"):
        return None
    pos = None if inputs.pos_embed is None else inputs.pos_embed[used]
    return dataclasses.replace(inputs, tokens=inputs.tokens[used], sae_in=inputs.sae_in[used], scale=inputs.scale[used],
                               scores=inputs.scores[used], pos_embed=pos)


def causal_effects(model: HookedTransformer, saes: dict[int, SAE], channels: pd.DataFrame,
                   probes: list[tuple[Probes, Probes]], cfg: ChannelConfig, engine: EngineConfig,
                   cache: ProbeCache | None = None) -> pd.DataFrame:
    """One row per confirmed channel of ``channels``: attention and log-probability drops when it is removed
    (module docstring). Each ablated pass runs only the sequences where the channel is present, from its layer."""
    cache = cache or ProbeCache(model, saes, cfg.batch_size)
    cache.check(cfg.batch_size, saes)
    confirmed = channels[channels["is_cih"]].reset_index(drop=True)
    drops = {n: ([], []) for n in range(len(confirmed))}  # per channel: attention drops, log-prob drops per query
    for _, held in probes:
        mine = confirmed[confirmed["probe"] == held.kind]
        if mine.empty:
            continue
        for (tokens, seq, query, target, group), inputs in cache.batches(held):
            tokens = tokens.to(model.cfg.device)
            answer = tokens.cpu()[seq, target]
            base_logits, base_pats = _run(model, tokens, sorted(mine["layer"].unique()))  # one clean pass per batch
            for layer, rows in mine.groupby("layer"):
                base_pat = base_pats[layer]
                resolved = resolve(model, saes[layer], tokens, layer, cfg=engine, inputs=inputs[layer])
                for n, row in rows.iterrows():
                    at = torch.from_numpy(group == row["group"])
                    if not at.any():
                        continue
                    h = int(row["head"])
                    C = resolved.channel(h, torch.tensor([int(row["query_feature"])]),
                                         torch.tensor([int(row["key_feature"])]))[:, 0]
                    s, q, t, y = seq[at], query[at], target[at], answer[at]
                    present = is_present(C.cpu()[s, q], q)
                    if not present.any():
                        continue
                    s, q, t, y = s[present], q[present], t[present], y[present]
                    # the sequences run, and each query's row among them
                    used, local = torch.unique(s, return_inverse=True)
                    rows = used.to(tokens.device)
                    logits, pats = _run(model, tokens[rows], [layer], (layer, h, C[rows]), _subset(inputs[layer], rows))
                    drops[n][0].append((base_pat[s, h, q, t] - pats[layer][local, h, q, t]).numpy())
                    drops[n][1].append((_logp(base_logits, s, q, y) - _logp(logits, local, q, y)).numpy())
    out = confirmed[KEYS].copy()
    att = [np.concatenate(drops[n][0]) if drops[n][0] else np.array([]) for n in range(len(confirmed))]
    lp = [np.concatenate(drops[n][1]) if drops[n][1] else np.array([]) for n in range(len(confirmed))]
    out["n_queries"] = [len(x) for x in lp]
    out["attention_drop"] = [x.mean() if len(x) else np.nan for x in att]
    out["softmax_effect"] = confirmed["softmax_effect"].to_numpy()
    out["logprob_drop"] = [x.mean() if len(x) else np.nan for x in lp]
    out["logprob_drop_se"] = [x.std(ddof=1) / np.sqrt(len(x)) if len(x) > 1 else np.nan for x in lp]
    out["p_output"] = [z_pvalue(m, 0.0, se * se) if len(x) > 1 else 1.0
                       for m, se, x in zip(out["logprob_drop"], out["logprob_drop_se"], lp)]
    out["q_output"] = benjamini_hochberg(out["p_output"].to_numpy()) if len(out) else []
    out["moves_output"] = out["q_output"] <= cfg.alpha
    return out
