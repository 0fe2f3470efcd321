"""Train SAEs on a model's attention inputs with sae_lens (offline, no wandb), and evaluate them.

Training uses ``LanguageModelSAETrainingRunner`` with the project's model and an in-memory,
pre-tokenised dataset. The SAE is BatchTopK during training and is saved as the equivalent JumpReLU
SAE (linear decoder, as FRA needs). Evaluation reports L0, variance explained, the dead-feature
fraction and, per feature, where its activation mass sits: on the *current* token (and its class)
or on the *previous* token (and its class).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch
from jaxtyping import Float, Int
from sae_lens import SAE
from transformer_lens import HookedTransformer

from fra.config import ToySAEConfig
from fra.repro import deterministic
from fra.saes.loading import RESID_PRE

os.environ.setdefault("WANDB_MODE", "disabled")


def train_sae(model: HookedTransformer, tokens: Int[torch.Tensor, "seq pos"], layer: int, cfg: ToySAEConfig, out: Path) -> SAE:
    """Train a BatchTopK SAE on ``blocks.{layer}.hook_resid_pre`` and save it (SAELens format) to ``out``."""
    from datasets import Dataset
    from sae_lens import BatchTopKTrainingSAEConfig, LanguageModelSAERunnerConfig, LanguageModelSAETrainingRunner
    from sae_lens.config import LoggingConfig

    hook = RESID_PRE.format(layer=layer)
    d_model = model.cfg.d_model
    runner_cfg = LanguageModelSAERunnerConfig(
        sae=BatchTopKTrainingSAEConfig(d_in=d_model, d_sae=cfg.expansion * d_model, k=cfg.k, device="cpu"),
        model_name="fra-toy", hook_name=hook, dataset_path="fra-world", is_dataset_tokenized=True, streaming=False,
        context_size=tokens.shape[1], prepend_bos=True, training_tokens=cfg.training_tokens,
        train_batch_size_tokens=cfg.batch_size_tokens, store_batch_size_prompts=32,
        n_batches_in_buffer=2 * -(-cfg.batch_size_tokens // tokens.shape[1]),  # sae_lens buffers this many sequences' tokens
        lr=cfg.lr, lr_warm_up_steps=0, lr_scheduler_name="constant", device="cpu", seed=cfg.seed,
        logger=LoggingConfig(log_to_wandb=False), n_checkpoints=0, checkpoint_path=None, output_path=None,
        n_eval_batches=1, verbose=False,
        # dead = silent for this many steps; sae_lens' default (1000) exceeds a short run, so the
        # TopK auxiliary loss would never revive dead features
        dead_feature_window=50, feature_sampling_window=100,
    )
    torch.manual_seed(cfg.seed)
    dataset = Dataset.from_dict({"tokens": tokens.tolist()})
    with torch.enable_grad(), deterministic():
        trained = LanguageModelSAETrainingRunner(runner_cfg, override_dataset=dataset, override_model=model).run()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        trained.save_inference_model(str(tmp))
        shutil.rmtree(out, ignore_errors=True)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return SAE.load_from_disk(str(out), device="cpu")


@torch.no_grad()
def sae_activations(
    model: HookedTransformer, sae: SAE, tokens: Int[torch.Tensor, "seq pos"], batch_size: int = 100
) -> tuple[Float[torch.Tensor, "n d_model"], Float[torch.Tensor, "n d_sae"], Float[torch.Tensor, "n d_model"]]:
    """Activations ``x``, features ``f`` and reconstructions of every position, flattened."""
    hook = sae.cfg.metadata.hook_name
    xs, fs = [], []
    for start in range(0, len(tokens), batch_size):
        _, cache = model.run_with_cache(tokens[start : start + batch_size], names_filter=hook)
        x = cache[hook].flatten(0, 1)
        xs.append(x)
        fs.append(sae.encode(x))
    x, f = torch.cat(xs), torch.cat(fs)
    return x, f, sae.decode(f)


def sae_metrics(x: torch.Tensor, f: torch.Tensor, x_hat: torch.Tensor) -> dict:
    resid = (x - x_hat).pow(2).sum()
    total = (x - x.mean(0)).pow(2).sum()
    return {
        "l0": round((f > 0).sum(-1).float().mean().item(), 3),
        "variance_explained": round(1 - (resid / total).item(), 4),
        "dead_fraction": round((f > 0).sum(0).eq(0).float().mean().item(), 4),
        "n_tokens": x.shape[0],
    }


def feature_cards(
    f: Float[torch.Tensor, "n d_sae"], tokens: Int[torch.Tensor, "seq pos"], names: list[str],
    token_class: np.ndarray, n_top: int,
) -> list[dict]:
    """Per feature: firing rate, and the share of its activation mass by current / previous token and class."""
    cur = tokens.flatten()
    prev = torch.cat([torch.full((tokens.shape[0], 1), -1), tokens[:, :-1]], dim=1).flatten()
    d_vocab = len(names)
    groups = np.where(token_class >= 0, token_class, token_class.max() - token_class)  # classes, then filler (-1), BOS (-2)
    group_names = [f"c{c:02d}" for c in range(token_class.max() + 1)] + ["filler", "BOS"]

    def mass_by(ids: torch.Tensor) -> Float[torch.Tensor, "d_vocab d_sae"]:
        keep = ids >= 0
        return torch.zeros(d_vocab, f.shape[1]).index_add_(0, ids[keep], f[keep])

    by_token = {"current": mass_by(cur), "previous": mass_by(prev)}
    total = f.sum(0).clamp(min=1e-12)
    fires = (f > 0).float()
    cards = []
    for a in range(f.shape[1]):
        card = {"feature": a, "freq": round(fires[:, a].mean().item(), 5),
                "mean_act": round((f[:, a].sum() / fires[:, a].sum().clamp(min=1)).item(), 4)}
        for side, mass in by_token.items():
            share = (mass[:, a] / total[a]).numpy()
            top = np.argsort(-share)[:n_top]
            card[f"top_{side}"] = [[names[t], round(float(share[t]), 3)] for t in top if share[t] > 0]
            by_group = np.bincount(groups, weights=share, minlength=len(group_names))
            g = int(by_group.argmax())
            card[f"{side}_class"] = [group_names[g], round(float(by_group[g]), 3)]
        cur_share, prev_share = card["current_class"][1], card["previous_class"][1]
        if card["freq"] == 0:
            card["kind"] = "dead"
        elif max(cur_share, prev_share) < 0.5:
            card["kind"] = "mixed"
        else:
            side = "current" if cur_share >= prev_share else "previous"
            card["kind"] = f"{side}:{card[f'{side}_class'][0]}"
        cards.append(card)
    return cards


def main(args) -> int:
    import time

    from fra.config import load_params
    from fra.io import write_json
    from fra.models import load_model
    from fra.saes.loading import validate_sae
    from fra.world.corpus import load_split, token_classes, token_names

    params = load_params(args.params)
    cfg, world = params.toy_saes, params.world
    model = load_model(args.model, device="cpu")
    train_tokens = load_split(Path(args.corpus), "train").tokens
    eval_tokens = load_split(Path(args.corpus), "heldout").tokens[: cfg.eval_sequences]
    names, token_class = token_names(world), token_classes(world)
    summary, cards = {}, {}
    for layer in range(1, model.cfg.n_layers):
        start = time.time()
        sae = train_sae(model, train_tokens, layer, cfg, Path(args.out) / f"L{layer}")
        validate_sae(sae, model, layer)
        x, f, x_hat = sae_activations(model, sae, eval_tokens)
        layer_cards = feature_cards(f, eval_tokens, names, token_class, cfg.top_tokens)
        kinds = [c["kind"].split(":")[0] for c in layer_cards]
        summary[f"L{layer}"] = {
            "hook_name": sae.cfg.metadata.hook_name, "d_sae": sae.cfg.d_sae, **sae_metrics(x, f, x_hat),
            "feature_kinds": {k: kinds.count(k) for k in ("current", "previous", "mixed", "dead")},
            "train_seconds": round(time.time() - start, 1),
        }
        cards[f"L{layer}"] = layer_cards
        print(f"L{layer}: {summary[f'L{layer}']}")
    write_json(Path(args.results) / "saes.json", summary)
    write_json(Path(args.results) / "feature_cards.json", cards)
    return 0
