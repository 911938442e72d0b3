from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from dglbs.evaluation.knn_monitor import KNNMonitor, knn_accuracy, knn_predict


def reference_scores(bank, labels, queries, k, temperature, classes):
    """Weighted kNN voting, one query at a time."""
    bank, queries = F.normalize(bank, dim=1), F.normalize(queries, dim=1)
    rows = []
    for query in queries:
        similarities = bank @ query
        order = similarities.argsort(descending=True)[:k]
        row = torch.zeros(classes)
        for index in order.tolist():
            row[labels[index]] += math.exp(similarities[index].item() / temperature)
        rows.append(row)
    return torch.stack(rows)


def test_scores_match_one_query_at_a_time_and_chunking() -> None:
    generator = torch.Generator().manual_seed(0)
    bank, queries = torch.randn(50, 4, generator=generator), torch.randn(9, 4, generator=generator)
    labels = torch.randint(0, 3, (50,), generator=generator)
    scores = knn_predict(bank, labels, queries, k=7, temperature=0.5)
    assert torch.allclose(scores, reference_scores(bank, labels, queries, 7, 0.5, 3), rtol=1e-4)
    chunked = knn_predict(bank, labels, queries, k=7, temperature=0.5, chunk_size=2)
    assert torch.allclose(scores, chunked)


def test_weights_let_close_neighbours_outvote_many_far_ones() -> None:
    bank = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 1.0], [0.2, 1.0]])
    labels = torch.tensor([0, 0, 1, 1, 1])
    query = torch.tensor([[1.0, 0.05]])
    # Three class-1 neighbours against two class-0 ones: plain majority says 1,
    # similarity weights at temperature 0.1 say 0. k is clipped to the bank size.
    assert knn_predict(bank, labels, query, k=200, temperature=0.1).argmax().item() == 0
    assert knn_predict(bank, labels, query, k=200, temperature=100.0).argmax().item() == 1
    assert knn_accuracy(bank, labels, query, torch.tensor([0]), k=5) == 1.0


def test_monitor_encodes_both_sets_and_keeps_history() -> None:
    centres = torch.eye(3)
    bank_labels, query_labels = torch.arange(30) % 3, torch.tensor([0, 1, 2, 2])
    bank_set = list(centres[bank_labels] + 0.05)
    query_set = list(centres[query_labels])
    monitor = KNNMonitor(bank_set, query_set, bank_labels, query_labels, k=5)
    encoded = []

    def encode(dataset):
        encoded.append(len(dataset))
        return torch.stack(list(dataset))

    assert monitor(encode) == 1.0
    assert encoded == [30, 4] and monitor.history == [1.0]
    monitor.query_labels = torch.tensor([1, 1, 2, 2])
    assert monitor(encode) == 0.75 and monitor.history == [1.0, 0.75]


def test_validation() -> None:
    bank, labels = torch.randn(5, 3), torch.arange(5) % 2
    with pytest.raises(ValueError, match="share d"):
        knn_predict(bank, labels, torch.randn(2, 4))
    with pytest.raises(ValueError, match="non-negative"):
        knn_predict(bank, -labels - 1, torch.randn(2, 3))
    with pytest.raises(ValueError, match="temperature"):
        knn_predict(bank, labels, torch.randn(2, 3), temperature=0.0)
    with pytest.raises(ValueError, match="query_labels"):
        knn_accuracy(bank, labels, torch.randn(2, 3), torch.tensor([0]))
    with pytest.raises(ValueError, match="labels must match"):
        KNNMonitor([0] * 5, [0] * 2, labels, torch.tensor([0]))
