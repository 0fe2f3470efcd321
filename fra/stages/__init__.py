"""The ``fra`` commands, one module per command: the stage layer of the pipeline.

Each module defines ``NAME``, ``HELP``, ``add_arguments(parser)`` and ``run(args) -> int``. A stage
owns its command-line arguments, loads what they name, calls the library with keyword arguments
and config dataclasses, and writes its outputs; the library never sees an argparse namespace.
"""
