"""The paper's kNN Sampler baseline: a random seed and its nearest neighbours."""
from __future__ import annotations

from typing import Any

import torch

from .._checks import check_embeddings
from ..proximity import DEFAULT_MEMORY_BUDGET, check_memory_budget, similarity_rows, top_k_random_ties
from .embedding import EmbeddingBatchSampler


class KNNBatchSampler(EmbeddingBatchSampler):
    """Each batch is a random seed followed by its ``B * num_replicas - 1`` most
    similar instances (exact search by inner product on the embeddings' device;
    ties at the cut are broken at random). With ``epoch_policy="cover"`` the
    neighbours are searched among the instances no earlier batch of the epoch used.

    Parameters
    ----------
    memory_budget : int
        Bytes of similarity scores (``rows x N`` floats) computed at once; at least
        one row's worth (``8 * N``).
    **kwargs
        See :class:`EmbeddingBatchSampler` and :class:`ContrastiveBatchSampler`.
    """

    def __init__(
        self, num_instances: int, batch_size: int, *, memory_budget: int = DEFAULT_MEMORY_BUDGET, **kwargs: Any
    ) -> None:
        super().__init__(num_instances, batch_size, **kwargs)
        self.memory_budget = check_memory_budget(
            memory_budget, 8 * self.num_instances, "similarity scores", min_rows=1
        )
        self.embeddings: torch.Tensor | None = None

    def _make_search(self, embeddings: torch.Tensor) -> torch.Tensor:
        return similarity_rows(embeddings, self.normalize)

    def _search(self) -> torch.Tensor:
        return self.embeddings

    def _nearest(
        self, embeddings: torch.Tensor, seeds: torch.Tensor, exclude: torch.Tensor | None, generator: torch.Generator
    ) -> torch.Tensor:
        """Rows ``[seed, its B*replicas - 1 nearest]``, never an instance in ``exclude``."""
        device = embeddings.device
        scores = embeddings[seeds.to(device)] @ embeddings.T
        scores[torch.arange(seeds.numel(), device=device), seeds.to(device)] = -torch.inf
        if exclude is not None:
            scores[:, exclude.to(device)] = -torch.inf
        neighbors = self.global_batch_size - 1
        if not neighbors:
            return seeds.unsqueeze(1)
        columns = top_k_random_ties(scores, neighbors, generator)[1].cpu()
        return torch.cat([seeds.unsqueeze(1), columns], 1)

    def _batches(self, search: torch.Tensor, seeds: torch.Tensor, parameter: float, generator: torch.Generator) -> torch.Tensor:
        rows_at_once = max(1, self.memory_budget // (8 * self.num_instances))
        return torch.cat([
            self._nearest(search, seeds[start : start + rows_at_once], None, generator)
            for start in range(0, seeds.numel(), rows_at_once)
        ])

    def _cover_batches(
        self, search: torch.Tensor, order: torch.Tensor, count: int, used: torch.Tensor, parameter: float,
        generator: torch.Generator,
    ) -> torch.Tensor:
        # One batch at a time: each searches among the instances the previous left.
        batches = []
        for _ in range(count):
            batch = self._nearest(search, self._unused_seeds(order, used, 1), used, generator)[0]
            used[batch] = True
            batches.append(batch)
        return torch.stack(batches) if batches else torch.empty(0, self.global_batch_size, dtype=torch.int64)

    def _search_state(self, search: torch.Tensor) -> dict[str, Any]:
        return {"embeddings": search.cpu()}

    def _installed_search(self) -> torch.Tensor:
        return self.embeddings

    def _parse_search(self, search: object) -> torch.Tensor:
        if not isinstance(search, dict) or set(search) != {"embeddings"}:
            raise ValueError(
                "state['search'] must be a dict with the key embeddings, got "
                f"{sorted(search) if isinstance(search, dict) else type(search).__name__}"
            )
        try:
            return check_embeddings(search["embeddings"], num_instances=self.num_instances).clone()
        except (TypeError, ValueError) as error:
            raise type(error)(f"state['search']['embeddings']: {error}") from None

    def _use_search(self, parsed: torch.Tensor) -> None:
        self.embeddings = parsed
