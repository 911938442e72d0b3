from __future__ import annotations

import dgl
import pytest
import torch

from dglbs_models.diffusion import default_num_steps, gcn_norm_adjacency, ppr_diffusion

ROUNDING = 1e-6  # float32 accumulation in ppr_diffusion


def exact_ppr(g: dgl.DGLGraph, alpha: float) -> torch.Tensor:
    """MVGRL's dense reference alpha (I - (1 - alpha) T)^-1 in float64, (n, n)."""
    n = g.num_nodes()
    adjacency = torch.zeros(n, n, dtype=torch.float64)
    src, dst = g.edges()
    adjacency[src, dst] = 1.0
    adjacency[dst, src] = 1.0
    adjacency.fill_diagonal_(1.0)
    d = adjacency.sum(1).rsqrt()
    transition = d[:, None] * adjacency * d[None, :]
    return alpha * torch.linalg.inv(torch.eye(n, dtype=torch.float64) - (1 - alpha) * transition)


def as_dense(g: dgl.DGLGraph) -> torch.Tensor:
    """(n, n) float64 matrix with entry [dst, src] = edata["w"]."""
    out = torch.zeros(g.num_nodes(), g.num_nodes(), dtype=torch.float64)
    src, dst = g.edges()
    out[dst, src] = g.edata["w"].double()
    return out


def messy_graphs(seed: int = 0) -> list[dgl.DGLGraph]:
    """Graphs with directed, duplicate and self-loop edges, isolated and single nodes."""
    gen = torch.Generator().manual_seed(seed)
    graphs = []
    for n, m in [(1, 0), (2, 1), (7, 4), (12, 30), (25, 60), (40, 200), (9, 0)]:
        src = torch.randint(0, n, (m,), generator=gen)
        dst = torch.randint(0, n, (m,), generator=gen)
        graphs.append(dgl.graph((src, dst), num_nodes=n))
    return graphs


@pytest.mark.parametrize("alpha, eps, num_steps", [(0.2, 1e-3, None), (0.2, 1e-4, None), (0.15, 1e-3, 6)])
def test_matches_dense_inverse_within_the_stated_bound(alpha, eps, num_steps):
    graphs = messy_graphs()
    steps = default_num_steps(alpha, eps) if num_steps is None else num_steps
    bound = (1 - alpha) ** (steps + 1) + eps
    out = ppr_diffusion(dgl.batch(graphs), alpha=alpha, eps=eps, num_steps=num_steps)
    for g, approx in zip(graphs, dgl.unbatch(out)):
        error = exact_ppr(g, alpha) - as_dense(approx)
        assert error.min() >= -ROUNDING  # the truncated series never overshoots
        assert error.max() < bound
        assert approx.edata["w"].min() >= eps
    if num_steps is None:
        assert bound <= 2 * eps


def test_few_steps_are_visibly_truncated():
    g = messy_graphs()[5]
    error = exact_ppr(g, 0.2) - as_dense(ppr_diffusion(g, eps=1e-4, num_steps=2))
    assert error.max() > 1e-2


def test_batch_structure_and_independence_of_batch_members():
    graphs = messy_graphs(1)
    bg = dgl.batch(graphs)
    out = ppr_diffusion(bg)
    assert torch.equal(out.batch_num_nodes(), bg.batch_num_nodes())
    assert out.batch_size == len(graphs)
    graph_of = torch.repeat_interleave(torch.arange(len(graphs)), bg.batch_num_nodes())
    src, dst = out.edges()
    assert torch.equal(graph_of[src], graph_of[dst])
    keys = dst * bg.num_nodes() + src
    assert torch.equal(keys, torch.sort(keys).values)
    for i, (g, part) in enumerate(zip(graphs, dgl.unbatch(out))):
        alone = ppr_diffusion(g)
        assert torch.equal(torch.stack(alone.edges()), torch.stack(part.edges()))
        assert torch.allclose(alone.edata["w"], part.edata["w"], atol=1e-7)
        assert int(out.batch_num_edges()[i]) == alone.num_edges()


def test_every_node_keeps_its_self_loop():
    out = ppr_diffusion(dgl.batch(messy_graphs()), alpha=0.3, eps=1e-2)
    src, dst = out.edges()
    loops = src == dst
    assert torch.equal(torch.sort(src[loops]).values, torch.arange(out.num_nodes()))
    assert out.edata["w"][loops].min() >= 0.3 - 1e-2


def test_small_workspace_gives_the_same_result():
    bg = dgl.batch(messy_graphs(2))
    whole = ppr_diffusion(bg, eps=1e-3)
    blocked = ppr_diffusion(bg, eps=1e-3, max_block=50)
    assert torch.equal(torch.stack(whole.edges()), torch.stack(blocked.edges()))
    assert torch.allclose(whole.edata["w"], blocked.edata["w"], atol=1e-7)


def test_topk_keeps_the_largest_in_edges():
    bg = dgl.batch(messy_graphs(3))
    full = as_dense(ppr_diffusion(bg, eps=1e-3))
    top = ppr_diffusion(bg, eps=1e-3, topk=3)
    assert int(top.in_degrees().max()) == 3
    assert torch.equal(top.in_degrees(), torch.clamp(ppr_diffusion(bg, eps=1e-3).in_degrees(), max=3))
    kept = as_dense(top)
    assert torch.equal(kept[kept > 0], full[kept > 0])
    # Every dropped weight is at most the smallest weight kept on its row.
    smallest_kept = torch.where(kept > 0, kept, torch.inf).min(1).values
    dropped = torch.where((kept == 0) & (full > 0), full, 0.0).max(1).values
    assert torch.all(dropped <= smallest_kept)


def test_gcn_norm_adjacency_is_the_symmetric_normalisation_with_self_loops():
    graphs = messy_graphs(4)
    bg = dgl.batch(graphs)
    out = gcn_norm_adjacency(bg)
    assert torch.equal(out.batch_num_nodes(), bg.batch_num_nodes())
    for g, part in zip(graphs, dgl.unbatch(out)):
        # T is the first-order term of the exact series: S = alpha I + alpha (1 - alpha) T + ...
        n = g.num_nodes()
        adjacency = torch.zeros(n, n, dtype=torch.float64)
        src, dst = g.edges()
        adjacency[src, dst] = adjacency[dst, src] = 1.0
        adjacency.fill_diagonal_(1.0)
        d = adjacency.sum(1).rsqrt()
        assert torch.allclose(as_dense(part), d[:, None] * adjacency * d[None, :], atol=1e-6)


def test_large_sparse_graph_stays_sparse_with_topk():
    gen = torch.Generator().manual_seed(0)
    n = 2000
    ring = torch.arange(n)
    src = torch.cat([ring, torch.randint(0, n, (n,), generator=gen)])
    dst = torch.cat([(ring + 1) % n, torch.randint(0, n, (n,), generator=gen)])
    out = ppr_diffusion(dgl.graph((src, dst), num_nodes=n), eps=1e-3, topk=16)
    assert out.num_edges() <= 16 * n
    assert int(out.in_degrees().min()) >= 1


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"alpha": 0.0}, "alpha"),
        ({"alpha": 1.0}, "alpha"),
        ({"eps": 0.0}, "eps"),
        ({"eps": 0.2}, "eps"),
        ({"topk": 0}, "topk"),
        ({"num_steps": 0}, "num_steps"),
        ({"max_block": 0}, "max_block"),
    ],
)
def test_invalid_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ppr_diffusion(dgl.graph(([0], [1])), **kwargs)


def test_rejects_non_graphs_and_heterographs():
    with pytest.raises(TypeError, match="DGLGraph"):
        ppr_diffusion(torch.zeros(3, 3))
    hetero = dgl.heterograph({("n", "a", "n"): ([0], [1]), ("n", "b", "n"): ([1], [0])})
    with pytest.raises(ValueError, match="homogeneous"):
        gcn_norm_adjacency(hetero)


def test_graph_without_nodes():
    out = ppr_diffusion(dgl.graph(([], []), num_nodes=0))
    assert out.num_nodes() == 0 and out.num_edges() == 0
