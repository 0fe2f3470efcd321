"""Build the offline text corpus: deduplicate, split by document, pack into BOS-led sequences, balance sources.

1. **Dedup.** Documents are cut into paragraphs at blank lines. A paragraph whose whitespace-collapsed
   text (case kept) has at least ``MIN_DEDUP_CHARS`` characters is dropped when it already occurred
   earlier in the corpus (sources in ``cfg.sources`` order, documents in reader order): licence
   headers, repeated stage directions, refrains. Shorter ones ("Exit.", "}", "Genesis 1") always stay,
   so that the text still reads naturally.
2. **Split by document.** A permutation seeded by ``(seed, source)`` orders each source's documents;
   its first ``round(heldout_fraction * n)`` (at least 1, at most n-1) are held out. No document
   contributes to both splits.
3. **Pack.** Each split's documents of one source, in that permuted order, are tokenized (no special
   tokens) and concatenated with a separator (EOS, else a newline); the stream is cut into
   ``seq_len - 1`` token pieces, each led by BOS. The last partial piece is dropped.
4. **Balance.** A seeded sample of ``train_tokens_per_source // seq_len`` train sequences of each
   source is kept (drawn from all its documents), and of ``ceil(heldout_fraction *
   train_tokens_per_source) // seq_len`` held-out ones (at least 1). Each split's sequences are then
   shuffled, so any prefix of a file mixes all sources.

The output folder mirrors :mod:`fra.world.corpus` (``{split}_tokens.npy``, ``[n_seq, seq_len]``) plus
``{split}_sources.npy`` (index into ``manifest["sources"]``) and ``manifest.json``; it is written
as a whole into a temporary folder next to ``out`` and renamed over it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import re
import sys
import zlib
from pathlib import Path

import numpy as np
import torch
from jaxtyping import Int
from tqdm.auto import tqdm

from fra.config import TextCorpusConfig
from fra.errors import FRAError
from fra.io import SPLITS, atomic_dir, write_json
from fra.text.sources import Document, load_sources

MIN_DEDUP_CHARS = 20  # shorter paragraphs are never deduplicated


def _rng(seed: int, *keys: str) -> np.random.Generator:
    return np.random.default_rng([seed, *(zlib.crc32(k.encode()) for k in keys)])


def dedup(docs: list[Document]) -> tuple[list[Document], dict[str, dict[str, int]]]:
    """Drop repeats of long paragraphs after their first occurrence; per-source counts of what went."""
    seen: set[str] = set()
    stats = {s: {"paragraphs": 0, "dropped_paragraphs": 0, "dropped_chars": 0}
             for s in dict.fromkeys(d.source for d in docs)}
    kept_docs = []
    for doc in docs:
        parts = re.split(r"(\n\s*\n)", doc.text)  # paragraph, blank lines, paragraph, ...
        kept, st = [], stats[doc.source]
        for para, gap in zip(parts[::2], parts[1::2] + [""]):
            key = " ".join(para.split())
            st["paragraphs"] += bool(key)
            if len(key) >= MIN_DEDUP_CHARS:
                if key in seen:
                    st["dropped_paragraphs"] += 1
                    st["dropped_chars"] += len(para)
                    continue
                seen.add(key)
            kept.append(para + gap)
        if text := "".join(kept).rstrip():
            kept_docs.append(dataclasses.replace(doc, text=text))
    return kept_docs, stats


def split_documents(docs: list[Document], sources: tuple[str, ...], seed: int,
                    heldout_fraction: float) -> dict[str, dict[str, list[Document]]]:
    """source -> split -> documents, in the seeded order that packing follows."""
    out = {}
    for source in sources:
        group = [d for d in docs if d.source == source]
        if len(group) < 2:
            raise FRAError(f"text source `{source}` has {len(group)} document(s); splitting by document needs "
                           "at least 2: check that the source is installed completely")
        order = _rng(seed, "split", source).permutation(len(group))
        n_held = min(len(group) - 1, max(1, round(heldout_fraction * len(group))))
        out[source] = {"heldout": [group[i] for i in order[:n_held]], "train": [group[i] for i in order[n_held:]]}
    return out


def pack(docs_tokens: list[list[int]], seq_len: int, bos: int, sep: list[int]) -> Int[np.ndarray, "n seq_len"]:
    """Documents joined by ``sep``, cut into ``seq_len - 1`` pieces, each led by ``bos``; no partial piece."""
    stream = np.array([t for tokens in docs_tokens for t in (*tokens, *sep)], dtype=np.int64)
    n = len(stream) // (seq_len - 1)
    body = stream[: n * (seq_len - 1)].reshape(n, seq_len - 1)
    return np.concatenate([np.full((n, 1), bos, dtype=np.int64), body], axis=1)


def build_from_documents(cfg: TextCorpusConfig, docs: list[Document], tokenizer, out: Path) -> dict:
    """The corpus of ``docs`` (every one from a source in ``cfg.sources``) written to ``out``; returns the manifest."""
    bos = tokenizer.bos_token_id
    if bos is None:
        raise FRAError(f"tokenizer {tokenizer.name_or_path!r} has no BOS token; every sequence starts with one: "
                       "pass a tokenizer with bos_token set")
    eos = tokenizer.eos_token_id
    sep = [eos] if eos is not None else tokenizer.encode("\n", add_special_tokens=False)
    docs, dedup_stats = dedup(docs)
    splits = split_documents(docs, cfg.sources, cfg.seed, cfg.heldout_fraction)
    keep = {"train": cfg.train_tokens_per_source // cfg.seq_len,
            "heldout": max(1, math.ceil(cfg.heldout_fraction * cfg.train_tokens_per_source) // cfg.seq_len)}
    per_source = {s: {"documents": {}, "tokens_before_cap": {}, "sequences": {}, "dedup": dedup_stats[s],
                      "heldout_documents": [d.name for d in splits[s]["heldout"]]} for s in cfg.sources}
    arrays = {}
    bar = tqdm(total=len(docs), desc="tokenize documents", unit="doc", mininterval=2)
    for split in SPLITS:
        seqs, ids = [], []
        for i, source in enumerate(cfg.sources):
            split_docs = splits[source][split]
            texts = [d.text for d in split_docs]  # one batched call: the tokenizer's own threads, the same ids
            tokens = tokenizer(texts, add_special_tokens=False, verbose=False)["input_ids"] if texts else []
            bar.update(len(split_docs))
            packed = pack(tokens, cfg.seq_len, bos, sep)
            packed = packed[np.sort(_rng(cfg.seed, "cap", split, source).permutation(len(packed))[: keep[split]])]
            seqs.append(packed)
            ids.append(np.full(len(packed), i, dtype=np.int16))
            stats = per_source[source]
            stats["documents"][split] = len(split_docs)
            stats["tokens_before_cap"][split] = sum(len(t) + len(sep) for t in tokens)
            stats["sequences"][split] = len(packed)
        order = _rng(cfg.seed, "shuffle", split).permutation(sum(map(len, seqs)))
        arrays[f"{split}_tokens.npy"] = np.concatenate(seqs)[order].astype(np.int32)
        arrays[f"{split}_sources.npy"] = np.concatenate(ids)[order]
    bar.close()
    manifest = {
        "config": dataclasses.asdict(cfg) | {"sources": list(cfg.sources)}, "sources": list(cfg.sources),
        "min_dedup_chars": MIN_DEDUP_CHARS,
        "python": f"{sys.version_info.major}.{sys.version_info.minor}",  # the stdlib source depends on it
        "tokenizer": {"name": Path(tokenizer.name_or_path or "").name, "vocab_size": len(tokenizer),
                      "bos_id": bos, "separator_ids": sep},
        "sequences": {split: len(arrays[f"{split}_tokens.npy"]) for split in SPLITS},
        "per_source": per_source,
    }
    write_folder(out, arrays, manifest)
    return manifest


def build_text_corpus(cfg: TextCorpusConfig, tokenizer, out: Path) -> dict:
    """Read ``cfg.sources``, build the corpus into ``out`` and return its manifest."""
    return build_from_documents(cfg, load_sources(cfg.sources), tokenizer, Path(out))


def write_folder(out: Path, arrays: dict[str, np.ndarray], manifest: dict) -> None:
    """``arrays`` as ``.npy`` files and ``manifest`` (plus each file's sha256) in ``out``, replaced as a whole."""
    with atomic_dir(out) as tmp:
        for name, array in arrays.items():
            np.save(tmp / name, array)
        manifest["sha256"] = {name: hashlib.sha256((tmp / name).read_bytes()).hexdigest() for name in arrays}
        write_json(tmp / "manifest.json", manifest)


def load_text_split(folder: str | Path, split: str) -> tuple[Int[torch.Tensor, "n seq_len"], Int[torch.Tensor, " n"]]:
    """Token ids and source index (into ``manifest["sources"]``) of every sequence of ``split``, as int64."""
    if split not in SPLITS:
        raise FRAError(f"split must be one of {list(SPLITS)}, got {split!r}")
    folder = Path(folder)
    if not (folder / f"{split}_tokens.npy").exists():
        raise FRAError(f"{folder} holds no text corpus; build the corpus first (`dvc repro` or "
                       f"`fra text-corpus --out {folder}`)")
    tokens, sources = (torch.from_numpy(np.load(folder / f"{split}_{name}.npy").astype(np.int64))
                       for name in ("tokens", "sources"))
    return tokens, sources

