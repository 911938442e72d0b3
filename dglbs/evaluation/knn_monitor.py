"""Weighted kNN classifier on embeddings: a cheap accuracy monitor during training.

Wu et al. (CVPR 2018, "instance discrimination") score an embedding by the classes
of its ``k`` most cosine-similar training embeddings, each neighbour voting with
weight ``exp(similarity / temperature)``; ``k = 200``, ``temperature = 0.1`` are
their values and what MoCo / SimCLR reproductions report as "kNN accuracy".
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from .._checks import check_int


def knn_predict(
    bank: torch.Tensor,
    bank_labels: torch.Tensor,
    queries: torch.Tensor,
    *,
    k: int = 200,
    temperature: float = 0.1,
    num_classes: int | None = None,
    chunk_size: int = 1024,
) -> torch.Tensor:
    """Class scores of weighted kNN voting.

    Parameters
    ----------
    bank : Tensor of shape (N, d), float
        Embeddings of labelled (training) instances; normalised here.
    bank_labels : Tensor of shape (N,), int64, non-negative
    queries : Tensor of shape (Q, d), float
        Embeddings to classify, on ``bank``'s device.
    k : int
        Neighbours (clipped to ``N``).
    temperature : float
        Positive; smaller values make the nearest neighbours dominate.
    num_classes : int, optional
        Default: ``bank_labels.max() + 1``.
    chunk_size : int
        Queries scored at once (``chunk_size x N`` similarities in memory).

    Returns
    -------
    Tensor of shape (Q, num_classes), float32
        Summed neighbour weights per class; the prediction is the arg-max.
    """
    if bank.dim() != 2 or queries.dim() != 2 or bank.shape[1] != queries.shape[1]:
        raise ValueError(f"bank (N, d) and queries (Q, d) must share d, got {tuple(bank.shape)} and "
                         f"{tuple(queries.shape)}")
    bank_labels = torch.as_tensor(bank_labels, device=bank.device)
    if bank_labels.shape != (len(bank),) or bank_labels.dtype != torch.int64 or (
        len(bank_labels) and int(bank_labels.min()) < 0
    ):
        raise ValueError(f"bank_labels must be non-negative int64 of shape ({len(bank)},), got "
                         f"{bank_labels.dtype} of shape {tuple(bank_labels.shape)}")
    if len(bank) == 0:
        raise ValueError("bank must hold at least one embedding")
    check_int("k", k, low=1)
    check_int("chunk_size", chunk_size, low=1)
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or temperature <= 0:
        raise ValueError(f"temperature must be a positive float, got {temperature!r}")
    num_classes = int(bank_labels.max()) + 1 if num_classes is None else check_int("num_classes", num_classes, low=1)
    k = min(k, len(bank))
    bank = F.normalize(bank.float(), dim=1)
    scores = []
    for start in range(0, len(queries), chunk_size):
        chunk = F.normalize(queries[start : start + chunk_size].float().to(bank.device), dim=1)
        similarities, neighbours = (chunk @ bank.T).topk(k, dim=1)
        votes = torch.zeros(len(chunk), num_classes, device=bank.device)
        scores.append(votes.scatter_add_(1, bank_labels[neighbours], torch.exp(similarities / temperature)))
    return torch.cat(scores) if scores else torch.zeros(0, num_classes, device=bank.device)


def knn_accuracy(
    bank: torch.Tensor,
    bank_labels: torch.Tensor,
    queries: torch.Tensor,
    query_labels: torch.Tensor,
    **kwargs,
) -> float:
    """Share of ``queries`` whose weighted-kNN class (see :func:`knn_predict`) is ``query_labels``."""
    query_labels = torch.as_tensor(query_labels)
    if query_labels.shape != (len(queries),):
        raise ValueError(f"query_labels must have shape ({len(queries)},), got {tuple(query_labels.shape)}")
    if len(queries) == 0:
        raise ValueError("queries must hold at least one embedding")
    num_classes = kwargs.pop("num_classes", None)
    if num_classes is None:
        num_classes = int(max(torch.as_tensor(bank_labels).max(), query_labels.max())) + 1
    predictions = knn_predict(bank, bank_labels, queries, num_classes=num_classes, **kwargs).argmax(1)
    return float((predictions.cpu() == query_labels.cpu()).float().mean())


class KNNMonitor:
    """Weighted-kNN accuracy of the current encoder, e.g. after every epoch.

    Parameters
    ----------
    bank_dataset, query_dataset : Sequence
        Labelled training instances (the voters) and held-out instances to classify.
    bank_labels, query_labels : Tensor of shape (len(dataset),), int64
    k, temperature : int, float
        See :func:`knn_predict`.

    Attributes
    ----------
    history : list of float
        Accuracies of the calls so far.

    Examples
    --------
    >>> monitor = KNNMonitor(train_set, test_set, train_labels, test_labels)  # doctest: +SKIP
    >>> accuracy = monitor(trainer.encode)  # doctest: +SKIP
    """

    def __init__(
        self,
        bank_dataset: Sequence,
        query_dataset: Sequence,
        bank_labels: torch.Tensor,
        query_labels: torch.Tensor,
        *,
        k: int = 200,
        temperature: float = 0.1,
    ) -> None:
        self.bank_labels = torch.as_tensor(bank_labels)
        self.query_labels = torch.as_tensor(query_labels)
        if self.bank_labels.shape != (len(bank_dataset),) or self.query_labels.shape != (len(query_dataset),):
            raise ValueError(f"labels must match the datasets: bank {tuple(self.bank_labels.shape)} for "
                             f"{len(bank_dataset)} instances, queries {tuple(self.query_labels.shape)} for "
                             f"{len(query_dataset)}")
        self.bank_dataset = bank_dataset
        self.query_dataset = query_dataset
        self.k = check_int("k", k, low=1)
        self.temperature = temperature
        self.history: list[float] = []

    def __call__(self, encode: Callable[[Sequence], torch.Tensor]) -> float:
        """Encode both datasets with ``encode`` (e.g. ``trainer.encode``, which runs the
        method's ``embed`` in eval mode) and return the kNN accuracy in ``[0, 1]``."""
        accuracy = knn_accuracy(encode(self.bank_dataset), self.bank_labels, encode(self.query_dataset),
                                self.query_labels, k=self.k, temperature=self.temperature)
        self.history.append(accuracy)
        return accuracy
