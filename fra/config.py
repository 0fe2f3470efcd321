"""params.yaml -> validated dataclasses.

Every section of ``params.yaml`` is one frozen dataclass. ``load_params`` refuses unknown or
misspelled keys, wrong types and out-of-range values with a message naming the key
(``world.n_classes``), so a typo can never silently fall back to a default.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

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
        inner = [a for a in args if a is not type(None)]
        require(len(inner) == 1, key, "has an unsupported union type")
        return _coerce(value, inner[0], key)
    if origin in (tuple, list):
        require(isinstance(value, (list, tuple)), key, f"must be a list, got {type(value).__name__} {value!r}")
        (item,) = {a for a in typing.get_args(tp) if a is not Ellipsis}
        return tuple(_coerce(v, item, f"{key}[{n}]") for n, v in enumerate(value))
    if tp is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        require(ok, key, f"must be a number, got {type(value).__name__} {value!r}")
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
    kwargs = {k: _coerce(v, hints[k], f"{prefix}.{k}" if prefix else k) for k, v in data.items()}
    return cls(**kwargs)


@dataclass(frozen=True)
class EngineConfig:
    """Exact FRA engine options (each truncation reports the |score| share it drops)."""

    q_block: int = 16  # query positions per block; peak memory ~ 4*B*H*q_block*P*K^2 bytes
    top_k: int | None = None  # keep the k largest features per position (None: all)
    min_act: float = 0.0  # keep features with activation > min_act
    exclude_first: bool = False  # move all features of position 0 (BOS) into the remainder
    device: Literal["auto", "cpu", "cuda"] = "auto"

    def __post_init__(self) -> None:
        require(self.q_block >= 1, "engine.q_block", f"must be >= 1, got {self.q_block}")
        require(self.top_k is None or self.top_k >= 1, "engine.top_k", f"must be >= 1 or null, got {self.top_k}")
        require(self.min_act >= 0, "engine.min_act", f"must be >= 0, got {self.min_act}")


@dataclass(frozen=True)
class Params:
    """The whole of params.yaml."""

    engine: EngineConfig = field(default_factory=EngineConfig)


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate ``params.yaml``."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path} not found; run from the repository root or pass --params PATH")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from exc
    return from_dict(Params, data)
