"""Receiver heads: sentence attention, vertical scores, kurtosis, the receiver table and sentence kinds."""

import math

import numpy as np
import pytest
import torch
from scipy import stats

from fra.cot.anchors import (
    kurtosis,
    patterns,
    receiver_kinds,
    receiver_table,
    sentence_attention,
    stability,
    vertical_scores,
)
from tests.conftest import make_model

# BOS and a prompt prefix outside every sentence, a gap (-1) between sentences, and an empty sentence 5.
SENTENCE_OF = torch.tensor([-1, -1, 0, 0, 0, 1, 1, -1, 2, 2, 2, 2, 3, 4, 4])
S = 6


def causal_pattern(*batch: int, pos: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    scores = torch.randn(*batch, pos, pos, generator=g)
    return scores.masked_fill(~torch.ones(pos, pos, dtype=torch.bool).tril(), float("-inf")).softmax(-1)


def test_sentence_attention_matches_double_loop():
    P = causal_pattern(2, 3, pos=len(SENTENCE_OF))
    M = sentence_attention(P, SENTENCE_OF, S)
    assert M.shape == (2, 3, S, S)
    want = torch.full((2, 3, S, S), float("nan"))
    for i in range(S):
        for j in range(i + 1):
            q, k = (SENTENCE_OF == i).nonzero().ravel(), (SENTENCE_OF == j).nonzero().ravel()
            if len(q) and len(k):
                want[..., i, j] = P[..., q[:, None], k[None, :]].mean(dim=(-2, -1))
    torch.testing.assert_close(M, want, equal_nan=True)
    upper = ~torch.ones(S, S, dtype=torch.bool).tril()
    assert M[..., upper].isnan().all()
    assert M[..., :5, :5][..., ~upper[:5, :5]].isfinite().all()  # only the empty sentence 5 is NaN below
    torch.testing.assert_close(sentence_attention(P[1, 2], SENTENCE_OF, S), M[1, 2], equal_nan=True)


def test_patterns_are_one_softmax_per_head():
    model = make_model(n_ctx=32)
    tokens = torch.randint(0, 50, (12,), generator=torch.Generator().manual_seed(1))
    P = patterns(model, tokens)
    assert P.shape == (2, 4, 12, 12) and P.device.type == "cpu"
    torch.testing.assert_close(P.sum(-1), torch.ones(2, 4, 12))
    assert (P.triu(1) == 0).all()


@pytest.mark.parametrize("proximity", [0, 1, 4])
def test_vertical_scores_match_loop(proximity):
    n = 9
    M = sentence_attention(causal_pattern(2, pos=n, seed=proximity), torch.arange(n), n)  # token = sentence
    M[0, 7, 1] = float("nan")  # a NaN entry is skipped, not propagated
    v = vertical_scores(M, proximity)
    assert v.shape == (2, n)
    want = torch.full((2, n), float("nan"))
    for b in range(2):
        for j in range(n):
            col = [M[b, i, j] for i in range(j + proximity + 1, n) if not math.isnan(M[b, i, j])]
            if col:
                want[b, j] = sum(col) / len(col)
    torch.testing.assert_close(v, want, equal_nan=True)
    assert v[:, n - proximity - 1:].isnan().all() and v[:, :n - proximity - 1].isfinite().all()


def test_kurtosis_matches_scipy():
    g = torch.Generator().manual_seed(0)
    v = torch.randn(6, 25, generator=g, dtype=torch.float64) ** 3
    v[torch.rand(6, 25, generator=g) < 0.2] = float("nan")
    want = stats.kurtosis(v.numpy(), axis=-1, fisher=True, bias=True, nan_policy="omit")
    torch.testing.assert_close(kurtosis(v), torch.as_tensor(np.asarray(want)))
    torch.testing.assert_close(kurtosis(v.float()), torch.as_tensor(np.asarray(want)).float())
    assert kurtosis(v[None]).shape == (1, 6)


def test_kurtosis_nan_cases():
    nan = float("nan")
    v = torch.tensor([[1.0, 2.0, 5.0, nan, nan],  # 3 finite values
                      [3.0, 3.0, 3.0, 3.0, nan],  # zero variance
                      [nan] * 5,
                      [1.0, 2.0, 5.0, 7.0, nan]])
    k = kurtosis(v)
    assert k[:3].isnan().all() and k[3].isfinite()


def planted_kurtosis(n_traces: int, seed: int = 0) -> torch.Tensor:
    """Kurtosis of random vertical scores for 2 layers x 3 heads; head (1, 2) has one spike per trace."""
    g = torch.Generator().manual_seed(seed)
    v = torch.rand(n_traces, 2, 3, 20, generator=g)
    v[:, 1, 2, 5] = 50.0
    v[..., -3:] = float("nan")  # the last sentences have no vertical score
    return kurtosis(v)


def test_receiver_table_ranks_planted_head_first():
    kurt = planted_kurtosis(6)
    kurt[0, 0, 0] = float("nan")
    split = ["discovery", "heldout"] * 3
    table = receiver_table(kurt, split)
    assert len(table) == 6 and list(table[["layer", "head"]].iloc[5]) == [1, 2]
    top = table.sort_values("rank").iloc[0]
    assert (top["layer"], top["head"], top["rank"]) == (1, 2, 1)
    assert table.sort_values("kurt_heldout", ascending=False).iloc[0][["layer", "head"]].tolist() == [1, 2]
    assert sorted(table["rank"].tolist()) == [1, 2, 3, 4, 5, 6]
    row = table.iloc[0]  # (0, 0): NaN in trace 0 (discovery) is skipped
    assert row["n_discovery"] == 2 and row["n_heldout"] == 3
    assert row["kurt_discovery"] == pytest.approx(kurt[[2, 4], 0, 0].mean().item())
    assert row["kurt_all"] == pytest.approx(kurt[1:, 0, 0].mean().item())


def test_stability_of_identical_splits_is_perfect():
    kurt = planted_kurtosis(3)
    table = receiver_table(torch.cat([kurt, kurt]), ["discovery"] * 3 + ["heldout"] * 3)
    s = stability(table, 2)
    assert s["spearman"] == pytest.approx(1.0) and s["n_heads"] == 6 and s["overlap"] == 2
    flipped = receiver_table(torch.cat([kurt, -kurt]), ["discovery"] * 3 + ["heldout"] * 3)
    s = stability(flipped, 2)
    assert s["spearman"] == pytest.approx(-1.0) and s["overlap"] == 0


def test_receiver_kinds_enrichment():
    nan = float("nan")
    vertical = [torch.tensor([0.1, 0.9, 0.2, 0.8, nan]), torch.tensor([0.7, 0.3, 0.6, nan])]
    kinds = [["problem", "plan", "computation", "plan", "final_answer"], ["plan", "computation", "check", "plan"]]
    df = receiver_kinds(vertical, kinds, top=2).set_index("kind")
    # scored sentences: problem 1, plan 3, computation 2, check 1 (7); top: plan 3, check 1 (4)
    assert df.loc["plan", "n_sentences"] == 3 and df.loc["plan", "n_top"] == 3
    assert df.loc["plan", "share"] == pytest.approx(3 / 7) and df.loc["plan", "top_share"] == pytest.approx(3 / 4)
    assert df.loc["plan", "enrichment"] == pytest.approx(7 / 4)
    assert df.loc["computation", "enrichment"] == 0 and df.loc["check", "enrichment"] == pytest.approx(7 / 4)
    assert df.loc["final_answer", "n_sentences"] == 0 and math.isnan(df.loc["final_answer", "enrichment"])
    assert df["n_top"].sum() == 4
