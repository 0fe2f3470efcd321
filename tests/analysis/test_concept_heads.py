from collections import Counter

import pytest
import torch
from transformer_lens import HookedTransformer, HookedTransformerConfig

from fra.analysis.concept_heads import concept_heads, concept_probes, concept_scores, multi_token_words
from fra.errors import FRAError
from fra.models.tokenizers import gpt2_tokenizer
from fra.text.corpus import pack
from tests.conftest import rounding_atol

TOK = gpt2_tokenizer()
BOS, NEWLINE = TOK.bos_token_id, 198
SEQ_LEN = 12  # first segment; probes are 24 wide
TEXT = (
    " Romeo met Juliet in Verona, where the Montague boy loved the Capulet girl. Mercutio and Benvolio laughed"
    " while Tybalt drew his sword; the Friar Laurence married them in secret. The apothecary sold poison to the"
    " exile, and the nightingale sang to the lark. Rosaline slept, Balthasar rode, and the Prince Escalus spoke"
    " of the pomegranate tree and the photosynthesis of its leaves. The Nurse told Paris that Juliet was dead."
)


def enc(text: str) -> list[int]:
    return TOK.encode(text, add_special_tokens=False)


@pytest.fixture(scope="module")
def corpus() -> torch.Tensor:
    return torch.from_numpy(pack([enc(TEXT * 3)], 32, BOS, [NEWLINE]))


@pytest.fixture(scope="module")
def words(corpus) -> list[tuple[int, ...]]:
    return multi_token_words(TOK, corpus)


def model(n_kv_heads: int | None = None, hook_tokens: bool = False, n_ctx: int = 2 * SEQ_LEN) -> HookedTransformer:
    torch.manual_seed(0)
    cfg = HookedTransformerConfig(
        n_layers=2, d_model=32, n_ctx=n_ctx, d_head=8, n_heads=4, d_vocab=TOK.vocab_size, d_mlp=64, act_fn="gelu",
        normalization_type="LN", positional_embedding_type="rotary", rotary_dim=8, n_key_value_heads=n_kv_heads,
        use_hook_tokens=hook_tokens, seed=0)
    return HookedTransformer(cfg).eval()


def probes(words, corpus, n=10, seed=0, **kw):
    return concept_probes(words, corpus, BOS, NEWLINE, SEQ_LEN, n, seed, **kw)


def test_words_are_maximal_letter_runs_after_a_space():
    row = [BOS, *enc(" Montague"), *enc(" Juliet"), *enc("'s"), *enc(" Mercutio"), *enc(","), *enc(" ab"),
           *enc("c"), *enc("123"), *enc(" Montague"), *enc(" caf"), *enc("é"), *enc(" apothecary"), *enc("."),
           *enc(" Verona")]  # Verona ends the row: it may be cut
    row2 = [BOS, *enc("iet"), *enc("ulet"), *enc(" Tybalt"), *enc(" the"), *enc(" Verona"), *enc(".")]
    width = max(len(row), len(row2))
    corpus = torch.tensor([row, row2 + enc(" the") * (width - len(row2))])
    expected = [enc(w) for w in (" Montague", " Mercutio", " apothecary", " Tybalt", " Verona")]
    assert [len(w) for w in expected] == [2, 3, 4, 3, 2]  # GPT-2's splits
    assert multi_token_words(TOK, corpus) == [tuple(w) for w in expected]  # Juliet: 1 token; abc123, café: glued
    assert multi_token_words(TOK, corpus, max_len=3) == [tuple(w) for w in expected if len(w) <= 3]
    assert multi_token_words(TOK, corpus, min_len=3) == [tuple(w) for w in expected if len(w) >= 3]


def test_probes_follow_feucht_et_al_layout(words, corpus):
    p = probes(words, corpus, n=12, avoid=(13,))  # "." never in a chunk
    lengths = sorted({len(w) for w in words})
    assert lengths == [2, 3, 4] and p.tokens.shape == (12, 2 * SEQ_LEN) and not p.random_entities
    assert Counter(p.lengths.tolist()) == {k: 4 for k in lengths}  # balanced across word lengths
    for i, row in enumerate(p.tokens.tolist()):
        q, f, last = int(p.query[i]), int(p.first[i]), int(p.last[i])
        assert row[0] == BOS and row[SEQ_LEN + 1] == NEWLINE and set(row[q + 1:]) <= {NEWLINE}  # right padding
        assert SEQ_LEN // 2 <= f - 1 and last <= SEQ_LEN  # len(rand1) >= seq_len // 2; the word in segment one
        assert tuple(row[f:last + 1]) in words and last - f + 1 == len(row[f:last + 1])
        assert row[SEQ_LEN + 2:q + 1] == row[1:f]  # the second rand1 repeats the first one
        assert q == SEQ_LEN + f and row[q] == row[f - 1]  # copying on from the query next writes the word's first token
        chunks = row[1:f] + row[last + 1:SEQ_LEN + 1]
        assert not {BOS, NEWLINE, 13} & set(chunks)
    for k in lengths:  # each word once before any repeats
        chosen = [tuple(r[f:f + k]) for r, f, n in zip(p.tokens.tolist(), p.first.tolist(), p.lengths.tolist())
                  if n == k]
        assert len(set(chosen)) == min(len(chosen), sum(len(w) == k for w in words))


def test_probes_are_seeded_and_the_random_control_is_paired(words, corpus):
    a, b, c = probes(words, corpus, seed=1), probes(words, corpus, seed=1), probes(words, corpus, seed=2)
    assert torch.equal(a.tokens, b.tokens) and not torch.equal(a.tokens, c.tokens)
    r = probes(words, corpus, seed=1, random_entities=True)
    assert r.random_entities and torch.equal(r.first, a.first) and torch.equal(r.last, a.last)
    span = (torch.arange(a.tokens.shape[1]) >= a.first[:, None]) & (torch.arange(a.tokens.shape[1]) <= a.last[:, None])
    assert torch.equal(r.tokens[~span], a.tokens[~span])  # the same chunks and positions: only the entity differs
    assert sum(tuple(row[f:last + 1]) in words for row, f, last in
               zip(r.tokens.tolist(), r.first.tolist(), r.last.tolist())) == 0


@pytest.mark.parametrize("n_kv_heads", [None, 2])
def test_scores_match_a_brute_force_per_example(words, corpus, n_kv_heads):
    m = model(n_kv_heads)
    pw, pr = probes(words, corpus, n=7), probes(words, corpus, n=7, random_entities=True)
    df = concept_scores(m, pw, pr, batch_size=3)
    assert len(df) == 8 and df[["layer", "head"]].values.tolist() == [[lay, h] for lay in range(2) for h in range(4)]
    for setting, p in (("words", pw), ("random", pr)):
        expected = {f"{s}_{setting}{kind}": torch.zeros(2, 4) for s in ("next_token", "last_token")
                    for kind in ("", "_raw")}
        for i in range(len(p.tokens)):
            _, cache = m.run_with_cache(p.tokens[i, :int(p.query[i]) + 1][None])  # unpadded, alone
            for layer in range(2):
                a = cache["pattern", layer][0, :, -1]  # [head key]
                v = cache["v", layer][0].repeat_interleave(4 // cache["v", layer].shape[2], dim=1)  # [key head d_head]
                norm = torch.stack([(v[:, h] @ m.blocks[layer].attn.W_O[h]).norm(dim=-1) for h in range(4)])
                w = a * norm / (a * norm).sum(-1, keepdim=True)
                for s, key in (("next_token", p.first[i]), ("last_token", p.last[i])):
                    expected[f"{s}_{setting}_raw"][layer] += a[:, key] / len(p.tokens)
                    expected[f"{s}_{setting}"][layer] += w[:, key] / len(p.tokens)
        for name, value in expected.items():
            torch.testing.assert_close(torch.tensor(df[name].values), value.flatten(), rtol=0,
                                       atol=rounding_atol(torch.ones(1), 32 * 2 * SEQ_LEN))
    assert (df.concept_score == df.last_token_words - df.last_token_random).all()
    assert (df.token_score == df.next_token_random).all()


def hand_heads(m: HookedTransformer, words: list[tuple[int, ...]]) -> None:
    """Layer 1 head 0 a concept induction head, head 1 a token induction head, both reading the probe layout: query
    ``q`` after the newline copies the first segment from position ``r = q - newline``. Head 1 attends to ``r + 1``
    (the next token); head 0 to the last token of the word starting there, or to BOS where no word starts."""
    vocab, seen = set(words), {}

    def keep(tokens, hook):
        seen["tokens"] = tokens

    def overwrite(pattern, hook):
        for b, row in enumerate(seen["tokens"].tolist()):
            s = row.index(NEWLINE, 1)
            for q in range(s + 1, len(row)):
                r = q - s
                word = next((k for k in range(2, 6) if tuple(row[r + 1:r + 1 + k]) in vocab), None)
                for h, key in ((0, 0 if word is None else r + word), (1, r + 1)):
                    pattern[b, h, q] = 0.0
                    pattern[b, h, q, min(key, q)] = 1.0
        return pattern

    m.add_hook("hook_tokens", keep)
    m.add_hook("blocks.1.attn.hook_pattern", overwrite)


def test_hand_built_concept_and_token_heads_score_where_expected(words, corpus):
    assert not any(w[:k] in set(words) for w in words for k in range(2, len(w)))  # a word's prefix is no word
    m = model(hook_tokens=True)
    hand_heads(m, words)
    df = concept_scores(m, probes(words, corpus, n=9), probes(words, corpus, n=9, random_entities=True), batch_size=4)
    concept, token = (df[(df.layer == 1) & (df["head"] == h)].iloc[0] for h in (0, 1))
    for kind in ("", "_raw"):
        assert concept[f"last_token_words{kind}"] == 1.0 and concept[f"last_token_random{kind}"] == 0.0
        assert concept[f"next_token_words{kind}"] == 0.0 and concept[f"next_token_random{kind}"] == 0.0
        assert token[f"next_token_words{kind}"] == 1.0 and token[f"next_token_random{kind}"] == 1.0
        assert token[f"last_token_words{kind}"] == 0.0 and token[f"last_token_random{kind}"] == 0.0
    assert (concept.concept_score, concept.token_score, token.concept_score, token.token_score) == (1, 0, 0, 1)
    top = concept_heads(df, 3)
    assert (top.layer[0], top["head"][0]) == (1, 0) and len(top) <= 3 and (top.concept_score > 0).all()
    assert not ((top.layer == 1) & (top["head"] == 1)).any()
    assert top.concept_score.is_monotonic_decreasing


def test_bad_input_is_refused(words, corpus):
    with pytest.raises(FRAError, match="no word of the corpus"):
        multi_token_words(TOK, torch.tensor([[BOS, *enc(" the cat sat on the mat.")]]))
    with pytest.raises(FRAError, match="min_len"):
        multi_token_words(TOK, corpus, min_len=1)
    with pytest.raises(FRAError, match="no multi-token words"):
        probes([], corpus)
    with pytest.raises(FRAError, match="use seq_len >= 7"):
        concept_probes(words, corpus, BOS, NEWLINE, 6, 4, 0)
    with pytest.raises(FRAError, match="larger corpus or a lower seq_len"):
        probes(words, corpus[:1, :8])
    with pytest.raises(FRAError, match="n \\(probes\\)"):
        probes(words, corpus, n=0)
    pw, pr = probes(words, corpus, n=2), probes(words, corpus, n=2, random_entities=True)
    with pytest.raises(FRAError, match="n_ctx is 20: build them with seq_len <= 10"):
        concept_scores(model(n_ctx=20), pw, pr)
    with pytest.raises(FRAError, match="random_entities=True"):
        concept_scores(model(), pr, pw)
    with pytest.raises(FRAError, match="n \\(heads\\)"):
        concept_heads(concept_scores(model(), pw, pr), 0)
