import pytest
import torch
from transformer_lens import HookedTransformer, HookedTransformerConfig
from transformer_lens.head_detector import detect_head

from fra.analysis.heads import (
    diagonal_score,
    duplicate_token_score,
    ground_truth_failure,
    head_check,
    head_scores,
    induction_score,
    previous_token_score,
    random_tokens,
    special_ids,
    token_pool,
)
from fra.config import HeadScoreConfig, WorldConfig
from fra.world.corpus import token_names, world_tokenizer

N = 5
T = 2 * N + 1


def _stripe(key_of_query) -> torch.Tensor:
    """A [1, 1, T, T] pattern with each query on one key (itself where key_of_query gives None)."""
    p = torch.zeros(1, 1, T, T)
    for q in range(T):
        k = key_of_query(q)
        p[0, 0, q, q if k is None else k] = 1.0
    return p


@pytest.mark.parametrize(
    "key_of_query, expected",
    [
        (lambda q: q - N + 1 if q > N else None, (1.0, 0.0, 0.0)),  # perfect induction head
        (lambda q: q - N if q > N else None, (0.0, 1.0, 0.0)),  # perfect duplicate-token head
        (lambda q: q - 1 if q >= 1 else None, (0.0, 0.0, 1.0)),  # perfect previous-token head
        (lambda q: 0, (0.0, 0.0, 0.1)),  # BOS sink: only query 1 sits on its previous token
    ],
)
def test_scores_on_hand_built_patterns(key_of_query, expected):
    p = _stripe(key_of_query)
    got = (induction_score(p, N).item(), duplicate_token_score(p, N).item(), previous_token_score(p).item())
    assert got == pytest.approx(expected)


def test_induction_score_uses_only_second_half_queries():
    p = torch.zeros(2, 3, T, T)
    p[..., N + 1 :, :].diagonal(offset=1 - N + (N + 1), dim1=-2, dim2=-1)[:] = 0.5  # rows N+1.., key q-N+1
    assert torch.allclose(induction_score(p, N), torch.full((3,), 0.5))
    assert diagonal_score(p, 1 - N, N + 1).shape == (3,)


def test_random_tokens_layout():
    g = torch.Generator().manual_seed(0)
    rep = random_tokens(torch.arange(1, 30), 0, N, 4, g)
    assert rep.shape == (4, T) and (rep[:, 0] == 0).all() and (rep[:, 1:] != 0).all()
    assert torch.equal(rep[:, 1 : N + 1], rep[:, N + 1 :])
    ctrl = random_tokens(torch.arange(1, 30), 0, N, 4, g, repeat=False)
    assert not torch.equal(ctrl[:, 1 : N + 1], ctrl[:, N + 1 :])


@pytest.fixture(scope="module")
def model():
    world = WorldConfig(n_classes=6, class_size=3, n_filler=10, n_conceptual=3, seq_len=40, segment_min=4,
                        segment_max=6, gap_max=4, lead_max=2)
    cfg = HookedTransformerConfig(n_layers=2, n_heads=2, d_model=16, d_head=8, d_vocab=world.d_vocab, n_ctx=40,
                                  act_fn="gelu", normalization_type="LN", seed=0)
    m = HookedTransformer(cfg)
    m.set_tokenizer(world_tokenizer(world))
    return m.eval(), world


def test_token_pool_skips_special_and_added_tokens(model):
    m, world = model
    assert special_ids(m) == {0} and torch.equal(token_pool(m), torch.arange(1, world.d_vocab))
    m.tokenizer.add_special_tokens({"additional_special_tokens": [token_names(world)[5]]})  # e.g. a chat marker
    try:
        assert special_ids(m) == {0, 5} and 5 not in token_pool(m).tolist() and len(token_pool(m)) == world.d_vocab - 2
    finally:
        m.set_tokenizer(world_tokenizer(world))


@pytest.mark.parametrize("kind", ["induction_head", "previous_token_head", "duplicate_token_head"])
def test_agrees_with_transformer_lens_detect_head(model, kind):
    m, world = model
    names = token_names(world)
    tokens = random_tokens(token_pool(m), 0, 8, 1, torch.Generator().manual_seed(1))
    text = " ".join(names[t] for t in tokens[0, 1:])
    assert torch.equal(m.to_tokens(text), tokens)
    _, cache = m.run_with_cache(tokens)
    T_ = tokens.shape[1]
    for layer in range(2):
        p = cache["pattern", layer]  # [1, head, q, k]
        if kind == "induction_head":
            ours, n_rows = induction_score(p, 8), 8
        elif kind == "duplicate_token_head":
            ours, n_rows = duplicate_token_score(p, 8), 8
        else:
            ours, n_rows = previous_token_score(p), T_ - 1
        # detect_head's "mul" measure divides the stripe's sum by the pattern's sum (= T rows)
        theirs = detect_head(m, text, kind)[layer]
        assert torch.allclose(ours * n_rows / T_, theirs, atol=1e-5)


def test_head_scores_and_check_run(model):
    m, _ = model
    cfg = HeadScoreConfig(n_rep=12, batch_size=3, offsets=(5, 9))
    df = head_scores(m, cfg)
    assert len(df) == 4 and {"induction", "induction_n5", "induction_min", "positional_control"} <= set(df.columns)
    check = head_check(m, cfg, df)
    assert check["ground_truth_ok"] is False  # an untrained model has no induction head


def test_check_finds_a_canonical_head_and_its_partner(model):
    m, _ = model
    cfg = HeadScoreConfig(n_rep=12, batch_size=3, offsets=(5, 9))
    df = head_scores(m, cfg)
    L1 = df.layer == 1
    df.loc[L1 & (df["head"] == 1), ["induction", "induction_min"]] = 0.9  # pretend L1H1 is an induction head
    df.loc[(df.layer == 0) & (df["head"] == 0), "previous_token"] = 0.8  # and L0H0 its previous-token partner
    df["positional_control"] = 0.0
    check = head_check(m, cfg, df)
    (head,) = check["canonical_induction_heads"]
    assert head["head"] == "L1H1" and head["previous_token_partner"] == "L0H0" and head["has_partner"]
    assert check["ground_truth_ok"] is True and 0 <= head["induction_with_partner_ablated"] <= 1


def test_head_scores_refuse_too_long_repeats(model):
    from fra.errors import FRAError

    with pytest.raises(FRAError, match="n_ctx"):
        head_scores(model[0], HeadScoreConfig(n_rep=25))


def test_ground_truth_failure_says_what_failed_and_by_how_much(model):
    m, _ = model
    cfg = HeadScoreConfig(n_rep=12, batch_size=3, offsets=(5, 9))
    df = head_scores(m, cfg)
    df["positional_control"] = 0.0
    df.loc[df.layer == 1, "induction_min"] = [0.1, 0.31]
    message = ground_truth_failure(head_check(m, cfg, df), df, cfg)
    assert "no layer>=1 head has an induction score >= 0.5" in message and "L1H1 at 0.310" in message
    df.loc[(df.layer == 1) & (df["head"] == 1), ["induction", "induction_min"]] = 0.9  # induction, but no partner
    df["previous_token"] = 0.1
    df.loc[df.layer == 1, "positional_control"] = [0.35, 0.0]
    message = ground_truth_failure(head_check(m, cfg, df), df, cfg)
    assert "L1H1 has no previous-token partner" in message and "< 0.4" in message
    assert "['L1H0'] attend by position alone" in message and "0.350 >= 0.2" in message
    df["previous_token"], df["positional_control"] = 0.8, 0.0
    assert ground_truth_failure(head_check(m, cfg, df), df, cfg) is None
