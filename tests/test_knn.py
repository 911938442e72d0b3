import math

import pytest
import torch

from dglbs.knn import knn_graph


def brute_force(embeddings, k):
    scores = embeddings @ embeddings.T
    scores.fill_diagonal_(-math.inf)
    return torch.topk(scores, k, dim=1)


@pytest.mark.parametrize("backend", ["torch", "faiss"])
def test_knn_graph_matches_brute_force(backend):
    embeddings = torch.nn.functional.normalize(torch.randn(300, 12, generator=torch.Generator().manual_seed(0)), dim=1)
    graph = knn_graph(embeddings, 7, backend=backend)
    src, dst = graph.edges(order="eid")
    expected = brute_force(embeddings, 7)
    assert torch.equal(src.long(), torch.arange(300).repeat_interleave(7))
    assert torch.equal(dst.long().view(300, 7), expected.indices)
    assert torch.allclose(graph.edata["sim"].view(300, 7), expected.values, atol=1e-5)


def test_faiss_excludes_self_even_with_duplicate_vectors():
    embeddings = torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    graph = knn_graph(embeddings, 2, backend="faiss")
    src, dst = graph.edges(order="eid")
    assert not (src == dst).any()
    assert all(len(set(row)) == 2 for row in dst.view(4, 2).tolist())


def test_knn_graph_errors():
    with pytest.raises(ValueError, match="backend must be one of"):
        knn_graph(torch.zeros(4, 2), 1, backend="annoy")
    with pytest.raises(ValueError, match=r"\[1, 3\], got 4"):
        knn_graph(torch.zeros(4, 2), 4)
