import math
import sys

import dgl
import pytest
import torch

from dglbs.knn import knn_graph, knn_recall, neighbor_recall, resolve_index


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


def clustered(n, dim=32, clusters=100, seed=0):
    """A Gaussian mixture (unit-norm rows): neighbours lie in the row's cluster."""
    generator = torch.Generator().manual_seed(seed)
    centres = torch.randn(clusters, dim, generator=generator) * 2
    rows = centres[torch.randint(clusters, (n,), generator=generator)] + torch.randn(n, dim, generator=generator)
    return torch.nn.functional.normalize(rows, dim=1)


def neighbor_lists(graph, k):
    src, dst = graph.edges(order="eid")
    assert torch.equal(src.long(), torch.arange(graph.num_nodes()).repeat_interleave(k))
    return dst.long().view(-1, k)


@pytest.mark.parametrize("index", ["ivf", "hnsw"])
def test_approximate_index_recall_at_5000(index):
    embeddings = clustered(5000, clusters=10)  # K = 50 of 500 in a cluster
    graph = knn_graph(embeddings, 50, index=index)
    neighbors = neighbor_lists(graph, 50)
    assert graph.idtype == torch.int32 and graph.edata["sim"].dtype == torch.float32
    assert not (neighbors == torch.arange(5000).unsqueeze(1)).any(), "no self-loops"
    assert all(len(set(row)) == 50 for row in neighbors[:500].tolist())
    sims = graph.edata["sim"].view(5000, 50)
    assert torch.allclose(sims, (embeddings.unsqueeze(1) * embeddings[neighbors]).sum(-1), atol=1e-5)
    assert bool((sims[:, :-1] >= sims[:, 1:]).all()), "decreasing similarity"
    recall = knn_recall(embeddings, graph, sample_size=1000)
    assert 0.9 <= recall <= 1.0
    exact = neighbor_lists(knn_graph(embeddings, 50), 50)
    overlap = sum(len(set(a) & set(b)) for a, b in zip(neighbors.tolist(), exact.tolist())) / exact.numel()
    assert overlap >= 0.9


def test_fewer_ivf_lists_probed_lower_recall():
    embeddings = clustered(5000, clusters=10)
    recalls = [knn_recall(embeddings, knn_graph(embeddings, 10, index="ivf", nprobe=nprobe)) for nprobe in (1, 16)]
    assert recalls[0] < 0.9 <= recalls[1]


def test_ivf_graph_is_deterministic_for_a_seed_whatever_the_thread_count():
    faiss = pytest.importorskip("faiss")
    embeddings = clustered(3000)
    threads = faiss.omp_get_max_threads()
    try:
        faiss.omp_set_num_threads(1)
        single = knn_graph(embeddings, 10, index="ivf", nprobe=2)
        faiss.omp_set_num_threads(2)
        again = knn_graph(embeddings, 10, index="ivf", nprobe=2)
    finally:
        faiss.omp_set_num_threads(threads)
    assert torch.equal(neighbor_lists(single, 10), neighbor_lists(again, 10))
    other = knn_graph(embeddings, 10, index="ivf", nprobe=2, seed=1)
    assert not torch.equal(neighbor_lists(other, 10), neighbor_lists(single, 10)), "the seed picks the lists"


def test_rows_the_ivf_lists_cannot_fill_are_searched_exactly():
    # N = 400: 10 lists of about 40 vectors; one list cannot hold 60 neighbours.
    embeddings = clustered(400, clusters=10)
    graph = knn_graph(embeddings, 60, index="ivf", nprobe=1)
    neighbors = neighbor_lists(graph, 60)
    assert all(len(set(row)) == 60 for row in neighbors.tolist())
    assert not (neighbors == torch.arange(400).unsqueeze(1)).any()
    assert knn_recall(embeddings, graph) == 1.0


def test_auto_is_exact_below_the_threshold(monkeypatch):
    import dglbs.knn

    embeddings = clustered(1000, dim=8)
    exact = knn_graph(embeddings, 10, backend="faiss")
    assert dglbs.knn.EXACT_BELOW == 50_000
    assert resolve_index("auto", 49_999) == "exact" and resolve_index("auto", 50_000) == "ivf"
    assert torch.equal(knn_graph(embeddings, 10, backend="faiss", index="auto").edges()[1], exact.edges()[1])
    monkeypatch.setattr(dglbs.knn, "EXACT_BELOW", 500)
    approximate = knn_graph(embeddings, 10, index="auto", nprobe=1)
    assert torch.equal(approximate.edges()[1], knn_graph(embeddings, 10, index="ivf", nprobe=1).edges()[1])
    assert not torch.equal(approximate.edges()[1], exact.edges()[1]), "one probed list misses neighbours"


def test_recall_of_a_hand_made_graph():
    # Unit vectors at these angles: the nearest by inner product are the nearest angles.
    angles = torch.tensor([0.0, 0.1, 0.25, 0.45, 0.85, 1.4])
    embeddings = torch.stack([torch.cos(angles), torch.sin(angles)], 1)
    exact = torch.tensor([[1, 2], [0, 2], [1, 3], [2, 1], [3, 5], [4, 3]])
    assert torch.equal(brute_force(embeddings, 2).indices, exact)
    src = torch.arange(6).repeat_interleave(2)
    assert knn_recall(embeddings, dgl.graph((src, exact.reshape(-1)), num_nodes=6)) == 1.0
    # Node 0's second neighbour (2) swapped for the farthest node (5): 11 of 12 found,
    # whatever the edge order.
    wrong = exact.clone()
    wrong[0, 1] = 5
    shuffled = torch.randperm(12, generator=torch.Generator().manual_seed(0))
    graph = dgl.graph((src[shuffled], wrong.reshape(-1)[shuffled]), num_nodes=6)
    assert knn_recall(embeddings, graph) == pytest.approx(11 / 12)
    # A repeated neighbour and the row itself never count.
    lists = torch.tensor([[1, 1], [1, 0]])
    assert neighbor_recall(embeddings, torch.tensor([0, 1]), lists) == pytest.approx(2 / 4)
    # Ties at the cut: node 1 of three equal vectors has two equally near others.
    tied = torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    assert neighbor_recall(tied, torch.tensor([1, 1]), torch.tensor([[0], [2]])) == 1.0


def test_recall_samples_rows_with_the_seed():
    embeddings = clustered(2000, dim=8)
    graph = knn_graph(embeddings, 10, index="ivf", nprobe=1)
    assert knn_recall(embeddings, graph, sample_size=300, seed=3) == knn_recall(embeddings, graph, sample_size=300, seed=3)
    assert knn_recall(embeddings, graph, sample_size=5000) == knn_recall(embeddings, graph, sample_size=2000, seed=9)


@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        ({"index": "annoy"}, ValueError, r"index must be one of \('auto', 'exact', 'ivf', 'hnsw'\), got 'annoy'"),
        ({"index": "ivf", "nprobe": 0}, ValueError, "nprobe must be >= 1, got 0"),
        ({"index": "hnsw", "ef_search": 0}, ValueError, "ef_search must be >= 1, got 0"),
        ({"index": "ivf", "seed": -1}, ValueError, "seed must be >= 0, got -1"),
        ({"index": "ivf", "nprobe": 2.5}, TypeError, "nprobe must be an int, got 2.5"),
    ],
)
def test_index_argument_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        knn_graph(torch.randn(50, 4), 3, **kwargs)


@pytest.mark.parametrize("index", ["ivf", "hnsw"])
def test_k_must_be_below_n_for_every_index(index):
    with pytest.raises(ValueError, match=r"num_neighbors \(K\) must be \[1, 49\], got 50"):
        knn_graph(torch.randn(50, 4), 50, index=index)


def test_missing_faiss_names_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "faiss", None)
    with pytest.raises(ImportError, match=r"index='ivf' needs faiss: pip install 'dglbs\[faiss\]'"):
        knn_graph(torch.randn(50, 4), 3, index="ivf")
    assert knn_graph(torch.randn(50, 4), 3).num_edges() == 150, "exact torch search needs no faiss"


def test_recall_errors():
    embeddings = torch.randn(10, 3)
    with pytest.raises(TypeError, match="graph must be a dgl.DGLGraph, got Tensor"):
        knn_recall(embeddings, torch.zeros(10, 2))
    with pytest.raises(ValueError, match="graph has 9 nodes but embeddings has 10 rows"):
        knn_recall(embeddings, dgl.graph(([0], [1]), num_nodes=9))
    with pytest.raises(ValueError, match="same out-degree K >= 1.*from 0 to 1"):
        knn_recall(embeddings, dgl.graph(([0], [1]), num_nodes=10))
    graph = knn_graph(embeddings, 2)
    with pytest.raises(ValueError, match="sample_size must be >= 1, got 0"):
        knn_recall(embeddings, graph, sample_size=0)
    with pytest.raises(ValueError, match=r"neighbors must hold ids in \[0, 10\), got ids from 10 to 10"):
        neighbor_recall(embeddings, torch.tensor([0]), torch.tensor([[10]]))
    with pytest.raises(TypeError, match="neighbors must be an int32 or int64 tensor with 2 dimension"):
        neighbor_recall(embeddings, torch.tensor([0]), torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="one list per row, got 2 rows"):
        neighbor_recall(embeddings, torch.tensor([0, 1]), torch.tensor([[1]]))
