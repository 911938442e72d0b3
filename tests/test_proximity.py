import math

import pytest
import torch
from scipy import stats

from dglbs.proximity import candidate_blocks, proximity_graph, uniform_subset


def unit_embeddings(n, d=16, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.nn.functional.normalize(torch.randn(n, d, generator=generator), dim=1)


def neighbor_matrix(graph, k):
    src, dst = graph.edges(order="eid")
    assert torch.equal(src.long(), torch.arange(graph.num_nodes()).repeat_interleave(k))
    return dst.long().view(-1, k), graph.edata["sim"].view(-1, k)


@pytest.mark.parametrize("block_size", [1, 7, 64, 1000])
def test_graph_is_exact_top_k_of_the_drawn_candidates(block_size):
    n, m, k = 300, 40, 8
    embeddings = unit_embeddings(n)
    graph = proximity_graph(embeddings, m, k, generator=torch.Generator().manual_seed(3), block_size=block_size)
    neighbors, sims = neighbor_matrix(graph, k)

    # Redraw the same candidate sets and brute-force every node's top-K.
    covered = torch.zeros(n, dtype=torch.bool)
    for block in candidate_blocks(n, m, block_size, torch.Generator().manual_seed(3)):
        for row, dropped in zip(block.rows.tolist(), block.dropped.tolist()):
            keep = torch.ones(m + 1, dtype=torch.bool)
            keep[dropped] = False
            candidates = block.candidates[keep]
            assert candidates.numel() == m and row not in candidates.tolist()
            scores = embeddings[candidates] @ embeddings[row]
            best = torch.argsort(scores, descending=True)[:k]
            assert neighbors[row].tolist() == candidates[best].tolist()
            assert torch.allclose(sims[row], scores[best], atol=1e-6)
            covered[row] = True
    assert covered.all()


def test_structure_no_self_loops_no_duplicates_exactly_k():
    n, k = 500, 10
    graph = proximity_graph(unit_embeddings(n), 50, k, generator=torch.Generator().manual_seed(0))
    neighbors, sims = neighbor_matrix(graph, k)
    assert graph.num_nodes() == n and graph.num_edges() == n * k
    assert graph.idtype == torch.int32
    assert not (neighbors == torch.arange(n).unsqueeze(1)).any()
    assert all(len(set(row)) == k for row in neighbors.tolist())
    assert (sims[:, :-1] >= sims[:, 1:]).all(), "neighbours are stored by decreasing similarity"
    assert sims.dtype == torch.float32


def test_full_candidate_set_gives_exact_knn_graph():
    n, k = 200, 5
    embeddings = unit_embeddings(n)
    graph = proximity_graph(embeddings, 10_000, k, generator=torch.Generator().manual_seed(0))
    neighbors, _ = neighbor_matrix(graph, k)
    scores = embeddings @ embeddings.T
    scores.fill_diagonal_(-math.inf)
    assert torch.equal(neighbors, torch.topk(scores, k, dim=1).indices)


def test_same_generator_state_gives_same_graph():
    embeddings = unit_embeddings(400)
    first = proximity_graph(embeddings, 30, 5, generator=torch.Generator().manual_seed(9))
    second = proximity_graph(embeddings, 30, 5, generator=torch.Generator().manual_seed(9))
    third = proximity_graph(embeddings, 30, 5, generator=torch.Generator().manual_seed(10))
    assert torch.equal(first.edges()[1], second.edges()[1])
    assert not torch.equal(first.edges()[1], third.edges()[1])


def test_shared_block_draw_is_a_uniform_subset_of_the_other_nodes():
    # Over many draws, node `row`'s candidate set must never contain it, must hold M
    # distinct nodes, and must contain every other node equally often.
    n, m, rows_per_block, trials = 30, 6, 10, 3000
    counts = torch.zeros(n, n)
    generator = torch.Generator().manual_seed(0)
    for _ in range(trials // (n // rows_per_block)):
        for block in candidate_blocks(n, m, rows_per_block, generator):
            for row, dropped in zip(block.rows.tolist(), block.dropped.tolist()):
                keep = torch.ones(m + 1, dtype=torch.bool)
                keep[dropped] = False
                candidates = block.candidates[keep]
                assert candidates.unique().numel() == m and row not in candidates.tolist()
                counts[row, candidates] += 1
    for row in range(n):
        observed = torch.cat([counts[row, :row], counts[row, row + 1 :]]).numpy()
        assert stats.chisquare(observed).pvalue > 1e-4


def test_shared_draws_give_the_edge_similarity_distribution_of_independent_draws():
    n, m, k = 2000, 50, 5
    embeddings = unit_embeddings(n, d=8)
    independent = proximity_graph(embeddings, m, k, generator=torch.Generator().manual_seed(0), block_size=1)
    shared = proximity_graph(embeddings, m, k, generator=torch.Generator().manual_seed(1), block_size=1000)
    result = stats.ks_2samp(independent.edata["sim"].numpy(), shared.edata["sim"].numpy())
    assert result.pvalue > 1e-3
    # Sanity check that the test has power: a different M is detected.
    other = proximity_graph(embeddings, 2 * m, k, generator=torch.Generator().manual_seed(1), block_size=1000)
    assert stats.ks_2samp(independent.edata["sim"].numpy(), other.edata["sim"].numpy()).pvalue < 1e-6


@pytest.mark.parametrize("n,size", [(10, 10), (10, 3), (1000, 20)])
def test_uniform_subset_is_distinct_and_in_range(n, size):
    draw = uniform_subset(n, size, torch.Generator().manual_seed(0))
    assert draw.numel() == size and draw.unique().numel() == size
    assert draw.min() >= 0 and draw.max() < n


def test_memory_budget_controls_block_size_not_the_result():
    embeddings = unit_embeddings(300)
    small = proximity_graph(embeddings, 299, 4, memory_budget=12 * 300 * 16)
    large = proximity_graph(embeddings, 299, 4)
    assert torch.equal(small.edges()[1], large.edges()[1])


@pytest.mark.parametrize(
    "embeddings,m,k,error,match",
    [
        ([[0.0, 1.0]], 1, 1, TypeError, "torch.Tensor"),
        (torch.zeros(5), 1, 1, ValueError, "2-D"),
        (torch.zeros(5, 3, dtype=torch.int64), 1, 1, TypeError, "floating point"),
        (torch.tensor([[0.0, 1.0], [float("nan"), 0.0], [1.0, 1.0]]), 1, 1, ValueError, "row 1"),
        (torch.tensor([[0.0, 1.0], [float("inf"), 0.0], [1.0, 1.0]]), 1, 1, ValueError, "NaN or inf"),
        (torch.zeros(1, 3), 1, 1, ValueError, "N=1"),
        (torch.zeros(5, 3), 4, 0, ValueError, r"num_neighbors \(K\) must be \[1, 4\], got 0"),
        (torch.zeros(5, 3), 4, 5, ValueError, r"got 5"),
        (torch.zeros(5, 3), 0, 1, ValueError, r"num_candidates \(M\) must be >= 1, got 0"),
        (torch.zeros(9, 3), 2, 3, ValueError, "K=3.*M=2"),
        (torch.zeros(5, 3), 2.5, 1, TypeError, "2.5"),
    ],
)
def test_bad_input_is_rejected(embeddings, m, k, error, match):
    with pytest.raises(error, match=match):
        proximity_graph(embeddings, m, k)


def test_num_candidates_above_n_minus_one_is_clipped():
    graph = proximity_graph(unit_embeddings(6), 10**6, 5)
    neighbors, _ = neighbor_matrix(graph, 5)
    assert all(sorted(row + [i]) == list(range(6)) for i, row in enumerate(neighbors.tolist()))


@pytest.mark.parametrize("rows", ["identical", "zero"])
def test_ties_are_broken_at_random_so_a_collapsed_encoder_gives_no_hub(rows):
    n, k = 400, 10
    embeddings = torch.ones(n, 8) if rows == "identical" else torch.zeros(n, 8)
    graph = proximity_graph(embeddings, 50, k, generator=torch.Generator().manual_seed(0))
    in_degree = graph.in_degrees()
    assert int((in_degree > 0).sum()) >= n - 5, "almost every node has an in-edge"
    assert int(in_degree.max()) < 4 * k
    neighbors, _ = neighbor_matrix(graph, k)
    assert all(len(set(row)) == k and i not in row for i, row in enumerate(neighbors.tolist()))


def test_ties_keep_the_strict_top_and_decreasing_order():
    embeddings = torch.tensor([[1.0, 0.0]] * 5 + [[0.0, 1.0]] * 5)
    graph = proximity_graph(embeddings, 9, 6, generator=torch.Generator().manual_seed(0))
    neighbors, similarities = neighbor_matrix(graph, 6)
    for i, row in enumerate(neighbors.tolist()):
        same = {j for j in range(10) if j != i and (j < 5) == (i < 5)}
        assert set(row[:4]) == same, "the 4 equal neighbours come first"
    assert (similarities[:, :-1] >= similarities[:, 1:]).all()


def test_half_precision_similarities_are_computed_in_float32():
    embeddings = torch.full((6, 4), 300.0, dtype=torch.float16)  # 4 * 300**2 overflows fp16
    graph = proximity_graph(embeddings, 5, 2, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(graph.edata["sim"], torch.full((12,), 360000.0))


def test_overflowing_inner_products_raise():
    embeddings = torch.full((6, 4), 1e20)
    with pytest.raises(ValueError, match="similarities overflowed"):
        proximity_graph(embeddings, 5, 2)


def test_gradients_are_not_tracked():
    embeddings = torch.randn(20, 4, requires_grad=True)
    graph = proximity_graph(embeddings, 10, 3)
    assert not graph.edata["sim"].requires_grad and graph.edata["sim"].grad_fn is None


def test_a_budget_below_sixteen_rows_is_refused_with_the_minimum():
    with pytest.raises(ValueError, match=r"memory_budget=100 bytes .* pass memory_budget >= 9792"):
        proximity_graph(unit_embeddings(300), 50, 4, memory_budget=100)


def test_empty_feature_dimension_is_refused():
    with pytest.raises(ValueError, match=r"shape \(5, 0\): zero dimensions"):
        proximity_graph(torch.zeros(5, 0), 2, 1)


def test_normalize_gives_cosine_similarities_without_overflow():
    embeddings = torch.randn(50, 6, generator=torch.Generator().manual_seed(0))
    huge = embeddings * 1e30  # finite, but its squared norm overflows float32
    cosine = proximity_graph(torch.nn.functional.normalize(embeddings, dim=1), 49, 5,
                             generator=torch.Generator().manual_seed(0))
    graph = proximity_graph(huge, 49, 5, generator=torch.Generator().manual_seed(0), normalize=True)
    assert torch.equal(graph.edges()[1], cosine.edges()[1])
    assert torch.allclose(graph.edata["sim"], cosine.edata["sim"], atol=1e-6)


def test_every_node_is_somebodys_neighbour():
    # Blocks share their candidates; the default block size keeps every node in
    # several blocks' draws, as independent per-node draws would (in-degree ~ K).
    graph = proximity_graph(unit_embeddings(3000), 100, 10, generator=torch.Generator().manual_seed(0))
    in_degree = graph.in_degrees()
    assert float((in_degree == 0).float().mean()) < 0.01
    big_blocks = proximity_graph(unit_embeddings(3000), 100, 10, generator=torch.Generator().manual_seed(0), block_size=1024)
    assert float((big_blocks.in_degrees() == 0).float().mean()) > 0.5, "the check has power"
