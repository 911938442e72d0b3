from __future__ import annotations

import dgl
import pytest
import torch
import torch.nn.functional as F

from dglbs.data.tu import collate
from dglbs_models.mvgrl import MVGRL, VIEW_TYPES, WithDiffusion, mvgrl_views

FEAT = 5


def dataset(sizes: list[int], seed: int = 0) -> list[tuple[dgl.DGLGraph, torch.Tensor]]:
    """Random graphs with float features and int64 scalar labels, like TUDataset items."""
    gen = torch.Generator().manual_seed(seed)
    items = []
    for i, n in enumerate(sizes):
        m = 2 * n
        g = dgl.graph((torch.randint(0, n, (m,), generator=gen), torch.randint(0, n, (m,), generator=gen)), num_nodes=n)
        g.ndata["feat"] = torch.randn(n, FEAT, generator=gen)
        items.append((g, torch.tensor(i % 2)))
    return items


def model(**kwargs) -> MVGRL:
    torch.manual_seed(0)
    return MVGRL(FEAT, hidden_dim=16, num_layers=3, **kwargs)


def test_output_shapes_and_embedding_is_not_the_projection():
    batch = collate(dataset([6, 1, 12, 4]))
    method = model(proj_dim=8)
    z1, z2 = method(batch)
    assert z1.shape == z2.shape == (4, 8)
    with torch.no_grad():
        embedding = method.embed(batch)
    assert embedding.shape == (4, 16) and method.embed_dim == 16
    assert not torch.allclose(z1, z2)
    assert torch.isfinite(torch.cat([z1, z2])).all() and torch.isfinite(embedding).all()


def test_gradients_reach_both_encoders_and_both_heads():
    method = model()
    z1, z2 = method(collate(dataset([5, 7, 3])))
    (z1 * z2).sum().backward()
    for name in ("encoders.0", "encoders.1", "graph_head", "projection_head"):
        grads = [p.grad for n, p in method.named_parameters() if n.startswith(name)]
        assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)
        assert any(g.abs().sum() > 0 for g in grads), name


def test_precomputed_views_give_the_same_outputs():
    items = dataset([8, 1, 15, 3, 30], seed=1)
    precomputed = WithDiffusion(items, chunk_nodes=20)  # chunks of 8 + 1, 15 + 3, 30 alone
    method = model()
    on_the_fly, stored = collate(items), collate([precomputed[i] for i in range(len(precomputed))])
    for a, b in zip(method(on_the_fly), method(stored)):
        assert torch.allclose(a, b, atol=1e-5)
    with torch.no_grad():
        assert torch.allclose(method.embed(on_the_fly), method.embed(stored), atol=1e-5)


def test_with_diffusion_items():
    items = dataset([4, 1, 6], seed=2)
    wrapped = WithDiffusion(items, alpha=0.3, eps=1e-3, topk=2)
    assert len(wrapped) == 3
    for (g, label), (views, wrapped_label) in zip(items, wrapped):
        assert sorted(views.etypes) == sorted(VIEW_TYPES)
        assert torch.equal(views.ndata["feat"], g.ndata["feat"]) and wrapped_label == label
        assert views.ndata["feat"].data_ptr() == g.ndata["feat"].data_ptr()  # a reference, not a copy
        assert int(views["ppr"].in_degrees().max()) <= 2
        assert views["adj"].num_edges() >= g.num_nodes()  # at least the self loops


def test_views_of_a_batch_split_into_the_views_of_each_graph():
    items = dataset([3, 9, 1], seed=3)
    batched = mvgrl_views(dgl.batch([g for g, _ in items]))
    for (g, _), part in zip(items, dgl.unbatch(batched)):
        alone = mvgrl_views(g)
        for etype in VIEW_TYPES:
            assert torch.equal(torch.stack(part.edges(etype=etype)), torch.stack(alone.edges(etype=etype)))
            assert torch.allclose(part.edges[etype].data["w"], alone.edges[etype].data["w"], atol=1e-7)


def test_batch_of_single_node_graphs():
    method = model()
    z1, z2 = method(collate(dataset([1, 1, 1])))
    assert z1.shape == (3, 16) and torch.isfinite(torch.cat([z1, z2])).all()
    # The lone nodes have different features, so their graphs must not collapse to one point.
    assert not torch.allclose(z1[0], z1[1])


def test_rows_depend_only_on_their_own_graph():
    items = dataset([5, 9, 2, 7], seed=4)
    method = model()
    z1, z2 = method(collate(items))
    order = [2, 0, 3, 1]
    p1, p2 = method(collate([items[i] for i in order]))
    assert torch.allclose(p1, z1[order], atol=1e-5) and torch.allclose(p2, z2[order], atol=1e-5)


def test_in_batch_training_aligns_the_two_views():
    batch = collate(dataset([6, 8, 5, 9, 7, 4, 10, 6], seed=5))
    method = model()
    optimiser = torch.optim.Adam(method.parameters(), lr=1e-2)

    def loss() -> torch.Tensor:
        z1, z2 = (F.normalize(z, dim=1) for z in method(batch))
        return F.cross_entropy(z1 @ z2.T / 0.5, torch.arange(len(z1)))

    first = loss().item()
    for _ in range(30):
        optimiser.zero_grad()
        value = loss()
        value.backward()
        optimiser.step()
    assert loss().item() < 0.5 * first


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"in_dim": 0}, "in_dim"),
        ({"hidden_dim": 2.5}, "hidden_dim"),
        ({"num_layers": 0}, "num_layers"),
        ({"proj_dim": 0}, "proj_dim"),
        ({"alpha": 1.5}, "alpha"),
        ({"eps": 0.5}, "eps"),
        ({"topk": -1}, "topk"),
    ],
)
def test_invalid_constructor_arguments(kwargs, match):
    arguments = {"in_dim": FEAT, **kwargs}
    with pytest.raises(ValueError, match=match):
        MVGRL(**arguments)


def test_rejects_unknown_batches():
    method = model()
    other = dgl.heterograph({("n", "x", "n"): ([0], [1]), ("n", "y", "n"): ([1], [0])})
    other.ndata["feat"] = torch.randn(2, FEAT)
    with pytest.raises(ValueError, match="edge types"):
        method((other, torch.tensor([0])))
    with pytest.raises(TypeError, match="DGLGraph"):
        method((torch.zeros(2, FEAT), torch.tensor([0])))


def test_with_diffusion_rejects_bad_settings_before_computing():
    items = dataset([4, 1], seed=2)
    with pytest.raises(ValueError, match="chunk_nodes must be a positive int, got 0"):
        WithDiffusion(items, chunk_nodes=0)
    with pytest.raises(ValueError, match="topk must be a positive int or None, got 0"):
        WithDiffusion(items, topk=0)
