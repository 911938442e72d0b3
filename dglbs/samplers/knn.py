"""The paper's kNN Sampler baseline: a random seed and its nearest neighbours."""
from __future__ import annotations

from typing import Any

import torch

from .._checks import check_embeddings, check_int
from ..proximity import DEFAULT_MEMORY_BUDGET
from .embedding import EmbeddingBatchSampler


class KNNBatchSampler(EmbeddingBatchSampler):
    """Each batch is a random seed followed by its ``B * num_replicas - 1`` most
    similar instances (exact search by inner product on the embeddings' device).

    Parameters
    ----------
    memory_budget : int
        Bytes of similarity scores (``chunk x N`` floats) computed at once.
    **kwargs
        See :class:`EmbeddingBatchSampler` and :class:`ContrastiveBatchSampler`.
    """

    def __init__(
        self, num_instances: int, batch_size: int, *, memory_budget: int = DEFAULT_MEMORY_BUDGET, **kwargs: Any
    ) -> None:
        super().__init__(num_instances, batch_size, **kwargs)
        self.memory_budget = check_int("memory_budget", memory_budget, low=1)
        self.embeddings: torch.Tensor | None = None

    def _build(self, embeddings: torch.Tensor) -> None:
        self.embeddings = embeddings

    def _batches(self, seeds: torch.Tensor, parameter: float, generator: torch.Generator) -> torch.Tensor:
        embeddings = self.embeddings
        rows_at_once = max(1, self.memory_budget // (8 * self.num_instances))
        batches = []
        for start in range(0, seeds.numel(), rows_at_once):
            part = seeds[start : start + rows_at_once].to(embeddings.device)
            scores = embeddings[part] @ embeddings.T
            # The seed comes first even if another instance has the same embedding.
            scores[torch.arange(part.numel(), device=scores.device), part] = torch.inf
            batches.append(torch.topk(scores, self.global_batch_size, dim=1).indices.cpu())
        return torch.cat(batches)

    def _search_state(self) -> dict[str, Any]:
        return {"embeddings": self.embeddings.cpu()}

    def _restore_search(self, state: dict[str, Any]) -> None:
        self.embeddings = check_embeddings(state["embeddings"], num_instances=self.num_instances)
