"""Embedding data in a page: typed arrays as base64, a shared token-string table, JSON safe inside ``<script>``,
page assembly from the jinja2 templates in ``static/``, and reading a built page's data back."""

from __future__ import annotations

import base64
import json
import math
import re
from pathlib import Path

import numpy as np
from jinja2 import Environment, FileSystemLoader

from fra.errors import FRAError

STATIC = Path(__file__).parent / "static"
# float16 is decoded by the page
DTYPES = {"uint8": "<u1", "uint16": "<u2", "int32": "<i4", "float32": "<f4", "float16": "<f2"}
DATA = re.compile(r'<script id="data" type="application/json">(.*?)</script>', re.S)
# the pages: text is HTML-escaped; CSS, JS and the JSON payload go in as they are (`| safe` in the templates)
TEMPLATES = Environment(loader=FileSystemLoader(STATIC), autoescape=True, keep_trailing_newline=True)


def packed(a, dtype: str) -> dict:
    """A little-endian typed array the page decodes with ``arr()``: ``{dtype, shape, b64}``."""
    a = np.ascontiguousarray(np.asarray(a), dtype=DTYPES[dtype])
    return {"dtype": dtype, "shape": list(a.shape), "b64": base64.b64encode(a.tobytes()).decode("ascii")}


def unpacked(o: dict) -> np.ndarray:
    """The array of a :func:`packed` dict (float16 stays float16)."""
    return np.frombuffer(base64.b64decode(o["b64"]), DTYPES[o["dtype"]]).reshape(o["shape"])


class Strings:
    """Distinct token strings, each stored once per page; the page reads ``STR[id]``."""

    def __init__(self) -> None:
        self.index: dict[str, int] = {}

    def id(self, s: str) -> int:
        return self.index.setdefault(s, len(self.index))

    def ids(self, strs: list[str]) -> list[int]:
        return [self.id(s) for s in strs]

    @property
    def table(self) -> list[str]:
        return list(self.index)


def rounded(x: float | None, digits: int = 4) -> float | None:
    """``x`` to ``digits`` significant digits (None and non-finite values as None): pages show 3."""
    if x is None or not math.isfinite(x):
        return None
    return float(f"{x:.{digits}g}")


def clean(obj):
    """Replace NaN/inf by None recursively (JSON has neither)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [clean(v) for v in obj]
    return obj


def page(name: str, title: str, payload: dict, scripts: tuple[str, ...] = ()) -> str:
    """Render ``static/{name}.html`` with the title (HTML-escaped), the shared CSS/JS, ``scripts`` (other static JS
    files), the page's JS and the JSON payload."""
    data = json.dumps(clean(payload), separators=(",", ":"), allow_nan=False).replace("<", "\\u003c")
    return TEMPLATES.get_template(f"{name}.html").render(
        title=title,
        css=(STATIC / "common.css").read_text(),
        common_js="\n".join((STATIC / f).read_text() for f in ("common.js", *scripts)),
        js=(STATIC / f"{name}.js").read_text(),
        data=data,
    )


def read_payload(path: str | Path, flag: str) -> dict:
    """The data embedded in a page this module built (``flag`` names the option in errors)."""
    path = Path(path)
    if not path.is_file():
        raise FRAError(f"{flag} {path} does not exist; build it first (fra explore)")
    m = DATA.search(path.read_text(errors="replace"))
    if m is None:
        raise FRAError(f"{flag} {path} is not an explorer page built by fra (no embedded data)")
    try:
        return json.loads(m.group(1))
    except json.JSONDecodeError as exc:
        raise FRAError(f"{flag} {path} has unreadable embedded data ({exc}); rebuild it with fra explore") from exc
