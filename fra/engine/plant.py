"""Planted channels: a known feature-pair channel added to a real head, in the model and in its decomposition alike.

A plant ``(head, a, b, beta)`` adds ``beta * (f_ia / s_i) * (f_jb / s_j)`` to the head's score on every causal pair
(i, j): the SAE's own feature activations at the layer's input over ln1's frozen scale, the coefficients the
decomposition already carries (``Side.amount``). In a forward pass :func:`plant_hooks` adds it at
``hook_attn_scores``; in a resolved result :func:`planted` adds the same term to the scores and to the pair
``FRA[i, j, a, b]`` (:class:`PlantedFRA`), so the terms still sum to the planted model's scores and every path a
search reads (pairs at the targets, channel rows and maps, the exactness check, the shuffled-keys null) sees the
channel. No weight changes: the plant is exact for any architecture the engine resolves.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import torch
from jaxtyping import Float, Int
from sae_lens import SAE
from torch import Tensor
from transformer_lens import HookedTransformer

from fra.engine.result import FEATURE_PAIRS, FRA
from fra.saes.loading import attention_input_hooks, sae_hook_name


@dataclass(frozen=True)
class Plant:
    """A channel (a, b) of strength ``beta`` added to head ``head`` (module docstring)."""

    head: int
    a: int
    b: int
    beta: float


@dataclass
class PlantedFRA(FRA):
    """An :class:`FRA` whose pair ``(a, b)`` of the plant's head carries the plant on top of its own value."""

    plant: Plant | None = None

    def _slot(self) -> int | None:
        return self.heads.index(self.plant.head) if self.plant is not None and self.plant.head in self.heads else None

    def _coefficients(self) -> tuple[Float[Tensor, "batch pos"], Float[Tensor, "batch pos"]]:
        """``f_ia / s_i`` of the query feature a and ``f_jb / s_j`` of the key feature b (shuffled with the keys)."""
        p = self.plant
        return self.q.amount(torch.tensor([p.a]))[:, 0], self.k.amount(torch.tensor([p.b]))[:, 0]

    def plant_map(self, causal: bool = True) -> Float[Tensor, "batch pos pos"]:
        """The plant's term on every (query, key) pair, zero above the diagonal (unless ``causal`` is false, as
        :meth:`channel` leaves them)."""
        cq, ck = self._coefficients()
        out = self.plant.beta * cq[:, :, None] * ck[:, None, :]
        return out * self.causal_mask() if causal else out

    def pairs_at(self, b: Tensor, i: Tensor, j: Tensor) -> Float[Tensor, "n head K K"]:
        vals = super().pairs_at(b, i, j)
        slot = self._slot()
        if slot is not None:
            p = self.plant
            cq, ck = self._coefficients()
            dev = vals.device
            at_a = (self.feature_ids[b, i] == p.a).to(vals.dtype)  # [n, K]: the query slot holding a
            at_b = (self.k_ids[b, j] == p.b).to(vals.dtype)  # [n, K]: the key slot holding b
            add = p.beta * cq[b, i].to(dev) * ck[b, j].to(dev)
            vals = vals.clone()  # an inference tensor: updated as a copy
            vals[:, slot] += add[:, None, None] * at_a[:, :, None] * at_b[:, None, :]
        return vals

    def channel(self, slot: int, a: Int[Tensor, " M"], b: Int[Tensor, " M"]) -> Float[Tensor, "batch M pos pos"]:
        out = super().channel(slot, a, b)
        if slot == self._slot():
            hit = ((a == self.plant.a) & (b == self.plant.b)).to(out.device)
            out = out + hit[None, :, None, None] * self.plant_map(causal=False)[:, None]
        return out

    def channel_rows(self, slot: int | Int[Tensor, " M"], seq: Int[Tensor, " n"], query: Int[Tensor, " n"],
                     a: Int[Tensor, " M"], b: Int[Tensor, " M"]) -> tuple[Tensor, Tensor, Float[Tensor, "R pos"]]:
        n, m, rows = super().channel_rows(slot, seq, query, a, b)
        mine = self._slot()
        if mine is not None:
            slots = torch.full_like(a, slot) if isinstance(slot, int) else slot
            hit = ((a == self.plant.a) & (b == self.plant.b) & (slots == mine)).to(rows.device)[m]
            if hit.any():
                cq, ck = self._coefficients()
                s, q = seq.to(rows.device)[n], query.to(rows.device)[n]
                rows = rows + hit[:, None] * self.plant.beta * cq[s, q][:, None] * ck[s]
        return n, m, rows

    def terms(self, from_pairs: bool = True) -> dict[str, Float[Tensor, "batch head pos pos"]]:
        out = super().terms(from_pairs)
        slot = self._slot()
        if slot is not None:
            pairs = out[FEATURE_PAIRS].clone()
            pairs[:, slot] += self.plant_map()
            out[FEATURE_PAIRS] = pairs
        return out


def planted(resolved: FRA, plant: Plant) -> PlantedFRA:
    """``resolved`` with ``plant`` in its head's scores and in the pair (a, b) (the head must be resolved)."""
    if plant.head not in resolved.heads:
        raise ValueError(f"head {plant.head} is not resolved here (heads {resolved.heads})")
    out = PlantedFRA(**{f.name: getattr(resolved, f.name) for f in dataclasses.fields(resolved)}, plant=plant)
    scores = resolved.scores.clone()
    scores[:, resolved.heads.index(plant.head)] += out.plant_map()
    out.scores = scores
    return out


def plant_hooks(model: HookedTransformer, sae: SAE, layer: int, plant: Plant) -> list[tuple[str, Callable]]:
    """Forward hooks that add ``plant`` to head ``plant.head``'s scores at ``blocks.L.attn.hook_attn_scores``: the SAE
    encodes the layer's attention input, divided by ln1's scale when the SAE reads the unnormalised residual, as in
    the decomposition."""
    seen: dict[str, Tensor] = {}

    def read_input(x: Tensor, hook) -> None:
        f = sae.encode(x.to(sae.W_enc.dtype))
        seen["a"], seen["b"] = f[..., plant.a], f[..., plant.b]

    def read_scale(scale: Tensor, hook) -> None:
        seen["scale"] = scale[..., 0]

    def add(scores: Tensor, hook) -> Tensor:
        s = seen.get("scale", 1.0)
        causal = torch.ones(scores.shape[-2:], dtype=torch.bool, device=scores.device).tril()
        term = plant.beta * (seen["a"] / s)[:, :, None] * (seen["b"] / s)[:, None, :]
        scores[:, plant.head] += term.to(scores.dtype) * causal
        return scores

    hooks = [(sae_hook_name(sae), read_input), (f"blocks.{layer}.attn.hook_attn_scores", add)]
    if sae_hook_name(sae) == attention_input_hooks(layer)[0] and model.cfg.normalization_type is not None:
        hooks.insert(1, (f"blocks.{layer}.ln1.hook_scale", read_scale))
    return hooks
