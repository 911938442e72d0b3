from __future__ import annotations

import copy
import io

import dgl
import pytest
import torch
from torch import nn

from dglbs.method import ContrastiveMethod
from dglbs_models.augment_graph import AUGMENTATIONS
from dglbs_models.gin import GIN
from dglbs_models.graphcl import GraphCL

IN_DIM = 6


def make_batch(sizes: list[tuple[int, int]], seed: int = 0) -> tuple[dgl.DGLGraph, torch.Tensor]:
    """A collate-style ``(bg, labels)`` batch of ``dgl.rand_graph`` graphs."""
    dgl.seed(seed)
    bg = dgl.batch([dgl.rand_graph(n, m) for n, m in sizes])
    bg.ndata["feat"] = torch.randn(bg.num_nodes(), IN_DIM, generator=torch.Generator().manual_seed(seed))
    labels = torch.arange(len(sizes)) % 2
    return bg, labels


SIZES = [(12, 30), (8, 14), (20, 50), (5, 6), (15, 40), (9, 0)]


def make_model(**kwargs) -> GraphCL:
    torch.manual_seed(0)
    return GraphCL(GIN(IN_DIM, hidden_dim=8, num_layers=3), **kwargs)


def test_is_a_contrastive_method_with_graphcl_head() -> None:
    model = make_model()
    assert isinstance(model, ContrastiveMethod)
    linear = [m for m in model.head if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linear] == [(24, 24), (24, 24)]
    assert model.proj_dim == 24
    assert make_model(proj_dim=10).proj_dim == 10


@pytest.mark.parametrize("proj_dim", [None, 10])
def test_forward_gives_two_row_aligned_projected_views(proj_dim: int | None) -> None:
    model = make_model(proj_dim=proj_dim)
    z1, z2 = model(make_batch(SIZES))
    expected_dim = 24 if proj_dim is None else proj_dim
    assert z1.shape == z2.shape == (len(SIZES), expected_dim)
    assert not torch.allclose(z1, z2), "the two views must differ"


@pytest.mark.parametrize("name", sorted(AUGMENTATIONS))
def test_every_augmentation_runs_on_single_node_and_edgeless_graphs(name: str) -> None:
    model = make_model(augmentations=(name,), ratio=0.5)
    z1, z2 = model(make_batch([(1, 0), (4, 0), (7, 12), (1, 1)]))
    assert z1.shape == z2.shape == (4, 24)
    assert torch.isfinite(z1).all() and torch.isfinite(z2).all()


def test_embed_is_the_encoder_on_the_unaugmented_graph() -> None:
    model = make_model().eval()
    batch = make_batch(SIZES)
    state = model.generator.get_state()
    with torch.no_grad():
        emb = model.embed(batch)
        expected = model.encoder(batch[0], batch[0].ndata["feat"])
    assert emb.shape == (len(SIZES), 24)
    torch.testing.assert_close(emb, expected)
    assert torch.equal(model.generator.get_state(), state), "embed must not draw augmentation randomness"


def test_gradient_reaches_encoder_and_head() -> None:
    model = make_model()
    z1, z2 = model(make_batch(SIZES))
    (z1 * z2).sum().backward()
    for name, param in model.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name


def test_same_seed_reproduces_views_and_other_seed_differs() -> None:
    batch = make_batch(SIZES)
    a = make_model(seed=3)
    b = copy.deepcopy(a)
    c = copy.deepcopy(a)
    c.generator.manual_seed(4)
    za, zb, zc = a(batch), b(batch), c(batch)
    torch.testing.assert_close(za, zb)
    assert not torch.allclose(za[0], zc[0])
    # The generator advances: the next call gives new views.
    assert not torch.allclose(a(batch)[0], za[0])


def test_state_dict_round_trip_restores_augmentation_stream() -> None:
    batch = make_batch(SIZES)
    model = make_model(seed=5)
    model(batch)
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    expected = model(batch)

    restored = make_model(seed=99)
    buffer.seek(0)
    restored.load_state_dict(torch.load(buffer, weights_only=True))
    torch.testing.assert_close(restored(batch), expected)


def test_bad_arguments_are_rejected() -> None:
    gin = GIN(IN_DIM)
    with pytest.raises(TypeError, match="int out_dim attribute"):
        GraphCL(nn.Linear(3, 3))
    with pytest.raises(ValueError, match="unknown augmentation.*'dnodes'"):
        GraphCL(gin, augmentations=("dnodes",))
    with pytest.raises(ValueError, match="non-empty sequence"):
        GraphCL(gin, augmentations=())
    with pytest.raises(ValueError, match=r"ratio must be in \[0, 1\), got 1.0"):
        GraphCL(gin, ratio=1.0)
    with pytest.raises(ValueError, match="proj_dim must be a positive int or None"):
        GraphCL(gin, proj_dim=0)
    with pytest.raises(TypeError, match="seed must be an int"):
        GraphCL(gin, seed=1.5)
