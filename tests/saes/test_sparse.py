import pytest
import torch
from sae_lens import BatchTopKTrainingSAE, BatchTopKTrainingSAEConfig
from sae_lens.saes.sae import TrainStepInput

from fra.saes.sparse import SampledPre, sparse_decode
from fra.saes.training import FastBatchTopKTrainingSAE


@torch.enable_grad()
def test_sparse_decode_and_sampled_pre_match_dense_products_with_gradients():
    gen = torch.Generator().manual_seed(0)
    n, d_in, d_sae = 12, 5, 9
    sae_in = torch.randn(n, d_in, generator=gen, dtype=torch.float64, requires_grad=True)
    W_enc = torch.randn(d_in, d_sae, generator=gen, dtype=torch.float64, requires_grad=True)
    b_enc = torch.randn(d_sae, generator=gen, dtype=torch.float64, requires_grad=True)
    W_dec = torch.randn(d_sae, d_in, generator=gen, dtype=torch.float64, requires_grad=True)
    mask = torch.rand(n, d_sae, generator=gen) < 0.3
    mask[3] = False  # a row with no entry decodes to zero
    rows, cols = mask.nonzero(as_tuple=True)
    pre = (sae_in @ W_enc + b_enc).detach()
    values = SampledPre.apply(sae_in, W_enc, b_enc, pre, rows, cols)
    out = sparse_decode(rows, cols, values, W_dec, n)
    want = torch.where(mask, sae_in @ W_enc + b_enc, 0.0) @ W_dec
    torch.testing.assert_close(out, want)
    assert torch.equal(out[3], torch.zeros(d_in, dtype=torch.float64))
    weight = torch.randn(n, d_in, generator=gen, dtype=torch.float64)
    params = (sae_in, W_enc, b_enc, W_dec)
    got = torch.autograd.grad((out * weight).sum(), params)
    for g, w in zip(got, torch.autograd.grad((want * weight).sum(), params)):
        torch.testing.assert_close(g, w)


def _step(sae, fn, x, dead):
    sae.zero_grad()
    out = fn(TrainStepInput(sae_in=x, dead_neuron_mask=dead, coefficients={}, n_training_steps=0,
                            is_logging_step=False))
    out.loss.backward()
    return out, {name: p.grad.clone() for name, p in sae.named_parameters()}, sae.topk_threshold.clone()


@pytest.mark.parametrize("rescale, b_dec_in", [(True, True), (False, True), (True, False)])
@pytest.mark.parametrize("n_dead", [0, 5, 16, 40])  # none; under, at and over d_in // 2 (above it, the top d_in // 2)
@torch.enable_grad()
def test_sparse_training_step_equals_sae_lens_dense_step(rescale, b_dec_in, n_dead):
    torch.manual_seed(0)
    d_in = 32
    sae = FastBatchTopKTrainingSAE(BatchTopKTrainingSAEConfig(d_in=d_in, d_sae=4 * d_in, k=6.0, device="cpu",
                                                              rescale_acts_by_decoder_norm=rescale,
                                                              apply_b_dec_to_input=b_dec_in,
                                                              normalize_activations="expected_average_only_in"))
    with torch.no_grad():
        sae.b_dec.normal_()
        sae.b_enc.normal_(0, 0.1)
        sae.W_dec.mul_(torch.rand(4 * d_in, 1) + 0.5)  # decoder norms differ: the rescaling changes the selection
    x = torch.randn(256, d_in) * 2
    dead = torch.zeros(4 * d_in, dtype=torch.bool)
    dead[torch.randperm(4 * d_in)[:n_dead]] = True
    start = sae.topk_threshold.clone()
    want, want_grads, want_threshold = _step(sae, lambda s: BatchTopKTrainingSAE.training_forward_pass(sae, s), x, dead)
    sae.topk_threshold = start
    got, grads, threshold = _step(sae, sae.training_forward_pass, x, dead)
    # bitwise: both steps form the pre-activations with the same matmul and select with the same values
    assert torch.equal(got.feature_acts, want.feature_acts) and torch.equal(threshold, want_threshold)
    assert (got.losses["auxiliary_reconstruction_loss"] > 0) == (n_dead > 0)
    for key in ("mse_loss", "auxiliary_reconstruction_loss"):
        torch.testing.assert_close(got.losses[key], want.losses[key], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(got.loss, want.loss, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(got.sae_out, want.sae_out, rtol=1e-5, atol=1e-5)
    for name, grad in want_grads.items():
        torch.testing.assert_close(grads[name], grad, rtol=1e-4, atol=1e-5 * grad.abs().max().item(), msg=name)


@pytest.mark.parametrize("option", [{"normalize_activations": "layer_norm"}, {"reshape_activations": "hook_z"}])
def test_sparse_step_refuses_options_it_bypasses(option):
    with pytest.raises(ValueError, match="normalize_activations"):
        FastBatchTopKTrainingSAE(BatchTopKTrainingSAEConfig(d_in=8, d_sae=16, k=2.0, **option))


@torch.enable_grad()
def test_sae_lens_trainer_trains_the_same_sae_with_either_step():
    """A few steps of SAETrainer (dead-latent tracking, AuxK, threshold, activation scale): same weights."""
    from sae_lens import SAETrainer
    from sae_lens.config import SAETrainerConfig

    x = torch.randn(4096, 16, generator=torch.Generator().manual_seed(0)) * 3 + 1
    trained = []
    for cls in (BatchTopKTrainingSAE, FastBatchTopKTrainingSAE):
        torch.manual_seed(0)
        sae = cls(BatchTopKTrainingSAEConfig(d_in=16, d_sae=64, k=3.0,
                                             normalize_activations="expected_average_only_in"))
        cfg = SAETrainerConfig(total_training_samples=8 * 256, train_batch_size_samples=256, lr=1e-3, lr_end=1e-4,
                               device="cpu", dead_feature_window=2, feature_sampling_window=4,
                               n_batches_for_norm_estimate=2)
        trained.append(SAETrainer(cfg, sae, iter(x.split(256))).fit())
    want, got = trained
    assert got.topk_threshold > 0
    torch.testing.assert_close(got.topk_threshold, want.topk_threshold)
    for name, p in want.named_parameters():
        torch.testing.assert_close(dict(got.named_parameters())[name], p, rtol=1e-4, atol=1e-5, msg=name)
