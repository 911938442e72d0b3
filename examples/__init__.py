"""The example programs, installed as ``dglbs_examples`` with console commands.

Each module is a script (``python examples/graph_tu.py`` in a clone, or
``python -m dglbs_examples.graph_tu``) and a command after installation:
``dglbs-graph``, ``dglbs-molhiv``, ``dglbs-vision``, ``dglbs-simcse``,
``dglbs-simcse-from-logs`` and ``dglbs-sampler-demo`` (see
:mod:`dglbs_examples.commands`). Their ``run`` functions are importable too, e.g.
``from dglbs_examples.graph_tu import Config, run``.
"""
