"""Model loading: local TransformerLens checkpoints, local HF GPT-2 checkpoints, SmolLM2's GGUF, or the hub."""

from fra.models.loading import load_model, load_tokenizer, model_source, save_hooked
from fra.models.tokenizers import gpt2_tokenizer

__all__ = ["gpt2_tokenizer", "load_model", "load_tokenizer", "model_source", "save_hooked"]
