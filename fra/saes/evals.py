"""An SAE spliced into the forward pass: loss recovered and KL, by sae_lens' own evaluation (``sae_lens.evals``)."""

from __future__ import annotations

from jaxtyping import Int
from sae_lens import SAE
from sae_lens.evals import get_downstream_reconstruction_metrics
from sae_lens.training.activation_scaler import ActivationScaler
from torch import Tensor
from transformer_lens import HookedTransformer

from fra.errors import FRAError


class _TokenBatches:
    """The one method of sae_lens' ``ActivationsStore`` that its reconstruction evaluation calls, over fixed tokens:
    consecutive batches, so every sequence is evaluated once."""

    def __init__(self, tokens: Int[Tensor, "seq pos"]):
        self.tokens, self.start = tokens, 0

    def get_batch_tokens(self, n: int) -> Int[Tensor, "n pos"]:
        batch = self.tokens[self.start : self.start + n]
        self.start += n
        return batch


def loss_recovered(sae: SAE, model: HookedTransformer, tokens: Int[Tensor, "seq pos"], batch_size: int,
                   ignore_tokens: list[int]) -> dict[str, float]:
    """sae_lens' ``get_downstream_reconstruction_metrics`` on ``tokens``: next-token loss and KL with the SAE's
    reconstruction spliced in at its hook, against the clean model and zero ablation; ``loss_recovered`` =
    (CE_ablated - CE_sae) / (CE_ablated - CE_clean). Positions holding ``ignore_tokens`` (BOS) keep their activation
    and are left out of the means."""
    if len(tokens) == 0:
        raise FRAError("no evaluation sequences: raise sensitivity.loss_sequences")
    n_batches = -(-len(tokens) // batch_size)  # the last batch may be shorter: every sequence counts
    m = get_downstream_reconstruction_metrics(
        sae, model, _TokenBatches(tokens.to(model.cfg.device)), ActivationScaler(), compute_kl=True,
        compute_ce_loss=True, n_batches=n_batches, eval_batch_size_prompts=batch_size, ignore_tokens=ignore_tokens)
    return {"loss_recovered": m["ce_loss_score"], "ce_loss_clean": m["ce_loss_without_sae"],
            "ce_loss_sae": m["ce_loss_with_sae"], "ce_loss_ablated": m["ce_loss_with_ablation"],
            "kl_sae": m["kl_div_with_sae"], "kl_recovered": m["kl_div_score"]}
