"""GIN graph encoder with per-layer readout, as used by GraphCL on TU datasets."""
from __future__ import annotations

import torch
from dgl import DGLGraph
from dgl.nn import AvgPooling, GINConv, MaxPooling, SumPooling
from torch import Tensor, nn

READOUTS: dict[str, type[nn.Module]] = {"sum": SumPooling, "mean": AvgPooling, "max": MaxPooling}


class GIN(nn.Module):
    """Graph Isomorphism Network producing one embedding per graph.

    Each of the ``num_layers`` layers is a ``GINConv`` (sum aggregation, fixed
    ``eps = 0``) whose update MLP is Linear-BatchNorm-ReLU-Linear, followed by ReLU and
    BatchNorm as in GraphCL's encoder. Every layer's node output is pooled per graph
    and the ``num_layers`` poolings are concatenated (jumping-knowledge readout).

    Parameters
    ----------
    in_dim : int
        Node feature size D.
    hidden_dim : int
        Width of every layer.
    num_layers : int
        Number of GIN layers.
    readout : {"sum", "mean", "max"}
        Per-graph pooling of each layer's node output; GraphCL uses ``"sum"``.

    Attributes
    ----------
    out_dim : int
        ``hidden_dim * num_layers``, the size of the graph embedding.
    """

    def __init__(self, in_dim: int, hidden_dim: int = 32, num_layers: int = 5, *, readout: str = "sum") -> None:
        super().__init__()
        for name, value in (("in_dim", in_dim), ("hidden_dim", hidden_dim), ("num_layers", num_layers)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if readout not in READOUTS:
            raise ValueError(f"readout must be one of {sorted(READOUTS)}, got {readout!r}")
        self.in_dim = in_dim
        self.hidden_dim = hidden_dim
        self.num_layers = num_layers
        self.out_dim = hidden_dim * num_layers
        self.convs = nn.ModuleList()
        self.norms = nn.ModuleList()
        for layer in range(num_layers):
            mlp = nn.Sequential(
                nn.Linear(in_dim if layer == 0 else hidden_dim, hidden_dim),
                nn.BatchNorm1d(hidden_dim),
                nn.ReLU(),
                nn.Linear(hidden_dim, hidden_dim),
            )
            self.convs.append(GINConv(mlp, aggregator_type="sum"))
            self.norms.append(nn.BatchNorm1d(hidden_dim))
        self.pool = READOUTS[readout]()

    def forward(self, bg: DGLGraph, feat: Tensor) -> Tensor:
        """Embed every graph of a batch.

        Parameters
        ----------
        bg : DGLGraph
            Batched graph of B graphs with N nodes in total.
        feat : Tensor
            Float node features of shape ``(N, in_dim)``.

        Returns
        -------
        Tensor
            Float tensor of shape ``(B, out_dim)``; columns ``[l*hidden_dim, (l+1)*hidden_dim)``
            pool layer ``l``.
        """
        if tuple(feat.shape) != (bg.num_nodes(), self.in_dim):
            raise ValueError(
                f"feat must have shape (num_nodes, in_dim) = ({bg.num_nodes()}, {self.in_dim}), "
                f"got {tuple(feat.shape)}"
            )
        h = feat
        pooled = []
        for conv, norm in zip(self.convs, self.norms):
            h = norm(torch.relu(conv(bg, h)))
            pooled.append(self.pool(bg, h))
        return torch.cat(pooled, dim=1)
