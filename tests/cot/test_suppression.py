"""Attention suppression: the sentence x sentence KL matrix and its correlation with receiver attention."""

import math

import pytest
import torch
import torch.nn.functional as F

from fra.cot.suppression import (
    attention_vs_kl,
    kl_rows,
    pooled_correlation,
    sentence_ends,
    suppression_hooks,
    suppression_kl,
    suppression_masks,
    token_kl,
)
from tests.conftest import kl_atol, make_model

# BOS and a 2-token prefix outside every sentence, then 6 sentences.
SENTENCE_OF = torch.tensor([-1, -1, -1] + [0] * 4 + [1] * 5 + [2] * 3 + [3] * 6 + [4] * 4 + [5] * 5)
S = 6


@pytest.fixture(scope="module")
def setup():
    model = make_model(n_ctx=64)
    tokens = torch.randint(1, 50, (len(SENTENCE_OF),), generator=torch.Generator().manual_seed(0))
    tokens[0] = 0
    return model, tokens


def test_kl_matrix_is_causal_and_nonnegative(setup):
    model, tokens = setup
    KL = suppression_kl(model, tokens, SENTENCE_OF, S, batch_size=3)
    assert KL.shape == (S, S)
    later = torch.ones(S, S, dtype=torch.bool).tril(-1)
    assert KL[~later].isnan().all()
    assert KL[later].isfinite().all() and (KL[later] >= 0).all() and (KL[later] > 1e-6).any()
    single = suppression_kl(model, tokens, SENTENCE_OF, S, batch_size=1)
    # passes of 1 or 3 copies: logits through d_model-term matmuls rounded otherwise, which a KL feels as ~d sqrt(KL)
    tol = kl_atol(KL[later], model(tokens[None]), model.cfg.d_model)
    assert single[~later].isnan().all() and ((single[later] - KL[later]).abs() <= tol).all()


def test_no_change_before_the_suppressed_sentence_ends(setup):
    model, tokens = setup
    D = token_kl(model, tokens, SENTENCE_OF, S, batch_size=4)
    ends = sentence_ends(SENTENCE_OF, S)
    assert ends.tolist() == [7, 12, 15, 21, 25, 30]
    for j in range(S - 1):
        assert D[j, :ends[j]].abs().max() < 1e-9
        assert D[j, ends[j]:].max() > 1e-6  # suppression does change the later predictions
    assert D[S - 1].abs().max() < 1e-9  # nothing comes after the last sentence


def test_suppression_removes_the_attention(setup):
    model, tokens = setup
    js = [1, 3]
    mask = suppression_masks(SENTENCE_OF, js, sentence_ends(SENTENCE_OF, S))
    assert mask[0, 12:, 7:12].all() and mask[0].sum() == (len(SENTENCE_OF) - 12) * 5
    seen = {}

    def keep(pattern, hook):
        seen[hook.name] = pattern.clone()

    hooks = suppression_hooks(mask[:, None], model.cfg.n_layers)
    hooks += [(f"blocks.{layer}.attn.hook_pattern", keep) for layer in range(model.cfg.n_layers)]
    model.run_with_hooks(tokens[None].expand(2, -1), fwd_hooks=hooks)
    base = model.run_with_cache(tokens[None])[1]
    for layer in range(model.cfg.n_layers):
        p = seen[f"blocks.{layer}.attn.hook_pattern"]  # [2 head q k]
        assert (p[mask[:, None].expand_as(p)] == 0).all()
        torch.testing.assert_close(p.sum(-1), torch.ones_like(p.sum(-1)))
        assert (base[f"blocks.{layer}.attn.hook_pattern"][0][:, mask[0]] > 0).all()  # there was attention to remove
        torch.testing.assert_close(p[0, :, :12], base[f"blocks.{layer}.attn.hook_pattern"][0, :, :12])


def test_kl_matches_renormalised_patterns(setup):
    """Zeroing the masked pattern entries and renormalising each row is the same suppression."""
    model, tokens = setup
    j = 2
    mask = suppression_masks(SENTENCE_OF, [j], sentence_ends(SENTENCE_OF, S))[0]

    def renormalise(pattern, hook):
        p = pattern.masked_fill(mask, 0.0)
        return p / p.sum(-1, keepdim=True)

    hooks = [(f"blocks.{layer}.attn.hook_pattern", renormalise) for layer in range(model.cfg.n_layers)]
    logq = F.log_softmax(model.run_with_hooks(tokens[None], fwd_hooks=hooks)[0].double(), -1)
    logp = F.log_softmax(model(tokens[None])[0].double(), -1)
    per_token = (logp.exp() * (logp - logq)).sum(-1)
    KL = suppression_kl(model, tokens, SENTENCE_OF, S)
    for i in range(j + 1, S):  # masked scores or a renormalised pattern: logits rounded otherwise (mean of KLs: Jensen)
        tol = float(kl_atol(KL[i, j], model(tokens[None]), model.cfg.d_model))
        assert KL[i, j].item() == pytest.approx(per_token[SENTENCE_OF == i].mean().item(), abs=tol)


def lower(S: int, seed: int) -> torch.Tensor:
    M = torch.rand(S, S, generator=torch.Generator().manual_seed(seed))
    return M.masked_fill(~torch.ones(S, S, dtype=torch.bool).tril(-1), float("nan"))


def test_monotone_relation_gives_spearman_one():
    M = lower(8, 0)
    KL = torch.exp(5 * M) - 1
    r = attention_vs_kl(M, KL)
    assert r["spearman"] == pytest.approx(1.0) and 0.5 < r["pearson"] < 1 and r["n_pairs"] == 28
    KL[5, 0] = float("nan")
    assert attention_vs_kl(M, KL)["n_pairs"] == 27
    r = attention_vs_kl(M, -KL, proximity=2)
    assert r["spearman"] == pytest.approx(-1.0) and r["n_pairs"] == 15 - 1  # pairs i > j + 2, less the NaN one
    assert math.isnan(attention_vs_kl(M[:2, :2], KL[:2, :2])["spearman"])  # one pair is too few


def test_pooled_correlation():
    pairs = [(M, 2 * M ** 3) for M in (lower(6, 1), lower(7, 2))]
    r = pooled_correlation(pairs)
    assert r["spearman"] == pytest.approx(1.0) and r["n_pairs"] == 15 + 21
    assert r["mean_spearman"] == pytest.approx(1.0) and r["n_traces"] == 2
    M = lower(6, 3)
    r = pooled_correlation(pairs + [(M, -M)])
    assert r["mean_spearman"] == pytest.approx(1 / 3) and r["n_traces"] == 3 and r["spearman"] < 1


def test_kl_rows_equals_the_definition():
    gen = torch.Generator().manual_seed(0)
    base, logits = 3 * torch.randn(5, 40, generator=gen), 3 * torch.randn(3, 5, 40, generator=gen)
    base[0, :10] = -1e4  # probabilities that underflow to 0 in float64
    logp = torch.log_softmax(base.double(), -1)
    want = torch.stack([
        torch.where(logp.exp() > 0, logp.exp() * (logp - torch.log_softmax(x.double(), -1)), 0.0).sum(-1)
        for x in logits])
    torch.testing.assert_close(kl_rows(base, logits), want, rtol=1e-10, atol=1e-12)
    assert kl_rows(base, base[None]).abs().max() < 1e-12
