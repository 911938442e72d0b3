"""Batch diagnostics the paper plots (Figs. 4-8): in-batch similarity and false negatives."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def pairwise_cosine(embeddings: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of every unordered pair of rows.

    Parameters
    ----------
    embeddings : Tensor of shape (B, d)

    Returns
    -------
    Tensor of shape (B * (B - 1) / 2,), float32
    """
    if embeddings.dim() != 2:
        raise ValueError(f"embeddings must be (B, d), got shape {tuple(embeddings.shape)}")
    unit = F.normalize(embeddings.detach().float(), dim=1)
    rows, columns = torch.triu_indices(len(unit), len(unit), offset=1, device=unit.device)
    return (unit[rows] * unit[columns]).sum(1)


def similarity_histogram(embeddings: torch.Tensor, bins: int = 40) -> tuple[torch.Tensor, torch.Tensor]:
    """Histogram of in-batch pairwise cosine similarities on ``[-1, 1]``.

    Returns
    -------
    (counts, edges) : LongTensor of shape (bins,), Tensor of shape (bins + 1,)
    """
    similarities = pairwise_cosine(embeddings).cpu()
    counts = torch.histc(similarities, bins=bins, min=-1.0, max=1.0).long()
    return counts, torch.linspace(-1.0, 1.0, bins + 1)


def false_negative_rate(labels: torch.Tensor) -> float:
    """Share of in-batch pairs whose instances have the same label.

    Parameters
    ----------
    labels : Tensor of shape (B,), integer class labels of the batch's instances
    """
    labels = torch.as_tensor(labels)
    if labels.dim() != 1 or labels.numel() < 2:
        raise ValueError(f"labels must be 1-D with at least 2 entries, got shape {tuple(labels.shape)}")
    counts = torch.unique(labels, return_counts=True)[1].double()
    same = (counts * (counts - 1)).sum() / 2
    total = labels.numel() * (labels.numel() - 1) / 2
    return float(same / total)
