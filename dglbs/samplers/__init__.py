"""Batch samplers: ``DataLoader(dataset, batch_sampler=...)`` drop-ins."""
from .base import ContrastiveBatchSampler
from .embedding import EmbeddingBatchSampler
from .knn import KNNBatchSampler
from .uniform import UniformBatchSampler
from .walk import WalkBatchSampler

__all__ = [
    "ContrastiveBatchSampler",
    "EmbeddingBatchSampler",
    "KNNBatchSampler",
    "UniformBatchSampler",
    "WalkBatchSampler",
]
