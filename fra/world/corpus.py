"""The planted-concept world: a seeded corpus whose induction ground truth is known.

Vocabulary: id 0 is ``BOS``; class ``c`` member ``m`` is ``1 + c*M + m`` (name ``c03m2``); filler
``f`` is ``1 + K*M + f`` (name ``f17``). Classes ``0..n_conceptual-1`` are *conceptual*, the rest
*token-only*.

A sequence is BOS, then episodes packed left to right (each after 0..lead_max random tokens), then
random tokens. An episode is a segment ``s_0..s_{n-1}``, 0..gap_max random tokens, and a second
occurrence:

* token repeat: distinct random tokens, copied exactly; every second-occurrence position ``k < n-1``
  predicts ``s_{k+1}`` (label TOKEN).
* concept repeat: even ``k`` hold members of distinct conceptual classes, odd ``k`` distinct
  filler/token-only tokens; the copy swaps each even ``s_k`` for another member of its class and keeps
  odd ones, so ``x y ... x' -> y`` at each even ``k`` (label CONCEPT); odd ``k`` predict a swapped
  member, knowable only up to class (label CLASS_ONLY).

For a labelled query position ``i = start2 + k`` the key is ``start1 + k + 1``, the position right
after the earlier occurrence, which holds the token to predict.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from jaxtyping import Int
from transformers import PreTrainedTokenizerFast

from fra.config import WorldConfig
from fra.errors import FRAError
from fra.io import SPLITS, atomic_path, write_json

BOS = 0
NONE, TOKEN, CONCEPT, CLASS_ONLY = 0, 1, 2, 3  # label of a query position (what predicts its next token)
LABELS = {NONE: "none", TOKEN: "token_repeat", CONCEPT: "concept_repeat", CLASS_ONLY: "class_only"}


def member_id(cfg: WorldConfig, c: int | np.ndarray, m: int | np.ndarray) -> int | np.ndarray:
    return 1 + c * cfg.class_size + m


def token_names(cfg: WorldConfig) -> list[str]:
    names = ["BOS"]
    names += [f"c{c:02d}m{m}" for c in range(cfg.n_classes) for m in range(cfg.class_size)]
    names += [f"f{f:02d}" for f in range(cfg.n_filler)]
    return names


def token_classes(cfg: WorldConfig) -> np.ndarray:
    """Class of every token id; -1 for fillers, -2 for BOS."""
    cls = np.full(cfg.d_vocab, -1, dtype=np.int64)
    cls[BOS] = -2
    cls[1 : 1 + cfg.n_classes * cfg.class_size] = np.repeat(np.arange(cfg.n_classes), cfg.class_size)
    return cls


def ground_truth(cfg: WorldConfig) -> dict:
    """Every class (members, conceptual or token-only) and every token's class, as JSON-ready data."""
    names, cls = token_names(cfg), token_classes(cfg)
    classes = [
        {
            "class": c,
            "kind": "conceptual" if c < cfg.n_conceptual else "token_only",
            "member_ids": [int(member_id(cfg, c, m)) for m in range(cfg.class_size)],
            "members": [names[member_id(cfg, c, m)] for m in range(cfg.class_size)],
        }
        for c in range(cfg.n_classes)
    ]
    role = {-2: "bos", -1: "filler"}
    tokens = [
        {"id": t, "name": names[t], "role": role.get(int(cls[t]), "member"),
         "class": int(cls[t]) if cls[t] >= 0 else None}
        for t in range(cfg.d_vocab)
    ]
    return {"d_vocab": cfg.d_vocab, "bos_id": BOS, "n_conceptual": cfg.n_conceptual, "classes": classes,
            "tokens": tokens}


@dataclass
class WorldBatch:
    tokens: Int[torch.Tensor, "batch pos"]
    label: Int[torch.Tensor, "batch pos"]  # NONE/TOKEN/CONCEPT/CLASS_ONLY for predicting the next token
    key: Int[torch.Tensor, "batch pos"]  # for labelled queries: position after the earlier occurrence, else -1


class _Sampler:
    def __init__(self, cfg: WorldConfig, rng: np.random.Generator):
        self.cfg, self.rng = cfg, rng
        n_members = cfg.n_classes * cfg.class_size
        self.fillers = np.arange(1 + n_members, cfg.d_vocab)
        self.members = np.arange(1, 1 + n_members)
        token_only = self.members[cfg.n_conceptual * cfg.class_size :]
        self.plain = np.concatenate([token_only, self.fillers])  # never swapped
        self.non_bos = np.arange(1, cfg.d_vocab)

    def background(self, n: int) -> np.ndarray:
        rng = self.rng
        filler = rng.random(n) < self.cfg.filler_prob
        return np.where(filler, rng.choice(self.fillers, n), rng.choice(self.members, n))

    def episode(self, n: int, concept: bool) -> tuple[np.ndarray, np.ndarray]:
        """First and second occurrence of an ``n``-token segment."""
        cfg, rng = self.cfg, self.rng
        if not concept:
            first = rng.choice(self.non_bos, n, replace=False)
            return first, first.copy()
        n_even = (n + 1) // 2
        classes = rng.choice(cfg.n_conceptual, n_even, replace=False)
        m = rng.integers(0, cfg.class_size, n_even)
        m_swap = (m + rng.integers(1, cfg.class_size, n_even)) % cfg.class_size
        first = np.empty(n, dtype=np.int64)
        second = np.empty(n, dtype=np.int64)
        first[0::2], second[0::2] = member_id(cfg, classes, m), member_id(cfg, classes, m_swap)
        first[1::2] = second[1::2] = rng.choice(self.plain, n // 2, replace=False)
        return first, second

    def sequence(self, concept_prob: float, episodes: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        cfg, rng = self.cfg, self.rng
        L = cfg.seq_len
        tokens = self.background(L)
        tokens[0] = BOS
        label = np.zeros(L, dtype=np.int8)
        key = np.full(L, -1, dtype=np.int64)
        pos = 1
        while episodes:
            lead = int(rng.integers(0, cfg.lead_max + 1))
            n = int(rng.integers(cfg.segment_min, cfg.segment_max + 1))
            gap = int(rng.integers(0, cfg.gap_max + 1))
            if pos + lead + 2 * n + gap > L:
                break
            concept = bool(rng.random() < concept_prob)
            start1 = pos + lead
            start2 = start1 + n + gap
            tokens[start1 : start1 + n], tokens[start2 : start2 + n] = self.episode(n, concept)
            k = np.arange(n - 1)
            if concept:
                label[start2 + k] = np.where(k % 2 == 0, CONCEPT, CLASS_ONLY)
            else:
                label[start2 + k] = TOKEN
            key[start2 + k] = start1 + k + 1
            pos = start2 + n
        return tokens, label, key


def generate(
    cfg: WorldConfig, n: int, seed: int | tuple[int, ...], kind: Literal["mixed", "token", "concept", "none"] = "mixed"
) -> WorldBatch:
    """``n`` sequences from ``seed``: the training mixture, or only token / concept / no repeats."""
    sampler = _Sampler(cfg, np.random.default_rng(seed))
    concept_prob = {"mixed": cfg.concept_prob, "token": 0.0, "concept": 1.0, "none": 0.0}[kind]
    rows = [sampler.sequence(concept_prob, episodes=kind != "none") for _ in range(n)]
    tokens, label, key = (torch.from_numpy(np.stack(col)) for col in zip(*rows))
    return WorldBatch(tokens.long(), label.long(), key)


def episode_batch(cfg: WorldConfig, kind: Literal["token", "concept", "none"], n: int,
                  seed: int | tuple[int, ...]) -> WorldBatch:
    """Evaluation batch of one episode type with induction queries and their keys marked."""
    return generate(cfg, n, seed, kind)


def world_tokenizer(cfg: WorldConfig) -> PreTrainedTokenizerFast:
    """Word-level tokenizer over the world's names (whitespace-separated; it prepends ``BOS``)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors

    vocab = {name: i for i, name in enumerate(token_names(cfg))}
    tok = Tokenizer(models.WordLevel(vocab, unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.post_processor = processors.TemplateProcessing(single="BOS $A", special_tokens=[("BOS", BOS)])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="BOS", eos_token="BOS", pad_token="BOS",
        add_bos_token=True, name_or_path="fra-world",
    )



def write_corpus(cfg: WorldConfig, out: Path, ground_truth_path: Path) -> None:
    """``out/{split}_{tokens,label,key}.npy`` for both splits, and the ground-truth JSON."""
    sizes = {"train": cfg.n_train, "heldout": cfg.n_heldout}
    for i, split in enumerate(SPLITS):
        batch = generate(cfg, sizes[split], seed=(cfg.seed, i))
        for name in ("tokens", "label", "key"):
            with atomic_path(out / f"{split}_{name}.npy") as tmp, open(tmp, "wb") as f:
                np.save(f, getattr(batch, name).numpy().astype(np.int16 if name != "key" else np.int32))
    write_json(ground_truth_path, ground_truth(cfg))


def world_corpus(path: str | Path) -> Path:
    """``path`` if it holds a world corpus (both splits' token files), else a clear error."""
    path = Path(path)
    missing = [f"{split}_{name}.npy" for split in SPLITS for name in ("tokens", "label", "key")
               if not (path / f"{split}_{name}.npy").is_file()]
    if missing:
        raise FRAError(f"{path} is not a planted-world corpus (missing {missing}); build it "
                       f"with `fra toy-data --out {path}`")
    return path


def load_split(corpus: Path, split: str) -> WorldBatch:
    arrays = {name: torch.from_numpy(np.load(corpus / f"{split}_{name}.npy").astype(np.int64))
              for name in ("tokens", "label", "key")}
    return WorldBatch(**arrays)

