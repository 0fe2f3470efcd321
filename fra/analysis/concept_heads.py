"""Concept induction heads (Feucht et al. 2025, "The Dual-Route Model of Induction"): attention on repeated words.

A probe follows their ``scripts/attention_scores.py`` (sfeucht/dual-route-induction)::

    [BOS] rand1 entity rand2 [newline] rand1
                                           ^ query: the next token to copy is the entity's first token

with ``len(rand1) + len(entity) + len(rand2) = seq_len`` and ``len(rand1)`` uniform in
``[seq_len // 2, seq_len - len(entity)]`` (the entity sits in the second half of the first segment); rand1 and
rand2 are windows of corpus tokens in shuffled order. The entity is a multi-token word of the corpus
(:func:`multi_token_words`) or, in the control, as many random corpus tokens. At the query, a token induction head
attends to the entity's first token (the token after the earlier copy of the query's token: ``next_token``); a
concept induction head attends to its last token (``last_token``): the end of the whole word it is about to copy,
on real words and not on random n-grams (:func:`concept_scores`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer

from fra.errors import FRAError

SPACE = ("Ġ", "▁")  # a leading space in the token strings of byte-level BPE (GPT-2, SmolLM2) / SentencePiece
START, CONTINUATION, GLUE = 1, 2, 3  # token kinds, see _kinds
SCORES = ("next_token", "last_token")


def _kinds(tokenizer, ids: list[int]) -> np.ndarray:
    """Per id: START (a leading space, then ASCII letters), CONTINUATION (ASCII letters, no space), GLUE (no space,
    first character a letter or digit, so it would extend a word with something else: ``123``, ``Ã©``) or 0."""
    kinds = np.zeros(len(ids), dtype=np.int8)
    for i, tok in enumerate(tokenizer.convert_ids_to_tokens(ids)):
        tok = tok or ""
        body = tok[1:] if tok.startswith(SPACE) else tok
        if body.isascii() and body.isalpha():
            kinds[i] = START if len(body) < len(tok) else CONTINUATION
        elif body == tok and tok[:1].isalnum():
            kinds[i] = GLUE
    return kinds


def multi_token_words(tokenizer, corpus: Int[Tensor, "seq pos"], min_len: int = 2,
                      max_len: int = 5) -> list[tuple[int, ...]]:
    """The words of ``corpus`` that ``tokenizer`` splits into ``min_len``..``max_len`` tokens, deduplicated, in order
    of first occurrence (row-major).

    A word is a maximal run of a START token (leading space, then ASCII letters) and CONTINUATION tokens (ASCII
    letters, no leading space), followed by a token that does not glue onto it (a space-led token, punctuation,
    a newline; not digits or other letters: `` ab|c|123`` is no word). A run that reaches the end of a row is
    dropped, as the row may cut the word; so is a longer one (never truncated).
    """
    if not 2 <= min_len <= max_len:
        raise FRAError(f"word lengths must satisfy 2 <= min_len <= max_len, got min_len={min_len}, max_len={max_len}; "
                       "a one-token word has no last token apart from its first")
    corpus = torch.as_tensor(corpus).cpu().numpy()
    if corpus.ndim != 2:
        raise FRAError(f"the corpus must be token ids [seq, pos], got shape {tuple(corpus.shape)}")
    ids, inverse = np.unique(corpus, return_inverse=True)
    kind = _kinds(tokenizer, ids.tolist())[inverse].reshape(corpus.shape)
    words: dict[tuple[int, ...], None] = {}
    for row, k in zip(corpus, kind):
        for s in np.flatnonzero(k == START):
            e = s + 1
            while e < len(k) and k[e] == CONTINUATION:
                e += 1
            if e < len(k) and k[e] != GLUE and min_len <= e - s <= max_len:
                words.setdefault(tuple(row[s:e].tolist()), None)
    if not words:
        raise FRAError(f"no word of the corpus ({corpus.shape[0]} sequences x {corpus.shape[1]} tokens) is split into "
                       f"{min_len}..{max_len} tokens by tokenizer {getattr(tokenizer, 'name_or_path', '')!r}: use a "
                       "larger corpus of natural text, a wider min_len..max_len, or a tokenizer whose tokens mark a "
                       "leading space with 'Ġ' (byte-level BPE) or '▁' (SentencePiece)")
    return list(words)


@dataclass(frozen=True)
class ConceptProbes:
    """Probe sequences (one a row, right-padded with ``newline`` after the query: causal attention keeps the padding
    out of every score) and, per row, the query and the positions of the entity's first and last tokens."""

    tokens: Int[Tensor, "n width"]
    query: Int[Tensor, " n"]
    first: Int[Tensor, " n"]
    last: Int[Tensor, " n"]
    random_entities: bool

    @property
    def lengths(self) -> Int[Tensor, " n"]:
        return self.last - self.first + 1


def concept_probes(words: list[tuple[int, ...]], corpus: Int[Tensor, "seq pos"], bos: int, newline: int,
                   seq_len: int, n: int, seed: int, random_entities: bool = False,
                   avoid: tuple[int, ...] = ()) -> ConceptProbes:
    """``n`` probes ``[bos] rand1 entity rand2 [newline] rand1`` (module docstring), ``2 * seq_len`` tokens wide.

    Example ``i`` copies a word of the ``i % k``-th of the ``k`` word lengths present in ``words`` (balanced across
    lengths); the words of each length are used in a seeded order, each once before any repeats. rand1 / rand2 are
    windows of the corpus' tokens (its first column, BOS, skipped; ``bos``, ``newline`` and ``avoid``, e.g. a
    document separator, removed) in shuffled order. With ``random_entities`` each word is replaced by as many tokens
    drawn uniformly from those tokens. Both settings make the same draws, so two calls with the same ``seed`` give
    probes that differ only in the entity: a paired control.
    """
    if not words:
        raise FRAError("no multi-token words to probe with: find them with multi_token_words on a larger corpus")
    lengths = sorted({len(w) for w in words})
    if lengths[0] < 2:
        raise FRAError(f"every word needs at least 2 tokens (its first and last must differ), got one of "
                       f"{lengths[0]}: pass words from multi_token_words")
    if seq_len - seq_len // 2 < lengths[-1]:
        raise FRAError(f"seq_len={seq_len} leaves {seq_len - seq_len // 2} positions after its first half, too few for "
                       f"a {lengths[-1]}-token word: use seq_len >= {2 * lengths[-1] - 1}")
    if n < 1:
        raise FRAError(f"n (probes) must be at least 1, got {n}")
    body = torch.as_tensor(corpus)[:, 1:].flatten().cpu().numpy()
    pool = body[~np.isin(body, [bos, newline, *avoid])]
    if len(pool) < seq_len:
        raise FRAError(f"the corpus has {len(pool)} tokens to cut text chunks from, fewer than seq_len={seq_len}: "
                       "use a larger corpus or a lower seq_len")
    rng = np.random.default_rng(seed)
    by_length = {k: [w for w in words if len(w) == k] for k in lengths}
    order = {k: rng.permutation(len(ws)) for k, ws in by_length.items()}
    used = dict.fromkeys(lengths, 0)

    def chunk(size: int) -> np.ndarray:
        start = rng.integers(0, len(pool) - size + 1)
        return rng.permutation(pool[start:start + size])

    tokens = np.full((n, 2 * seq_len), newline, dtype=np.int64)
    query, first, last = (np.zeros(n, dtype=np.int64) for _ in range(3))
    for i in range(n):
        k = lengths[i % len(lengths)]
        word = by_length[k][order[k][used[k] % len(by_length[k])]]
        used[k] += 1
        p = int(rng.integers(seq_len // 2, seq_len - k + 1))  # len(rand1)
        rand1, rand2 = chunk(p), chunk(seq_len - p - k)
        random_ngram = pool[rng.integers(0, len(pool), size=k)]  # drawn either way: the same layout in both settings
        seq = [bos, *rand1, *(random_ngram if random_entities else word), *rand2, newline, *rand1]
        tokens[i, :len(seq)] = seq
        query[i], first[i], last[i] = len(seq) - 1, 1 + p, p + k
    return ConceptProbes(*map(torch.from_numpy, (tokens, query, first, last)), random_entities)


def _query_rows(model: HookedTransformer, tokens: Int[Tensor, "batch width"], query: Int[Tensor, " batch"]
                ) -> tuple[list[Float[Tensor, "batch head key"]], list[Float[Tensor, "batch head key"]]]:
    """Per layer, each head's pattern row at ``query`` and the norm ``||v_j W_O^h||`` of what each key writes; one
    model pass for all layers."""
    H, b = model.cfg.n_heads, torch.arange(len(tokens), device=tokens.device)
    rows, norms = {}, {}

    def keep_row(pattern: Tensor, hook) -> None:
        rows[hook.layer()] = pattern[b, :, query].float()

    def keep_norm(v: Tensor, hook) -> None:
        v = v.float().repeat_interleave(H // v.shape[2], dim=2)  # grouped-query: head h reads kv head h // (H / n_kv)
        W_O = model.blocks[hook.layer()].attn.W_O.float()  # [head d_head d_model]
        norms[hook.layer()] = torch.einsum("bphd,hde->bphe", v, W_O).norm(dim=-1).transpose(1, 2)

    hooks = [(f"blocks.{layer}.attn.hook_{name}", fn) for layer in range(model.cfg.n_layers)
             for name, fn in (("v", keep_norm), ("pattern", keep_row))]
    with torch.no_grad():
        model.run_with_hooks(tokens, return_type=None, fwd_hooks=hooks)
    return [rows[layer] for layer in range(model.cfg.n_layers)], [norms[layer] for layer in range(model.cfg.n_layers)]


def _attention(model: HookedTransformer, probes: ConceptProbes, batch_size: int
               ) -> dict[str, Float[Tensor, "layer head"]]:
    """``{score}_raw`` / ``{score}`` (value-weighted): means over the probes of the query's attention to the entity's
    first (``next_token``) / last (``last_token``) token."""
    L, H, device = model.cfg.n_layers, model.cfg.n_heads, model.cfg.device
    sums = {f"{s}{kind}": torch.zeros(L, H) for s in SCORES for kind in ("_raw", "")}
    for start in range(0, len(probes.tokens), batch_size):
        batch = slice(start, start + batch_size)
        tokens = probes.tokens[batch].to(device)
        b = torch.arange(len(tokens), device=device)
        keys = {"next_token": probes.first[batch].to(device), "last_token": probes.last[batch].to(device)}
        rows, norms = _query_rows(model, tokens, probes.query[batch].to(device))
        for layer, (raw, norm) in enumerate(zip(rows, norms)):
            weighted = raw * norm
            weighted = weighted / weighted.sum(-1, keepdim=True)
            for s, key in keys.items():
                sums[f"{s}_raw"][layer] += raw[b, :, key].sum(0).cpu()
                sums[s][layer] += weighted[b, :, key].sum(0).cpu()
    return {name: total / len(probes.tokens) for name, total in sums.items()}


def concept_scores(model: HookedTransformer, probes_words: ConceptProbes, probes_random: ConceptProbes,
                   batch_size: int = 32) -> pd.DataFrame:
    """One row per (layer, head), layer-major, with the query's mean attention over the probes to the entity's

    * ``next_token_{words,random}``: first token (where token induction copies from);
    * ``last_token_{words,random}``: last token (where a concept induction head looks);

    value-weighted (Kobayashi et al. 2020): a head's pattern ``A[q, j]`` times the norm of what key ``j`` writes,
    ``||v_j W_O^h||``, renormalised over the keys, ``A[q, j] ||v_j W_O^h|| / sum_k A[q, k] ||v_k W_O^h||``
    (Feucht et al. weight by ``||v_j||`` alone); ``*_raw`` are the same from ``A`` itself. Then
    ``concept_score = last_token_words - last_token_random`` and ``token_score = next_token_random`` (value-weighted):
    attention to a word's end beyond what any n-gram's end gets, and copying of the next token where there is no
    word to copy. A head whose ``W_O`` is zero has NaN value-weighted scores.
    """
    if batch_size < 1:
        raise FRAError(f"batch_size must be at least 1, got {batch_size}")
    for name, probes in (("probes_words", probes_words), ("probes_random", probes_random)):
        if len(probes.tokens) == 0:
            raise FRAError(f"{name} holds no probes: build them with concept_probes(n >= 1)")
        if probes.tokens.shape[1] > model.cfg.n_ctx:
            raise FRAError(f"{name} are {probes.tokens.shape[1]} tokens wide but the model's n_ctx is "
                           f"{model.cfg.n_ctx}: build them with seq_len <= {model.cfg.n_ctx // 2}")
        if int(probes.tokens.max()) >= model.cfg.d_vocab:
            raise FRAError(f"{name} hold token id {int(probes.tokens.max())} but the model's vocabulary has "
                           f"{model.cfg.d_vocab}: build the corpus with this model's tokenizer")
    if probes_words.random_entities or not probes_random.random_entities:
        raise FRAError("probes_words must copy real words and probes_random random n-grams: pass "
                       "concept_probes(..., random_entities=False) then concept_probes(..., random_entities=True)")
    L, H = model.cfg.n_layers, model.cfg.n_heads
    df = pd.DataFrame({"layer": np.repeat(np.arange(L), H), "head": np.tile(np.arange(H), L)})
    for setting, probes in (("words", probes_words), ("random", probes_random)):
        attention = _attention(model, probes, batch_size)
        for s in SCORES:
            df[f"{s}_{setting}"] = attention[s].flatten().numpy()
            df[f"{s}_{setting}_raw"] = attention[f"{s}_raw"].flatten().numpy()
    df["concept_score"] = df.last_token_words - df.last_token_random
    df["token_score"] = df.next_token_random
    return df


def concept_heads(scores: pd.DataFrame, n: int) -> pd.DataFrame:
    """The concept induction heads: the ``n`` rows of :func:`concept_scores` with the largest ``concept_score``,
    largest first, ties broken by (layer, head). A head whose ``concept_score`` is not positive (or NaN) is never
    one: it attends no more to a real word's end than to a random n-gram's, so fewer than ``n`` rows may come back."""
    if n < 1:
        raise FRAError(f"n (heads) must be at least 1, got {n}")
    if missing := {"layer", "head", "concept_score"} - set(scores.columns):
        raise FRAError(f"scores lack columns {sorted(missing)}: pass the DataFrame of concept_scores")
    kept = scores[scores.concept_score > 0]
    return kept.sort_values(["concept_score", "layer", "head"], ascending=[False, True, True]).head(n).reset_index(
        drop=True)
