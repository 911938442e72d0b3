"""GraphCL's four graph augmentations, vectorised over a batched ``DGLGraph``.

Every augmentation works on all graphs of a batch at once with tensor ops over the
batch's nodes and edges (no Python loop over graphs) and returns a new batched graph
whose ``batch_num_nodes()`` / ``batch_num_edges()`` are set, so per-graph readout
(``dgl.nn.SumPooling`` …) still sees the batch's B graphs in their original order.

Randomness comes only from the ``generator`` argument: the same generator state gives
the same views. Random numbers are drawn on ``generator.device`` and then moved to the
graph's device, so a CPU generator gives identical views on CPU and GPU graphs.

Counts follow GraphCL (You et al., NeurIPS 2020): a graph with ``n`` nodes and ``m``
(directed, as stored) edges is changed in ``floor(n * ratio)`` nodes or
``floor(m * ratio)`` edges, so with ``0 <= ratio < 1`` every non-empty graph keeps at
least one node. Graphs rebuilt by ``drop_nodes``, ``perturb_edges`` and ``subgraph``
carry no ``ndata``/``edata`` (use the returned feature tensor); ``mask_nodes`` returns
the input graph itself.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import dgl
import torch
from dgl import DGLGraph
from torch import Tensor

Augmentation = Callable[[DGLGraph, Tensor, float, torch.Generator], tuple[DGLGraph, Tensor]]

# GraphCL's unsupervised TU code masks node attributes with N(0.5, 0.5^2) noise.
MASK_NOISE_MEAN = 0.5
MASK_NOISE_STD = 0.5


def drop_nodes(
    bg: DGLGraph, feat: Tensor, ratio: float, generator: torch.Generator
) -> tuple[DGLGraph, Tensor]:
    """Drop ``floor(n_g * ratio)`` uniformly chosen nodes of every graph ``g``.

    Edges touching a dropped node are removed; each graph keeps
    ``n_g - floor(n_g * ratio)`` nodes (at least one when ``n_g >= 1``).

    Parameters
    ----------
    bg : DGLGraph
        Batched graph of B graphs with N nodes in total.
    feat : Tensor
        Node features of shape ``(N, D)``.
    ratio : float
        Fraction of each graph's nodes to drop, in ``[0, 1)``.
    generator : torch.Generator
        Source of randomness.

    Returns
    -------
    (DGLGraph, Tensor)
        The induced batched subgraph (B graphs) and its node features ``(N', D)``,
        rows in the original node order.
    """
    _check_inputs(bg, feat, ratio, generator)
    counts = bg.batch_num_nodes()
    node_graph = _segment_ids(counts)
    n_keep = counts - _num_changed(counts, ratio)
    keep = _random_ranks(node_graph, generator) < n_keep[node_graph]
    return _induced_subgraph(bg, keep, node_graph), feat[keep]


def perturb_edges(
    bg: DGLGraph, feat: Tensor, ratio: float, generator: torch.Generator
) -> tuple[DGLGraph, Tensor]:
    """Replace ``floor(m_g * ratio)`` uniformly chosen edges of every graph by random ones.

    Edges are the stored directed edges (an undirected graph stored with both
    directions may lose one direction), as in GraphCL. Each added edge joins two nodes
    drawn uniformly from the same graph, so self-loops and duplicate edges can appear.
    Per-graph node and edge counts are unchanged.

    Parameters
    ----------
    bg : DGLGraph
        Batched graph of B graphs with N nodes in total.
    feat : Tensor
        Node features of shape ``(N, D)``; returned unchanged.
    ratio : float
        Fraction of each graph's edges to replace, in ``[0, 1)``.
    generator : torch.Generator
        Source of randomness.

    Returns
    -------
    (DGLGraph, Tensor)
        The perturbed batched graph and ``feat``.
    """
    _check_inputs(bg, feat, ratio, generator)
    node_counts = bg.batch_num_nodes()
    edge_counts = bg.batch_num_edges()
    edge_graph = _segment_ids(edge_counts)
    n_replace = _num_changed(edge_counts, ratio)
    keep = _random_ranks(edge_graph, generator) >= n_replace[edge_graph]

    new_graph = _segment_ids(n_replace)
    first_node = torch.cumsum(node_counts, 0) - node_counts
    src_new = first_node[new_graph] + _uniform_below(node_counts[new_graph], generator)
    dst_new = first_node[new_graph] + _uniform_below(node_counts[new_graph], generator)

    src, dst = bg.edges()
    src = torch.cat([src[keep].long(), src_new])
    dst = torch.cat([dst[keep].long(), dst_new])
    # DGL reads a batch's graphs as contiguous edge-id blocks, so regroup edges by graph.
    order = torch.argsort(torch.cat([edge_graph[keep], new_graph]), stable=True)
    out = dgl.graph(
        (src[order], dst[order]), num_nodes=bg.num_nodes(), idtype=bg.idtype, device=bg.device
    )
    out.set_batch_num_nodes(node_counts)
    out.set_batch_num_edges(edge_counts)
    return out, feat


def mask_nodes(
    bg: DGLGraph, feat: Tensor, ratio: float, generator: torch.Generator
) -> tuple[DGLGraph, Tensor]:
    """Overwrite the features of ``floor(n_g * ratio)`` uniformly chosen nodes per graph.

    Masked rows are replaced by Gaussian noise ``N(0.5, 0.5^2)`` (GraphCL's unsupervised
    TU setting) rather than zeros, so a masked node is not trivially recognisable.

    Parameters
    ----------
    bg : DGLGraph
        Batched graph of B graphs with N nodes in total; returned unchanged.
    feat : Tensor
        Floating node features of shape ``(N, D)``.
    ratio : float
        Fraction of each graph's nodes to mask, in ``[0, 1)``.
    generator : torch.Generator
        Source of randomness.

    Returns
    -------
    (DGLGraph, Tensor)
        ``bg`` and a new ``(N, D)`` feature tensor of ``feat``'s dtype and device.
    """
    _check_inputs(bg, feat, ratio, generator)
    if not feat.is_floating_point():
        raise TypeError(f"mask_nodes needs floating-point features, got dtype {feat.dtype}; cast feat with .float()")
    counts = bg.batch_num_nodes()
    node_graph = _segment_ids(counts)
    n_mask = _num_changed(counts, ratio)
    masked = _random_ranks(node_graph, generator) < n_mask[node_graph]
    noise_shape = (int(masked.sum()), *feat.shape[1:])
    noise = torch.randn(noise_shape, generator=generator, device=generator.device)
    out = feat.clone()
    out[masked] = (noise * MASK_NOISE_STD + MASK_NOISE_MEAN).to(device=feat.device, dtype=feat.dtype)
    return bg, out


def subgraph(
    bg: DGLGraph, feat: Tensor, ratio: float, generator: torch.Generator
) -> tuple[DGLGraph, Tensor]:
    """Keep a connected-growth subgraph of ``n_g - floor(n_g * ratio)`` nodes per graph.

    Growth starts at a uniformly random node of each graph and, step by step, adds the
    graph's frontier (unselected neighbours of selected nodes, either edge direction);
    on the step that would overshoot, a uniformly random part of the frontier is taken.
    All graphs grow together with tensor ops, one step per frontier layer. GraphCL adds
    one random frontier node at a time and stops early when the start node's component
    is exhausted; here growth instead restarts at a random unselected node, so every
    graph keeps exactly its target count (also for disconnected and edgeless graphs).

    Parameters
    ----------
    bg : DGLGraph
        Batched graph of B graphs with N nodes in total.
    feat : Tensor
        Node features of shape ``(N, D)``.
    ratio : float
        Fraction of each graph's nodes to leave out, in ``[0, 1)``.
    generator : torch.Generator
        Source of randomness.

    Returns
    -------
    (DGLGraph, Tensor)
        The induced batched subgraph (B graphs) and its node features ``(N', D)``.
    """
    _check_inputs(bg, feat, ratio, generator)
    counts = bg.batch_num_nodes()
    node_graph = _segment_ids(counts)
    n_keep = counts - _num_changed(counts, ratio)
    src, dst = bg.edges()
    tail = torch.cat([src, dst]).long()
    head = torch.cat([dst, src]).long()

    selected = _random_ranks(node_graph, generator) == 0
    n_selected = torch.bincount(node_graph[selected], minlength=len(counts))
    need = n_keep - n_selected
    # Each step adds >= 1 node to every graph that still needs some: at most max(n_keep) steps.
    while bool((need > 0).any()):
        frontier = torch.zeros_like(selected)
        frontier[head[selected[tail] & ~selected[head]]] = True
        stuck = (torch.bincount(node_graph[frontier], minlength=len(counts)) == 0) & (need > 0)
        candidates = (frontier | (stuck[node_graph] & ~selected)).nonzero().squeeze(1)
        quota = torch.where(stuck, torch.ones_like(need), need)
        cand_graph = node_graph[candidates]
        chosen = candidates[_random_ranks(cand_graph, generator) < quota[cand_graph]]
        selected[chosen] = True
        need = need - torch.bincount(node_graph[chosen], minlength=len(counts))
    return _induced_subgraph(bg, selected, node_graph), feat[selected]


AUGMENTATIONS: dict[str, Augmentation] = {
    "drop_nodes": drop_nodes,
    "perturb_edges": perturb_edges,
    "mask_nodes": mask_nodes,
    "subgraph": subgraph,
}


def augment(
    name: str, bg: DGLGraph, feat: Tensor, ratio: float, generator: torch.Generator
) -> tuple[DGLGraph, Tensor]:
    """Apply the augmentation registered as ``name`` (a key of :data:`AUGMENTATIONS`).

    Returns
    -------
    (DGLGraph, Tensor)
        The augmented batched graph and its ``(N', D)`` node features.
    """
    check_augmentation_names([name])
    return AUGMENTATIONS[name](bg, feat, ratio, generator)


def random_augment(
    bg: DGLGraph,
    feat: Tensor,
    names: Sequence[str],
    ratio: float,
    generator: torch.Generator,
) -> tuple[DGLGraph, Tensor]:
    """Apply one augmentation drawn uniformly from ``names`` to the whole batch.

    GraphCL's random modes draw per graph; drawing once per batch keeps every
    augmentation a single vectorised call. Over many batches each graph still sees
    every augmentation with equal probability.

    Returns
    -------
    (DGLGraph, Tensor)
        The augmented batched graph and its ``(N', D)`` node features.
    """
    check_augmentation_names(names)
    choice = int(torch.randint(len(names), (1,), generator=generator, device=generator.device))
    return AUGMENTATIONS[names[choice]](bg, feat, ratio, generator)


def check_augmentation_names(names: Sequence[str]) -> None:
    """Raise ``ValueError`` unless ``names`` is a non-empty sequence of registered names."""
    if isinstance(names, str) or len(names) == 0:
        raise ValueError(
            f"names must be a non-empty sequence of augmentation names, got {names!r}; "
            f"e.g. names=('drop_nodes', 'subgraph')"
        )
    unknown = [name for name in names if name not in AUGMENTATIONS]
    if unknown:
        raise ValueError(f"unknown augmentation(s) {unknown}; choose from {sorted(AUGMENTATIONS)}")


def check_ratio(ratio: float) -> None:
    """Raise unless ``ratio`` is a real number in ``[0, 1)``."""
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)):
        raise TypeError(f"ratio must be a float in [0, 1), got {ratio!r} of type {type(ratio).__name__}")
    if not 0.0 <= ratio < 1.0:
        raise ValueError(f"ratio must be in [0, 1), got {ratio}; e.g. ratio=0.2 changes 20% of each graph")


def _check_inputs(bg: DGLGraph, feat: Tensor, ratio: float, generator: torch.Generator) -> None:
    check_ratio(ratio)
    if not isinstance(generator, torch.Generator):
        raise TypeError(
            f"generator must be a torch.Generator, got {type(generator).__name__}; "
            f"pass torch.Generator().manual_seed(seed)"
        )
    if not isinstance(feat, Tensor) or feat.dim() < 1 or feat.shape[0] != bg.num_nodes():
        shape = tuple(feat.shape) if isinstance(feat, Tensor) else type(feat).__name__
        raise ValueError(f"feat must be a tensor with one row per node ({bg.num_nodes()}), got {shape}")


def _num_changed(counts: Tensor, ratio: float) -> Tensor:
    """``floor(count * ratio)`` in float64, matching GraphCL's ``int(n * ratio)``."""
    return torch.floor(counts.double() * ratio).long()


def _segment_ids(counts: Tensor) -> Tensor:
    """``(sum(counts),)`` int64 index of the segment each element belongs to."""
    return torch.repeat_interleave(torch.arange(len(counts), device=counts.device), counts)


def _uniform(n: int, generator: torch.Generator, device: torch.device) -> Tensor:
    """``(n,)`` float64 uniform ``[0, 1)`` draws made on the generator's device."""
    return torch.rand(n, generator=generator, device=generator.device, dtype=torch.float64).to(device)


def _uniform_below(high: Tensor, generator: torch.Generator) -> Tensor:
    """One uniform int64 in ``[0, high[i])`` per entry of the int tensor ``high`` (all > 0)."""
    return torch.floor(_uniform(len(high), generator, high.device) * high).long()


def _random_ranks(group: Tensor, generator: torch.Generator) -> Tensor:
    """A uniformly random rank ``0 … c_g - 1`` for each element within its group.

    Parameters
    ----------
    group : Tensor
        ``(K,)`` int64 group id of each element.

    Returns
    -------
    Tensor
        ``(K,)`` int64; within each group the ranks form a uniform random permutation,
        so ``rank < k_g`` selects ``min(k_g, c_g)`` elements uniformly without replacement.
    """
    order = torch.argsort(_uniform(len(group), generator, group.device), stable=True)
    order = order[torch.argsort(group[order], stable=True)]
    position = torch.empty_like(order)
    position[order] = torch.arange(len(order), device=order.device)
    return position - torch.searchsorted(group[order], group)


def _induced_subgraph(bg: DGLGraph, keep: Tensor, node_graph: Tensor) -> DGLGraph:
    """Batched subgraph induced by the ``(N,)`` bool node mask ``keep``, batch info set."""
    new_id = torch.cumsum(keep, 0) - 1
    src, dst = bg.edges()
    edge_keep = keep[src] & keep[dst]
    out = dgl.graph(
        (new_id[src[edge_keep]], new_id[dst[edge_keep]]),
        num_nodes=int(keep.sum()),
        idtype=bg.idtype,
        device=bg.device,
    )
    num_graphs = bg.batch_size
    out.set_batch_num_nodes(torch.bincount(node_graph[keep], minlength=num_graphs))
    out.set_batch_num_edges(torch.bincount(node_graph[src[edge_keep].long()], minlength=num_graphs))
    return out
