"""``fra heads``: induction / previous-token / duplicate-token scores of every head, and the ground-truth check."""

from __future__ import annotations

import argparse

from fra.analysis.heads import head_check, head_scores
from fra.config import load_params
from fra.io import atomic_path, output_file, write_json
from fra.models import load_model

NAME = "heads"
HELP = "induction / previous-token / duplicate-token scores of every head (params: heads)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="model directory or hub name")
    p.add_argument("--params", default="params.yaml")
    p.add_argument("--out", default="heads.csv")
    p.add_argument("--check-out", default=None, help="also write the canonical-induction-head check as JSON here")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])


def run(args: argparse.Namespace) -> int:
    out = output_file(args.out, "--out")
    check_out = output_file(args.check_out, "--check-out") if args.check_out else None
    cfg = load_params(args.params).heads
    model = load_model(args.model, device=args.device)
    df = head_scores(model, cfg)
    with atomic_path(out) as tmp:
        df.round(4).to_csv(tmp, index=False)
    check = head_check(model, cfg, df)
    if check_out:
        write_json(check_out, check)
    print(df.round(3).to_string(index=False))
    print(f"ground truth ok: {check['ground_truth_ok']}")
    return 0
