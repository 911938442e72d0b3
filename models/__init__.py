"""Encoders and method heads built on dglbs: GIN, GraphCL, MVGRL, ResNet, SimCLR, MoCo v3, SimCSE.

The repository keeps them in ``models/``; they install (and, from a clone, import
after ``pip install -e .``) as ``dglbs_models``, so a project's own ``models``
package never clashes with them. They import ``dglbs``; ``dglbs`` never imports them.
"""
