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
        order = torch.randperm(self.num_instances, generator=self.epoch_generator())
        padding = -self.num_instances % self.num_replicas
        self._order = torch.cat([order, order[:padding]])

    def _global_batch(self, position: int) -> torch.Tensor:
        start = position * self.global_batch_size
        return self._order[start : start + self.global_batch_size]
