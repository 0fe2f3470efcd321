"""The paper: results-file provenance, figure and table helpers for its code cells, and the build.

Paper cells import from the submodules (``fra.report.provenance``, ``.figures``, ``.tables``);
``fra paper`` (``fra.report.build``) renders it through Quarto or the offline route.
"""
