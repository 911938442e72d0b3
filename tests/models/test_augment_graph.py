from __future__ import annotations

import math
import time
from collections import Counter

import dgl
import numpy as np
import pytest
import torch
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from dglbs_models.augment_graph import (
    AUGMENTATIONS,
    augment,
    drop_nodes,
    mask_nodes,
    perturb_edges,
    random_augment,
    subgraph,
)


def random_batch(sizes: list[tuple[int, int]], seed: int = 0) -> dgl.DGLGraph:
    """Batch of ``dgl.rand_graph(n, m)`` graphs; ``ndata["feat"][:, 0]`` is the global node id."""
    dgl.seed(seed)
    bg = dgl.batch([dgl.rand_graph(n, m) for n, m in sizes])
    bg.ndata["feat"] = torch.arange(bg.num_nodes(), dtype=torch.float32).unsqueeze(1).repeat(1, 3)
    return bg


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def node_ranges(bg: dgl.DGLGraph) -> list[range]:
    ends = torch.cumsum(bg.batch_num_nodes(), 0).tolist()
    return [range(end - n, end) for end, n in zip(ends, bg.batch_num_nodes().tolist())]


def edge_multiset(src: torch.Tensor, dst: torch.Tensor) -> Counter:
    return Counter(zip(src.tolist(), dst.tolist()))


def assert_edges_within_graphs(bg: dgl.DGLGraph) -> None:
    """Every edge of output graph k joins two nodes of output graph k (by batch info)."""
    node_graph = torch.repeat_interleave(torch.arange(bg.batch_size), bg.batch_num_nodes())
    edge_graph = torch.repeat_interleave(torch.arange(bg.batch_size), bg.batch_num_edges())
    src, dst = bg.edges()
    assert torch.equal(node_graph[src], edge_graph)
    assert torch.equal(node_graph[dst], edge_graph)


SIZES = [(10, 30), (7, 12), (25, 80), (4, 6), (13, 0)]


@pytest.mark.parametrize("name", ["drop_nodes", "subgraph"])
@pytest.mark.parametrize("ratio", [0.0, 0.2, 0.5, 0.9])
def test_node_removing_augmentations_keep_graphcl_counts_and_induced_edges(name: str, ratio: float) -> None:
    bg = random_batch(SIZES)
    feat = bg.ndata["feat"]
    out, out_feat = augment(name, bg, feat, ratio, gen())

    expected = [n - int(n * ratio) for n, _ in SIZES]
    assert out.batch_size == len(SIZES)
    assert out.batch_num_nodes().tolist() == expected
    assert out_feat.shape == (sum(expected), 3)
    assert_edges_within_graphs(out)

    # Kept nodes (identified by their feature = original id) come from the right graph, in order.
    original_id = out_feat[:, 0].long()
    for kept_range, original_range in zip(node_ranges(out), node_ranges(bg)):
        ids = original_id[kept_range.start : kept_range.stop]
        assert all(i in original_range for i in ids.tolist())
        assert torch.all(ids[1:] > ids[:-1])

    # The output is the subgraph induced by the kept nodes.
    src, dst = bg.edges()
    inside = torch.isin(src, original_id) & torch.isin(dst, original_id)
    out_src, out_dst = out.edges()
    assert edge_multiset(original_id[out_src], original_id[out_dst]) == edge_multiset(src[inside], dst[inside])
    assert out.batch_num_edges().sum() == out.num_edges()


def test_subgraph_grows_connected_sets_on_connected_graphs() -> None:
    cycle = dgl.to_bidirected(dgl.graph((torch.arange(20), (torch.arange(20) + 1) % 20)))
    star = dgl.to_bidirected(dgl.graph((torch.zeros(9, dtype=torch.int64), torch.arange(1, 10))))
    bg = dgl.batch([cycle, star, cycle])
    feat = torch.randn(bg.num_nodes(), 2)
    for seed in range(5):
        out, _ = subgraph(bg, feat, 0.4, gen(seed))
        assert out.batch_num_nodes().tolist() == [12, 6, 12]
        for g in dgl.unbatch(out):
            src, dst = g.edges()
            adj = coo_matrix((np.ones(g.num_edges()), (src.numpy(), dst.numpy())), shape=(g.num_nodes(),) * 2)
            assert connected_components(adj, directed=True, connection="weak")[0] == 1


def test_subgraph_restarts_in_disconnected_graph_to_reach_target_count() -> None:
    # A 2-node component plus 8 isolated nodes: growth must leave the start's component.
    g = dgl.graph((torch.tensor([0, 1]), torch.tensor([1, 0])), num_nodes=10)
    out, out_feat = subgraph(dgl.batch([g]), torch.randn(10, 1), 0.3, gen())
    assert out.batch_num_nodes().tolist() == [7]
    assert out_feat.shape == (7, 1)


@pytest.mark.parametrize("ratio", [0.0, 0.25, 0.5])
def test_perturb_edges_replaces_graphcl_count_within_each_graph(ratio: float) -> None:
    bg = random_batch(SIZES)
    feat = bg.ndata["feat"]
    out, out_feat = perturb_edges(bg, feat, ratio, gen())

    assert out_feat is feat
    assert torch.equal(out.batch_num_nodes(), bg.batch_num_nodes())
    assert torch.equal(out.batch_num_edges(), bg.batch_num_edges())
    assert_edges_within_graphs(out)
    out_edges = list(zip(*[t.tolist() for t in out.edges()]))
    in_edges = list(zip(*[t.tolist() for t in bg.edges()]))
    offset = 0
    for _, m in SIZES:
        out_g = Counter(out_edges[offset : offset + m])
        in_g = Counter(in_edges[offset : offset + m])
        # At least the m - floor(m*ratio) kept edges survive (added ones may coincide).
        assert sum((out_g & in_g).values()) >= m - int(m * ratio)
        offset += m
    if ratio == 0.0:
        assert edge_multiset(*out.edges()) == edge_multiset(*bg.edges())


def test_perturb_edges_changes_edges_at_large_ratio() -> None:
    bg = random_batch([(30, 200)])
    out, _ = perturb_edges(bg, bg.ndata["feat"], 0.5, gen())
    assert edge_multiset(*out.edges()) != edge_multiset(*bg.edges())


@pytest.mark.parametrize("ratio", [0.0, 0.2, 0.5])
def test_mask_nodes_noises_graphcl_count_of_rows_per_graph(ratio: float) -> None:
    bg = random_batch(SIZES)
    feat = bg.ndata["feat"]
    out, out_feat = mask_nodes(bg, feat, ratio, gen())

    assert out is bg
    assert out_feat.shape == feat.shape and out_feat.dtype == feat.dtype
    changed = (out_feat != feat).any(dim=1)
    per_graph = [int(changed[r.start : r.stop].sum()) for r in node_ranges(bg)]
    assert per_graph == [int(n * ratio) for n, _ in SIZES]
    assert torch.equal(bg.ndata["feat"], feat), "input features must not be modified in place"


def test_mask_nodes_noise_is_gaussian_around_half() -> None:
    bg = random_batch([(200, 0)] * 10)
    out_feat = mask_nodes(bg, torch.zeros(bg.num_nodes(), 8), 0.5, gen())[1]
    noise = out_feat[(out_feat != 0).any(dim=1)]
    assert noise.shape == (1000, 8)
    assert abs(noise.mean().item() - 0.5) < 0.05
    assert abs(noise.std().item() - 0.5) < 0.05


@pytest.mark.parametrize("name", sorted(AUGMENTATIONS))
def test_same_seed_reproduces_and_other_seed_differs(name: str) -> None:
    bg = random_batch([(40, 120)] * 8)
    feat = torch.randn(bg.num_nodes(), 4)

    def view(seed: int) -> tuple[list, list, torch.Tensor]:
        g, f = augment(name, bg, feat, 0.3, gen(seed))
        return [t.tolist() for t in g.edges()], g.batch_num_edges().tolist(), f

    a, b, c = view(0), view(0), view(1)
    assert a[0] == b[0] and a[1] == b[1] and torch.equal(a[2], b[2])
    assert a[0] != c[0] or not torch.equal(a[2], c[2])


@pytest.mark.parametrize("name", sorted(AUGMENTATIONS))
def test_single_node_empty_and_edgeless_graphs(name: str) -> None:
    bg = random_batch([(1, 0), (0, 0), (5, 0), (1, 1), (6, 10)])
    feat = bg.ndata["feat"]
    out, out_feat = augment(name, bg, feat, 0.5, gen())
    assert out.batch_size == 5
    assert out_feat.shape[0] == out.num_nodes()
    assert out.batch_num_nodes()[:2].tolist() == [1, 0]
    assert_edges_within_graphs(out)
    assert [g.num_nodes() for g in dgl.unbatch(out)] == out.batch_num_nodes().tolist()


def test_random_augment_picks_one_augmentation_per_batch_from_names() -> None:
    bg = random_batch(SIZES)
    feat = bg.ndata["feat"]
    picked = set()
    for seed in range(20):
        out, out_feat = random_augment(bg, feat, ("drop_nodes", "mask_nodes"), 0.5, gen(seed))
        if out is bg:  # mask_nodes returns the input graph, on every graph of the batch
            picked.add("mask_nodes")
            assert out_feat.shape == feat.shape
        else:
            picked.add("drop_nodes")
            assert out.batch_num_nodes().tolist() == [n - int(n * 0.5) for n, _ in SIZES]
    assert picked == {"drop_nodes", "mask_nodes"}


@pytest.mark.parametrize("ratio", [1.0, -0.1, 1.5])
def test_bad_ratio_is_rejected(ratio: float) -> None:
    bg = random_batch(SIZES)
    for name in AUGMENTATIONS:
        with pytest.raises(ValueError, match=r"ratio must be in \[0, 1\)"):
            augment(name, bg, bg.ndata["feat"], ratio, gen())


def test_bad_names_and_arguments_are_rejected() -> None:
    bg = random_batch(SIZES)
    feat = bg.ndata["feat"]
    with pytest.raises(ValueError, match="unknown augmentation.*'edge_drop'"):
        augment("edge_drop", bg, feat, 0.2, gen())
    with pytest.raises(ValueError, match="unknown augmentation"):
        random_augment(bg, feat, ("subgraph", "nope"), 0.2, gen())
    with pytest.raises(ValueError, match="non-empty sequence"):
        random_augment(bg, feat, (), 0.2, gen())
    with pytest.raises(ValueError, match="non-empty sequence"):
        random_augment(bg, feat, "subgraph", 0.2, gen())
    with pytest.raises(TypeError, match="ratio must be a float"):
        drop_nodes(bg, feat, True, gen())
    with pytest.raises(TypeError, match="torch.Generator"):
        drop_nodes(bg, feat, 0.2, 0)
    with pytest.raises(ValueError, match="one row per node"):
        subgraph(bg, feat[:-1], 0.2, gen())
    with pytest.raises(TypeError, match="floating-point"):
        mask_nodes(bg, feat.long(), 0.2, gen())


def test_augmentation_time_for_128_graphs_of_40_nodes() -> None:
    dgl.seed(0)
    bg = dgl.batch([dgl.to_bidirected(dgl.rand_graph(40, 50)) for _ in range(128)])
    feat = torch.randn(bg.num_nodes(), 16)
    generator = gen()
    for name in sorted(AUGMENTATIONS):
        augment(name, bg, feat, 0.2, generator)
        times = []
        for _ in range(5):
            start = time.perf_counter()
            out, _ = augment(name, bg, feat, 0.2, generator)
            times.append(time.perf_counter() - start)
        median_ms = sorted(times)[2] * 1e3
        print(f"{name}: median {median_ms:.2f} ms per batch of 128 graphs x 40 nodes ({bg.num_edges()} edges)")
        kept_nodes = 40 - math.floor(40 * 0.2) if name in ("drop_nodes", "subgraph") else 40
        assert out.batch_num_nodes().tolist() == [kept_nodes] * 128
