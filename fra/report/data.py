"""Results files as the paper reads them: provenance-checked, with the columns it relies on."""

from __future__ import annotations

import json

import pandas as pd

from fra.errors import FRAError
from fra.report.build.provenance import Provenance, provenance


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
