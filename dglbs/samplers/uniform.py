"""The usual shuffle, as a batch sampler (the paper's Uniform Sampler baseline)."""
from __future__ import annotations

import torch

from .base import ContrastiveBatchSampler


class UniformBatchSampler(ContrastiveBatchSampler):
    """Consecutive slices of a random permutation of the dataset, new each epoch.

    With ``num_replicas > 1`` the permutation is padded by wrapping around to a
    multiple of ``num_replicas`` (as ``DistributedSampler`` does), so the last,
    smaller global batch still splits evenly. See :class:`ContrastiveBatchSampler`
    for the parameters.
    """

    def _start_epoch(self) -> None:
        self._order = self.shuffled_order()

    def _global_batch(self, position: int) -> torch.Tensor:
        return self.slice_of(self._order, position)
