"""Results files as the paper reads them: provenance-checked, with the columns it relies on."""

from __future__ import annotations

import json
import numbers

import pandas as pd

from fra.errors import FRAError
from fra.report.provenance import Provenance, provenance


def read_csv(path: str, columns: list[str]) -> tuple[pd.DataFrame, Provenance]:
    """The checked table at ``path``; refuses one that lacks any of ``columns``."""
    prov = provenance(path)
    df = pd.read_csv(prov.file)
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise FRAError(f"{path} lacks the column(s) {', '.join(missing)} the paper reads (it has "
                       f"{', '.join(df.columns)}); update the paper or rerun `dvc repro {prov.stage}`")
    return df, prov


def read_json(path: str) -> tuple[dict, Provenance]:
    prov = provenance(path)
    return json.loads(prov.file.read_text()), prov


def scalars(obj: dict, prefix: str = "") -> pd.DataFrame:
    """Every number, flag and short string in a nested JSON object as (key, value) rows; lists skipped."""
    rows = []
    for key, value in obj.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            rows.extend(scalars(value, f"{name}.").itertuples(index=False))
        elif isinstance(value, (numbers.Number, bool)) or (isinstance(value, str) and len(value) <= 60):
            rows.append((name, value))
    return pd.DataFrame(rows, columns=["key", "value"])
