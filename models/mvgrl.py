"""Graph-level MVGRL (Hassani & Khasahmadi, ICML 2020) as an in-batch contrastive method.

MVGRL encodes every graph twice, once through its normalised adjacency
``T = D^{-1/2} (A + I) D^{-1/2}`` and once through its personalised-PageRank diffusion
(:mod:`dglbs_models.diffusion`), each with its own GCN, and reads each view out as the
concatenation of the sum-pooled outputs of every GCN layer. BatchSampler trains it with
an in-batch loss, so :meth:`MVGRL.forward` returns the two views' projected graph
representations: ``z1[i]`` and ``z2[i]`` (two views of graph ``i``) are positives and
the other graphs of the batch are negatives.

The diffusion depends only on the graph, so it can be computed once per dataset:
:class:`WithDiffusion` wraps a dataset of ``(graph, label)`` pairs and returns
``(views, label)`` where ``views`` (from :func:`mvgrl_views`) is a heterograph with
the original node data and two weighted relations, ``"adj"`` (``T``) and ``"ppr"``
(the diffusion). ``dgl.batch`` batches such graphs like any other, so the usual
``(bg, labels)`` collate works unchanged, and :class:`MVGRL` uses the stored views
when the batched graph has them and computes them otherwise.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import dgl
import torch
from dgl import DGLGraph
from dgl.nn import GraphConv
from torch import Tensor, nn
from torch.utils.data import Dataset

from dglbs.method import ContrastiveMethod
from dglbs_models.diffusion import check_ppr_args, gcn_norm_adjacency, ppr_diffusion

VIEW_TYPES = ("adj", "ppr")
"""Relation names of the graphs made by :func:`mvgrl_views`: normalised adjacency, diffusion."""


def _check_positive_int(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")


def mvgrl_views(g: DGLGraph, alpha: float = 0.2, eps: float = 1e-4, topk: int | None = None) -> DGLGraph:
    """Both MVGRL views of a (batched) graph, stored in one heterograph.

    Parameters
    ----------
    g : DGLGraph
        Homogeneous graph, possibly batched, edges read as undirected.
    alpha, eps, topk
        Passed to :func:`dglbs_models.diffusion.ppr_diffusion`.

    Returns
    -------
    DGLGraph
        One node type with all of ``g.ndata``, and relations ``"adj"`` (edges of
        ``A + I``, float32 ``edata["w"]`` = ``T``) and ``"ppr"`` (diffusion edges,
        float32 ``edata["w"]``); batch structure of ``g``, so ``dgl.unbatch`` splits it.
    """
    views = [gcn_norm_adjacency(g), ppr_diffusion(g, alpha=alpha, eps=eps, topk=topk)]
    (ntype,) = g.ntypes
    relations = [(ntype, name, ntype) for name in VIEW_TYPES]
    out = dgl.heterograph(
        {relation: view.edges() for relation, view in zip(relations, views)},
        num_nodes_dict={ntype: g.num_nodes()},
        device=g.device,
    )
    for name, view in zip(VIEW_TYPES, views):
        out.edges[name].data["w"] = view.edata["w"]
    out.ndata.update(dict(g.ndata))
    out.set_batch_num_nodes(g.batch_num_nodes())
    out.set_batch_num_edges({relation: view.batch_num_edges() for relation, view in zip(relations, views)})
    return out


class WithDiffusion(Dataset):
    """A graph dataset whose graphs carry both MVGRL views, computed once up front.

    Parameters
    ----------
    dataset : sequence of (DGLGraph, label)
        E.g. :class:`dglbs.data.tu.TUDataset`; graphs are homogeneous with ``ndata["feat"]``.
    alpha, eps, topk
        Diffusion settings, see :func:`dglbs_models.diffusion.ppr_diffusion`; an :class:`MVGRL`
        trained on this dataset uses these instead of its own.
    chunk_nodes : int
        At most this many nodes are batched together for the precomputation (a larger
        graph is computed alone): bounds its memory, which grows with the nodes times
        the diffusion entries kept per node; the result does not depend on it.

    Notes
    -----
    Item ``i`` is ``(mvgrl_views(dataset[i][0]), dataset[i][1])``; batch items with the
    dataset's usual collate (``dgl.batch``). The views hold references to the source
    graphs' node data, not copies (degree one-hot features of REDDIT-BINARY take 3.4 GB).
    """

    def __init__(
        self,
        dataset: Sequence[tuple[DGLGraph, Any]],
        *,
        alpha: float = 0.2,
        eps: float = 1e-4,
        topk: int | None = None,
        chunk_nodes: int = 16384,
    ) -> None:
        _check_positive_int("chunk_nodes", chunk_nodes)
        check_ppr_args(alpha, eps, topk)
        self.items: list[tuple[DGLGraph, Any]] = []
        chunk: list[tuple[DGLGraph, Any]] = []
        nodes = 0
        for index in range(len(dataset)):
            item = dataset[index]
            if chunk and nodes + item[0].num_nodes() > chunk_nodes:
                self._add(chunk, alpha, eps, topk)
                chunk, nodes = [], 0
            chunk.append(item)
            nodes += item[0].num_nodes()
        if chunk:
            self._add(chunk, alpha, eps, topk)

    def _add(self, chunk: list[tuple[DGLGraph, Any]], alpha: float, eps: float, topk: int | None) -> None:
        """Compute the views of ``chunk``'s graphs together and append its items."""
        # The diffusion needs only the structure: batching the node data would copy it twice.
        structure = dgl.batch([dgl.graph(g.edges(), num_nodes=g.num_nodes()) for g, _ in chunk])
        views = mvgrl_views(structure, alpha=alpha, eps=eps, topk=topk)
        for view, (g, label) in zip(dgl.unbatch(views), chunk):
            view.ndata.update(dict(g.ndata))
            self.items.append((view, label))

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[DGLGraph, Any]:
        """Views graph of item ``index`` (see :func:`mvgrl_views`) and its label."""
        return self.items[index]


class _MLP(nn.Module):
    """MVGRL's head: three Linear + PReLU layers plus a linear shortcut."""

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(in_dim, out_dim),
            nn.PReLU(),
            nn.Linear(out_dim, out_dim),
            nn.PReLU(),
            nn.Linear(out_dim, out_dim),
            nn.PReLU(),
        )
        self.shortcut = nn.Linear(in_dim, out_dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x) + self.shortcut(x)


class _GCN(nn.Module):
    """GCN on a weighted view; returns the concatenated per-layer sum readouts."""

    def __init__(self, in_dim: int, hidden_dim: int, num_layers: int) -> None:
        super().__init__()
        dims = [in_dim] + [hidden_dim] * num_layers
        # norm="none": the view's edge weights already hold the (normalised) operator.
        self.layers = nn.ModuleList(
            GraphConv(d_in, d_out, norm="none", activation=nn.PReLU()) for d_in, d_out in zip(dims[:-1], dims[1:])
        )

    def forward(self, view: DGLGraph, feat: Tensor, batch_num_nodes: Tensor) -> Tensor:
        """``(B, num_layers * hidden_dim)`` readout of node features ``feat`` ``(N, in_dim)``."""
        readouts = []
        h = feat
        for layer in self.layers:
            h = layer(view, h, edge_weight=view.edata["w"])
            readouts.append(dgl.ops.segment_reduce(batch_num_nodes, h, "sum"))
        return torch.cat(readouts, dim=1)


class MVGRL(ContrastiveMethod):
    """Graph-level MVGRL encoders and heads for the shared in-batch trainer.

    Parameters
    ----------
    in_dim : int
        Node feature size ``D`` of ``bg.ndata["feat"]``.
    hidden_dim : int
        Width of every GCN layer and of the graph embeddings (MVGRL: 512).
    num_layers : int
        GCN layers per view (MVGRL's default: 4).
    proj_dim : int or None
        Output size of the projection head; ``None`` uses ``hidden_dim``.
    alpha, eps, topk
        Diffusion settings for batches without precomputed views
        (see :func:`dglbs_models.diffusion.ppr_diffusion`).

    Notes
    -----
    Each view has its own GCN (``dgl.nn.GraphConv`` with edge weights, bias and PReLU,
    as MVGRL's ``GCNLayer``); the adjacency view is weighted by ``T``, which equals
    ``GraphConv(norm="both")`` on ``A + I``. The graph head (MVGRL's ``mlp2``) is shared
    by the views and gives the embeddings; the projection head (Linear-ReLU-Linear, as
    GraphCL) maps them to the space of the in-batch loss.
    """

    def __init__(
        self,
        in_dim: int,
        hidden_dim: int = 512,
        num_layers: int = 4,
        *,
        proj_dim: int | None = None,
        alpha: float = 0.2,
        eps: float = 1e-4,
        topk: int | None = None,
    ) -> None:
        super().__init__()
        for name, value in (("in_dim", in_dim), ("hidden_dim", hidden_dim), ("num_layers", num_layers)):
            _check_positive_int(name, value)
        if proj_dim is not None:
            _check_positive_int("proj_dim", proj_dim)
        check_ppr_args(alpha, eps, topk)
        self.embed_dim = hidden_dim
        self.proj_dim = hidden_dim if proj_dim is None else proj_dim
        self.alpha, self.eps, self.topk = alpha, eps, topk
        self.encoders = nn.ModuleList(_GCN(in_dim, hidden_dim, num_layers) for _ in VIEW_TYPES)
        self.graph_head = _MLP(num_layers * hidden_dim, hidden_dim)
        self.projection_head = nn.Sequential(
            nn.Linear(hidden_dim, hidden_dim),
            nn.ReLU(),
            nn.Linear(hidden_dim, self.proj_dim),
        )

    def views(self, bg: DGLGraph) -> tuple[DGLGraph, DGLGraph]:
        """The adjacency and diffusion views of ``bg``, each with float32 ``edata["w"]``.

        Stored views (a graph from :func:`mvgrl_views`) are used as they are; for a
        homogeneous graph both are computed with this model's diffusion settings.
        """
        if len(bg.canonical_etypes) == 1:
            return gcn_norm_adjacency(bg), ppr_diffusion(bg, alpha=self.alpha, eps=self.eps, topk=self.topk)
        if set(bg.etypes) != set(VIEW_TYPES):
            raise ValueError(
                f"batched graph must be homogeneous or have exactly the edge types {VIEW_TYPES} "
                f"(see mvgrl_views / WithDiffusion), got {bg.etypes}"
            )
        adj, ppr = (bg[name] for name in VIEW_TYPES)
        return adj, ppr

    def _graph_embeddings(self, batch: tuple[DGLGraph, Tensor]) -> tuple[Tensor, Tensor]:
        bg, _ = batch
        if not isinstance(bg, DGLGraph):
            raise TypeError(f"batch must be (DGLGraph, labels), got a {type(bg).__name__} first")
        feat = bg.ndata["feat"]
        h1, h2 = (
            self.graph_head(encoder(view, feat, bg.batch_num_nodes()))
            for encoder, view in zip(self.encoders, self.views(bg))
        )
        return h1, h2

    def forward(self, batch: tuple[DGLGraph, Tensor]) -> tuple[Tensor, Tensor]:
        """Projected graph representations of the adjacency and diffusion views.

        Parameters
        ----------
        batch : (DGLGraph, Tensor)
            Batched graph of B graphs (homogeneous, or with stored views from
            :class:`WithDiffusion`) with float ``ndata["feat"]`` of shape ``(N, in_dim)``,
            and int64 labels ``(B,)`` (ignored).

        Returns
        -------
        (z1, z2) : pair of float tensors of shape ``(B, proj_dim)``
            Row ``i`` of each is graph ``i`` seen through the adjacency / the diffusion.
        """
        h1, h2 = self._graph_embeddings(batch)
        return self.projection_head(h1), self.projection_head(h2)

    def embed(self, batch: tuple[DGLGraph, Tensor]) -> Tensor:
        """Sum of the two views' graph embeddings, as MVGRL evaluates.

        Returns
        -------
        Tensor
            Float tensor of shape ``(B, hidden_dim)``.
        """
        h1, h2 = self._graph_embeddings(batch)
        return h1 + h2
