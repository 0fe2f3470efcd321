"""The exact FRA engine (``resolve``) and the simple per-pair reference it is tested against."""

from fra.engine.resolver import resolve
from fra.engine.result import FEATURE_PAIRS, FRA

__all__ = ["FEATURE_PAIRS", "FRA", "resolve"]
