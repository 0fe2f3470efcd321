"""The text corpus builder on fake documents with GPT-2's offline tokenizer: dedup, split, packing, caps, files."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from transformers import PreTrainedTokenizerFast

from fra.config import TextCorpusConfig
from fra.errors import FRAError
from fra.models.tokenizers import gpt2_tokenizer
from fra.text.corpus import build_from_documents, dedup, load_text_split, pack, split_documents
from fra.text.sources import Document

WORDS = {"a": [" apple", " banana", " cherry", " river", " stone", " cloud", " tiger", " bread"],
         "b": [" house", " green", " water", " light", " paper", " music"]}  # one GPT-2 token each
SEQ = 16


def fake_docs(repeat: dict[str, int]) -> list[Document]:
    """Documents made of one word each, so that a token tells which document it came from."""
    return [Document(s, f"{s}{i}", w * repeat[s]) for s, words in WORDS.items() for i, w in enumerate(words)]


def build(tmp_path, seed=0, repeat=None, cap=10 * SEQ, name="out", tokenizer=None):
    cfg = TextCorpusConfig(seed=seed, sources=("a", "b"), seq_len=SEQ, train_tokens_per_source=cap,
                           heldout_fraction=0.2)
    manifest = build_from_documents(cfg, fake_docs(repeat or {"a": 100, "b": 100}), tokenizer or gpt2_tokenizer(),
                                    tmp_path / name)
    return manifest, tmp_path / name


def test_dedup_drops_repeated_long_paragraphs_and_keeps_short_ones():
    licence = "Licensed to the PSF under a contributor agreement."
    docs = [Document("a", "x", f"{licence}\n\nExit.\n\nfirst text that is long enough"),
            Document("a", "y", f"Exit.\n\n  {licence}\n\nmore text, long enough too"),
            Document("b", "z", f"{licence.replace(' ', chr(10))}\n\n\nExit.")]
    kept, stats = dedup(docs)
    assert [d.text for d in kept] == [docs[0].text, "Exit.\n\nmore text, long enough too", "Exit."]
    assert stats["a"] == {"paragraphs": 6, "dropped_paragraphs": 1, "dropped_chars": len(licence) + 2}
    assert stats["b"] == {"paragraphs": 2, "dropped_paragraphs": 1, "dropped_chars": len(licence)}


def test_split_is_by_document_and_seeded():
    docs = fake_docs({"a": 1, "b": 1})
    s0, s0_again, s1 = (split_documents(docs, ("a", "b"), seed, 0.2) for seed in (0, 0, 1))
    assert s0 == s0_again and s0 != s1
    assert [len(s0[s]["heldout"]) for s in "ab"] == [2, 1]  # round(0.2 * n) of n = 8 and 6 documents
    for split in s0.values():
        assert not {d.name for d in split["heldout"]} & {d.name for d in split["train"]}
    with pytest.raises(FRAError, match="at least 2"):
        split_documents(docs[:1], ("a",), 0, 0.2)


def test_pack_leads_with_bos_and_drops_the_partial_sequence():
    seqs = pack([[5, 6, 7], [8, 9]], seq_len=3, bos=0, sep=[1])  # stream 5 6 7 1 8 9 1
    assert seqs.tolist() == [[0, 5, 6], [0, 7, 1], [0, 8, 9]]


def test_corpus_splits_balances_and_records(tmp_path):
    manifest, out = build(tmp_path, repeat={"a": 100, "b": 400})
    bos, eos = 50256, 50256
    token_doc = {gpt2_tokenizer().encode(w, add_special_tokens=False)[0]: w for ws in WORDS.values() for w in ws}
    seen = {}
    for split in ("train", "heldout"):
        tokens, sources = load_text_split(out, split)
        assert tokens.shape[1] == SEQ and (tokens[:, 0] == bos).all() and len(sources) == len(tokens)
        seen[split] = {token_doc[t] for t in tokens[:, 1:].flatten().tolist() if t != eos}
        held = {WORDS[s][int(n[1:])] for s in "ab" for n in manifest["per_source"][s]["heldout_documents"]}
        assert seen[split] <= (held if split == "heldout" else set(sum(WORDS.values(), [])) - held)
        # the caps: 160 train tokens -> 10 sequences, ceil(0.2 * 160) = 32 held-out tokens -> 2, per source
        assert np.bincount(sources.numpy()).tolist() == ([10, 10] if split == "train" else [2, 2])
    assert not seen["train"] & seen["heldout"]
    assert manifest["sources"] == ["a", "b"] and manifest["sequences"] == {"train": 20, "heldout": 4}
    assert manifest["per_source"]["b"]["tokens_before_cap"]["train"] == 5 * 401  # 5 documents + separators
    assert json.loads((out / "manifest.json").read_text()) == manifest
    for name, digest in manifest["sha256"].items():
        assert hashlib.sha256((out / name).read_bytes()).hexdigest() == digest
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no temporary folder left behind


def test_short_source_keeps_all_it_has_and_build_is_deterministic(tmp_path):
    manifest, out = build(tmp_path, repeat={"a": 10, "b": 400})  # a: 6 * 11 tokens -> 4 train sequences
    assert manifest["per_source"]["a"]["sequences"]["train"] == 4
    again, _ = build(tmp_path, repeat={"a": 10, "b": 400}, name="again")
    other, _ = build(tmp_path, seed=1, repeat={"a": 10, "b": 400}, name="other")
    assert again["sha256"] == manifest["sha256"] and other["sha256"] != manifest["sha256"]
    build(tmp_path, repeat={"a": 100, "b": 100})  # rebuilding replaces the folder
    assert json.loads((out / "manifest.json").read_text())["per_source"]["a"]["sequences"]["train"] == 10


def test_separator_falls_back_to_newline_and_bos_is_required(tmp_path):
    backend = gpt2_tokenizer().backend_tokenizer
    no_eos = PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<|endoftext|>")
    manifest, _ = build(tmp_path, tokenizer=no_eos)
    assert manifest["tokenizer"]["separator_ids"] == [198]  # "\n"
    with pytest.raises(FRAError, match="no BOS"):
        build(tmp_path, tokenizer=PreTrainedTokenizerFast(tokenizer_object=backend), name="no_bos")
    with pytest.raises(FRAError, match="split must be"):
        load_text_split(tmp_path / "out", "test")


class OneByOne:
    """The reference tokenization: every document by its own call (the builder makes one batched call)."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer

    def __getattr__(self, name):
        return getattr(self.tokenizer, name)

    def __len__(self):
        return len(self.tokenizer)

    def __call__(self, texts, **kwargs):
        return {"input_ids": [self.tokenizer(t, **kwargs)["input_ids"] for t in texts]}


def test_batched_tokenization_gives_the_per_document_ids(tmp_path):
    docs = [Document(s, f"{s}{i}", f"Line {i}:\n  def f(x):  return x ** {i}  # {s} ... caf\u00e9\n\n" * (20 + 7 * i))
            for s in ("a", "b") for i in range(6)]
    cfg = TextCorpusConfig(sources=("a", "b"), seq_len=SEQ, train_tokens_per_source=40 * SEQ, heldout_fraction=0.2)
    batched = build_from_documents(cfg, docs, gpt2_tokenizer(), tmp_path / "batched")
    reference = build_from_documents(cfg, docs, OneByOne(gpt2_tokenizer()), tmp_path / "reference")
    assert batched["sha256"] == reference["sha256"] and batched["per_source"] == reference["per_source"]
