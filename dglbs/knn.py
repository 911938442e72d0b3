"""kNN graphs by inner product: exact (the ablation of the paper's Table 7) or, for
large ``N``, approximate through a faiss IVF or HNSW index; and their recall.

Exact search costs ``O(N^2 d)``: hours at ``N = 1,280,000`` on a CPU. An inverted-file
index (IVF) compares each query with ``nlist`` centroids and the vectors of its
``nprobe`` nearest lists only; an HNSW graph walks a navigable small-world graph.
Either misses some true neighbours: measure how many with :func:`knn_recall`.
"""
from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import dgl
import torch

from ._checks import check_embeddings, check_int, normalize_rows
from .proximity import (
    DEFAULT_MEMORY_BUDGET,
    check_memory_budget,
    graph_from_neighbors,
    graph_idtype,
    proximity_graph,
    similarity_rows,
    top_k_random_ties,
)

BACKENDS = ("torch", "faiss")
INDEXES = ("auto", "exact", "ivf", "hnsw")

EXACT_BELOW = 50_000
"""``index="auto"`` searches exactly below this many instances and with IVF from it
(exact search of all pairs grows as ``N^2``: 2.5e9 inner products at this size)."""

DEFAULT_NPROBE = 16
"""IVF lists searched per query; recall@100 measured in ``benchmarks/bench_knn_faiss.py``."""

DEFAULT_EF_SEARCH = 128
"""HNSW candidate-list size per query (faiss uses at least ``K + 1``)."""

HNSW_LINKS = 32
"""HNSW out-links per node and level (``M`` of faiss's ``IndexHNSWFlat``)."""

HNSW_EF_CONSTRUCTION = 64
"""HNSW candidate-list size while linking a new node."""

LISTS_PER_ROOT_N = 4
"""IVF lists: ``4 * sqrt(N)``, the usual rule, capped so each has ``MIN_POINTS_PER_LIST``."""

MIN_POINTS_PER_LIST = 39
"""Fewest training points per IVF list faiss's k-means accepts without a warning."""

RESULT_BYTES = 48
"""Scratch bytes per faiss result of a query block: int64 id and float32 score, and
the sort and gathers of :func:`drop_self`."""

TRAIN_POINTS_PER_LIST = 64
"""IVF k-means trains on this many rows per list (a seeded sample; fewer when N is smaller)."""


def knn_graph(
    embeddings: torch.Tensor,
    num_neighbors: int,
    *,
    backend: str = "torch",
    index: str = "exact",
    nprobe: int = DEFAULT_NPROBE,
    ef_search: int = DEFAULT_EF_SEARCH,
    seed: int = 0,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    normalize: bool = False,
) -> dgl.DGLGraph:
    """Build the kNN graph by inner product, exactly or with an approximate index.

    Parameters
    ----------
    embeddings : Tensor of shape (N, d), floating point
        Normalise the rows first (or pass ``normalize=True``) for cosine similarity.
    num_neighbors : int
        ``K``, ``1 <= K <= N - 1``.
    backend : {"torch", "faiss"}
        Which library runs *exact* search: ``"torch"`` runs blocked matmul + top-K on
        ``embeddings.device`` (the proximity graph with ``M = N - 1``), ``"faiss"``
        ``faiss.IndexFlatIP`` on the CPU. The approximate indexes always use faiss.
    index : {"exact", "ivf", "hnsw", "auto"}
        ``"ivf"``: ``faiss.IndexIVFFlat`` with ``min(4 sqrt(N), N / 39)`` lists,
        trained by spherical k-means on a sample of ``64`` rows per list drawn with
        ``seed``; deterministic for a seed. ``"hnsw"``: ``faiss.IndexHNSWFlat``
        (``M = 32`` links, ``efConstruction = 64``), levels drawn with ``seed``; its
        links are built on several OpenMP threads and may differ run to run (call
        ``faiss.omp_set_num_threads(1)`` first for a reproducible graph).
        ``"auto"``: exact below ``EXACT_BELOW`` (50,000) instances, else ``"ivf"``.
    nprobe : int
        IVF lists searched per query, ``>= 1`` (more: higher recall, slower).
    ef_search : int
        HNSW candidates kept per query, ``>= 1`` (at least ``K + 1`` are used).
    seed : int
        Seeds the IVF training sample and k-means, and the HNSW levels; ``>= 0``.
    memory_budget : int
        Scratch bytes per block: the ``"torch"`` backend's scores, or the results of
        one block of faiss queries and the copies that drop self-matches (about
        ``48 * (K + 1)`` bytes a row); at least one row's worth.
    normalize : bool
        Use cosine similarity (rows scaled to unit norm without overflow).

    Returns
    -------
    DGLGraph
        Same layout as :func:`~dglbs.proximity.proximity_graph`: on the CPU, ``K``
        distinct out-neighbours per node in decreasing similarity, no self-loops,
        ``edata["sim"]`` (float32); int32 ids when ``N * K < 2**31``. An approximate
        index may return a neighbour list that misses true neighbours; a row it returns
        fewer than ``K`` hits for (IVF lists holding too few vectors) is searched exactly.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if index not in INDEXES:
        raise ValueError(f"index must be one of {INDEXES}, got {index!r}")
    embeddings = check_embeddings(embeddings)
    num_nodes = embeddings.shape[0]
    if num_nodes < 2:
        raise ValueError(f"a kNN graph needs at least 2 instances, got N={num_nodes}")
    num_neighbors = check_int("num_neighbors (K)", num_neighbors, low=1, high=num_nodes - 1)
    nprobe = check_int("nprobe", nprobe, low=1)
    ef_search = check_int("ef_search", ef_search, low=1)
    seed = check_int("seed", seed, low=0)
    index = resolve_index(index, num_nodes)
    if index == "exact" and backend == "torch":
        # Every row's candidate set is all other nodes, so the draw is not random.
        return proximity_graph(
            embeddings, num_nodes - 1, num_neighbors,
            generator=torch.Generator().manual_seed(seed), memory_budget=memory_budget, normalize=normalize,
        )
    memory_budget = check_memory_budget(memory_budget, RESULT_BYTES * (num_neighbors + 1), "faiss results", min_rows=1)
    vectors = normalize_rows(embeddings) if normalize else similarity_rows(embeddings, False)
    vectors = vectors.float().cpu().contiguous()
    if index == "exact":
        search = import_faiss("knn_graph(backend='faiss')").IndexFlatIP(vectors.shape[1])
        search.add(vectors.numpy())
    else:
        search = build_index(vectors, index, num_neighbors + 1, nprobe=nprobe, ef_search=ef_search, seed=seed)
    return _faiss_knn_graph(search, vectors, num_neighbors, memory_budget, seed)


def resolve_index(index: str, num_instances: int) -> str:
    """The index ``"auto"`` stands for at ``num_instances`` (others unchanged)."""
    if index == "auto":
        return "exact" if num_instances < EXACT_BELOW else "ivf"
    return index


def import_faiss(what: str) -> Any:
    try:
        import faiss
    except ImportError as error:
        raise ImportError(f"{what} needs faiss: pip install 'dglbs[faiss]'") from error
    return faiss


def ivf_lists(num_instances: int) -> int:
    """IVF lists for ``N`` vectors: ``4 sqrt(N)``, at most ``N / 39``, at least 1."""
    return max(1, min(round(LISTS_PER_ROOT_N * math.sqrt(num_instances)), num_instances // MIN_POINTS_PER_LIST))


def build_index(
    vectors: torch.Tensor,
    index: str,
    num_results: int,
    *,
    nprobe: int = DEFAULT_NPROBE,
    ef_search: int = DEFAULT_EF_SEARCH,
    seed: int = 0,
) -> Any:
    """An approximate faiss inner-product index holding ``vectors``.

    Parameters
    ----------
    vectors : FloatTensor of shape (N, d), CPU, contiguous
    index : {"ivf", "hnsw"}
    num_results : int
        Results a query will ask for: HNSW keeps at least this many candidates.
    nprobe, ef_search, seed
        See :func:`knn_graph`.
    """
    faiss = import_faiss(f"index={index!r}")
    num_vectors, dim = vectors.shape
    if index == "ivf":
        lists = ivf_lists(num_vectors)
        search = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, lists, faiss.METRIC_INNER_PRODUCT)
        search.cp.seed = seed % 2**31  # a C int in faiss
        # Our sample already has >= 39 points per list; below that (N < 39) faiss only warns.
        search.cp.min_points_per_centroid = 1
        sample = torch.randperm(num_vectors, generator=torch.Generator().manual_seed(seed))
        sample = torch.sort(sample[: TRAIN_POINTS_PER_LIST * lists]).values
        search.train(vectors[sample].numpy())
        search.nprobe = min(nprobe, lists)
    elif index == "hnsw":
        search = faiss.IndexHNSWFlat(dim, HNSW_LINKS, faiss.METRIC_INNER_PRODUCT)
        search.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        search.hnsw.efSearch = max(ef_search, num_results)
        search.hnsw.rng = faiss.RandomGenerator(seed)
    else:
        raise ValueError(f"index must be 'ivf' or 'hnsw' here, got {index!r}")
    search.add(vectors.numpy())
    return search


def drop_self(
    ids: torch.Tensor, scores: torch.Tensor, rows: torch.Tensor, count: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Keep the ``count`` best hits of each row that are neither the row itself nor
    missing (faiss's ``-1``).

    Parameters
    ----------
    ids : LongTensor of shape (R, C), ``C > count``
        Hits per row in decreasing score, ``-1`` where the index found too few.
    scores : FloatTensor of shape (R, C)
    rows : LongTensor of shape (R,)
        Each row's own id.
    count : int

    Returns
    -------
    (ids, scores, short) : LongTensor (R, count), FloatTensor (R, count), BoolTensor (R,)
        ``short`` marks rows with fewer than ``count`` valid hits; their entries are
        not meaningful (search them another way).
    """
    valid = (ids != rows.unsqueeze(1)) & (ids >= 0)
    # Stable: valid hits first, in the index's order.
    order = torch.sort((~valid).to(torch.uint8), dim=1, stable=True).indices[:, :count]
    return ids.gather(1, order), scores.gather(1, order), valid.sum(1) < count


def _faiss_knn_graph(
    search: Any, vectors: torch.Tensor, num_neighbors: int, memory_budget: int, seed: int
) -> dgl.DGLGraph:
    num_nodes = vectors.shape[0]
    neighbors = torch.empty(num_nodes, num_neighbors, dtype=graph_idtype(num_nodes, num_neighbors))
    similarities = torch.empty(num_nodes, num_neighbors)
    rows_at_once = memory_budget // (RESULT_BYTES * (num_neighbors + 1))
    short_rows = []
    for start in range(0, num_nodes, rows_at_once):
        stop = min(start + rows_at_once, num_nodes)
        scores, ids = search.search(vectors[start:stop].numpy(), num_neighbors + 1)
        rows = torch.arange(start, stop)
        ids, scores, short = drop_self(torch.from_numpy(ids), torch.from_numpy(scores), rows, num_neighbors)
        neighbors[start:stop], similarities[start:stop] = ids.to(neighbors.dtype), scores
        short_rows.append(rows[short])
    short_rows = torch.cat(short_rows)
    if short_rows.numel():
        ids, scores = exact_neighbors(
            vectors, short_rows, num_neighbors, memory_budget, torch.Generator().manual_seed(seed)
        )
        neighbors[short_rows], similarities[short_rows] = ids.to(neighbors.dtype), scores
    return graph_from_neighbors(neighbors, similarities)


def exact_neighbors(
    vectors: torch.Tensor, rows: torch.Tensor, num_neighbors: int, memory_budget: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact top-``K`` of ``rows`` among all other rows of ``vectors``.

    Returns
    -------
    (ids, scores) : LongTensor (R, K), FloatTensor (R, K), on the CPU
        In decreasing score; ties at the cut broken at random with ``generator``.
    """
    ids, scores = [], []
    for _, block_scores in _score_blocks(vectors, rows, memory_budget):
        top_scores, top_ids = top_k_random_ties(block_scores, num_neighbors, generator)
        ids.append(top_ids.cpu())
        scores.append(top_scores.float().cpu())
    return torch.cat(ids), torch.cat(scores)


def _score_blocks(vectors: torch.Tensor, rows: torch.Tensor, memory_budget: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield ``(block, scores)``: ``block`` (LongTensor (R,)) of at most
    ``memory_budget / (8 N)`` rows at a time, and their inner products with all ``N``
    rows of ``vectors`` (Tensor (R, N)), each row's own column set to ``-inf``."""
    num_nodes = vectors.shape[0]
    rows_at_once = max(1, memory_budget // (8 * num_nodes))
    for start in range(0, rows.numel(), rows_at_once):
        block = rows[start : start + rows_at_once].to(vectors.device)
        scores = vectors[block] @ vectors.T
        scores[torch.arange(block.numel(), device=vectors.device), block] = -torch.inf
        yield block, scores


def knn_recall(
    embeddings: torch.Tensor,
    graph: dgl.DGLGraph,
    *,
    sample_size: int = 2000,
    seed: int = 0,
    normalize: bool = False,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
) -> float:
    """Recall@K of a graph's neighbour lists against exact search, on a sample of rows.

    Parameters
    ----------
    embeddings : Tensor of shape (N, d), floating point
        The embeddings the graph was built from.
    graph : DGLGraph
        ``N`` nodes, each with the same out-degree ``K`` (a kNN or proximity graph).
    sample_size : int
        Rows checked, drawn uniformly without replacement with ``seed``; all ``N``
        when ``N`` is smaller.
    seed : int
    normalize : bool
        Cosine similarity, as the graph was built with.
    memory_budget : int
        Bytes of exact scores (``8 N`` a row) computed at once.

    Returns
    -------
    float
        See :func:`neighbor_recall`.
    """
    embeddings = check_embeddings(embeddings)
    num_nodes = embeddings.shape[0]
    if not isinstance(graph, dgl.DGLGraph):
        raise TypeError(f"graph must be a dgl.DGLGraph, got {type(graph).__name__}")
    if graph.num_nodes() != num_nodes:
        raise ValueError(
            f"graph has {graph.num_nodes()} nodes but embeddings has {num_nodes} rows; "
            "pass the embeddings the graph was built from"
        )
    degrees = graph.out_degrees()
    num_neighbors = int(degrees[0])
    if num_neighbors == 0 or bool((degrees != num_neighbors).any()):
        raise ValueError(
            f"graph must give every node the same out-degree K >= 1 (a kNN or proximity "
            f"graph), got out-degrees from {int(degrees.min())} to {int(degrees.max())}"
        )
    sample_size = check_int("sample_size", sample_size, low=1)
    seed = check_int("seed", seed, low=0)
    rows = torch.randperm(num_nodes, generator=torch.Generator().manual_seed(seed))[:sample_size]
    src, dst = graph.out_edges(rows.to(graph.idtype))
    # Group the edges by their row's position in the sample (any edge order within).
    position = torch.full((num_nodes,), -1, dtype=torch.int64)
    position[rows] = torch.arange(rows.numel())
    order = torch.sort(position[src.long()], stable=True).indices
    neighbors = dst.long()[order].view(rows.numel(), num_neighbors)
    return neighbor_recall(embeddings, rows, neighbors, normalize=normalize, memory_budget=memory_budget)


def neighbor_recall(
    embeddings: torch.Tensor,
    rows: torch.Tensor,
    neighbors: torch.Tensor,
    *,
    normalize: bool = False,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
) -> float:
    """Recall@K of given neighbour lists against exact search of all other instances.

    A listed neighbour counts as found when its inner product with the row is at
    least the row's ``K``-th largest among all other instances (so instances tied at
    the cut count whichever the exact search would pick); the row itself and repeats
    never count.

    Parameters
    ----------
    embeddings : Tensor of shape (N, d), floating point
    rows : LongTensor of shape (R,)
        The rows whose lists are checked, ids in ``[0, N)``.
    neighbors : LongTensor of shape (R, K), ``1 <= K <= N - 1``
        ``neighbors[r]``: the ids listed as ``rows[r]``'s ``K`` nearest.
    normalize : bool
        Cosine similarity.
    memory_budget : int
        Bytes of exact scores (``8 N`` a row) computed at once.

    Returns
    -------
    float
        Found neighbours over ``R * K``, in ``[0, 1]``.
    """
    embeddings = check_embeddings(embeddings)
    num_nodes = embeddings.shape[0]
    for name, ids, dim in (("rows", rows, 1), ("neighbors", neighbors, 2)):
        if not isinstance(ids, torch.Tensor) or ids.dtype not in (torch.int32, torch.int64) or ids.dim() != dim:
            got = f"{ids.dtype} of shape {tuple(ids.shape)}" if isinstance(ids, torch.Tensor) else type(ids).__name__
            raise TypeError(f"{name} must be an int32 or int64 tensor with {dim} dimension(s), got {got}")
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= num_nodes):
            raise ValueError(f"{name} must hold ids in [0, {num_nodes}), got ids from {int(ids.min())} to {int(ids.max())}")
    if neighbors.shape[0] != rows.shape[0] or rows.numel() == 0:
        raise ValueError(
            f"neighbors must have one list per row, got {rows.shape[0]} rows and neighbors of shape {tuple(neighbors.shape)}"
        )
    num_neighbors = check_int("K (neighbors.shape[1])", neighbors.shape[1], low=1, high=num_nodes - 1)
    memory_budget = check_memory_budget(memory_budget, 8 * num_nodes, "exact scores", min_rows=1)
    vectors = similarity_rows(embeddings, normalize)
    # Sorted, so a repeated id sits next to its first copy and is counted once.
    neighbors = torch.sort(neighbors.long(), dim=1).values
    first = torch.ones_like(neighbors, dtype=torch.bool)
    first[:, 1:] = neighbors[:, 1:] != neighbors[:, :-1]
    found, start = 0, 0
    for block, scores in _score_blocks(vectors, rows.long(), memory_budget):
        stop = start + block.numel()
        kth = torch.topk(scores, num_neighbors, dim=1).values[:, -1:]
        listed = neighbors[start:stop].to(scores.device)
        hits = (scores.gather(1, listed) >= kth) & first[start:stop].to(scores.device)
        found += int(hits.sum())
        start = stop
    return found / neighbors.numel()
