"""Numbers the paper's text shows as inline expressions (`` `{python} toy.recall` ``), each recorded in
provenance.json with the results files it comes from, as figures and tables are."""

from __future__ import annotations

from collections.abc import Iterable

from fra.errors import FRAError
from fra.report.build.provenance import Provenance, available, record
from fra.report.tables import fmt


class Values:
    """The named values of one part of the paper; ``values.name`` is the text the paper shows.

    ``paths`` are the results files the part reads. Where one of them is absent (never produced on this machine,
    whose tables then print the absent notice), a value the text asks for and the part could not compute reads "–";
    with every file there, such a name is an error (a typo in the text, or a number the part does not give)."""

    def __init__(self, part: str, paths: Iterable[str] = ()):
        self._part = part
        self._text: dict[str, str] = {}
        self._absent = [p for p in paths if not available(p)]
        self._unset: dict[str, str] = {}  # name -> why it reads "–" (``fill``)

    def add(self, name: str, value: object, *sources: Provenance, note: str | None = None, digits: int = 3) -> str:
        """Store ``value`` as text (numbers through ``fmt``) under ``name``, recorded with ``sources`` (results
        files) or ``note`` (what no results file holds, e.g. a constant of the code)."""
        if not sources and not note:
            raise ValueError(f"value {self._part}.{name} needs a provenance record or a note")
        if name in self._text:
            raise ValueError(f"value {self._part}.{name} is set twice")
        text = value if isinstance(value, str) else fmt(value, digits)
        record({"kind": "value", "label": f"{self._part}.{name}", "text": text,
                "sources": [s.path for s in sources], **({"note": note} if note else {})})
        self._text[name] = text
        return text

    def fill(self, names: Iterable[str], paths: list[str]) -> "Values":
        """"–" for every name of ``names`` not set, should the text ask for it, so the text still builds where the
        results ``paths`` are absent (their tables then print the absent notice) or hold no such number (nothing
        confirmed, nothing found, a probe not run). Recorded when the text asks, like any value."""
        why = ("results absent: " if not all(available(p) for p in paths) else "not defined on these results: ")
        self._unset.update({name: why + ", ".join(paths) for name in names if name not in self._text})
        return self

    def __getattr__(self, name: str) -> str:
        if name.startswith("_"):
            raise AttributeError(name)
        if name not in self._text and (name in self._unset or self._absent):
            self.add(name, "–", note=self._unset.get(name) or "results absent: " + ", ".join(self._absent))
        try:
            return self._text[name]
        except KeyError:
            raise FRAError(f"the paper asks for {self._part}.{name}, which is not computed; it has "
                           f"{', '.join(sorted(self._text)) or 'no values'}") from None

    def __contains__(self, name: str) -> bool:
        return name in self._text or name in self._unset
