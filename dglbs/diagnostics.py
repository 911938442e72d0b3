"""Batch diagnostics the paper plots (Figs. 4-8): in-batch similarity and false negatives,
and how much of the data an epoch of batches covers."""
from __future__ import annotations

from collections.abc import Iterable, Sequence

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


def same_label_pairs(labels: torch.Tensor) -> torch.Tensor:
    """Whether each unordered in-batch pair has the same label, in the order of
    :func:`pairwise_cosine`, so ``pairwise_cosine(z)[same_label_pairs(y)]`` are the
    similarities of the false negatives.

    Parameters
    ----------
    labels : Tensor of shape (B,), integer class labels of the batch's instances

    Returns
    -------
    BoolTensor of shape (B * (B - 1) / 2,)
    """
    labels = torch.as_tensor(labels)
    if labels.dim() != 1:
        raise ValueError(f"labels must be 1-D (B,), got shape {tuple(labels.shape)}")
    rows, columns = torch.triu_indices(len(labels), len(labels), offset=1, device=labels.device)
    return labels[rows] == labels[columns]


def epoch_coverage(batches: Iterable[Sequence[int] | torch.Tensor], num_instances: int) -> tuple[float, int]:
    """How much of the data one epoch of batches trains on.

    Parameters
    ----------
    batches : iterable of index sequences or LongTensors of shape (B,)
        One epoch of a batch sampler, e.g. ``list(sampler)``.
    num_instances : int
        N, the number of instances the indices lie in ``[0, N)``.

    Returns
    -------
    (coverage, max_count) : (float, int)
        The share of the N instances that appear in at least one batch, and how many
        times the most repeated instance appears (1 for an epoch that uses each
        instance once; 0 for no batches).
    """
    if isinstance(num_instances, bool) or not isinstance(num_instances, int) or num_instances < 1:
        raise ValueError(f"num_instances must be a positive int, got {num_instances!r}")
    counts = torch.zeros(num_instances, dtype=torch.long)
    for batch in batches:
        indices = torch.as_tensor(batch, dtype=torch.long).reshape(-1)
        if len(indices) and (indices.min() < 0 or indices.max() >= num_instances):
            raise ValueError(f"batch indices must lie in [0, {num_instances}), got {indices.min().item()}.."
                             f"{indices.max().item()}; pass the sampler's num_instances")
        counts += torch.bincount(indices, minlength=num_instances)
    return float((counts > 0).double().mean()), int(counts.max())
