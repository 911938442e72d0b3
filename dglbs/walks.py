"""Batches as walks on a graph (BatchSampler, Sec. 4.2 and Algorithm 3; Table 6).

A batch is the first ``B`` distinct nodes a walk from a seed node visits:

- ``"rwr"``: random walk with restart. Each move, with probability ``alpha``, the
  walker jumps back to the seed. Built on ``dgl.sampling.random_walk``, whose restart
  *ends* a trace: many traces from the same seed, concatenated in order, are one RWR.
  The first move of every trace is always taken, so ``alpha = 1`` collects the
  seed's immediate neighbours (the kNN-sampler limit) instead of standing still.
  A trace is capped at ``trace_length`` moves (enough that a restart-free trace
  that long has probability < 1 %); a trace reaching the cap restarts at the seed.
- ``"rw"``: random walk without restart (``dgl.sampling.random_walk``).
- ``"bfs"``: breadth-first search, neighbours in stored order (decreasing similarity
  for proximity and kNN graphs).
- ``"dfs"``: randomised depth-first search: move to a random unvisited neighbour,
  backtrack when there is none.

Top-up: when a walk stops finding new nodes (its seed's reachable set is smaller
than ``B``, or it hit a node without out-edges), it continues from a *fresh seed*,
a node drawn uniformly among those not yet in the batch. Random walks count as
stopped when a round of traces found nothing new and the batch is closed (no
out-neighbour of its nodes lies outside it), or after ``STALL_ROUNDS`` barren
rounds in a row (restart-heavy walks may not reach every reachable node soon);
BFS and DFS when their queue or stack runs empty. Every batch therefore has ``B`` distinct
nodes, and sampling ends after a bounded number of rounds (at most
``(STALL_ROUNDS + 1) * B`` for random walks).
"""
from __future__ import annotations

import math

import dgl
import torch

from ._checks import check_int, check_probability

STRATEGIES = ("rwr", "rw", "bfs", "dfs")

_TRACE_TAIL = 0.01
"""A restart-free trace is cut where its probability falls below this."""

_TRACE_SURPLUS = 1.5
"""Traces drawn per round, relative to the expected number for ``B`` nodes."""

STALL_ROUNDS = 8
"""Rounds without a new node after which a random walk tops up from a fresh seed.
A round draws enough traces for the whole batch, so eight barren rounds in a row
leave a reachable node unvisited with negligible probability."""

_DFS_BITMAP_CELLS = 2**26
"""Visited-bitmap cells (rows x N bools) the DFS may allocate at once."""


def _random_walk_traces(
    graph: dgl.DGLGraph, nodes: torch.Tensor, length: int, restart: torch.Tensor, seed: int
) -> torch.Tensor:
    """``dgl.sampling.random_walk`` traces, a function of ``seed`` alone.

    DGL gives every OpenMP thread its own generator, seeded with ``seed`` plus an id
    the thread gets the first time it draws, in whatever order threads race there.
    With more than one thread, the same seed then gives different traces from one
    process to the next (observed under load), which would break exact resume and
    let ranks of one job draw different global batches; one thread draws the same
    traces every time. The calling thread's id still counts: a program that drew
    from DGL's generators on several threads before (``dgl.seed`` at the default
    thread count does) gets other traces than one that did not, the same on every
    run of that program.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        dgl.seed(seed)
        walk, _ = dgl.sampling.random_walk(graph, nodes, length=length, restart_prob=restart)
    finally:
        torch.set_num_threads(threads)
    return walk


class GraphWalker:
    """Draw batches of distinct nodes by walks on one graph.

    Parameters
    ----------
    graph : DGLGraph
        Homogeneous graph on the CPU; walks follow out-edges. Nodes without
        out-edges are allowed (walks top up from fresh seeds).

    Notes
    -----
    DGL's random walk draws from DGL's generators; :meth:`batches` seeds them
    (``dgl.seed``) from the ``generator`` it is given and runs the walk on one
    thread, so results depend only on that generator: not on the thread count, nor
    on the process (see ``_random_walk_traces``).
    """

    def __init__(self, graph: dgl.DGLGraph) -> None:
        if not isinstance(graph, dgl.DGLGraph):
            raise TypeError(f"graph must be a dgl.DGLGraph, got {type(graph).__name__}")
        if not graph.is_homogeneous:
            raise ValueError(f"graph must be homogeneous, got node types {graph.ntypes}")
        if graph.device.type != "cpu":
            raise ValueError(
                f"graph must be on the CPU (DGL from PyPI walks on the CPU), got "
                f"{graph.device}; pass graph.cpu()"
            )
        self.graph = graph
        self.num_nodes = graph.num_nodes()
        self._neighbor_table: torch.Tensor | None = None

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(num_nodes={self.num_nodes}, "
            f"num_edges={self.graph.num_edges()})"
        )

    @property
    def neighbor_table(self) -> torch.Tensor:
        """Out-neighbours as a LongTensor of shape (N, max out-degree), -1 padded."""
        if self._neighbor_table is None:
            indptr, indices, _ = self.graph.adj_tensors("csr")
            degree = (indptr[1:] - indptr[:-1]).long()
            width = int(degree.max()) if self.num_nodes else 0
            table = torch.full((self.num_nodes, width), -1, dtype=torch.int64)
            row = torch.repeat_interleave(torch.arange(self.num_nodes), degree)
            column = torch.arange(indices.numel()) - indptr[:-1].long()[row]
            table[row, column] = indices.long()
            self._neighbor_table = table
        return self._neighbor_table

    def batches(
        self,
        seeds: torch.Tensor,
        batch_size: int,
        *,
        strategy: str = "rwr",
        restart_prob: float = 0.2,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """One batch per seed.

        Parameters
        ----------
        seeds : LongTensor of shape (S,)
            Start node of each batch, ids in ``[0, N)``.
        batch_size : int
            ``B``, distinct nodes per batch, ``1 <= B <= N``.
        strategy : {"rwr", "rw", "bfs", "dfs"}
        restart_prob : float
            ``alpha`` in ``[0, 1]``, used by ``"rwr"`` only.
        generator : torch.Generator, optional
            CPU generator all randomness is drawn from.

        Returns
        -------
        LongTensor of shape (S, B)
            Row ``s`` starts with ``seeds[s]``, followed by the nodes in the order the
            walk first visited them; entries of a row are distinct.
        """
        if strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
        batch_size = check_int("batch_size", batch_size, low=1, high=self.num_nodes)
        restart_prob = check_probability("restart_prob", restart_prob)
        seeds = torch.as_tensor(seeds)
        if seeds.dim() != 1 or seeds.is_floating_point():
            raise ValueError(f"seeds must be a 1-D integer tensor, got {seeds}")
        seeds = seeds.long()
        if seeds.numel() and (int(seeds.min()) < 0 or int(seeds.max()) >= self.num_nodes):
            raise ValueError(
                f"seeds must be node ids in [0, {self.num_nodes}), got min "
                f"{int(seeds.min())} and max {int(seeds.max())}"
            )
        if generator is None:
            generator = torch.Generator()
            generator.seed()
        batch = torch.full((seeds.numel(), batch_size), -1, dtype=torch.int64)
        batch[:, 0] = seeds
        if strategy == "dfs":
            return self._dfs(batch, generator)
        if strategy == "bfs":
            return self._bfs(batch, generator)
        return self._walk(batch, strategy == "rw", restart_prob, generator)

    def _walk(
        self, batch: torch.Tensor, continue_walk: bool, alpha: float, generator: torch.Generator
    ) -> torch.Tensor:
        """``rw`` (``continue_walk``: each round resumes where the last trace ended)
        and ``rwr`` (each round restarts from the row's seed)."""
        batch_size = batch.shape[1]
        if continue_walk:
            alpha = 0.0
        length, traces = _trace_plan(batch_size, alpha, 1 if continue_walk else None)
        restart = torch.full((length,), alpha)
        restart[0] = 0.0
        starts = batch[:, 0].clone()
        count = torch.ones(batch.shape[0], dtype=torch.int64)
        stalls = torch.zeros_like(count)
        while bool((open_rows := torch.nonzero(count < batch_size).flatten()).numel()):
            nodes = starts[open_rows].repeat_interleave(traces)
            seed = int(torch.randint(2**31 - 1, (1,), generator=generator))
            walk = _random_walk_traces(self.graph, nodes.to(self.graph.idtype), length, restart, seed)
            # Column 0 of every trace is its start, already in the batch.
            walk = walk[:, 1:].long().reshape(open_rows.numel(), traces * length)
            merged, merged_count = first_distinct(torch.cat([batch[open_rows], walk], 1), batch_size)
            gained = merged_count - count[open_rows]
            stalls[open_rows] = torch.where(gained == 0, stalls[open_rows] + 1, 0)
            batch[open_rows], count[open_rows] = merged, merged_count
            if continue_walk:
                moved = (walk >= 0).sum(1, keepdim=True)
                last = walk.gather(1, (moved - 1).clamp_min(0)).squeeze(1)
                starts[open_rows] = torch.where(moved.squeeze(1) > 0, last, starts[open_rows])
            elif bool((missing := batch_size - merged_count[merged_count < batch_size]).numel()):
                # Revisits near the seed (high alpha) lower the yield of a trace:
                # size the next round by the yield this one had.
                per_trace = max(float(gained.sum()) / (open_rows.numel() * traces), 1.0 / batch_size)
                traces = min(4 * batch_size, math.ceil(_TRACE_SURPLUS * float(missing.float().mean()) / per_trace))
            barren = open_rows[gained == 0]
            stalled = barren[(stalls[barren] >= STALL_ROUNDS) | self._closed(batch[barren])]
            stalls[stalled] = 0
            self._restart_stalled(batch, count, stalled, starts, generator)
        return batch

    def _bfs(self, batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        table = self.neighbor_table
        batch_size = batch.shape[1]
        # Expanding several queued nodes per round keeps BFS order (their neighbours are
        # appended in queue order) and needs fewer rounds when out-degrees are small.
        width = max(1, math.ceil(batch_size / max(1, table.shape[1])))
        count = torch.ones(batch.shape[0], dtype=torch.int64)
        head = torch.zeros_like(count)
        while bool((open_rows := torch.nonzero(count < batch_size).flatten()).numel()):
            position = head[open_rows].unsqueeze(1) + torch.arange(width)
            queued = position < count[open_rows].unsqueeze(1)
            expand = batch[open_rows].gather(1, position.clamp_max(batch_size - 1))
            frontier = table[expand.clamp_min(0)]
            frontier[~queued] = -1
            candidates = frontier.view(open_rows.numel(), -1)
            merged, merged_count = first_distinct(torch.cat([batch[open_rows], candidates], 1), batch_size)
            batch[open_rows], count[open_rows] = merged, merged_count
            head[open_rows] += queued.sum(1)
            exhausted = open_rows[(head[open_rows] == count[open_rows]) & (count[open_rows] < batch_size)]
            self._restart_stalled(batch, count, exhausted, None, generator)
        return batch

    def _dfs(self, batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        rows_at_once = max(1, _DFS_BITMAP_CELLS // max(1, self.num_nodes))
        for start in range(0, batch.shape[0], rows_at_once):
            self._dfs_rows(batch[start : start + rows_at_once], generator)
        return batch

    def _dfs_rows(self, batch: torch.Tensor, generator: torch.Generator) -> None:
        """Fill ``batch`` (S, B), whose column 0 holds the seeds, in place."""
        table = self.neighbor_table
        num_rows, batch_size = batch.shape
        visited = torch.zeros(num_rows, self.num_nodes, dtype=torch.bool)
        stack = torch.full_like(batch, -1)
        stack[:, 0] = batch[:, 0]
        rows = torch.arange(num_rows)
        visited[rows, batch[:, 0]] = True
        depth = torch.ones(num_rows, dtype=torch.int64)
        count = torch.ones(num_rows, dtype=torch.int64)
        while bool((open_rows := torch.nonzero(count < batch_size).flatten()).numel()):
            current = stack[open_rows, depth[open_rows] - 1]
            neighbors = table[current]
            unvisited = (neighbors >= 0) & ~visited[open_rows.unsqueeze(1), neighbors.clamp_min(0)]
            score = torch.rand(neighbors.shape, generator=generator).masked_fill_(~unvisited, -1.0)
            choice = score.argmax(1)
            moves = unvisited.any(1)
            step_rows, step_nodes = open_rows[moves], neighbors[moves, choice[moves]]
            visited[step_rows, step_nodes] = True
            batch[step_rows, count[step_rows]] = step_nodes
            stack[step_rows, depth[step_rows]] = step_nodes
            count[step_rows] += 1
            depth[step_rows] += 1
            depth[open_rows[~moves]] -= 1
            # Backtracked past the seed: the component is exhausted, start afresh.
            exhausted = open_rows[(depth[open_rows] == 0) & (count[open_rows] < batch_size)]
            if exhausted.numel():
                fresh = unused_nodes(batch[exhausted], self.num_nodes, generator)
                batch[exhausted, count[exhausted]] = fresh
                visited[exhausted, fresh] = True
                stack[exhausted, 0] = fresh
                count[exhausted] += 1
                depth[exhausted] = 1

    def _closed(self, rows: torch.Tensor) -> torch.Tensor:
        """Per row of ``rows`` (S, B), -1 padded: whether every out-neighbour of its
        nodes is in the row, i.e. no walk from the row can find a new node."""
        if not rows.numel():
            return torch.zeros(0, dtype=torch.bool)
        members = torch.sort(torch.where(rows >= 0, rows, self.num_nodes), dim=1).values
        neighbors = self.neighbor_table[rows.clamp_min(0)]
        neighbors[rows < 0] = -1
        neighbors = neighbors.view(rows.shape[0], -1)
        found = torch.searchsorted(members, neighbors.clamp_min(0)).clamp_max(rows.shape[1] - 1)
        inside = (members.gather(1, found) == neighbors) | (neighbors < 0)
        return inside.all(dim=1)

    def _restart_stalled(
        self,
        batch: torch.Tensor,
        count: torch.Tensor,
        rows: torch.Tensor,
        starts: torch.Tensor | None,
        generator: torch.Generator,
    ) -> None:
        """Append a fresh seed to each of ``rows`` and walk on from it."""
        rows = rows[count[rows] < batch.shape[1]]
        if not rows.numel():
            return
        fresh = unused_nodes(batch[rows], self.num_nodes, generator)
        batch[rows, count[rows]] = fresh
        count[rows] += 1
        if starts is not None:
            starts[rows] = fresh


def _trace_plan(batch_size: int, alpha: float, traces: int | None) -> tuple[int, int]:
    """Moves per trace and traces per round for collecting ``batch_size`` nodes."""
    if alpha >= 1.0:
        length = 1
    elif alpha <= 0.0:
        length = batch_size
    else:
        # Moves until a restart-free trace is rarer than _TRACE_TAIL: infinite for a
        # subnormal alpha, so compare before rounding.
        tail_moves = math.log(_TRACE_TAIL) / math.log1p(-alpha)
        length = batch_size if tail_moves >= batch_size else max(1, math.ceil(tail_moves))
    if traces is None:
        expected_moves = sum((1.0 - alpha) ** i for i in range(length))
        traces = math.ceil(_TRACE_SURPLUS * batch_size / expected_moves)
    return length, traces


def first_distinct(rows: torch.Tensor, count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``count`` distinct non-negative entries of each row, in order.

    Parameters
    ----------
    rows : LongTensor of shape (S, W)
        Node ids; negative entries are padding.
    count : int

    Returns
    -------
    (firsts, found) : LongTensor of shape (S, count), LongTensor of shape (S,)
        ``firsts[s, :found[s]]`` are row ``s``'s first distinct ids; the rest is -1.
    """
    num_rows, width = rows.shape
    # Index arithmetic on positions (rather than boolean masks, which are slow to
    # apply in torch) keeps this cheap enough to run once per chunk of batches.
    flat = rows.reshape(-1)
    positions = torch.nonzero(flat >= 0).squeeze(1)
    values = flat[positions]
    row_of = positions // width
    key = row_of * (int(values.max()) + 1 if values.numel() else 1) + values
    order = torch.sort(key, stable=True).indices
    sorted_key = key[order]
    leading = torch.ones_like(sorted_key, dtype=torch.bool)
    leading[1:] = sorted_key[1:] != sorted_key[:-1]
    is_first = torch.zeros_like(leading)
    is_first[order[leading]] = True
    first = torch.nonzero(is_first).squeeze(1)
    row_of, values = row_of[first], values[first]
    found = torch.bincount(row_of, minlength=num_rows)
    rank = torch.arange(row_of.numel()) - (torch.cumsum(found, 0) - found)[row_of]
    widest = max(count, int(found.max()) if num_rows else 0)
    firsts = torch.full((num_rows, widest), -1, dtype=torch.int64)
    firsts[row_of, rank] = values
    firsts = firsts[:, :count].contiguous()
    return firsts, found.clamp_max(count)


def unused_nodes(rows: torch.Tensor, num_nodes: int, generator: torch.Generator) -> torch.Tensor:
    """Per row, a node drawn uniformly from ``[0, num_nodes)`` minus the row's entries.

    Parameters
    ----------
    rows : LongTensor of shape (S, W)
        Distinct node ids per row, -1 padded; each row has fewer than ``num_nodes``.

    Returns
    -------
    LongTensor of shape (S,)
    """
    taken = rows >= 0
    used = torch.sort(torch.where(taken, rows, num_nodes), dim=1).values
    # The r-th unused node is r + #{j : used[j] - j <= r} for sorted distinct `used`.
    shifted = used - torch.arange(rows.shape[1])
    shifted[used == num_nodes] = 2 * num_nodes
    free = num_nodes - taken.sum(1)
    rank = (torch.rand(rows.shape[0], generator=generator, dtype=torch.float64) * free).long()
    rank = torch.minimum(rank, free - 1)
    return rank + torch.searchsorted(shifted, rank.unsqueeze(1), right=True).squeeze(1)
