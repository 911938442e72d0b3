from __future__ import annotations

import dgl
import pytest
import torch

from dglbs_models.gin import GIN


def random_batch(sizes: list[tuple[int, int]], in_dim: int = 5, seed: int = 0) -> tuple[dgl.DGLGraph, torch.Tensor]:
    dgl.seed(seed)
    bg = dgl.batch([dgl.rand_graph(n, m) for n, m in sizes])
    feat = torch.randn(bg.num_nodes(), in_dim, generator=torch.Generator().manual_seed(seed))
    return bg, feat


@pytest.mark.parametrize("readout", ["sum", "mean", "max"])
def test_output_shape_is_batch_by_hidden_times_layers(readout: str) -> None:
    bg, feat = random_batch([(6, 10), (3, 2), (9, 20)])
    model = GIN(5, hidden_dim=8, num_layers=3, readout=readout)
    out = model(bg, feat)
    assert model.out_dim == 24
    assert out.shape == (3, 24) and out.dtype == torch.float32
    assert torch.isfinite(out).all()


def test_each_graph_is_embedded_independently_of_its_batch() -> None:
    torch.manual_seed(0)
    bg, feat = random_batch([(6, 10), (1, 0), (4, 0), (9, 20)])
    model = GIN(5, hidden_dim=8, num_layers=2).eval()  # eval: BatchNorm uses running stats
    batched = model(bg, feat)
    offset = 0
    for i, g in enumerate(dgl.unbatch(bg)):
        alone = model(g, feat[offset : offset + g.num_nodes()])
        torch.testing.assert_close(alone[0], batched[i])
        offset += g.num_nodes()


def test_sum_readout_is_invariant_to_node_order() -> None:
    bg, feat = random_batch([(8, 16)])
    model = GIN(5, hidden_dim=8, num_layers=3).eval()
    perm = torch.randperm(8, generator=torch.Generator().manual_seed(1))
    inverse = torch.argsort(perm)
    src, dst = bg.edges()
    permuted = dgl.graph((inverse[src], inverse[dst]), num_nodes=8)
    torch.testing.assert_close(model(permuted, feat[perm]), model(bg, feat))


def test_gradient_reaches_every_parameter() -> None:
    torch.manual_seed(0)
    bg, feat = random_batch([(6, 10), (3, 2), (9, 20), (1, 0)])
    model = GIN(5, hidden_dim=8, num_layers=3)
    (model(bg, feat) ** 2).sum().backward()
    for name, param in model.named_parameters():
        assert param.grad is not None, name
        assert param.grad.abs().sum() > 0, name


def test_sum_pooling_concatenates_every_layer() -> None:
    bg, feat = random_batch([(6, 10), (3, 2)])
    model = GIN(5, hidden_dim=4, num_layers=2).eval()
    first_layer = model.norms[0](torch.relu(model.convs[0](bg, feat)))
    with bg.local_scope():
        bg.ndata["h"] = first_layer
        expected = dgl.sum_nodes(bg, "h")
    torch.testing.assert_close(model(bg, feat)[:, :4], expected)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"in_dim": 0}, "in_dim must be a positive int"),
        ({"in_dim": 5, "hidden_dim": "32"}, "hidden_dim must be a positive int"),
        ({"in_dim": 5, "num_layers": True}, "num_layers must be a positive int"),
        ({"in_dim": 5, "readout": "attention"}, "readout must be one of"),
    ],
)
def test_bad_constructor_arguments_are_rejected(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        GIN(**kwargs)


def test_feature_shape_mismatch_is_rejected() -> None:
    bg, feat = random_batch([(6, 10)])
    with pytest.raises(ValueError, match=r"feat must have shape \(num_nodes, in_dim\) = \(6, 4\)"):
        GIN(4)(bg, feat)
