import pytest
import torch

from dglbs.diagnostics import false_negative_rate, pairwise_cosine, similarity_histogram


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


def test_diagnostics_errors():
    with pytest.raises(ValueError, match=r"\(B, d\)"):
        pairwise_cosine(torch.zeros(3))
    with pytest.raises(ValueError, match="at least 2 entries"):
        false_negative_rate(torch.tensor([1]))
