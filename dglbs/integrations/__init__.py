"""Bridges to other training libraries; each submodule imports its library itself.

The multi-process helpers live in :mod:`dglbs.distributed` (the shared trainer uses
them too) and are re-exported here: they refresh a sampler from an encoder when every
process of the default process group holds a replica of it (``num_replicas`` /
``rank`` slicing), as under Lightning's DDP or a multi-process ``accelerate`` loop.
Every process must call them at the same point of training.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from dglbs.distributed import check_same_graph, gather_embeddings, refresh_from_shards, world_size_and_rank

__all__ = ["SamplerCosts", "check_same_graph", "gather_embeddings", "world_size_and_rank", "refresh_from_shards"]


@dataclass
class SamplerCosts:
    """Running totals of the sampler's costs in a training library's loop (a log
    window, an epoch or a run), since the sampler's ``sampling_seconds`` was
    ``sampling_mark``; what the Lightning and sentence-transformers callbacks log."""

    sampling_mark: float = 0.0
    steps: int = 0
    step_seconds: float = 0.0
    encode_seconds: float = 0.0
    build_seconds: float = 0.0
    refreshes: int = 0

    def metrics(self, sampling_seconds: float) -> dict[str, float]:
        """The logged figures, defined as in :class:`dglbs.trainer.Trainer`."""
        steps = max(1, self.steps)
        cost_s = (sampling_seconds - self.sampling_mark) / steps
        cost_t = self.step_seconds / steps
        return {
            "sampler/cost_s": cost_s,
            "sampler/cost_g": self.build_seconds / self.refreshes if self.refreshes else 0.0,
            "sampler/cost_t": cost_t,
            "sampler/sampler_share": (cost_s + self.build_seconds / steps) / cost_t if cost_t else math.nan,
            "sampler/encode_share": self.encode_seconds / steps / cost_t if cost_t else math.nan,
            "sampler/refreshes": float(self.refreshes),
        }

