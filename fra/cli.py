"""fra (Feature-Resolved Attention) splits an attention head's scores exactly into pairs of sparse-autoencoder (SAE)
features of the attention input, and tests whether token and conceptual induction run through single feature pairs.

Where to start:
  fra resolve --model M --sae SAE --layer L --head H --text "..."
      one head's strongest feature-pair channels on one text, and the exactness residual
  fra induction --model M --saes SAES --out DIR
      token induction heads vs conceptual induction channels for every head of the SAEs' layers
  dvc repro
      the whole pipeline (planted world, SmolLM2, the paper), offline
  fra reproduce
      a reviewer's rerun: the whole pipeline, then every results file compared with the committed one

M: a folder saved by fra.models.save_hooked, a Hugging Face GPT-2 checkpoint or a hub name (gpt2-small);
SAE: an SAELens folder (sae.save_model); SAES: a folder of them, one per layer. README.md, section "Your own
model and SAEs", has the formats; `fra COMMAND --help` lists a command's flags.
"""

# Developer note: the ``fra`` command is the list of stages (``fra/stages/``), one subcommand each; the docstring
# above is what `fra --help` shows.

from __future__ import annotations

import argparse
import importlib
import sys

from fra.errors import FRAError

# In pipeline order: load -> resolve -> score -> test -> report, then the tools beside it. Each is a module of
# fra/stages/ whose NAME is the command; a command imports its own module only (`fra --help` imports them all).
STAGES = ["toy_data", "toy_train", "toy_saes", "toy_seeds", "compiled", "lm_model", "text_corpus", "lm_saes",
          "resolve", "heads", "induction", "power", "sae_sensitivity", "thresholds", "compare", "cot_traces", "cot",
          "explore", "explore_dataset", "explore_cot", "paper",
          "reproduce", "bench", "bench_channels", "bench_pages", "bench_saes", "smollm2_check"]


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Each flag's default in ``--help``, except where there is none (required flags, None, an unset switch)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.required or action.default is None or action.default is False:
            return action.help or ""
        return super()._get_help_string(action)


def build_parser(stages: list[str] = STAGES) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fra", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in stages:
        stage = importlib.import_module(f"fra.stages.{name}")
        p = sub.add_parser(stage.NAME, help=stage.HELP, description=stage.HELP,
                           formatter_class=HelpFormatter)
        stage.add_arguments(p)
        p.set_defaults(run=stage.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    chosen = [name for name in STAGES if argv and argv[0] == name.replace("_", "-")]
    try:
        args = build_parser(chosen or STAGES).parse_args(argv)
    except SystemExit as exc:  # argparse has printed the usage and the bad flag (or --help)
        return int(exc.code or 0)
    try:
        return args.run(args) or 0
    except FRAError as exc:
        print(f"fra: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
