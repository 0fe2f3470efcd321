"""Train SAEs on a model's attention inputs with sae_lens (offline, no wandb) or copy released ones; evaluate them.

Activations are cached first (:mod:`fra.saes.cache`: one model pass feeds every layer), then
each layer's SAE is trained by sae_lens' ``SAETrainer`` from seeded, shuffled batches of that
cache, for as many epochs as ``training_tokens`` asks. BOS positions are left out: the first
residual is an outlier that an SAE would spend features on, and FRA books it as error either way.
The SAE is BatchTopK during training and is saved as the equivalent JumpReLU SAE (linear decoder,
as FRA needs). Evaluation reports L0, variance explained, the dead-feature fraction and, for the
toy world, where each feature's activation mass sits: on the *current* or the *previous* token's class.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Callable, Iterator

import torch
import torch.nn.functional as F
from jaxtyping import Bool, Float, Int
from sae_lens import SAE, BatchTopKTrainingSAE, BatchTopKTrainingSAEConfig
from sae_lens.saes.batchtopk_sae import BatchTopK
from sae_lens.saes.sae import TrainStepInput, TrainStepOutput
from transformer_lens import HookedTransformer

from fra.config import ToySAEConfig
from fra.errors import FRAError
from fra.io import atomic_dir
from fra.repro import deterministic
from fra.saes.cache import cache_resid_pre
from fra.saes.loading import RESID_PRE, sae_hook_name, validate_sae
from fra.saes.sparse import SampledPre, sparse_decode

os.environ.setdefault("WANDB_MODE", "disabled")
NORM_BATCHES = 16  # batches that estimate the activation scale
# The saved JumpReLU threshold is an EMA (from 0) of the smallest kept activation per batch; sae_lens'
# rate (0.01) leaves it far too low after a few hundred steps, and L0 then overshoots k several-fold.
THRESHOLD_LR = 0.05
SPARSE_NORMS = ("none", "expected_average_only_in")  # input scalings applied outside the SAE (by the trainer)


def shuffled_batches(
    acts: Float[torch.Tensor, "n d_in"], batch_size: int, seed: int, device: str
) -> Iterator[Float[torch.Tensor, "batch d_in"]]:
    """Endless batches of ``acts``: a fresh seeded permutation every epoch, incomplete tail dropped."""
    gen = torch.Generator().manual_seed(seed)
    while True:
        perm = torch.randperm(len(acts), generator=gen)
        for start in range(0, len(acts) - batch_size + 1, batch_size):
            yield acts[perm[start : start + batch_size].to(acts.device)].to(device)


class KthBatchTopK(BatchTopK):
    """sae_lens' BatchTopK activation: keep the ``k * batch`` largest ReLU activations of the batch.

    The cut is the n-th largest value (n = k * batch), found by selection instead of a full ``topk``: a strided
    sample bounds it from below, and ``kthvalue`` runs on the values above that bound only (on all of them when the
    bound holds fewer than n). Values equal to the cut are kept, so the output is BatchTopK's unless two activations
    tie exactly at the cut (zeros stay zero). Tested against ``BatchTopK``.
    """

    STRIDE = 64  # every 64th value estimates the cut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        acts = x.relu()
        flat = acts.flatten()
        n = int(self.k * acts.shape[:-1].numel())
        count = torch.int32 if flat.numel() < 2**31 else torch.int64  # int32 sums of booleans are ~3x faster on a CPU
        if n >= int((flat > 0).sum(dtype=count)):
            return acts
        sample = flat[::self.STRIDE]
        above = min(len(sample), 2 * n // self.STRIDE + 8)  # twice the sample's expected share above the cut
        bound = sample.kthvalue(len(sample) - above + 1).values
        pool = flat[flat >= bound]
        if len(pool) < n:
            pool = flat
        cut = pool.kthvalue(len(pool) - n + 1).values
        below = torch.nextafter(cut, cut.new_tensor(-math.inf))  # x > below <=> x >= cut: threshold keeps the ties
        return F.threshold(acts, below.item(), 0.0)  # torch.where(acts >= cut, acts, 0), without the mask


class FastBatchTopKTrainingSAE(BatchTopKTrainingSAE):
    """sae_lens' BatchTopK training SAE with :class:`KthBatchTopK` and a sparse training step (saved, like it, as a
    JumpReLU SAE).

    The step computes sae_lens' losses (MSE, and the AuxK loss of the dead latents) from the kept entries only:
    the encoder's pre-activations are formed densely without a graph, and :mod:`fra.saes.sparse` decodes and
    backpropagates through the kept entries. Tested against sae_lens' dense step (losses, every gradient). The SAE's
    hook points are bypassed, and the trainer must not autocast (SAETrainerConfig's default).
    """

    def __init__(self, cfg: BatchTopKTrainingSAEConfig):
        if cfg.normalize_activations not in SPARSE_NORMS or cfg.reshape_activations != "none":
            raise ValueError(f"the sparse training step supports normalize_activations in {SPARSE_NORMS} and "
                             "reshape_activations 'none' only")
        super().__init__(cfg)

    def get_activation_fn(self) -> Callable[[torch.Tensor], torch.Tensor]:
        return KthBatchTopK(self.cfg.k)

    def training_forward_pass(self, step_input: TrainStepInput) -> TrainStepOutput:
        x = step_input.sae_in.to(self.dtype)
        sae_in = x - self.b_dec * self.cfg.apply_b_dec_to_input
        with torch.no_grad():
            pre = sae_in @ self.W_enc + self.b_enc
            hidden_pre = pre * self.W_dec.norm(dim=-1) if self.cfg.rescale_acts_by_decoder_norm else pre
            feature_acts = self.activation_fn(hidden_pre)
            rows, cols = feature_acts.nonzero(as_tuple=True)  # row-major: rows sorted
        # decoding divides the decoder-norm rescaling out again, so the kept entries decode with ``pre``
        values = SampledPre.apply(sae_in, self.W_enc, self.b_enc, pre, rows, cols)
        sae_out = sparse_decode(rows, cols, values, self.W_dec, len(x)) + self.b_dec
        mse_loss = self.mse_loss_fn(sae_out, x).sum(dim=-1).mean()
        aux_loss = self._aux_loss(x, sae_in, sae_out, hidden_pre, step_input.dead_neuron_mask)
        self._update_threshold(hidden_pre[rows, cols])
        return TrainStepOutput(
            sae_in=x, sae_out=sae_out, feature_acts=feature_acts, hidden_pre=hidden_pre, loss=mse_loss + aux_loss,
            losses={"mse_loss": mse_loss, "auxiliary_reconstruction_loss": aux_loss},
            metrics={"topk_threshold": self.topk_threshold},
        )

    @torch.no_grad()
    def _update_threshold(self, kept: Float[torch.Tensor, " nnz"]) -> None:
        """sae_lens' ``update_topk_threshold`` from the kept activations (all positive)."""
        if len(kept):
            lr = self.cfg.topk_threshold_lr
            self.topk_threshold = (1 - lr) * self.topk_threshold + lr * kept.min().to(self.topk_threshold.dtype)

    def _aux_loss(self, x: Float[torch.Tensor, "n d_in"], sae_in: Float[torch.Tensor, "n d_in"],
                  sae_out: Float[torch.Tensor, "n d_in"], hidden_pre: Float[torch.Tensor, "n d_sae"],
                  dead: Bool[torch.Tensor, " d_sae"] | None) -> Float[torch.Tensor, ""]:
        """sae_lens' ``calculate_topk_aux_loss``: the top ``d_in // 2`` dead latents of each row (pre-activations,
        no ReLU) reconstruct the live latents' residual, scaled down when fewer latents are dead. Formed on the
        dead latents' columns only (all of them are the top ones while at most ``d_in // 2`` are dead)."""
        cols = dead.nonzero().flatten() if dead is not None else x.new_zeros(0, dtype=torch.long)
        if (n_dead := len(cols)) == 0:
            return sae_out.new_tensor(0.0)
        k_aux = min(x.shape[-1] // 2, n_dead)
        acts = sae_in @ self.W_enc[:, cols] + self.b_enc[cols]
        if k_aux < n_dead:
            with torch.no_grad():
                keep = torch.zeros_like(acts, dtype=torch.bool).scatter_(
                    -1, hidden_pre[:, cols].topk(k_aux).indices, True)
            acts = torch.where(keep, acts, 0.0)
        loss = (acts @ self.W_dec[cols] - (x - sae_out).detach()).pow(2).sum(dim=-1).mean()
        return self.cfg.aux_loss_coefficient * min(n_dead / (x.shape[-1] // 2), 1.0) * loss


def train_sae(
    acts: Float[torch.Tensor, "n d_in"], hook_name: str, cfg: ToySAEConfig, out: Path, device: str = "cpu"
) -> SAE:
    """Train a BatchTopK SAE on cached activations of ``hook_name``; save it (SAELens format) to ``out``."""
    from sae_lens import SAETrainer
    from sae_lens.config import SAETrainerConfig

    if len(acts) < cfg.batch_size_tokens:
        raise FRAError(f"{len(acts)} cached activations are fewer than one batch ({cfg.batch_size_tokens}); "
                       f"lower {cfg.section}.batch_size_tokens or use a larger corpus")
    torch.manual_seed(cfg.seed)
    sae = FastBatchTopKTrainingSAE(BatchTopKTrainingSAEConfig(
        d_in=acts.shape[1], d_sae=cfg.expansion * acts.shape[1], k=cfg.k, device=device,
        # train at E|x| = sqrt(d_in); folded into the weights at the end
        normalize_activations="expected_average_only_in",
        topk_threshold_lr=THRESHOLD_LR,
    ))
    sae.cfg.metadata.hook_name = hook_name
    trainer_cfg = SAETrainerConfig(
        total_training_samples=cfg.training_tokens, train_batch_size_samples=cfg.batch_size_tokens, lr=cfg.lr,
        lr_end=cfg.lr / 10,  # unused by the constant schedule; sae_lens requires it
        device=device, dead_feature_window=cfg.dead_feature_window, feature_sampling_window=2 * cfg.dead_feature_window,
        n_batches_for_norm_estimate=NORM_BATCHES,
    )
    batches = shuffled_batches(acts, cfg.batch_size_tokens, cfg.seed, device)
    with torch.enable_grad(), deterministic():
        trained = SAETrainer(trainer_cfg, sae, batches).fit()
    with atomic_dir(out) as tmp:
        trained.save_inference_model(str(tmp))
        sorted_cfg(tmp)
    return SAE.load_from_disk(str(out), device=device)


def sorted_cfg(folder: Path) -> None:
    """Rewrite SAELens's ``cfg.json`` with sorted keys: its key order varies between processes, and so would the
    saved folder's hash in ``dvc.lock``."""
    path = Path(folder) / "cfg.json"
    path.write_text(json.dumps(json.loads(path.read_text()), indent=2, sort_keys=True) + "\n")


@torch.no_grad()
def encode(sae: SAE, x: Float[torch.Tensor, "n d_in"], batch_size: int = 8192
           ) -> tuple[Float[torch.Tensor, "n d_sae"], Float[torch.Tensor, "n d_in"]]:
    """Features ``f`` and reconstructions of ``x``, in batches."""
    fs, x_hats = [], []
    for start in range(0, len(x), batch_size):
        f = sae.encode(x[start : start + batch_size].to(sae.device))
        fs.append(f.cpu())
        x_hats.append(sae.decode(f).cpu())
    return torch.cat(fs), torch.cat(x_hats)


def sae_metrics(x: torch.Tensor, f: torch.Tensor, x_hat: torch.Tensor) -> dict:
    resid = (x - x_hat).pow(2).sum()
    total = (x - x.mean(0)).pow(2).sum()
    return {
        "l0": round((f > 0).sum(-1).float().mean().item(), 3),
        "variance_explained": round(1 - (resid / total).item(), 4),
        "dead_fraction": round((f > 0).sum(0).eq(0).float().mean().item(), 4),
        "n_tokens": x.shape[0],
    }


def evaluate(sae: SAE, x: Float[torch.Tensor, "n d_in"], seq_len: int) -> tuple[dict, Float[torch.Tensor, "n d_sae"]]:
    """The SAE's hook, size and metrics on ``x`` (positions of ``seq_len``-token sequences, BOS left out), and
    its features at every position."""
    f, x_hat = encode(sae, x)
    keep = torch.arange(len(x)) % seq_len > 0
    return {"hook_name": sae_hook_name(sae), "d_sae": sae.cfg.d_sae, **sae_metrics(x[keep], f[keep], x_hat[keep])}, f


def train_layers(
    model: HookedTransformer, train_tokens: Int[torch.Tensor, "seq pos"], eval_tokens: Int[torch.Tensor, "seq pos"],
    layers: list[int], cfg: ToySAEConfig, out: Path, device: str,
) -> tuple[dict, dict[int, Float[torch.Tensor, "n d_sae"]]]:
    """Cache once, then train, save (``out/L{layer}``) and validate one SAE per layer.

    Returns per layer the metrics on ``eval_tokens`` (BOS left out) and the features of every eval position.
    """
    start = time.time()
    train_acts = cache_resid_pre(model, train_tokens, layers, cfg.cache_batch_size)
    eval_acts = cache_resid_pre(model, eval_tokens, layers, cfg.cache_batch_size, skip_bos=False)
    print(f"cached {len(layers)} layers x {len(train_tokens) * (train_tokens.shape[1] - 1)} tokens "
          f"in {time.time() - start:.0f} s")
    summary, feats = {}, {}
    for layer in layers:
        start = time.time()
        sae = train_sae(train_acts.pop(layer), RESID_PRE.format(layer=layer), cfg, out / f"L{layer}", device)
        validate_sae(sae, model, layer)
        metrics, feats[layer] = evaluate(sae, eval_acts.pop(layer).cpu(), eval_tokens.shape[1])
        summary[f"L{layer}"] = metrics
        print(f"L{layer} ({time.time() - start:.0f} s): {metrics}")
    return summary, feats


def copy_layers(
    model: HookedTransformer, saes: dict[int, SAE], eval_tokens: Int[torch.Tensor, "seq pos"], batch_size: int,
    out: Path,
) -> Iterator[tuple[int, dict, Float[torch.Tensor, "n d_sae"]]]:
    """Validate released SAEs (layer -> SAE) and save each to ``out/L{layer}``; then, one layer at a time (a
    GPT-2 SAE's features on the eval tokens take GBs), its metrics on ``eval_tokens`` and features at every position."""
    for layer, sae in saes.items():
        validate_sae(sae, model, layer)
    eval_acts = cache_resid_pre(model, eval_tokens, list(saes), batch_size, skip_bos=False)
    for layer, sae in saes.items():
        with atomic_dir(out / f"L{layer}") as tmp:
            sae.save_model(str(tmp))
            sorted_cfg(tmp)
        metrics, f = evaluate(sae, eval_acts.pop(layer).cpu(), eval_tokens.shape[1])
        print(f"L{layer}: {metrics}")
        yield layer, metrics, f
