"""asv benchmarks for vbfast (see README.md in this directory).

asv does not build vbfast here: ``asv run --python=same`` benchmarks the vbfast that the running
Python imports, so install it first (``pip install .`` or ``pip install -e .``).

asv removes PYTHONPATH from the environment of its benchmark processes (it passes on
ASV_PYTHONPATH instead). So that an in-place build (``python setup.py build_ext --inplace``)
can be benchmarked without installing, this package falls back to the repository root holding
it when no installed vbfast can be imported.
"""
import importlib.util
import os
import sys


def _fall_back_to_source_tree():
    if importlib.util.find_spec("vbfast") is not None:
        return
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if os.path.isfile(os.path.join(root, "vbfast", "__init__.py")):
        sys.path.insert(0, root)


_fall_back_to_source_tree()
del _fall_back_to_source_tree
