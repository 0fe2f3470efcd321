"""The ``fra`` command. DVC stages call its subcommands; each lives in the module of its idea."""

from __future__ import annotations

import argparse
import sys

from fra.errors import FRAError


def _add_resolve(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("resolve", help="resolve one head's attention scores on a text into SAE feature pairs")
    p.add_argument("--model", required=True, help="model directory or hub name (gpt2-small)")
    p.add_argument("--sae", required=True, help="SAELens directory or hub release (gpt2-small-res-jb)")
    p.add_argument("--layer", type=int, required=True)
    p.add_argument("--head", type=int, required=True)
    p.add_argument("--text", required=True)
    p.add_argument("--top", type=int, default=10, help="channels to list")
    p.add_argument("--top-k", type=int, default=None, help="keep the k largest features per position")
    p.add_argument("--min-act", type=float, default=0.0, help="keep features with activation above this")
    p.add_argument("--exclude-first", action="store_true", help="move BOS/first-position features to the remainder")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=lambda a: __import__("fra.engine.summary", fromlist=["main"]).main(a))


def _add_bench(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="benchmark the engine against the reference on a GPT-2-sized setting")
    p.add_argument("--d-model", type=int, default=768)
    p.add_argument("--d-sae", type=int, default=24576)
    p.add_argument("--n-heads", type=int, default=12)
    p.add_argument("--n-tokens", type=int, default=128)
    p.add_argument("--k-active", type=int, default=50)
    p.add_argument("--ref-pairs", type=int, default=300, help="(head, query, key) pairs timed for the reference")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.set_defaults(func=lambda a: __import__("fra.engine.bench", fromlist=["main"]).main(a))


COMMANDS = [_add_resolve, _add_bench]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fra", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for add in COMMANDS:
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args) or 0
    except FRAError as exc:
        print(f"fra: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
