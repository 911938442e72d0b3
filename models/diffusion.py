"""Sparse personalised-PageRank (PPR) diffusion of batched graphs, as MVGRL's second view.

MVGRL (Hassani & Khasahmadi, ICML 2020) contrasts a graph with its PPR diffusion

.. math:: S = \\alpha \\, (I - (1 - \\alpha) T)^{-1}, \\qquad T = D^{-1/2} (A + I) D^{-1/2},

where ``A`` is the graph's (simple, undirected) adjacency and ``D`` the degree matrix of
``A + I``. The original code inverts ``I - (1 - alpha) T`` densely per graph (cubic in
the number of nodes, quadratic memory). :func:`ppr_diffusion` instead sums a truncated
series with sparse-times-dense products over bounded column blocks and keeps only
entries of at least ``eps`` (optionally the ``topk`` largest per node), with a
documented error bound; :func:`gcn_norm_adjacency` gives MVGRL's first view ``T``.
Both return weighted graphs (``edata["w"]``) with the batch structure of the input.
"""
from __future__ import annotations

import math
import warnings

import torch
from dgl import DGLGraph, graph
from torch import Tensor


def _check_graph(g: object) -> None:
    if not isinstance(g, DGLGraph):
        raise TypeError(f"g must be a (batched) dgl.DGLGraph, got {type(g).__name__}")
    if len(g.ntypes) != 1 or len(g.canonical_etypes) != 1:
        raise ValueError(
            f"g must be homogeneous (one node and one edge type), got node types {g.ntypes} and edge "
            f"types {g.etypes}; pass a relation graph such as g[etype] instead"
        )


def _node_graph_ids(g: DGLGraph) -> Tensor:
    """Index of the batched member graph of every node, int64 ``(N,)``."""
    counts = g.batch_num_nodes()
    return torch.repeat_interleave(torch.arange(len(counts), device=g.device), counts)


def _simple_self_loop_adjacency(g: DGLGraph) -> tuple[Tensor, Tensor, Tensor]:
    """Edges of ``A + I`` with ``A`` the simple undirected adjacency of ``g``.

    Edge directions, multi-edges and existing self loops of ``g`` are discarded so
    that ``T`` is symmetric with eigenvalues in ``(-1, 1]``, as MVGRL's ``A + I``.

    Returns
    -------
    src, dst : int64 ``(E,)``
        Edges sorted by ``(src, dst)``; every node has its self loop.
    degree : int64 ``(N,)``
        Degree of every node in ``A + I`` (at least 1).
    """
    n = g.num_nodes()
    src, dst = g.edges()
    src, dst = src.long(), dst.long()
    off_diagonal = src != dst
    src, dst = src[off_diagonal], dst[off_diagonal]
    loops = torch.arange(n, device=g.device)
    keys = torch.unique(torch.cat([src * n + dst, dst * n + src, loops * (n + 1)]))
    src, dst = keys // n, keys % n
    return src, dst, torch.bincount(src, minlength=n)


def _batched_like(g: DGLGraph, src: Tensor, dst: Tensor, weight: Tensor) -> DGLGraph:
    """Graph on ``g``'s nodes with edges ``src -> dst`` (grouped by member graph) and ``edata["w"]``."""
    out = graph((src, dst), num_nodes=g.num_nodes(), device=g.device)
    out.edata["w"] = weight
    out.set_batch_num_nodes(g.batch_num_nodes())
    out.set_batch_num_edges(torch.bincount(_node_graph_ids(g)[dst], minlength=g.batch_size))
    return out


def gcn_norm_adjacency(g: DGLGraph) -> DGLGraph:
    """MVGRL's first view: ``T = D^{-1/2} (A + I) D^{-1/2}`` as a weighted graph.

    Parameters
    ----------
    g : DGLGraph
        Homogeneous graph, possibly batched. Its edges are read as undirected and
        simple (directions, duplicates and self loops are dropped before ``I`` is added).

    Returns
    -------
    DGLGraph
        On the same nodes and device, with the batch structure of ``g``
        (``batch_num_nodes`` preserved), edges of ``A + I`` and float32
        ``edata["w"]`` of shape ``(E,)`` holding ``T[dst, src]``. No node data is copied.
    """
    _check_graph(g)
    src, dst, degree = _simple_self_loop_adjacency(g)
    weight = torch.rsqrt(degree[src].float() * degree[dst].float())
    return _batched_like(g, src, dst, weight)


def default_num_steps(alpha: float, eps: float) -> int:
    """Fewest propagation steps ``K`` with truncation error ``(1 - alpha) ** (K + 1) <= eps``."""
    check_ppr_args(alpha, eps)
    return max(0, math.ceil(math.log(eps) / math.log1p(-alpha)) - 1)


def check_ppr_args(
    alpha: float, eps: float, topk: int | None = None, num_steps: int | None = None, max_block: int = 2**22
) -> None:
    """Raise ValueError unless the arguments are valid for :func:`ppr_diffusion`."""
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha (the teleport probability) must be in (0, 1), got {alpha!r}; MVGRL uses 0.2")
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not 0.0 < eps < alpha:
        # eps < alpha keeps every self loop (S[i, i] >= alpha), so no node loses all in-edges.
        raise ValueError(f"eps must be in (0, alpha={alpha}), got {eps!r}; e.g. 1e-4")
    for name, value in (("topk", topk), ("num_steps", num_steps)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ValueError(f"{name} must be a positive int or None, got {value!r}")
    if isinstance(max_block, bool) or not isinstance(max_block, int) or max_block < 1:
        raise ValueError(f"max_block must be a positive int (floats in the workspace), got {max_block!r}")


def ppr_diffusion(
    g: DGLGraph,
    alpha: float = 0.2,
    eps: float = 1e-4,
    topk: int | None = None,
    num_steps: int | None = None,
    max_block: int = 2**22,
) -> DGLGraph:
    """Approximate PPR diffusion ``S`` of every member graph of ``g``, as a sparse weighted graph.

    ``S`` is replaced by its truncated series
    ``S_K = alpha * sum_{k=0..K} (1 - alpha)**k T**k``, computed by ``K`` sparse
    propagations ``X <- alpha I + (1 - alpha) T X``; entries below ``eps`` are dropped.
    Columns are processed in blocks: column ``j`` holds source node ``j`` of *every*
    member graph at once (``T`` is block diagonal, so the graphs do not mix), and each
    dense ``(nodes, columns)`` array has at most ``max(max_block, N)`` floats, so memory
    stays ``O(max_block + N + kept entries)`` however large a graph is; the only Python
    loop is over these column blocks (one block for batches of small graphs). Time is
    ``O(K * nnz(T_g) * n_g)`` per member graph ``g`` of ``n_g`` nodes.

    Error bound: ``S - S_K = (1 - alpha)**(K + 1) T**(K + 1) S`` and ``T``, ``S`` have
    spectral norm at most 1, so every entry satisfies
    ``0 <= S[i, j] - P[i, j] < (1 - alpha)**(K + 1) + eps`` (up to float32 rounding,
    about 1e-6), which is below ``2 * eps``
    with the default ``K`` (:func:`default_num_steps`). ``topk`` then keeps the ``topk``
    largest in-edges of every node (ties by source id): at most ``topk * N`` edges, but
    each dropped weight adds to the error of its entry.

    Parameters
    ----------
    g : DGLGraph
        Homogeneous graph, possibly batched; edges are read as undirected and simple,
        like MVGRL's ``networkx`` graphs.
    alpha : float
        Teleport (restart) probability in ``(0, 1)``; MVGRL uses 0.2.
    eps : float
        Smallest weight kept, in ``(0, alpha)``; it also sets the default ``num_steps``.
    topk : int or None
        Keep at most this many in-edges (largest weights) per node; ``None`` keeps all.
    num_steps : int or None
        Number ``K`` of propagation steps; ``None`` uses :func:`default_num_steps`.
    max_block : int
        Largest number of floats in the dense ``(nodes, sources)`` workspace.

    Returns
    -------
    DGLGraph
        On the same nodes and device as ``g``, with its batch structure
        (``batch_num_nodes`` preserved, every edge inside one member graph, edges
        grouped by member graph and sorted by ``(dst, src)``). Edge ``j -> i`` carries
        float32 ``edata["w"]`` of shape ``(E,)`` equal to ``P[i, j]``, so a GCN layer
        with edge weights computes ``P @ H``. Without ``topk`` every node keeps its self
        loop (``S[i, i] >= alpha > eps``). No node data is copied.
    """
    _check_graph(g)
    check_ppr_args(alpha, eps, topk, num_steps, max_block)
    steps = default_num_steps(alpha, eps) if num_steps is None else num_steps
    device = g.device
    num_nodes = g.batch_num_nodes()
    graph_ids = _node_graph_ids(g)
    local_ids = torch.arange(g.num_nodes(), device=device) - (torch.cumsum(num_nodes, 0) - num_nodes)[graph_ids]
    src, dst, degree = _simple_self_loop_adjacency(g)
    weight = torch.rsqrt(degree[src].float() * degree[dst].float())

    # The empty leading pieces make torch.cat work for graphs without nodes.
    sources = [torch.empty(0, dtype=torch.long, device=device)]
    targets = [torch.empty(0, dtype=torch.long, device=device)]
    values = [torch.empty(0, device=device)]
    first, largest = 0, int(num_nodes.max()) if len(num_nodes) else 0
    while first < largest:
        # Graphs with no source node in this block are left out of it.
        nodes = torch.nonzero(num_nodes[graph_ids] > first).squeeze(1)
        width = min(largest - first, max(1, max_block // len(nodes)))
        position = torch.full((g.num_nodes(),), -1, dtype=torch.long, device=device)
        position[nodes] = torch.arange(len(nodes), device=device)
        edges = position[src] >= 0
        crow = torch.zeros(len(nodes) + 1, dtype=torch.long, device=device)
        crow[1:] = torch.cumsum(degree[nodes], 0)
        # Edges are sorted by src and positions keep node order, so they are CSR rows;
        # T is symmetric, so rows by src equal rows by dst.
        with warnings.catch_warnings():
            # Only the CSR-times-dense product is used, which is stable despite the "beta" warning.
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
            transition = torch.sparse_csr_tensor(
                crow, position[dst[edges]], weight[edges], (len(nodes), len(nodes)), check_invariants=False
            )
        column = local_ids[nodes] - first
        in_block = (column >= 0) & (column < width)
        restart = torch.zeros(len(nodes), width, device=device)
        restart[in_block.nonzero().squeeze(1), column[in_block]] = alpha
        block = restart.clone()
        for _ in range(steps):
            block = torch.sparse.mm(transition, block).mul_(1.0 - alpha).add_(restart)
        row, col = torch.nonzero(block >= eps, as_tuple=True)
        node = nodes[row]
        # By symmetry block[row, col] = S[node, source] = S[source, node]: edge node -> source.
        sources.append(node)
        targets.append(node - local_ids[node] + first + col)
        values.append(block[row, col])
        first += width

    n = g.num_nodes()
    keys, order = torch.sort(torch.cat(targets) * n + torch.cat(sources))
    weight_out = torch.cat(values)[order]
    if topk is not None:
        kept = _top_per_destination(keys // n, weight_out, n, topk)
        keys, weight_out = keys[kept], weight_out[kept]
    return _batched_like(g, keys % n, keys // n, weight_out)


def _top_per_destination(dst: Tensor, weight: Tensor, num_nodes: int, topk: int) -> Tensor:
    """Sorted indices of the ``topk`` largest ``weight`` of every ``dst``, ties to the first, int64."""
    by_weight = torch.argsort(weight, descending=True, stable=True)
    order = by_weight[torch.argsort(dst[by_weight], stable=True)]
    counts = torch.bincount(dst, minlength=num_nodes)
    rank = torch.arange(len(order), device=dst.device) - (torch.cumsum(counts, 0) - counts)[dst[order]]
    return torch.sort(order[rank < topk]).values
