"""Sparse kernels for training a TopK SAE: only the kept (row, feature) entries enter the backward pass.

A BatchTopK SAE keeps ~k of d_sae pre-activations per row, so five of the six dense matmuls of a training step
(decoder forward, and the gradients of decoder and encoder) touch mostly zeros. Here the decoder is an
``embedding_bag`` over the kept entries, and :class:`SampledPre` hands autograd the encoder's pre-activations at
those entries, with a backward pass that multiplies by them only. The numbers are the dense path's up to float
summation order (tests compare every gradient with sae_lens' own training step).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int


def bag_offsets(rows: Int[torch.Tensor, " nnz"], n: int) -> Int[torch.Tensor, " n"]:
    """Start of each row's entries in ``rows`` (sorted ascending), as ``embedding_bag`` takes them."""
    return torch.searchsorted(rows, torch.arange(n, device=rows.device))


def sparse_decode(
    rows: Int[torch.Tensor, " nnz"], cols: Int[torch.Tensor, " nnz"], values: Float[torch.Tensor, " nnz"],
    W_dec: Float[torch.Tensor, "d_sae d_in"], n: int,
) -> Float[torch.Tensor, "n d_in"]:
    """``A @ W_dec`` for the n x d_sae matrix ``A`` with ``values`` at (``rows``, ``cols``), rows sorted."""
    return F.embedding_bag(cols, W_dec, bag_offsets(rows, n), mode="sum", per_sample_weights=values)


class SampledPre(torch.autograd.Function):
    """The entries (``rows``, ``cols``) of ``sae_in @ W_enc + b_enc``, already computed as ``pre``.

    Backward: with G the sparse n x d_sae matrix of the entries' gradients, ``G @ W_enc.T`` for ``sae_in``,
    ``sae_in.T @ G`` for ``W_enc`` and G's column sums for ``b_enc``, each over the entries only.
    """

    @staticmethod
    def forward(ctx, sae_in: Float[torch.Tensor, "n d_in"], W_enc: Float[torch.Tensor, "d_in d_sae"],
                b_enc: Float[torch.Tensor, " d_sae"], pre: Float[torch.Tensor, "n d_sae"],
                rows: Int[torch.Tensor, " nnz"], cols: Int[torch.Tensor, " nnz"]) -> Float[torch.Tensor, " nnz"]:
        ctx.save_for_backward(sae_in, W_enc, rows, cols)
        return pre[rows, cols]

    @staticmethod
    def backward(ctx, grad: Float[torch.Tensor, " nnz"]):
        sae_in, W_enc, rows, cols = ctx.saved_tensors
        n, d_sae = len(sae_in), W_enc.shape[1]
        d_sae_in = F.embedding_bag(cols, W_enc.t().contiguous(), bag_offsets(rows, n), mode="sum",
                                   per_sample_weights=grad)
        by_col = torch.argsort(cols, stable=True)
        d_W_enc = F.embedding_bag(rows[by_col], sae_in, bag_offsets(cols[by_col], d_sae), mode="sum",
                                  per_sample_weights=grad[by_col])
        d_b_enc = torch.zeros(d_sae, dtype=grad.dtype, device=grad.device).index_add_(0, cols, grad)
        return d_sae_in, d_W_enc.t().contiguous(), d_b_enc, None, None, None
