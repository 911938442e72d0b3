import pytest
import torch

from dglbs.diagnostics import (
    epoch_coverage, false_negative_rate, pairwise_cosine, same_label_pairs, similarity_histogram,
)


def test_pairwise_cosine_lists_each_unordered_pair_once():
    embeddings = torch.tensor([[1.0, 0.0], [0.0, 2.0], [-3.0, 0.0]])
    assert pairwise_cosine(embeddings).tolist() == pytest.approx([0.0, -1.0, 0.0])


def test_histogram_counts_every_pair_on_minus_one_to_one():
    embeddings = torch.randn(20, 5, generator=torch.Generator().manual_seed(0))
    counts, edges = similarity_histogram(embeddings, bins=10)
    assert counts.sum() == 20 * 19 // 2 and counts.shape == (10,)
    assert edges[0] == -1 and edges[-1] == 1
    identical = similarity_histogram(torch.ones(4, 3), bins=4)[0]
    assert identical.tolist() == [0, 0, 0, 6]


def test_false_negative_rate_is_the_share_of_same_label_pairs():
    assert false_negative_rate(torch.tensor([0, 0, 1, 1])) == pytest.approx(2 / 6)
    assert false_negative_rate(torch.tensor([3, 3, 3])) == 1.0
    assert false_negative_rate(torch.arange(5)) == 0.0


def test_same_label_pairs_follow_the_order_of_pairwise_cosine():
    labels = torch.tensor([0, 1, 0, 1])
    same = same_label_pairs(labels)
    # pairs (0,1) (0,2) (0,3) (1,2) (1,3) (2,3)
    assert same.tolist() == [False, True, False, False, True, False]
    assert same.float().mean().item() == pytest.approx(false_negative_rate(labels))
    embeddings = torch.tensor([[1.0, 0.0], [0.0, 1.0], [2.0, 0.0], [0.0, 3.0]])
    assert pairwise_cosine(embeddings)[same].tolist() == pytest.approx([1.0, 1.0])


def test_epoch_coverage_counts_instances_seen_and_the_most_repeated():
    assert epoch_coverage([[0, 1], [2, 3]], 4) == (1.0, 1)
    assert epoch_coverage([torch.tensor([0, 1]), torch.tensor([1, 2]), torch.tensor([1, 0])], 8) == (3 / 8, 3)
    assert epoch_coverage([], 5) == (0.0, 0)


def test_diagnostics_errors():
    with pytest.raises(ValueError, match=r"\(B, d\)"):
        pairwise_cosine(torch.zeros(3))
    with pytest.raises(ValueError, match="at least 2 entries"):
        false_negative_rate(torch.tensor([1]))
    with pytest.raises(ValueError, match=r"1-D"):
        same_label_pairs(torch.zeros(2, 2))
    with pytest.raises(ValueError, match=r"lie in \[0, 4\)"):
        epoch_coverage([[0, 4]], 4)
    with pytest.raises(ValueError, match="positive int"):
        epoch_coverage([[0]], 0)
