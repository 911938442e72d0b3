"""Console entry points of the examples (``[options.entry_points]`` in setup.cfg).

Each command imports its example only when run, so that a missing optional
dependency is reported in one line naming the extra to install, even for ``--help``.
"""
from __future__ import annotations

import importlib

from dglbs.cli import MissingExtraError, print_error, run_main


def launch(module: str) -> int:
    """Import ``dglbs_examples.<module>`` and run its ``main`` as a command; the exit status."""
    try:
        main = importlib.import_module(f"dglbs_examples.{module}").main
    except MissingExtraError as error:
        return print_error(str(error))
    return run_main(main)


def graph_tu() -> int:
    """``dglbs-graph``: GraphCL / MVGRL on TU datasets (extra ``graph``)."""
    return launch("graph_tu")


def graph_molhiv() -> int:
    """``dglbs-molhiv``: GraphCL on ogbg-molhiv (extra ``mol``)."""
    return launch("graph_molhiv")


def vision() -> int:
    """``dglbs-vision``: SimCLR / MoCo v3 on images (extra ``vision``)."""
    return launch("vision")


def simcse() -> int:
    """``dglbs-simcse``: unsupervised SimCSE on STS (extra ``text``)."""
    return launch("simcse")


def simcse_from_logs() -> int:
    """``dglbs-simcse-from-logs``: fold one-run SimCSE logs into one table (extra ``text``)."""
    return launch("simcse_from_logs")


def sampler_demo() -> int:
    """``dglbs-sampler-demo``: the samplers on a TU dataset (no extra)."""
    return launch("sampler_demo")
