"""Exact kNN graph, the ablation of the paper's Table 7 (kNN graph vs proximity graph)."""
from __future__ import annotations

import dgl
import torch

from ._checks import check_embeddings, check_int, normalize_rows
from .proximity import DEFAULT_MEMORY_BUDGET, graph_from_neighbors, proximity_graph

BACKENDS = ("torch", "faiss")


def knn_graph(
    embeddings: torch.Tensor,
    num_neighbors: int,
    *,
    backend: str = "torch",
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    normalize: bool = False,
) -> dgl.DGLGraph:
    """Build the exact kNN graph by inner product.

    Parameters
    ----------
    embeddings : Tensor of shape (N, d), floating point
        Normalise the rows first for cosine similarity.
    num_neighbors : int
        ``K``, ``1 <= K <= N - 1``.
    backend : {"torch", "faiss"}
        ``"torch"`` runs blocked matmul + top-K on ``embeddings.device`` (the
        proximity graph with ``M = N - 1``); ``"faiss"`` uses ``faiss.IndexFlatIP``
        on the CPU (needs the ``faiss`` extra).
    memory_budget : int
        Scratch bytes per block for the ``"torch"`` backend.
    normalize : bool
        Use cosine similarity (rows scaled to unit norm without overflow).

    Returns
    -------
    DGLGraph
        Same layout as :func:`~dglbs.proximity.proximity_graph`: ``K`` out-neighbours
        per node in decreasing similarity, no self-loops, ``edata["sim"]``.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    embeddings = check_embeddings(embeddings)
    num_nodes = embeddings.shape[0]
    if num_nodes < 2:
        raise ValueError(f"a kNN graph needs at least 2 instances, got N={num_nodes}")
    num_neighbors = check_int("num_neighbors (K)", num_neighbors, low=1, high=num_nodes - 1)
    if backend == "torch":
        # Every row's candidate set is all other nodes, so the draw is not random.
        return proximity_graph(
            embeddings, num_nodes - 1, num_neighbors,
            generator=torch.Generator().manual_seed(0), memory_budget=memory_budget, normalize=normalize,
        )
    return _faiss_knn_graph(normalize_rows(embeddings) if normalize else embeddings, num_neighbors)


def _faiss_knn_graph(embeddings: torch.Tensor, num_neighbors: int) -> dgl.DGLGraph:
    try:
        import faiss
    except ImportError as error:
        raise ImportError(
            "knn_graph(backend='faiss') needs faiss: pip install 'dglbs[faiss]'"
        ) from error
    vectors = embeddings.detach().float().cpu().contiguous().numpy()
    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(vectors)
    scores, ids = index.search(vectors, num_neighbors + 1)
    scores, ids = torch.from_numpy(scores), torch.from_numpy(ids)
    # Drop each row's own id; with duplicate vectors it need not come first, and if
    # it is missing altogether drop the least similar hit instead.
    own = ids == torch.arange(ids.shape[0]).unsqueeze(1)
    own[:, -1] |= ~own.any(dim=1)
    keep = ~own
    neighbors = ids[keep].view(-1, num_neighbors)
    similarities = scores[keep].view(-1, num_neighbors)
    return graph_from_neighbors(neighbors, similarities)
