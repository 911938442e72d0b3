"""Bridges to other training libraries; each submodule imports its library itself.

The multi-process helpers live in :mod:`dglbs.distributed` (the shared trainer uses
them too) and are re-exported here: they refresh a sampler from an encoder when every
process of the default process group holds a replica of it (``num_replicas`` /
``rank`` slicing), as under Lightning's DDP or a multi-process ``accelerate`` loop.
Every process must call them at the same point of training.
"""
from __future__ import annotations

from dglbs.distributed import check_same_graph, gather_embeddings, refresh_from_shards, world_size_and_rank

__all__ = ["check_same_graph", "gather_embeddings", "world_size_and_rank", "refresh_from_shards"]
