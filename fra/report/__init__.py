"""The paper: its sections, the helpers they share, and the toolchain that builds it.

``sections/``: one module per part of the paper (``method``, ``planted``, ``results``, …), called by the cells of
paper/index.qmd. ``common``, ``data``, ``figures``, ``tables`` (here): what the sections share (models and probe
names, provenance-checked results files, figures, tables). ``build/``: results-file provenance and ``fra paper``,
which renders the paper through Quarto or the offline route. Imports point one way: sections -> shared helpers ->
build.
"""
