"""Loss recovered (``fra.saes.evals``) against the same quantities by hand: sae_lens' masking of BOS positions, its
per-token means over the evaluated sequences, and the scores built from them."""

import pytest
import torch
from sae_lens import StandardSAE, StandardSAEConfig
from sae_lens.saes.sae import SAEMetadata

from fra.errors import FRAError
from fra.saes.evals import loss_recovered
from tests.conftest import make_model, make_sae, rounding_atol

BOS, LAYER, N_SEQ, POS, BATCH = 0, 1, 6, 12, 3
HOOK = f"blocks.{LAYER}.hook_resid_pre"


def corpus() -> torch.Tensor:
    """BOS at position 0 and at a few positions inside the rows: sae_lens masks every position holding it."""
    tokens = torch.randint(1, 50, (N_SEQ, POS), generator=torch.Generator().manual_seed(3))
    tokens[:, 0] = BOS
    tokens[1, 5] = tokens[4, 2] = tokens[4, POS - 1] = BOS
    return tokens


def by_hand(model, sae, tokens: torch.Tensor, ignore: bool = True) -> dict[str, float]:
    """Per batch as loss_recovered runs it: clean logits, logits with the SAE's reconstruction at non-BOS positions of
    ``HOOK`` and with ``HOOK`` zeroed everywhere; CE of position p (predicting p + 1) and KL(clean || other) at p, each
    kept where token p is not BOS (every position without ``ignore``) and averaged over all kept positions of all
    sequences."""
    ce, kl = {"clean": [], "sae": [], "ablated": []}, {"sae": [], "ablated": []}
    for batch in tokens.split(BATCH):
        keep = batch != BOS if ignore else torch.ones_like(batch, dtype=torch.bool)

        def splice(x, hook, keep=keep):
            return torch.where(keep[..., None], sae.decode(sae.encode(x)), x)

        logits = {"clean": model(batch),
                  "sae": model.run_with_hooks(batch, fwd_hooks=[(HOOK, splice)]),
                  "ablated": model.run_with_hooks(batch, fwd_hooks=[(HOOK, lambda x, hook: torch.zeros_like(x))])}
        logp = {k: v.double().log_softmax(-1) for k, v in logits.items()}
        for k, lp in logp.items():
            ce[k].append(-lp[:, :-1].gather(-1, batch[:, 1:, None])[..., 0][keep[:, :-1]])
        for k in kl:
            kl[k].append((logp["clean"].exp() * (logp["clean"] - logp[k])).sum(-1)[keep])
    ce = {k: torch.cat(v).mean().item() for k, v in ce.items()}
    kl = {k: torch.cat(v).mean().item() for k, v in kl.items()}
    return {"ce_loss_clean": ce["clean"], "ce_loss_sae": ce["sae"], "ce_loss_ablated": ce["ablated"],
            "loss_recovered": (ce["ablated"] - ce["sae"]) / (ce["ablated"] - ce["clean"]), "kl_sae": kl["sae"],
            "kl_recovered": (kl["ablated"] - kl["sae"]) / kl["ablated"], "logits": logits["clean"]}


def test_loss_recovered_is_sae_lens_masking_by_hand():
    model, sae, tokens = make_model(), make_sae(HOOK), corpus()
    got = loss_recovered(sae, model, tokens, BATCH, [BOS])
    want = by_hand(model, sae, tokens)
    # float32 log-softmax and means over the kept positions against float64 from the same logits
    n_kept = int((tokens != BOS).sum())
    atol = rounding_atol(want.pop("logits"), n_kept + model.cfg.d_vocab)
    assert set(got) == set(want)
    for key in ("ce_loss_clean", "ce_loss_sae", "ce_loss_ablated", "kl_sae"):
        assert got[key] == pytest.approx(want[key], abs=atol), key
    spread = want["ce_loss_ablated"] - want["ce_loss_clean"]
    assert got["loss_recovered"] == pytest.approx(want["loss_recovered"], abs=4 * atol / abs(spread))
    assert got["kl_recovered"] == pytest.approx(want["kl_recovered"], rel=1e-4)
    assert got["ce_loss_sae"] != got["ce_loss_clean"] and got["kl_sae"] > 0  # the random SAE does change the output
    without_mask = by_hand(model, sae, tokens, ignore=False)
    assert abs(without_mask["ce_loss_sae"] - want["ce_loss_sae"]) > 100 * atol  # the BOS rows of corpus() matter


def test_an_exact_reconstruction_recovers_all_the_loss():
    """W_enc = [I, -I], W_dec = [I; -I], no biases: ReLU(x) - ReLU(-x) = x, the clean forward pass."""
    d = 32
    sae = StandardSAE(StandardSAEConfig(d_in=d, d_sae=2 * d, metadata=SAEMetadata(hook_name=HOOK)))
    eye = torch.eye(d)
    sae.W_enc.copy_(torch.cat([eye, -eye], dim=1))
    sae.W_dec.copy_(torch.cat([eye, -eye], dim=0))
    sae.b_enc.zero_()
    sae.b_dec.zero_()
    got = loss_recovered(sae.eval(), make_model(), corpus(), BATCH, [BOS])
    assert got["loss_recovered"] == pytest.approx(1.0, abs=1e-5) and got["kl_recovered"] == pytest.approx(1.0, abs=1e-5)
    assert got["ce_loss_sae"] == pytest.approx(got["ce_loss_clean"], abs=1e-5) and got["kl_sae"] < 1e-6


def test_a_short_last_batch_counts_and_no_sequences_are_refused():
    model, sae = make_model(), make_sae(HOOK)
    whole = loss_recovered(sae, model, corpus()[:5], 5, [BOS])
    assert loss_recovered(sae, model, corpus()[:5], 3, [BOS]) == pytest.approx(whole, rel=1e-5)
    with pytest.raises(FRAError, match=r"no evaluation sequences: raise sensitivity.loss_sequences"):
        loss_recovered(sae, model, corpus()[:0], BATCH, [BOS])
