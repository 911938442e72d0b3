"""Embeddings the training loop already computed, kept for refreshing the sampler."""
from __future__ import annotations

import torch

from ._checks import check_embeddings, check_int


class EmbeddingBank:
    """One embedding per dataset instance, updated batch by batch.

    Rebuilding the proximity graph from the bank costs no extra encoder pass; its
    rows are as old as the last batch that contained them.

    Parameters
    ----------
    num_instances, dim : int
    device : torch.device or str
    """

    def __init__(self, num_instances: int, dim: int, device: torch.device | str = "cpu") -> None:
        self.num_instances = check_int("num_instances", num_instances, low=1)
        self.dim = check_int("dim", dim, low=1)
        self.embeddings = torch.zeros(self.num_instances, self.dim, device=device)
        self.written = torch.zeros(self.num_instances, dtype=torch.bool, device=device)

    def __repr__(self) -> str:
        return f"EmbeddingBank(num_instances={self.num_instances}, dim={self.dim}, filled={int(self.written.sum())})"

    @property
    def full(self) -> bool:
        """Whether every row has been written at least once."""
        return bool(self.written.all())

    def update(self, indices: torch.Tensor | list[int], embeddings: torch.Tensor) -> None:
        """Overwrite rows ``indices`` (shape (B,)) with ``embeddings`` (shape (B, dim))."""
        indices = torch.as_tensor(indices, device=self.embeddings.device).long()
        embeddings = check_embeddings(embeddings)
        if embeddings.shape != (indices.numel(), self.dim):
            raise ValueError(
                f"expected embeddings of shape ({indices.numel()}, {self.dim}) for "
                f"{indices.numel()} indices, got {tuple(embeddings.shape)}"
            )
        if indices.numel() and (int(indices.min()) < 0 or int(indices.max()) >= self.num_instances):
            raise ValueError(f"indices must be in [0, {self.num_instances}), got {indices.tolist()[:8]}...")
        self.embeddings[indices] = embeddings.detach().to(self.embeddings)
        self.written[indices] = True
