"""One head's attention score at chosen (query, key) pairs, split exactly into units of four bases.

With ``x̃_i = P(x_i) / s_i`` the head's normalised attention input (what multiplies the ln1-folded ``W_Q``, ``W_K``;
:mod:`fra.engine.inputs`) and ``R_i`` RoPE at position i (the identity without rotary positions), the score is

    score[i, j] = x̃_i M_ij x̃_jᵀ  +  rest,      M_ij = W_Q R_i R_jᵀ W_Kᵀ / attn_scale   (d_model x d_model)

and ``rest`` the pairs of the other query / key components ``c ∈ {x, bias[, pos]}`` (``x`` = ``x̃ W R``, ``bias``
= ``b_Q`` rotated, ``pos`` = shortformer positions) other than ``x·x``: ``(c_i R_i) · (c'_j R_j) / attn_scale``.
Each basis splits the bilinear part into units, and books every term of ``rest`` as one more unit of its own
(``x·bias``, ``bias·x``, ``bias·bias``, ...), so that every basis sums exactly to the score:

* ``fra``: SAE feature pairs ``(a, b)`` (unit ``a * d_sae + b``) and the engine's dense terms (``feat·b_dec``,
  ``error·error``, ``bias·feat``, ...; :mod:`fra.engine.resolver`), read from :func:`fra.engine.resolve`;
* ``svd``: ``M_ij = Σ_r σ_r u_r v_rᵀ``, unit r (σ1 the largest) contributing ``σ_r (x̃_i·u_r)(x̃_j·v_r)``. The SVD
  is thin: ``W_Q = Q_a R_a`` and ``W_K = Q_b R_b`` (QR), so ``M_ij = Q_a C_ij Q_bᵀ`` with the ``d_head x d_head``
  core ``C_ij = (R_a R_i)(R_b R_j)ᵀ / attn_scale``. Without rotary positions ``M`` is one matrix and unit r one
  pair of directions for every (i, j). With rotary positions ``M_ij`` depends on the offset i - j (``R_i R_jᵀ =
  R_{i-j}``), so each pair has its own SVD (of the core formed from the model's cos/sin tables) and unit r is "the
  r-th singular direction of this pair's M": the same rank across pairs, not the same vectors;
* ``residual``: coordinate pairs ``(m, n)`` of the residual stream (unit ``m * d_model + n``), contributing
  ``x̃_i[m] M_ij[m, n] x̃_j[n]``;
* ``rotated``: the same in a seeded random orthonormal basis ``O`` (Haar): ``x̃ -> x̃ O``, ``M -> Oᵀ M O``.

Unit counts: ``fra`` d_sae² + its dense terms, ``svd`` d_head + rest, ``residual`` / ``rotated`` d_model² + rest
(the bias units are there even where the model's biases are zero).

:class:`Concentration` measures how few units carry a head's score at the pairs (:func:`compare_bases` streams the
pairs through it in chunks, so no basis is ever held for all pairs at once).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from jaxtyping import Float, Int
from sae_lens import SAE
from torch import Tensor
from transformer_lens import HookedTransformer

from fra.config import EngineConfig
from fra.engine import FRA, resolve
from fra.engine.inputs import AttentionInputs, check_tokens, qk_weights, read_inputs
from fra.engine.resolver import Projections
from fra.engine.result import segment_sums
from fra.engine.rotation import Rotation
from fra.errors import FRAError

BASES = ("fra", "svd", "residual", "rotated")
FRACTIONS = (0.5, 0.9)  # n50, n90
PREFIX = {"fra": "f", "svd": "σ", "residual": "x", "rotated": "o"}  # unit labels: f3·f7, σ1, x4·x9, o4·o9


@dataclass
class Contributions:
    """Exact per-unit contributions of one basis to one head's score at ``n`` pairs.

    ``values[p, c]`` is column c's contribution at pair p. Dense bases (``units`` None) have one column per unit;
    the ``fra`` basis is sparse: ``units[p, c]`` names column c's unit (-1: an empty slot, value 0). Units
    ``0 .. n_main - 1`` split the bilinear part (pairs ``(u // side, u % side)`` where ``side`` is set), the units
    after them are the named terms ``extra``.
    """

    basis: str
    values: Float[Tensor, "pair column"]
    units: Int[Tensor, "pair column"] | None
    n_main: int
    extra: tuple[str, ...]
    side: int | None = None

    @property
    def n_units(self) -> int:
        return self.n_main + len(self.extra)

    @property
    def total(self) -> Float[Tensor, " pair"]:
        return self.values.sum(-1)

    def label(self, unit: int) -> str:
        if unit >= self.n_main:
            return self.extra[unit - self.n_main]
        p = PREFIX[self.basis]
        return f"{p}{unit + 1}" if self.side is None else f"{p}{unit // self.side}·{p}{unit % self.side}"


def random_rotation(d: int, seed: int, dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu"
                    ) -> Float[Tensor, "d d"]:
    """A Haar-random orthogonal matrix (QR of a seeded Gaussian, signs fixed by R's diagonal), formed in float64."""
    g = torch.randn(d, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    Q, R = torch.linalg.qr(g)
    return (Q * torch.sign(torch.diagonal(R))).to(dtype=dtype, device=device)


def _rotate(rotation: Rotation, v: Float[Tensor, "*n d_head"], pos: Int[Tensor, "*m"]) -> Tensor:
    return rotation.rows(v, pos) if rotation.on else v


class HeadForm:
    """The score of head ``fra.heads[slot]`` on one resolved batch as a bilinear form of x̃ plus the rest terms.

    ``rotation`` is the ``rotated`` basis' O (:func:`random_rotation`). :meth:`at` gives one basis'
    :class:`Contributions` at pairs ``(b, i, j)`` (sequence of the batch, query, key); memory ``n * d_model²`` values
    for ``residual`` / ``rotated``.
    """

    def __init__(self, model: HookedTransformer, inputs: AttentionInputs, fra: FRA, slot: int,
                 rotation: Float[Tensor, "d_model d_model"]):
        self.fra = fra.head(slot)
        W_Q, _, W_K, _ = qk_weights(model, fra.layer, (fra.heads[slot],))
        self.W_Q, self.W_K = W_Q[0], W_K[0]  # [d_model, d_head], ln1's weight folded in
        x = inputs.sae_in - inputs.sae_in.mean(-1, keepdim=True) if inputs.center else inputs.sae_in
        self.x = x / inputs.scale[..., None]  # x̃, [batch, pos, d_model]
        self.rope, self.attn_scale = self.fra.q.rotation, fra.attn_scale
        self.ortho, self.rotated_W = rotation, (rotation.T @ self.W_Q, rotation.T @ self.W_K)
        (self.Q_a, self.R_a), (self.Q_b, self.R_b) = torch.linalg.qr(self.W_Q), torch.linalg.qr(self.W_K)
        self.rest = tuple(n for n in self.fra.q.dense if n in ("bias", "pos"))  # components other than x̃
        names = ("x", *self.rest)
        self.extra = tuple(f"{a}·{b}" for a in names for b in names if (a, b) != ("x", "x"))

    def score(self, b: Tensor, i: Tensor, j: Tensor) -> Float[Tensor, " n"]:
        """The model's score (``hook_attn_scores``) at the pairs."""
        return self.fra.scores[b, 0, i, j]

    def at(self, basis: str, b: Int[Tensor, " n"], i: Int[Tensor, " n"], j: Int[Tensor, " n"]) -> Contributions:
        if basis == "fra":
            return self._fra(b, i, j)
        if basis == "svd":
            return self._dense(basis, self._svd(b, i, j), len(self.R_a), None, b, i, j)
        if basis in ("residual", "rotated"):
            main = self._coordinates(b, i, j, basis == "rotated")
            return self._dense(basis, main, main.shape[1], self.x.shape[-1], b, i, j)
        raise FRAError(f"unknown basis {basis!r}; choose from {BASES}")

    def _dense(self, basis: str, main: Tensor, n_main: int, side: int | None, b: Tensor, i: Tensor, j: Tensor
               ) -> Contributions:
        """``main`` and the rest terms as the columns of one dense basis."""
        q = {"x": _rotate(self.rope, self.x[b, i] @ self.W_Q, i), **{n: self.fra.q.dense[n][b, i, 0]
                                                                     for n in self.rest}}
        k = {"x": _rotate(self.rope, self.x[b, j] @ self.W_K, j), **{n: self.fra.k.dense[n][b, j, 0]
                                                                     for n in self.rest}}
        rest = [(q[a] * k[c]).sum(-1) / self.attn_scale for a, c in (e.split("·") for e in self.extra)]
        return Contributions(basis, torch.cat([main, torch.stack(rest, 1)], 1), None, n_main, self.extra, side)

    def _coordinates(self, b: Tensor, i: Tensor, j: Tensor, rotated: bool) -> Float[Tensor, "n d_model_sq"]:
        """``x̃_i[m] M_ij[m, n] x̃_j[n]`` in the residual basis, or (``rotated``) in O's: ``x̃ O``, ``Oᵀ M O``."""
        xq, xk, W_Q, W_K = self.x[b, i], self.x[b, j], self.W_Q, self.W_K
        if rotated:
            xq, xk, (W_Q, W_K) = xq @ self.ortho, xk @ self.ortho, self.rotated_W
        A, B = _rotate(self.rope, W_Q[None], i[:, None]), _rotate(self.rope, W_K[None], j[:, None])  # [n or 1, d, E]
        M = A @ B.transpose(1, 2) / self.attn_scale
        return (xq[:, :, None] * M * xk[:, None, :]).flatten(1)

    def _svd(self, b: Tensor, i: Tensor, j: Tensor) -> Float[Tensor, "n d_head"]:
        """``σ_r (x̃_i·u_r)(x̃_j·v_r)`` from the SVD of each pair's core (one core without rotary positions)."""
        y, z = self.x[b, i] @ self.Q_a, self.x[b, j] @ self.Q_b  # x̃ in the column spaces of W_Q, W_K
        Ra, Rb = _rotate(self.rope, self.R_a[None], i[:, None]), _rotate(self.rope, self.R_b[None], j[:, None])
        U, S, Vh = torch.linalg.svd(Ra @ Rb.transpose(1, 2) / self.attn_scale)
        return S * (y[:, None] @ U)[:, 0] * (z[:, None] @ Vh.transpose(1, 2))[:, 0]

    def _fra(self, b: Tensor, i: Tensor, j: Tensor) -> Contributions:
        """The engine's feature pairs at the pairs (sparse: the active slot pairs) and its dense terms."""
        d_sae = self.fra.q.U.shape[1]
        vals = self.fra.pairs_at(b, i, j)[:, 0]  # [n, K, K]
        a, c = self.fra.feature_ids[b, i], self.fra.k_ids[b, j]
        units = torch.where((a[:, :, None] >= 0) & (c[:, None, :] >= 0), a[:, :, None] * d_sae + c[:, None, :], -1)
        rest = self.fra.remainder_at(b, i, j)
        n = len(b)
        dense_units = d_sae * d_sae + torch.arange(len(rest), device=units.device).expand(n, -1)
        return Contributions("fra", torch.cat([vals.flatten(1), torch.cat(list(rest.values()), 1)], 1),
                             torch.cat([units.flatten(1), dense_units], 1), d_sae * d_sae, tuple(rest), d_sae)


def units_needed(values: Float[Tensor, "pair column"], fractions: tuple[float, ...] = FRACTIONS
                 ) -> Int[Tensor, "fraction pair"]:
    """Per fraction and pair, the fewest columns (largest |value| first) whose |values| reach that fraction of the
    pair's total |value| (0 where the total is 0); one sort for all fractions."""
    cum = values.abs().sort(-1, descending=True).values.cumsum(-1)
    total = cum[:, -1]
    need = torch.stack([(cum < f * total[:, None]).sum(-1) + 1 for f in fractions])
    return torch.where(total > 0, need, 0)


class Concentration:
    """How concentrated one basis' contributions are, accumulated over chunks of pairs (:meth:`add`).

    :meth:`metrics`: ``n50`` / ``n90`` the median over pairs of :func:`units_needed` at 50% / 90%; ``best_unit``
    (its label and id) the unit with the largest ``best_unit_share`` = Σ_pairs its contribution / Σ_pairs score
    (over the units with a contribution: the unit adding most to the total score in its direction, up or down);
    ``max_residual`` the largest |Σ_units - score| (exactness) next to ``max_abs_score``; ``n_units`` the units
    available.
    """

    def __init__(self) -> None:
        self.needed: list[Tensor] = []  # [fraction, pair] per chunk
        self.ids: Tensor | None = None  # sparse bases: the units met so far
        self.sums: Tensor | None = None  # per unit (or per met unit), Σ over pairs, float64
        self.score_sum, self.max_residual, self.max_abs_score, self.n_pairs = 0.0, 0.0, 0.0, 0
        self.basis: Contributions | None = None

    def add(self, c: Contributions, score: Float[Tensor, " pair"]) -> None:
        self.needed.append(units_needed(c.values).cpu())
        if c.units is None:
            col = c.values.sum(0, dtype=torch.float64)
            self.sums = col if self.sums is None else self.sums + col
        else:
            on = c.units >= 0
            ids = c.units[on] if self.ids is None else torch.cat([self.ids, c.units[on]])
            vals = c.values[on].double() if self.sums is None else torch.cat([self.sums, c.values[on].double()])
            self.ids, _, (self.sums,) = segment_sums(ids, vals)
        self.score_sum += float(score.sum(dtype=torch.float64))
        self.max_residual = max(self.max_residual, float((c.total - score).abs().max()))
        self.max_abs_score = max(self.max_abs_score, float(score.abs().max()))
        self.n_pairs += len(score)
        self.basis = Contributions(c.basis, c.values[:0], None, c.n_main, c.extra, c.side)  # for labels

    def metrics(self) -> dict:
        if self.basis is None:
            raise FRAError("no pairs were added: pass at least one (query, key) pair")
        share = self.sums / self.score_sum
        best = int(share.argmax())
        unit = best if self.ids is None else int(self.ids[best])
        needed = torch.cat(self.needed, 1).numpy()
        return {"n_pairs": self.n_pairs, "n_units": self.basis.n_units,
                **{f"n{round(100 * f)}": float(np.median(n)) for f, n in zip(FRACTIONS, needed)},
                "best_unit": self.basis.label(unit), "best_unit_id": unit, "best_unit_share": float(share[best]),
                "max_residual": self.max_residual, "max_abs_score": self.max_abs_score}


def check_pairs(tokens: Int[Tensor, "seq pos"], seq: Tensor, query: Tensor, key: Tensor
                ) -> tuple[Tensor, Tensor, Tensor]:
    """The (sequence, query, key) index tensors as longs, refused unless causal pairs inside ``tokens``."""
    seq, query, key = (torch.as_tensor(t, dtype=torch.long).flatten().cpu() for t in (seq, query, key))
    S, P = tokens.shape
    if not len(seq) == len(query) == len(key) or not len(seq):
        raise FRAError(f"give one sequence, query and key per pair and at least one pair (got {len(seq)}, "
                       f"{len(query)}, {len(key)})")
    if ((seq < 0) | (seq >= S) | (query >= P) | (key < 0) | (key > query)).any():
        raise FRAError(f"every pair needs a sequence in 0..{S - 1} and a causal key 0 <= key <= query < {P}; "
                       "pass a probe set's seq, query and target")
    return seq, query, key


def contributions(model: HookedTransformer, sae: SAE, tokens: Int[Tensor, "seq pos"], layer: int, head: int,
                  seq: Int[Tensor, " n"], query: Int[Tensor, " n"], key: Int[Tensor, " n"], seed: int = 0,
                  engine: EngineConfig = EngineConfig()) -> tuple[dict[str, Contributions], Float[Tensor, " n"]]:
    """Every basis' contributions to ``head``'s score at the pairs ``(seq, query, key)``, and the model's scores there.

    One model pass and all pairs at once (``n * d_model²`` values for ``residual`` / ``rotated``): for a few
    pairs; :func:`compare_bases` streams many. ``seed`` draws the ``rotated`` basis.
    """
    tokens = check_tokens(model, tokens).to(model.cfg.device)
    seq, query, key = (t.to(tokens.device) for t in check_pairs(tokens, seq, query, key))
    inputs = read_inputs(model, sae, tokens, layer)
    fra = resolve(model, sae, tokens, layer, (head,), engine, inputs=inputs)
    ortho = random_rotation(model.cfg.d_model, seed, inputs.sae_in.dtype, inputs.sae_in.device)
    form = HeadForm(model, inputs, fra, 0, ortho)
    return {basis: form.at(basis, seq, query, key) for basis in BASES}, form.score(seq, query, key)


def compare_bases(model: HookedTransformer, sae: SAE, tokens: Int[Tensor, "seq pos"], layer: int,
                  heads: tuple[int, ...], seq: Int[Tensor, " n"], query: Int[Tensor, " n"], key: Int[Tensor, " n"],
                  seed: int = 0, engine: EngineConfig = EngineConfig(), batch_size: int = 8, block_mib: int = 256
                  ) -> pd.DataFrame:
    """One row per head x basis (``layer``, ``head``, ``basis`` and :meth:`Concentration.metrics`): how concentrated
    each head's score at the pairs ``(seq, query, key)`` is in every basis of :data:`BASES`.

    For a probe set ``p`` (:class:`fra.analysis.probes.Probes`) at its induction targets:
    ``compare_bases(model, sae, p.tokens, layer, heads, p.seq, p.query, p.target)``. The model runs on
    ``batch_size`` sequences at a time (all heads resolved together, feature projections shared); each head's pairs
    go through the bases in chunks of about ``block_mib`` MiB (a pair of the coordinate bases takes d_model² values,
    sorted with their int64 indices; 0: one pair per chunk). ``seed`` draws the ``rotated`` basis.
    """
    tokens = check_tokens(model, tokens)
    seq, query, key = check_pairs(tokens, seq, query, key)
    heads = tuple(heads)
    dev, d = model.cfg.device, model.cfg.d_model
    ortho = random_rotation(d, seed, model.cfg.dtype, dev)
    step = max(1, (block_mib << 20) // (32 * d * d))
    acc = {(h, basis): Concentration() for h in heads for basis in BASES}
    projections = None
    for s0 in range(0, len(tokens), batch_size):
        on = (seq >= s0) & (seq < s0 + batch_size)
        if not on.any():
            continue
        batch = tokens[s0:s0 + batch_size].to(dev)
        inputs = read_inputs(model, sae, batch, layer)
        if projections is None:
            projections = Projections(model, sae, layer, heads, inputs.center)
        fra = resolve(model, sae, batch, layer, heads, engine, inputs=inputs, projections=projections)
        b, i, j = (t[on].to(dev) for t in (seq - s0, query, key))
        for slot, h in enumerate(heads):
            form = HeadForm(model, inputs, fra, slot, ortho)
            for c0 in range(0, len(b), step):
                bc, ic, jc = b[c0:c0 + step], i[c0:c0 + step], j[c0:c0 + step]
                score = form.score(bc, ic, jc)
                for basis in BASES:
                    acc[h, basis].add(form.at(basis, bc, ic, jc), score)
    return pd.DataFrame([{"layer": layer, "head": h, "basis": basis, **acc[h, basis].metrics()}
                         for h in heads for basis in BASES])
