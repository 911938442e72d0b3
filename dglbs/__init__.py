"""dglbs: mini-batch sampling for in-batch contrastive learning on DGL (BatchSampler, KDD'23)."""
from .knn import knn_graph, knn_recall
from .proximity import proximity_graph
from .samplers import (
    ContrastiveBatchSampler,
    EmbeddingBatchSampler,
    KNNBatchSampler,
    UniformBatchSampler,
    WalkBatchSampler,
)
from .schedules import ConstantSchedule, LinearSchedule
from .walks import GraphWalker

__version__ = "0.1.0"

__all__ = [
    "ConstantSchedule",
    "ContrastiveBatchSampler",
    "EmbeddingBatchSampler",
    "GraphWalker",
    "KNNBatchSampler",
    "LinearSchedule",
    "UniformBatchSampler",
    "WalkBatchSampler",
    "knn_graph",
    "knn_recall",
    "proximity_graph",
]
