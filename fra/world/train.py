"""Seeded training of the toy transformer on the world corpus, and its ground-truth metrics."""

from __future__ import annotations

import math

import torch
from tqdm.auto import tqdm
from transformer_lens import HookedTransformer, HookedTransformerConfig

from fra.config import ToyTrainConfig, WorldConfig
from fra.repro import deterministic
from fra.world.corpus import CONCEPT, LABELS, NONE, TOKEN, WorldBatch, generate, world_tokenizer


def build_model(world: WorldConfig, cfg: ToyTrainConfig) -> HookedTransformer:
    torch.manual_seed(cfg.seed)
    model = HookedTransformer(HookedTransformerConfig(
        n_layers=cfg.n_layers, n_heads=cfg.n_heads, d_model=cfg.d_model, d_head=cfg.d_model // cfg.n_heads,
        d_mlp=cfg.d_mlp or None, attn_only=cfg.d_mlp == 0, d_vocab=world.d_vocab, n_ctx=world.seq_len, act_fn="gelu", normalization_type="LN",
        positional_embedding_type=cfg.positional_embedding_type, default_prepend_bos=True, seed=cfg.seed, device="cpu",
    ))
    model.set_tokenizer(world_tokenizer(world))
    return model


@torch.no_grad()
def evaluate(model: HookedTransformer, data: WorldBatch, batch_size: int = 100) -> dict:
    """Held-out loss and next-token accuracy at query positions of each label."""
    was_training = model.training
    model.eval()
    loss_sum, hits, counts = 0.0, torch.zeros(len(LABELS)), torch.zeros(len(LABELS))
    for start in range(0, len(data.tokens), batch_size):
        tokens = data.tokens[start : start + batch_size]
        logits = model(tokens)[:, :-1]
        loss_sum += torch.nn.functional.cross_entropy(logits.flatten(0, 1), tokens[:, 1:].flatten(), reduction="sum").item()
        correct = (logits.argmax(-1) == tokens[:, 1:]).float()
        label = data.label[:, :-1][start : start + batch_size]
        hits += torch.zeros(len(LABELS)).index_add_(0, label.flatten(), correct.flatten())
        counts += torch.bincount(label.flatten(), minlength=len(LABELS)).float()
    model.train(was_training)
    acc = hits / counts.clamp(min=1)
    return {
        "heldout_loss": loss_sum / (data.tokens.shape[0] * (data.tokens.shape[1] - 1)),
        "acc_token_repeat": acc[TOKEN].item(),
        "acc_concept_repeat": acc[CONCEPT].item(),
        "acc_random": acc[NONE].item(),
    }


def curriculum_data(world: WorldConfig, cfg: ToyTrainConfig) -> WorldBatch | None:
    """The token-repeat-only sequences of the first ``curriculum_steps`` steps (seeded by the world), or None."""
    if cfg.curriculum_steps == 0:
        return None
    return generate(world, min(world.n_train, cfg.curriculum_steps * cfg.batch_size), seed=(world.seed, 2), kind="token")


@torch.enable_grad()
@deterministic()
def train(model: HookedTransformer, train_data: WorldBatch, heldout: WorldBatch, cfg: ToyTrainConfig,
          curriculum: WorldBatch | None = None) -> list[dict]:
    """AdamW, linear warm-up then cosine decay to lr/10; returns the held-out history.

    The first ``cfg.curriculum_steps`` batches come from ``curriculum`` (token repeats only).
    """
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)

    def lr_factor(step: int) -> float:
        if step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_factor)
    gen = torch.Generator().manual_seed(cfg.seed)
    history = [{"step": 0, **evaluate(model, heldout)}]
    model.train()
    bar = tqdm(range(1, cfg.steps + 1), desc="train toy model", mininterval=2)
    for step in bar:
        data = curriculum if curriculum is not None and step <= cfg.curriculum_steps else train_data
        idx = torch.randint(0, len(data.tokens), (cfg.batch_size,), generator=gen)
        loss = model(data.tokens[idx], return_type="loss")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if step % cfg.eval_every == 0 or step == cfg.steps:
            history.append({"step": step, **evaluate(model, heldout)})
            h = history[-1]
            bar.set_postfix(loss=f"{h['heldout_loss']:.3f}", tok=f"{h['acc_token_repeat']:.2f}", con=f"{h['acc_concept_repeat']:.2f}")
    model.eval()
    return history


POSITIONAL_NOTE = {
    "shortformer": (
        "Shortformer positions (TransformerLens positional_embedding_type='shortformer': the position embedding is added "
        "to the query and key inputs after ln1, never to the residual stream or values), as in Anthropic's small "
        "attention-only models, which NOTES.md section 5 found to give canonical content-based induction heads quickly. "
        "Attention-only by default (toy_train.d_mlp = 0): on this world (seq_len 64, batch 64, lr 3e-3) an attention-only "
        "model reached token/concept repeat accuracy 0.76/0.83 and induction heads of 0.54/0.42 after 1500 steps, "
        "while the same model with a 512-wide MLP was at 0.11/0.22 with no induction head. TransformerLens fold_ln "
        "is not exact for shortformer, so the model is saved unprocessed (ln1 weights present)."
    ),
    "standard": "Standard learned absolute positions added to the residual stream.",
}
