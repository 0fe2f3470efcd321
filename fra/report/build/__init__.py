"""The paper's toolchain: results-file provenance (``lock``, ``tree``, ``provenance``), the markdown cells print
(``markdown``) and ``fra paper`` (``build``: Quarto, or the offline route through ``qmd``, ``execute`` and
``pandoc``). It never imports the paper's sections.
"""
