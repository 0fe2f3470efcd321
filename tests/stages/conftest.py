"""Saved tiny models and SAEs, and a check that a command refuses bad input cleanly.

A refusal means: exit code 2, one ``fra: error:`` (or argparse) message naming the problem, and no
file created or changed under the watched folder.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

from fra.cli import main
from fra.config import WorldConfig
from fra.models import gpt2_tokenizer, save_hooked
from fra.world.corpus import world_tokenizer
from tests.conftest import make_model, make_sae


def snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.md5(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(folder.rglob("*"))}


def refuses(argv: list[str], match: str, capsys, watch: Path) -> str:
    """Run ``fra argv``; assert it exits 2 with ``match`` in stderr and leaves ``watch`` as it was."""
    before = snapshot(watch)
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert re.search(match, err), f"{match!r} not in:\n{err}"
    assert "Traceback" not in err
    assert snapshot(watch) == before, "a refused command wrote files"
    return err


@pytest.fixture(scope="session")
def saved(tmp_path_factory) -> Path:
    """``gpt2/`` (GPT-2 tokenizer), ``toy/`` (a word-level world vocabulary), ``sae/`` on layer 1."""
    root = tmp_path_factory.mktemp("saved")
    model = make_model(d_vocab=50257, n_ctx=32)
    model.set_tokenizer(gpt2_tokenizer())
    save_hooked(model, root / "gpt2")
    world = WorldConfig()
    toy = make_model(d_vocab=world.d_vocab, n_ctx=32)
    toy.set_tokenizer(world_tokenizer(world))
    save_hooked(toy, root / "toy")
    make_sae().save_model(root / "sae")
    return root
