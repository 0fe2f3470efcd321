import pandas as pd
import pytest
import torch

from fra.analysis.dense import (
    DENSE,
    corpus_profile,
    dense_features,
    dense_term,
    layer_profile,
    split_shares,
    split_terms,
)
from fra.engine import FEATURE_PAIRS, resolve
from fra.errors import FRAError
from tests.conftest import make_model, make_sae, rounding_atol


def test_dense_features_by_density_or_sink_share():
    profile = pd.DataFrame({"feature": [3, 7, 9, 11, 12], "firing_rate": [0.99, 0.2, 0.51, 0.5, 0.0],
                            "sink_share": [0.1, 0.5, 0.0, 0.49, float("nan")]})
    assert dense_features(profile) == [3, 7, 9]  # 11: at the density, below the sink share; 12: never fires
    assert dense_features(profile, density=0.1, sink_share=0.9) == [3, 7, 9, 11]


def test_a_layer_profile_takes_features_csv_then_the_corpus():
    features = pd.DataFrame({"layer": [1, 1, 2], "feature": [3, 5, 3], "firing_rate": [0.9, 0.1, 0.0],
                             "sink_share": [0.0, 0.8, 0.0]}).set_index(["layer", "feature"])
    corpus = pd.DataFrame({"feature": [3, 4, 5], "firing_rate": [0.0, 0.7, 0.0], "sink_share": [0.0, 0.0, 0.0],
                           "token_share": 0.5})
    got = layer_profile(features, 1, corpus)
    assert got.to_dict("list") == {"feature": [3, 5, 4], "firing_rate": [0.9, 0.1, 0.7], "sink_share": [0.0, 0.8, 0.0]}
    assert dense_features(got) == [3, 4, 5]
    assert layer_profile(features, 7).empty and layer_profile(None, 1, corpus)["feature"].tolist() == [3, 4, 5]


def test_a_profile_without_its_columns_is_refused():
    with pytest.raises(FRAError, match=r"needs columns feature, firing_rate, sink_share; \['sink_share'\] missing"):
        dense_features(pd.DataFrame({"feature": [1], "firing_rate": [0.9]}))


@pytest.mark.parametrize("norm, positions", [("LN", "standard"), ("RMS", "rotary"), ("LN", "shortformer")])
def test_dense_term_is_the_dense_channels_share_of_the_feature_pairs(norm, positions):
    model, sae = make_model(norm, positions, 1), make_sae(seed=1)
    tokens = torch.randint(0, 50, (2, 12), generator=torch.Generator().manual_seed(2))
    resolved = resolve(model, sae, tokens, 1, None)
    ids = resolved.feature_ids
    dense = sorted(set(ids[1][ids[1] >= 0].tolist()))[::3]  # a third of the features active in sequence 1
    got = dense_term(resolved, dense, batch=1)
    P = resolved.n_pos
    want = torch.zeros_like(got)
    d = torch.tensor(dense)
    for i in range(P):
        for j in range(i + 1):
            v = resolved.pairs_at(torch.tensor([1]), torch.tensor([i]), torch.tensor([j]))[0]  # [head, K, K]
            hit = torch.isin(ids[1, i], d)[:, None] | torch.isin(ids[1, j], d)[None, :]
            want[:, i, j] = (v * hit).sum((-2, -1))
    pairs = resolved.terms()[FEATURE_PAIRS][1]
    torch.testing.assert_close(got, want, rtol=0, atol=rounding_atol(pairs, ids.shape[-1] ** 2))
    assert got.abs().max() > 0 and (got - pairs).abs().max() > 0  # a proper part of the feature pairs
    everything = sorted(set(ids[ids >= 0].tolist()))
    torch.testing.assert_close(dense_term(resolved, everything, 1), pairs, rtol=0,
                               atol=rounding_atol(pairs, ids.shape[-1] ** 2))
    assert dense_term(resolved, [], 1).abs().max() == 0


def test_corpus_profile_covers_every_feature():
    model, sae = make_model(), make_sae()
    corpus = torch.randint(0, 50, (3, 10), generator=torch.Generator().manual_seed(0))
    prof = corpus_profile(model, sae, corpus)
    assert prof["feature"].tolist() == list(range(sae.cfg.d_sae))
    f = sae.encode(model.run_with_cache(corpus, names_filter="blocks.1.hook_resid_pre")[1]["blocks.1.hook_resid_pre"])
    torch.testing.assert_close(torch.tensor(prof["firing_rate"].to_numpy()), (f > 0).double().mean((0, 1)))


@pytest.mark.parametrize("norm, positions", [("LN", "standard"), ("RMS", "rotary")])
def test_split_terms_by_bilinearity_match_the_pair_sums(norm, positions):
    model, sae = make_model(norm, positions, 2), make_sae(seed=3)
    tokens = torch.randint(0, 50, (2, 10), generator=torch.Generator().manual_seed(4))
    resolved = resolve(model, sae, tokens, 1, None)
    ids = resolved.feature_ids[0]
    dense = sorted(set(ids[ids >= 0].tolist()))[1::4]
    split, terms = split_terms(resolved, dense), resolved.terms()
    atol = rounding_atol(terms[FEATURE_PAIRS][0], resolved.feature_ids.shape[-1] ** 2)
    torch.testing.assert_close(split[DENSE], dense_term(resolved, dense), rtol=0, atol=atol)
    torch.testing.assert_close(split[FEATURE_PAIRS] + split[DENSE], terms[FEATURE_PAIRS][0], rtol=0, atol=atol)
    assert set(split) == {*terms, DENSE}
    shares = split_shares(resolved, dense)
    assert sum(shares.values()) == pytest.approx(1.0) and shares[DENSE] > 0
