"""Embedding data in a page: typed arrays as base64, JSON safe inside ``<script>``, page assembly."""

from __future__ import annotations

import base64
import json
import math
from pathlib import Path

import numpy as np

STATIC = Path(__file__).parent / "static"
DTYPES = {"uint8": "<u1", "uint16": "<u2", "int32": "<i4", "float32": "<f4", "float16": "<f2"}  # float16: decoded by the page


def packed(a, dtype: str) -> dict:
    """A little-endian typed array the page decodes with ``arr()``: ``{dtype, shape, b64}``."""
    a = np.ascontiguousarray(np.asarray(a), dtype=DTYPES[dtype])
    return {"dtype": dtype, "shape": list(a.shape), "b64": base64.b64encode(a.tobytes()).decode("ascii")}


def clean(obj):
    """Replace NaN/inf by None recursively (JSON has neither)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [clean(v) for v in obj]
    return obj


def page(name: str, title: str, payload: dict) -> str:
    """Fill ``static/{name}.html`` with the shared CSS/JS, the page's JS and the JSON payload."""
    data = json.dumps(clean(payload), separators=(",", ":"), allow_nan=False).replace("<", "\\u003c")
    html = (STATIC / f"{name}.html").read_text()
    parts = {
        "TITLE": title.replace("&", "&amp;").replace("<", "&lt;"),
        "CSS": (STATIC / "common.css").read_text(),
        "COMMON_JS": (STATIC / "common.js").read_text(),
        "JS": (STATIC / f"{name}.js").read_text(),
        "DATA": data,
    }
    for k, v in parts.items():
        html = html.replace(f"/*{k}*/", v)
    return html
