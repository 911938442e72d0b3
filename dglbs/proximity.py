"""Proximity graph construction (BatchSampler, Sec. 4.1 and Algorithm 2).

Every node gets ``K`` out-neighbours: the ``K`` largest inner products among ``M``
candidates drawn uniformly from the other nodes. ``M = N - 1`` gives the exact kNN
graph; ``M`` close to ``K`` gives a random graph.

To run at GEMM speed, the nodes are split into blocks of random rows that share one
candidate draw of ``M + 1`` nodes; each row then drops one of them (itself when it
was drawn, else a uniformly chosen one), so every node's candidate set is still a
uniform ``M``-subset of the other nodes. Rows of one block are correlated (they see
the same candidates): a node in no block's draw gets no in-edge, so blocks hold about
``(M + 1) / 8`` rows and every node is in about 8 draws (with blocks of ``M`` rows,
37 % of the nodes had no in-edge at N = 200,000, M = 1000). ``block_size=1`` makes every
draw independent, at matrix-vector speed.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import dgl
import torch

from ._checks import check_embeddings, check_int, normalize_rows

DEFAULT_MEMORY_BUDGET = 256 * 2**20
"""Bytes of scratch memory a graph build may use beyond its inputs and outputs."""


@dataclass(frozen=True)
class CandidateBlock:
    """One block of rows sharing a candidate draw.

    Attributes
    ----------
    rows : LongTensor of shape (R,)
        The nodes whose candidates this block draws.
    candidates : LongTensor of shape (M + 1,)
        The shared draw, a uniform subset of all N nodes.
    dropped : LongTensor of shape (R,)
        Per row, the column of ``candidates`` that row does not use: its own
        position when the row was drawn, else a uniformly chosen column. Row ``r``'s
        candidate set is ``candidates`` without column ``dropped[r]``.
    """

    rows: torch.Tensor
    candidates: torch.Tensor
    dropped: torch.Tensor


def uniform_subset(n: int, size: int, generator: torch.Generator) -> torch.Tensor:
    """Draw ``size`` distinct integers uniformly from ``[0, n)``.

    Returns
    -------
    LongTensor of shape (size,), in random order when drawn by permutation and
    ascending when drawn by rejection (callers must not rely on the order).
    """
    if 4 * size >= n:
        return torch.randperm(n, generator=generator)[:size]
    # Few draws from many: iid draws de-duplicated are, given their count, a uniform
    # subset; a uniform sub-subset of it is then uniform too.
    while True:
        draws = torch.randint(n, (size + size // 4 + 16,), generator=generator)
        distinct = torch.unique(draws)
        if distinct.numel() >= size:
            keep = torch.randperm(distinct.numel(), generator=generator)[:size]
            return distinct[keep]


def candidate_blocks(
    num_nodes: int, num_candidates: int, block_size: int, generator: torch.Generator
) -> Iterator[CandidateBlock]:
    """Yield the candidate draws of a proximity-graph build, block by block.

    Exposed so that the draws a build used can be reproduced from the same
    generator state (tests compare the graph with brute force on these sets).
    """
    order = torch.randperm(num_nodes, generator=generator)
    for start in range(0, num_nodes, block_size):
        rows = order[start : start + block_size]
        candidates = uniform_subset(num_nodes, num_candidates + 1, generator)
        sorted_candidates, position = torch.sort(candidates)
        where = torch.searchsorted(sorted_candidates, rows).clamp_max(num_candidates)
        drawn = sorted_candidates[where] == rows
        spare = torch.randint(num_candidates + 1, (1,), generator=generator)
        dropped = torch.where(drawn, position[where], spare)
        yield CandidateBlock(rows, candidates, dropped)


MIN_BLOCK_ROWS = 16
"""Fewest rows a memory budget must fit in one block; below it a build crawls."""

MAX_BLOCK_SIZE = 1024
"""Default cap on rows per block: enough for GEMM speed (larger blocks measured no
faster on a 2-core CPU) while keeping the rows that share a draw few."""


CANDIDATE_DRAWS_PER_NODE = 8
"""How many blocks' candidate draws a node is in, on average (``(M + 1) / rows``)."""


def default_block_size(num_candidates: int, memory_budget: int) -> int:
    """Rows per block: at most ``(M + 1) / CANDIDATE_DRAWS_PER_NODE``, so that every
    node is a candidate of several blocks (all rows of a block choose their neighbours
    among the same ``M + 1`` nodes: with blocks of ``M`` rows, about 37 % of the nodes
    would be in no draw and have no in-edge), at most ``MAX_BLOCK_SIZE``, and few enough
    that one block's scores and top-K scratch (about three float32 rows of ``M + 1``)
    fit the budget."""
    rows = min(MAX_BLOCK_SIZE, (num_candidates + 1) // CANDIDATE_DRAWS_PER_NODE,
               memory_budget // (12 * (num_candidates + 1)))
    return max(1, rows)


def proximity_graph(
    embeddings: torch.Tensor,
    num_candidates: int,
    num_neighbors: int,
    *,
    generator: torch.Generator | None = None,
    block_size: int | None = None,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    normalize: bool = False,
) -> dgl.DGLGraph:
    """Build the proximity graph of ``N`` instances from their embeddings.

    Parameters
    ----------
    embeddings : Tensor of shape (N, d), floating point
        One row per instance; similarity is the inner product (normalise the rows
        first for cosine similarity). Computation runs on ``embeddings.device``, in
        float32 for half-precision input (so inner products cannot overflow there)
        and in float64 for float64 input. Gradients are not tracked.
    num_candidates : int
        ``M``, candidates drawn uniformly per node, ``K <= M``. Values above
        ``N - 1`` are clipped to ``N - 1``, which gives the exact kNN graph.
    num_neighbors : int
        ``K``, out-neighbours kept per node, ``1 <= K <= N - 1``.
    generator : torch.Generator, optional
        CPU generator for the candidate draws and tie-breaks; a fresh unseeded one
        if omitted.
    block_size : int, optional
        Rows sharing one candidate draw. Defaults to ``default_block_size``:
        ``(M + 1) / 8`` rows (at most 1024, fewer when a block would not fit
        ``memory_budget``), so every node is in about 8 blocks' draws.
    memory_budget : int
        Bytes of scratch memory (scores and top-K) a block may use, at least
        ``MIN_BLOCK_ROWS`` rows' worth (``12 * (M + 1)`` bytes a row). An
        ``N x M x d`` tensor is never formed.
    normalize : bool
        Use cosine similarity: rows are scaled to unit norm without overflow, at once
        when a normalised copy fits ``memory_budget``, else block by block (so no
        copy beyond the budget is ever held).

    Returns
    -------
    DGLGraph
        On the CPU, ``N`` nodes and ``N * K`` edges ``i -> j``: each node has exactly
        ``K`` distinct out-neighbours, never itself, in decreasing similarity (edge
        ids ``i*K .. i*K + K - 1``); equal similarities at the K-th place are broken
        at random per node, so identical embeddings give a random regular graph, not
        a hub. ``edata["sim"]`` (float32, shape ``(N*K,)``) holds the inner products.
        The id type is int32 when ``N * K < 2**31``.
    """
    embeddings = check_embeddings(embeddings).detach()
    num_nodes = embeddings.shape[0]
    if num_nodes < 2:
        raise ValueError(f"a proximity graph needs at least 2 instances, got N={num_nodes}")
    num_neighbors = check_int("num_neighbors (K)", num_neighbors, low=1, high=num_nodes - 1)
    num_candidates = check_int("num_candidates (M)", num_candidates, low=1)
    if num_neighbors > num_candidates:
        raise ValueError(
            f"num_neighbors (K={num_neighbors}) must not exceed num_candidates "
            f"(M={num_candidates}): K neighbours are chosen among M candidates"
        )
    num_candidates = min(num_candidates, num_nodes - 1)
    memory_budget = check_memory_budget(memory_budget, 12 * (num_candidates + 1), "a proximity-graph row")
    if block_size is None:
        block_size = default_block_size(num_candidates, memory_budget)
    block_size = check_int("block_size", block_size, low=1)
    if generator is None:
        generator = torch.Generator()
        generator.seed()

    if normalize and embeddings.numel() * 4 <= memory_budget:
        # Small enough to normalise once within the budget, instead of per block.
        embeddings, normalize = normalize_rows(embeddings), False
    idtype = graph_idtype(num_nodes, num_neighbors)
    neighbors = torch.empty(num_nodes, num_neighbors, dtype=idtype)
    similarities = torch.empty(num_nodes, num_neighbors, dtype=torch.float32)
    device = embeddings.device

    for block in candidate_blocks(num_nodes, num_candidates, block_size, generator):
        rows = block.rows.to(device)
        candidates = block.candidates.to(device)
        scores = similarity_rows(embeddings[rows], normalize) @ similarity_rows(embeddings[candidates], normalize).T
        scores[torch.arange(rows.numel(), device=device), block.dropped.to(device)] = -torch.inf
        top_scores, top_columns = top_k_random_ties(scores, num_neighbors, generator)
        neighbors[block.rows] = candidates[top_columns].cpu().to(idtype)
        similarities[block.rows] = top_scores.float().cpu()
    return graph_from_neighbors(neighbors, similarities)


def similarity_rows(embeddings: torch.Tensor, normalize: bool) -> torch.Tensor:
    """Rows as similarities are computed from: unit-norm (``normalize``, see
    :func:`~dglbs._checks.normalize_rows`), and float32 for half precision (float16
    inner products overflow at 65504); detached."""
    if normalize:
        return normalize_rows(embeddings)
    embeddings = embeddings.detach()
    if embeddings.dtype in (torch.float16, torch.bfloat16):
        embeddings = embeddings.float()
    return embeddings


def check_memory_budget(memory_budget: object, row_bytes: int, what: str, min_rows: int = MIN_BLOCK_ROWS) -> int:
    """Return ``memory_budget`` (bytes) if it fits ``min_rows`` rows of ``row_bytes``."""
    memory_budget = check_int("memory_budget", memory_budget, low=1)
    smallest = min_rows * row_bytes
    if memory_budget < smallest:
        raise ValueError(
            f"memory_budget={memory_budget} bytes is below {min_rows} row(s) of {what} "
            f"({row_bytes} bytes each), which would make the search crawl a row at a "
            f"time; pass memory_budget >= {smallest} (default {DEFAULT_MEMORY_BUDGET})"
        )
    return memory_budget


def top_k_random_ties(
    scores: torch.Tensor, k: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row, the ``k`` largest scores and their columns, in decreasing order; scores
    tied with the k-th are chosen uniformly at random (``torch.topk`` picks ties by
    position, which makes every row of a tied block choose the same columns).

    Parameters
    ----------
    scores : Tensor of shape (R, C), any device; must not contain NaN
    k : int, ``1 <= k <= C``
    generator : torch.Generator
        CPU generator for the tie-breaks.

    Returns
    -------
    (values, columns) : Tensor of shape (R, k), LongTensor of shape (R, k)
    """
    values, columns = torch.topk(scores, k, dim=1)
    if not bool(torch.isfinite(values).all()):
        raise ValueError(
            "similarities overflowed (inf or NaN inner products): the embeddings are too "
            "large for their dtype; normalise them (normalize=True) or scale them down"
        )
    kth = values[:, -1:]
    tied = torch.nonzero((scores == kth).sum(1) > (values == kth).sum(1)).flatten()
    if tied.numel():
        # Above the k-th: certain; tied with it: a random key; below: never.
        block, block_kth = scores[tied], kth[tied]
        key = torch.rand(block.shape, generator=generator).to(scores.device)
        key = torch.where(block > block_kth, 2.0, torch.where(block == block_kth, key, -1.0))
        chosen = torch.topk(key, k, dim=1).indices
        chosen_values = block.gather(1, chosen)
        order = torch.sort(chosen_values, dim=1, descending=True, stable=True).indices
        values[tied], columns[tied] = chosen_values.gather(1, order), chosen.gather(1, order)
    return values, columns


def graph_idtype(num_nodes: int, num_neighbors: int) -> torch.dtype:
    """int32 when ``N * K`` edge ids fit in it, else int64."""
    return torch.int32 if num_nodes * num_neighbors < 2**31 else torch.int64


def graph_from_neighbors(neighbors: torch.Tensor, similarities: torch.Tensor) -> dgl.DGLGraph:
    """A DGL graph with edges ``i -> neighbors[i, k]`` and their similarities.

    Parameters
    ----------
    neighbors : IntTensor or LongTensor of shape (N, K)
        Out-neighbours of each node, ids in ``[0, N)``. Used without a copy when
        it already has the graph's id type (:func:`graph_idtype`).
    similarities : Tensor of shape (N, K)
        Stored as ``edata["sim"]`` (float32), edge ``i*K + k`` for ``neighbors[i, k]``.
    """
    num_nodes, num_neighbors = neighbors.shape
    idtype = graph_idtype(num_nodes, num_neighbors)
    indptr = torch.arange(0, num_nodes * num_neighbors + 1, num_neighbors, dtype=idtype)
    indices = neighbors.reshape(-1).to(idtype)
    graph = dgl.graph(
        ("csr", (indptr, indices, torch.empty(0, dtype=idtype))),
        num_nodes=num_nodes,
        idtype=idtype,
    )
    graph.edata["sim"] = similarities.reshape(-1).float()
    return graph
