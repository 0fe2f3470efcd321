"""Load an SAE with sae_lens and check it can resolve a layer's attention scores.

FRA writes each attention input as ``x = sum_a f_a d_a + b_dec + e``; that only decomposes the
QK circuit of layer L when the SAE reads the *input* of that layer's attention:
``blocks.L.hook_resid_pre`` (before ln1) or ``blocks.L.ln1.hook_normalized`` (after it).
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
from sae_lens import SAE
from sae_lens.loading.pretrained_saes_directory import get_pretrained_saes_directory
from transformer_lens import HookedTransformer

from fra.devices import pick_device, require_hub
from fra.errors import FRAError

RESID_PRE = "blocks.{layer}.hook_resid_pre"
LN1_NORMALIZED = "blocks.{layer}.ln1.hook_normalized"


def attention_input_hooks(layer: int) -> tuple[str, str]:
    """The two hook names whose SAEs can resolve layer ``layer``'s attention scores."""
    return RESID_PRE.format(layer=layer), LN1_NORMALIZED.format(layer=layer)


def sae_hook_name(sae: SAE) -> str:
    return sae.cfg.metadata.hook_name or ""


def load_sae(spec: str | Path, layer: int | None = None, device: str = "auto") -> SAE:
    """Load an SAE from a local SAELens directory, or ``release`` (+ ``layer``) from the hub.

    A hub release such as ``gpt2-small-res-jb`` is read at ``blocks.{layer}.hook_resid_pre``.
    """
    device = pick_device(device)
    path = Path(spec)
    if path.is_dir():
        if not (path / "cfg.json").exists():
            raise FRAError(f"{path} is not an SAELens SAE directory (no cfg.json); save "
                           "SAEs with `sae.save_model(dir)`")
        try:
            sae = SAE.load_from_disk(str(path), device=device)
        except Exception as exc:
            raise FRAError(f"{path} is not a loadable SAELens SAE ({type(exc).__name__}: "
                           f"{str(exc).splitlines()[0][:300] if str(exc) else 'no message'}); its cfg.json or "
                           "sae_weights.safetensors is missing, corrupt or inconsistent: save it again with "
                           "`sae.save_model(dir)` (or `dvc repro`)") from exc
        return check_decoder(sae)
    if path.exists() or str(spec).startswith((".", "/")):
        raise FRAError(f"SAE `{spec}` is not a directory; pass an SAELens directory or a "
                       "release like gpt2-small-res-jb")
    if str(spec) not in get_pretrained_saes_directory():
        raise FRAError(f"SAE `{spec}`: no such folder, and not an SAELens release (e.g. "
                       "gpt2-small-res-jb); check the path")
    if layer is None:
        raise FRAError(f"loading SAE release `{spec}` from the hub needs a layer (--layer)")
    require_hub(
        f"SAE release `{spec}`",
        "Point --sae at a local SAELens directory instead (cfg.json + sae_weights.safetensors), "
        "e.g. one trained by `dvc repro` under models/.",
    )
    return check_decoder(SAE.from_pretrained(str(spec), RESID_PRE.format(layer=layer), device=device))


def validate_sae(sae: SAE, model: HookedTransformer, layer: int) -> None:
    """:func:`check_sae` and :func:`check_decoder`: everything, once, when an SAE is loaded or trained."""
    check_sae(sae, model, layer)
    check_decoder(sae)


def check_sae(sae: SAE, model: HookedTransformer, layer: int) -> None:
    """Refuse an SAE that cannot resolve layer ``layer``'s attention scores, saying why (cheap: the config only)."""
    n_layers = model.cfg.n_layers
    if not 0 <= layer < n_layers:
        raise FRAError(f"layer {layer} is out of range: the model has layers 0..{n_layers - 1}")
    hook = sae_hook_name(sae)
    allowed = attention_input_hooks(layer)
    if hook not in allowed:
        other = re.fullmatch(r"blocks\.(\d+)\.(hook_resid_pre|ln1\.hook_normalized)", hook)
        if other:
            why = f"it reads the attention input of layer {other.group(1)}, not of layer {layer}"
        elif re.search(r"hook_z|hook_attn_out|hook_result|hook_mlp_out|hook_resid_post|hook_resid_mid", hook):
            why = (
                "it reads an output of a layer (attention or MLP output, or a later residual stream); "
                "its features are not the inputs of the query/key projections, so they cannot decompose the scores"
            )
        else:
            why = "it does not read the residual stream entering the attention layer"
        raise FRAError(
            f"SAE hook `{hook}` cannot resolve attention scores of layer {layer}: {why}. "
            f"Use an SAE trained on `{allowed[0]}` or `{allowed[1]}`."
        )
    if hook.endswith("ln1.hook_normalized") and model.cfg.normalization_type is None:
        raise FRAError(f"SAE hook `{hook}`: this model has no ln1; use an SAE on `{allowed[0]}`")
    if sae.cfg.d_in != model.cfg.d_model:
        raise FRAError(f"SAE d_in={sae.cfg.d_in} does not match the model's d_model={model.cfg.d_model}")
    if sae.cfg.normalize_activations != "none":
        raise FRAError(
            f"SAE uses normalize_activations=`{sae.cfg.normalize_activations}`: its reconstruction is not linear "
            "in the feature activations, so FRA would not be exact. Fold the normalisation into the weights first."
        )


def check_decoder(sae: SAE) -> SAE:
    """Refuse an SAE whose decoder is not ``f @ W_dec + b_dec`` (checked on random activations)."""
    with torch.no_grad():
        f = torch.rand(3, sae.cfg.d_sae, device=sae.W_dec.device, dtype=sae.W_dec.dtype)
        linear = f @ sae.W_dec + sae.b_dec
        if not torch.allclose(sae.decode(f), linear, rtol=1e-4, atol=1e-4 * linear.abs().max().item()):
            raise FRAError(
                f"SAE `{type(sae).__name__}` decodes non-linearly (decode(f) != f @ W_dec + "
                "b_dec); FRA needs a linear decoder"
            )
    return sae


def load_saes(spec: str, layers: list[int] | None, model: HookedTransformer) -> dict[int, SAE]:
    """SAEs from a directory of SAELens folders (one per layer; the folder names are free, each SAE's hook
    ``blocks.L.*`` gives its layer), from one SAELens folder (its layer's SAE), or a hub release with ``--layers``."""
    path = Path(spec)
    if path.is_dir():
        single = (path / "cfg.json").exists()
        folders = [path] if single else sorted(p for p in path.iterdir() if (p / "cfg.json").exists())
        if not folders:
            raise FRAError(f"{path} holds no SAELens SAE folders (cfg.json + sae_weights.safetensors); pass the folder "
                           "that holds one per layer (e.g. L1/, L2/, each written by "
                           "`sae.save_model(dir)`) or one of them")
        saes, where = {}, {}
        for sub in folders:
            sae = load_sae(sub, device=str(model.cfg.device))
            hook = sae_hook_name(sae)
            m = re.match(r"blocks\.(\d+)\.", hook)
            if m is None:
                raise FRAError(f"{sub}: its hook `{hook}` names no layer; fra resolves SAEs on "
                               f"`{RESID_PRE.format(layer='L')}` or `{LN1_NORMALIZED.format(layer='L')}`")
            layer = int(m.group(1))
            if layer in where:
                raise FRAError(f"{where[layer]} and {sub} both hold an SAE for layer {layer} "
                               f"(`{hook}`); keep one per layer")
            saes[layer], where[layer] = sae, sub
        missing = sorted(set(layers or []) - set(saes))
        if missing:
            raise FRAError(f"{path} holds no SAE for layer(s) {missing} (it has "
                           f"{sorted(saes)}); drop them from --layers"
                           + ("" if single else " or add their SAELens folders"))
        return {layer: sae for layer, sae in saes.items() if layers is None or layer in layers}
    if not layers:
        raise FRAError(f"SAE release `{spec}` needs --layers")
    bad = [layer for layer in layers if not 0 <= layer < model.cfg.n_layers]
    if bad:
        raise FRAError(f"--layers {bad} out of range: the model has layers 0..{model.cfg.n_layers - 1}")
    return {layer: load_sae(spec, layer, device=str(model.cfg.device)) for layer in layers}
