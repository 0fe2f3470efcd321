"""Random SAEs with known shape: for checks of the engine on real models and the random-SAE negative control."""

from __future__ import annotations

import torch
from sae_lens import TopKSAE, TopKSAEConfig
from sae_lens.saes.sae import SAEMetadata


def random_sae(d_in: int, hook: str, d_sae: int, k: int, seed: int = 0) -> TopKSAE:
    """A random TopK SAE on ``hook``: exactly ``k`` active features per position, whatever the input's norm."""
    torch.manual_seed(seed)
    sae = TopKSAE(TopKSAEConfig(d_in=d_in, d_sae=d_sae, k=k, metadata=SAEMetadata(hook_name=hook))).eval()
    with torch.no_grad():
        sae.b_dec.copy_(0.1 * torch.randn(d_in))
        sae.b_enc.copy_(0.1 * torch.randn(d_sae))
    return sae


def random_unit_sae(d_in: int, hook: str, d_sae: int, k: int, seed: int = 0) -> TopKSAE:
    """A TopK SAE whose decoder rows are random unit directions and whose encoder is their transpose.

    No bias: it keeps the real SAE's sparsity (``k`` active features) and nothing of its dictionary,
    the random-SAE negative control.
    """
    gen = torch.Generator().manual_seed(seed)
    sae = TopKSAE(TopKSAEConfig(d_in=d_in, d_sae=d_sae, k=k, metadata=SAEMetadata(hook_name=hook))).eval()
    W = torch.randn(d_sae, d_in, generator=gen)
    W = W / W.norm(dim=1, keepdim=True)
    with torch.no_grad():
        sae.W_dec.copy_(W)
        sae.W_enc.copy_(W.T)
        sae.b_dec.zero_()
        sae.b_enc.zero_()
    return sae
