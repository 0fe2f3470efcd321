"""The paper: results-file provenance, figure and table helpers for its code cells, and the build.

Paper cells call the section modules (``fra.report.method``, ``.planted``, ``.results``, …);
``fra paper`` (``fra.report.build``) renders it through Quarto or the offline route.
"""
