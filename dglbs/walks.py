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

Walks run in rounds, all batches of a call at once. **Top-up**: when a walk has run
out of new nodes it can reach (a small closed component, a dead end, a hub everybody
points to) — no out-neighbour of the batch lies outside it, or ``STALL_ROUNDS``
rounds in a row, each sized by the yield of the last, collected less than
``1 / STALL_YIELD`` of the nodes still missing, or BFS/DFS exhausted their queue or
stack — the batch continues from *fresh seeds*: nodes drawn uniformly among those it
may still take, as many as the yield per seed of its latest seeds says will fill
it. The walk then goes on from those seeds (restarts return to one of them). After
``MAX_ROUNDS`` rounds any batch still short is filled with uniformly drawn nodes.
So every batch has ``B`` distinct nodes and the work per batch is bounded by a small
multiple of that of a well-connected graph, whatever the graph (no ``B**2`` cliff).

**Exclusive batches** (``taken``, used by covering epochs): nodes marked taken are
never collected (random walks still pass through them, but a batch all of whose
out-neighbours are taken tops up at once; BFS and DFS treat them as removed), the
batches of one call are disjoint (a node two batches reach in the same round goes to
the lower-numbered one), and every collected node is marked taken.

Randomness comes from one ``torch.Generator``; DGL's walks are seeded from it and run
on a dedicated thread (:mod:`dglbs._dgl_random`), so the batches depend on the
generator alone: not on the thread count, the process, or ``dgl.seed`` calls.
"""
from __future__ import annotations

import math
from collections.abc import Iterator

import dgl
import torch

from ._checks import check_int, check_probability
from ._dgl_random import on_walk_thread, random_walk_traces, start

STRATEGIES = ("rwr", "rw", "bfs", "dfs")

_TRACE_TAIL = 0.01
"""A restart-free trace is cut where its probability falls below this."""

_TRACE_SURPLUS = 1.5
"""Moves drawn per round, relative to the expected number for the missing nodes.
Later rounds draw between half and twice the traces of the first."""

STALL_YIELD = 8
"""A random-walk round that collects fewer than ``missing / STALL_YIELD`` nodes
(none, when fewer than 8 are missing) is poor."""

STALL_ROUNDS = 4
"""Poor rounds in a row (each sized by the yield of the last) after which a
batch continues from fresh seeds; at once when no node it may collect is one move
away."""

_EXCLUSIVE_ROUND_GROWTH = 16
"""Most traces a round of exclusive batches draws, relative to the first round
(2 otherwise)."""

_EXCLUSIVE_SURPLUS = 3.0
"""``_TRACE_SURPLUS`` for exclusive batches."""

MAX_ROUNDS = 16
"""Rounds of a random walk or BFS after which batches still short are filled uniformly."""

_CLOSED_CHECKS = 2048
"""Neighbour slots a closure check looks at per batch (a uniform sample beyond)."""

_RANDOM_SCORE_CELLS = 2**24
"""Rows x N random scores fresh-node draws may allocate at once."""

_DFS_BITMAP_CELLS = 2**26
"""Visited-bitmap cells (rows x N bools) the DFS may allocate at once."""

start()


class GraphWalker:
    """Draw batches of distinct nodes by walks on one graph.

    Parameters
    ----------
    graph : DGLGraph
        Homogeneous graph on the CPU; walks follow out-edges. Nodes without
        out-edges are allowed (walks top up from fresh seeds).
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
        indptr, indices, _ = graph.adj_tensors("csr")
        check_csr(indptr, indices, self.num_nodes, "graph")
        self._indptr, self._indices = indptr, indices
        self._neighbor_table: torch.Tensor | None = None

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(num_nodes={self.num_nodes}, "
            f"num_edges={self.graph.num_edges()})"
        )

    @property
    def neighbor_table(self) -> torch.Tensor:
        """Out-neighbours as a tensor of shape (N, max out-degree), -1 padded, in the
        graph's id type. Built on first use (BFS, DFS); for a graph where every node
        has the same out-degree (proximity and kNN graphs) it is a view of the CSR."""
        if self._neighbor_table is None:
            indptr, indices = self._indptr, self._indices
            degree = indptr[1:] - indptr[:-1]
            width = int(degree.max()) if self.num_nodes else 0
            if self.num_nodes and int(degree.min()) == width:
                self._neighbor_table = indices.view(self.num_nodes, width)
            else:
                table = torch.full((self.num_nodes, width), -1, dtype=indices.dtype)
                row = torch.repeat_interleave(torch.arange(self.num_nodes), degree.long())
                column = torch.arange(indices.numel()) - indptr[:-1].long()[row]
                table[row, column] = indices
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
        taken: torch.Tensor | None = None,
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
        taken : BoolTensor of shape (N,), optional
            Nodes no batch may collect. When given, the batches are also disjoint
            (seeds must be distinct and not taken, and at least ``S * B`` nodes must
            be free), and ``taken`` is updated in place with every node collected.

        Returns
        -------
        LongTensor of shape (S, B)
            Row ``s`` starts with ``seeds[s]``, followed by the nodes in the order the
            walk first collected them; entries of a row are distinct.
        """
        if strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
        batch_size = check_int("batch_size", batch_size, low=1, high=self.num_nodes)
        restart_prob = check_probability("restart_prob", restart_prob)
        seeds = torch.as_tensor(seeds)
        if seeds.dim() != 1 or seeds.is_floating_point() or seeds.dtype == torch.bool:
            raise ValueError(f"seeds must be a 1-D integer tensor, got {seeds}")
        seeds = seeds.long()
        if seeds.numel() and (int(seeds.min()) < 0 or int(seeds.max()) >= self.num_nodes):
            raise ValueError(
                f"seeds must be node ids in [0, {self.num_nodes}), got min "
                f"{int(seeds.min())} and max {int(seeds.max())}"
            )
        if taken is not None:
            self._check_taken(taken, seeds, batch_size)
        if generator is None:
            generator = torch.Generator()
            generator.seed()
        batches = _Batches(seeds, batch_size, self.num_nodes, taken, generator)
        if seeds.numel():
            if strategy == "dfs":
                self._dfs(batches)
            elif strategy == "bfs":
                self._bfs(batches)
            else:
                on_walk_thread(self._walk, batches, strategy == "rw", restart_prob)
        return batches.ids

    def _check_taken(self, taken: torch.Tensor, seeds: torch.Tensor, batch_size: int) -> None:
        if not isinstance(taken, torch.Tensor) or taken.dtype != torch.bool or taken.shape != (self.num_nodes,):
            raise ValueError(
                f"taken must be a BoolTensor of shape ({self.num_nodes},), got "
                f"{getattr(taken, 'dtype', type(taken).__name__)} of shape {tuple(getattr(taken, 'shape', ()))}"
            )
        if seeds.unique().numel() != seeds.numel() or bool(taken[seeds].any()):
            raise ValueError("with taken=, seeds must be distinct and not taken")
        free = self.num_nodes - int(taken.sum())
        if free < seeds.numel() * batch_size:
            raise ValueError(
                f"only {free} nodes are not taken, fewer than {seeds.numel()} disjoint "
                f"batches of {batch_size} need"
            )

    def _walk(self, batches: _Batches, continue_walk: bool, alpha: float) -> None:
        """``rw`` (``continue_walk``: each walker resumes where its last trace ended)
        and ``rwr`` (traces restart from the batch's seeds)."""
        size = batches.size
        if continue_walk:
            alpha = 0.0
        length = _trace_length(size, alpha)
        expected_moves = sum((1.0 - alpha) ** i for i in range(length))
        # Late rounds look for the last few nodes, which revisits make hard to find:
        # never draw fewer than half the first round's traces before calling a stall.
        first_traces = math.ceil(_TRACE_SURPLUS * size / expected_moves)
        # Exclusive batches walk one at a time (covering epochs), where a round costs
        # more than its moves: draw more per round, and let rounds grow further as
        # free nodes get rare.
        surplus = _EXCLUSIVE_SURPLUS if batches.taken is not None else _TRACE_SURPLUS
        growth = _EXCLUSIVE_ROUND_GROWTH if batches.taken is not None else 2
        min_traces, max_traces = math.ceil(first_traces / 2), growth * first_traces
        walkers = batches.ids[:, :1].clone()
        if batches.taken is not None:
            # Only free nodes count: expect a trace to find them in proportion.
            expected_moves *= max(1.0 - float(batches.taken.float().mean()), 1.0 / size)
        yield_per_trace = torch.full((batches.ids.shape[0],), expected_moves, dtype=torch.float64)
        poor_rounds = torch.zeros_like(batches.count)
        for rows, missing in batches.rounds():
            group = walkers[rows]
            group_size = (group >= 0).sum(1)
            if continue_walk:
                traces = group_size
            else:
                wanted = torch.ceil(surplus * missing / yield_per_trace[rows]).long()
                traces = torch.maximum(wanted.clamp(min_traces, max_traces), group_size)
            # A lone walker's traces run to the plan's length (for rw: B moves). A group
            # of fresh seeds needs only a few nodes from each: its traces are cut at the
            # length the round needs (rounded up to a power of two), so a graph that
            # forces many seeds (tiny components, K = 1) costs no more moves than one
            # long walk; never fewer than B moves a row in all, since revisits make
            # the last nodes hard to find.
            needed = torch.ceil(torch.maximum(_TRACE_SURPLUS * missing, torch.full_like(missing, size)) / traces)
            needed = torch.exp2(torch.ceil(torch.log2(needed.clamp_min(1)))).long()
            row_length = torch.where(group_size > 1, needed.clamp_max(length), length)
            if continue_walk:
                row_length = needed.clamp_max(size)
            owner = torch.repeat_interleave(torch.arange(rows.numel()), traces)
            slot = torch.arange(owner.numel()) - (torch.cumsum(traces, 0) - traces)[owner]
            starts = group[owner, slot % group_size[owner]]
            trace_length = row_length[owner]
            widest = int(row_length.max())
            moves = torch.full((rows.numel(), int(traces.max()), widest), -1, dtype=torch.int64)
            last = torch.empty_like(starts)
            for part_length in torch.unique(trace_length).tolist():
                part = torch.nonzero(trace_length == part_length).flatten()
                restart = torch.full((part_length,), alpha)
                restart[0] = 0.0
                seed = int(torch.randint(2**31 - 1, (1,), generator=batches.generator))
                walk = random_walk_traces(self.graph, starts[part].to(self.graph.idtype), part_length, restart, seed)
                walk = walk[:, 1:].long()  # column 0 is the start, already in the batch
                moves[owner[part], slot[part], :part_length] = walk
                moved = (walk >= 0).sum(1)
                end = walk.gather(1, (moved - 1).clamp_min(0).unsqueeze(1)).squeeze(1)
                last[part] = torch.where(moved > 0, end, starts[part])
            gained = batches.collect(rows, moves.view(rows.numel(), -1))
            if continue_walk:
                group[owner, slot] = last
                walkers[rows] = group
            yield_per_trace[rows] = (gained / traces).clamp_min(1.0 / size).double()
            poor = (gained * STALL_YIELD < missing) & (batches.count[rows] < size)
            poor_rounds[rows] = torch.where(poor, poor_rounds[rows] + 1, 0)
            candidates = rows[poor]
            # Stuck: no new node is one move away (with one move per trace only the
            # walkers' neighbours are in reach, so exactly then), or rounds sized by
            # the last one's yield kept finding (almost) nothing.
            sources = walkers[candidates] if length == 1 else batches.ids[candidates]
            stuck = self._closed(sources, batches.ids[candidates], batches.taken, batches.generator)
            if length > 1 or continue_walk:
                stuck |= poor_rounds[candidates] >= STALL_ROUNDS
            stalled = candidates[stuck]
            if stalled.numel():
                fresh = batches.add_fresh_seeds(stalled)
                if fresh.shape[1] > walkers.shape[1]:
                    walkers = torch.cat([walkers, walkers.new_full((len(walkers), fresh.shape[1] - walkers.shape[1]), -1)], 1)
                walkers[stalled] = -1
                walkers[stalled, : fresh.shape[1]] = fresh
                yield_per_trace[stalled] = expected_moves
                poor_rounds[stalled] = 0

    def _closed(
        self, sources: torch.Tensor, rows: torch.Tensor, taken: torch.Tensor | None, generator: torch.Generator
    ) -> torch.Tensor:
        """Per row: whether every out-neighbour of the row's ``sources`` (S, W) is in
        the row ``rows`` (S, B) (both -1 padded) or ``taken``, i.e. no move from them
        finds a node the row can collect. Beyond ``_CLOSED_CHECKS`` neighbour slots a
        row, a uniform sample of that many is checked (a row judged closed on a
        sample tops up a little early; one judged open is open)."""
        if not rows.numel():
            return torch.zeros(0, dtype=torch.bool)
        table = self.neighbor_table
        slots = sources.shape[1] * table.shape[1]
        if slots > _CLOSED_CHECKS:
            pick = torch.randint(slots, (rows.shape[0], _CLOSED_CHECKS), generator=generator)
            chosen = sources.gather(1, pick // table.shape[1])
            neighbors = table[chosen.clamp_min(0), pick % table.shape[1]].long()
            neighbors[chosen < 0] = -1
        else:
            neighbors = table[sources.clamp_min(0)].long()
            neighbors[sources < 0] = -1
            neighbors = neighbors.view(rows.shape[0], -1)
        if taken is not None:
            # Exclusive batches: every member is taken, so a lookup in the mask suffices.
            inside = taken[neighbors.clamp_min(0)] | (neighbors < 0)
            return inside.all(dim=1)
        members = torch.sort(torch.where(rows >= 0, rows, self.num_nodes), dim=1).values
        found = torch.searchsorted(members, neighbors.clamp_min(0)).clamp_max(rows.shape[1] - 1)
        inside = (members.gather(1, found) == neighbors) | (neighbors < 0)
        return inside.all(dim=1)

    def _bfs(self, batches: _Batches) -> None:
        table = self.neighbor_table
        size = batches.size
        # Expanding several queued nodes per round keeps BFS order (their neighbours are
        # appended in queue order) and needs fewer rounds when out-degrees are small.
        width = max(1, math.ceil(size / max(1, table.shape[1])))
        head = torch.zeros_like(batches.count)
        poor_rounds = torch.zeros_like(batches.count)
        for rows, missing in batches.rounds():
            position = head[rows].unsqueeze(1) + torch.arange(width)
            queued = position < batches.count[rows].unsqueeze(1)
            expand = batches.ids[rows].gather(1, position.clamp_max(size - 1))
            frontier = table[expand.clamp_min(0)].long()
            frontier[~queued] = -1
            gained = batches.collect(rows, frontier.view(rows.numel(), -1))
            head[rows] += queued.sum(1)
            # A queue that grows by a node or two a round (out-degree 1, paths into
            # small cycles) stalls like an exhausted one.
            poor = gained * STALL_YIELD < missing
            poor_rounds[rows] = torch.where(poor, poor_rounds[rows] + 1, 0)
            open_now = batches.count[rows] < size
            exhausted = rows[((head[rows] == batches.count[rows]) | (poor_rounds[rows] >= STALL_ROUNDS)) & open_now]
            if exhausted.numel():
                batches.add_fresh_seeds(exhausted)
                poor_rounds[exhausted] = 0

    def _dfs(self, batches: _Batches) -> None:
        rows_at_once = max(1, _DFS_BITMAP_CELLS // max(1, self.num_nodes))
        for start_row in range(0, batches.ids.shape[0], rows_at_once):
            self._dfs_rows(batches, torch.arange(start_row, min(start_row + rows_at_once, batches.ids.shape[0])))

    def _dfs_rows(self, batches: _Batches, rows: torch.Tensor) -> None:
        """Fill ``rows`` of ``batches`` (their column 0 holds the seeds)."""
        table = self.neighbor_table
        size = batches.size
        visited = torch.zeros(rows.numel(), self.num_nodes, dtype=torch.bool)
        local = torch.arange(rows.numel())
        visited[local, batches.ids[rows, 0]] = True
        stack = torch.full((rows.numel(), size), -1, dtype=torch.int64)
        stack[:, 0] = batches.ids[rows, 0]
        depth = torch.ones(rows.numel(), dtype=torch.int64)
        while bool((active := torch.nonzero(batches.count[rows] < size).flatten()).numel()):
            current = stack[active, depth[active] - 1]
            neighbors = table[current].long()
            free = (neighbors >= 0) & ~visited[active.unsqueeze(1), neighbors.clamp_min(0)]
            if batches.taken is not None:
                free &= ~batches.taken[neighbors.clamp_min(0)]
            score = torch.rand(neighbors.shape, generator=batches.generator).masked_fill_(~free, -1.0)
            moves = free.any(1)
            choice = score.argmax(1) if neighbors.shape[1] else torch.zeros_like(moves, dtype=torch.int64)
            movers, targets = active[moves], neighbors[moves, choice[moves]]
            visited[movers, targets] = True
            if batches.taken is not None:
                # Two batches stepping onto the same node: the lower-numbered one gets it.
                first = _first_occurrences(targets)
                movers, targets = movers[first], targets[first]
                batches.taken[targets] = True
            batch_rows = rows[movers]
            batches.ids[batch_rows, batches.count[batch_rows]] = targets
            batches.count[batch_rows] += 1
            stack[movers, depth[movers]] = targets
            depth[movers] += 1
            depth[active[~moves]] -= 1
            # Backtracked past the last seed: the component is exhausted, start afresh.
            exhausted = active[(depth[active] == 0) & (batches.count[rows[active]] < size)]
            if exhausted.numel():
                fresh = batches.add_fresh_seeds(rows[exhausted])
                got = (fresh >= 0).sum(1)
                visited[exhausted.unsqueeze(1).expand_as(fresh)[fresh >= 0], fresh[fresh >= 0]] = True
                # Explore the fresh seeds one after another (last pushed first).
                stack[exhausted, : fresh.shape[1]] = fresh
                depth[exhausted] = got


class _Batches:
    """Batches being filled, ``(S, B)`` ids, -1 padded, and what every strategy shares:
    collecting walk output, exclusive claims, fresh seeds."""

    def __init__(
        self,
        seeds: torch.Tensor,
        batch_size: int,
        num_nodes: int,
        taken: torch.Tensor | None,
        generator: torch.Generator,
    ) -> None:
        self.ids = torch.full((seeds.numel(), batch_size), -1, dtype=torch.int64)
        self.ids[:, 0] = seeds
        self.count = torch.ones(seeds.numel(), dtype=torch.int64)
        # The latest seeds a row walks from: how many, and the row's size before them.
        self.group_seeds = torch.ones_like(self.count)
        self.group_start = torch.zeros_like(self.count)
        self.size = batch_size
        self.num_nodes = num_nodes
        self.taken = taken
        self.generator = generator
        if taken is not None:
            taken[seeds] = True

    def open_rows(self) -> torch.Tensor:
        """Ascending ids of the rows with fewer than ``B`` nodes."""
        return torch.nonzero(self.count < self.size).flatten()

    def rounds(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The rounds of a walk or BFS: up to ``MAX_ROUNDS`` times the open rows
        (ascending) and how many nodes each still misses, while any row is open; the
        rows still short after the last round are filled uniformly."""
        for _ in range(MAX_ROUNDS):
            rows = self.open_rows()
            if not rows.numel():
                return
            yield rows, self.size - self.count[rows]
        self.fill(self.open_rows())

    def collect(self, rows: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        """Append to each of ``rows`` (ascending) its candidates (``(len(rows), W)``,
        -1 padded, in visit order) that are new to it, up to ``B``; returns the number
        of nodes each row gained."""
        if self.taken is not None:
            candidates = candidates.masked_fill(self.taken[candidates.clamp_min(0)], -1)
        before = self.count[rows]
        merged, found = first_distinct(torch.cat([self.ids[rows], candidates], 1), self.size)
        if self.taken is not None:
            merged, found = self._claim(merged, before, found)
        self.ids[rows], self.count[rows] = merged, found
        return found - before

    def _claim(
        self, merged: torch.Tensor, before: torch.Tensor, found: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Give each node new to several rows to the first of them; mark winners taken."""
        column = torch.arange(self.size)
        new = (column >= before.unsqueeze(1)) & (column < found.unsqueeze(1))
        row, col = torch.nonzero(new, as_tuple=True)  # row-major: lower rows first
        nodes = merged[row, col]
        won = _first_occurrences(nodes)
        self.taken[nodes[won]] = True
        if bool(won.all()):
            return merged, found
        merged[row[~won], col[~won]] = -1
        # Close the gaps, keeping visit order.
        order = torch.sort((merged < 0).to(torch.int8), dim=1, stable=True).indices
        merged = merged.gather(1, order)
        return merged, (merged >= 0).sum(1)

    def add_fresh_seeds(self, rows: torch.Tensor) -> torch.Tensor:
        """Append fresh seeds to ``rows`` (ascending): as many as the yield per seed of
        the row's latest seeds says will fill it. Returns them, ``(len(rows), k)``, -1 padded."""
        count = self.count[rows]
        missing = self.size - count
        per_seed = ((count - self.group_start[rows]).double() / self.group_seeds[rows]).clamp_min(1.0)
        wanted = torch.minimum(torch.ceil(missing / per_seed).long(), missing).clamp_min(1)
        fresh = self._append_fresh(rows, wanted)
        self.group_start[rows], self.group_seeds[rows] = count, (fresh >= 0).sum(1)
        return fresh

    def fill(self, rows: torch.Tensor) -> None:
        """Fill ``rows`` up to ``B`` with fresh nodes."""
        if rows.numel():
            self._append_fresh(rows, self.size - self.count[rows])

    def _append_fresh(self, rows: torch.Tensor, wanted: torch.Tensor) -> torch.Tensor:
        """Append ``wanted[r]`` distinct nodes, uniform among the nodes the row may
        take, to each of ``rows``; returns them, ``(len(rows), max(wanted))``, -1 padded."""
        width = int(wanted.max()) if rows.numel() else 0
        if self.taken is not None:
            # Batches are disjoint: split one uniform draw of the free nodes.
            free = torch.nonzero(~self.taken).flatten()
            drawn = free[torch.randperm(free.numel(), generator=self.generator)[: int(wanted.sum())]]
            column = torch.arange(width)
            valid = column < wanted.unsqueeze(1)
            fresh = torch.full((rows.numel(), width), -1, dtype=torch.int64)
            fresh[valid] = drawn
            self.taken[drawn] = True
        elif rows.numel() * self.num_nodes <= _RANDOM_SCORE_CELLS or self.num_nodes < 4 * self.size:
            fresh = self._fresh_by_scores(rows, wanted, width)
        else:
            fresh = self._fresh_by_rejection(rows, wanted, width)
        valid = fresh >= 0
        column = self.count[rows].unsqueeze(1) + torch.arange(width)
        self.ids[rows.unsqueeze(1).expand_as(fresh)[valid], column[valid]] = fresh[valid]
        self.count[rows] += valid.sum(1)
        return fresh

    def _fresh_by_scores(self, rows: torch.Tensor, wanted: torch.Tensor, width: int) -> torch.Tensor:
        # A random score per node, members of the row pushed past every other node.
        score = torch.rand(rows.numel(), self.num_nodes + 1, generator=self.generator)
        members = self.ids[rows]
        score.scatter_(1, torch.where(members >= 0, members, self.num_nodes), 2.0)
        fresh = torch.topk(score[:, : self.num_nodes], width, dim=1, largest=False).indices
        return fresh.masked_fill(torch.arange(width) >= wanted.unsqueeze(1), -1)

    def _fresh_by_rejection(self, rows: torch.Tensor, wanted: torch.Tensor, width: int) -> torch.Tensor:
        # N >= 4B: at least 3/4 of the draws are free, so few passes are needed.
        fresh = torch.full((rows.numel(), width), -1, dtype=torch.int64)
        got = torch.zeros(rows.numel(), dtype=torch.int64)
        todo = torch.arange(rows.numel())
        column = torch.arange(width)
        while todo.numel():
            excluded = torch.cat([self.ids[rows[todo]], fresh[todo]], 1)
            draws = torch.randint(self.num_nodes, (todo.numel(), 2 * width + 8), generator=self.generator)
            merged, found = first_distinct(torch.cat([excluded, draws], 1), excluded.shape[1] + draws.shape[1])
            known = (excluded >= 0).sum(1)
            take = torch.minimum(found - known, wanted[todo] - got[todo])
            values = merged.gather(1, (known.unsqueeze(1) + column).clamp_max(merged.shape[1] - 1))
            valid = column < take.unsqueeze(1)
            target = got[todo].unsqueeze(1) + column
            fresh[todo.unsqueeze(1).expand_as(target)[valid], target[valid]] = values[valid]
            got[todo] += take
            todo = todo[got[todo] < wanted[todo]]
        return fresh


def _first_occurrences(values: torch.Tensor) -> torch.Tensor:
    """BoolTensor marking the first occurrence of each value in a 1-D tensor."""
    order = torch.sort(values, stable=True).indices
    ordered = values[order]
    leading = torch.ones_like(ordered, dtype=torch.bool)
    leading[1:] = ordered[1:] != ordered[:-1]
    first = torch.zeros_like(leading)
    first[order[leading]] = True
    return first


def check_csr(indptr: object, indices: object, num_nodes: int, name: str) -> None:
    """Raise unless ``(indptr, indices)`` is a valid CSR adjacency over ``num_nodes`` nodes.

    Parameters
    ----------
    indptr : IntTensor or LongTensor of shape (N + 1,)
        Non-decreasing, ``indptr[0] = 0``, ``indptr[-1] = len(indices)``.
    indices : IntTensor or LongTensor of shape (E,)
        Neighbour ids in ``[0, N)``.
    name : str
        What the arrays belong to, for the message.
    """
    for field, value in (("indptr", indptr), ("indices", indices)):
        if not isinstance(value, torch.Tensor) or value.dtype not in (torch.int32, torch.int64) or value.dim() != 1:
            raise ValueError(
                f"{name} {field} must be a 1-D int32 or int64 tensor, got "
                f"{getattr(value, 'dtype', type(value).__name__)} of shape {tuple(getattr(value, 'shape', ()))}"
            )
    if indptr.numel() != num_nodes + 1:
        raise ValueError(f"{name} indptr must have N + 1 = {num_nodes + 1} entries, got {indptr.numel()}")
    if int(indptr[0]) != 0 or int(indptr[-1]) != indices.numel():
        raise ValueError(
            f"{name} indptr must start at 0 and end at len(indices) = {indices.numel()}, "
            f"got {int(indptr[0])} and {int(indptr[-1])}"
        )
    if bool((indptr[1:] < indptr[:-1]).any()):
        raise ValueError(f"{name} indptr must be non-decreasing")
    if indices.numel() and (int(indices.min()) < 0 or int(indices.max()) >= num_nodes):
        raise ValueError(
            f"{name} node ids must be in [0, {num_nodes}), got min {int(indices.min())} "
            f"and max {int(indices.max())}"
        )


def _trace_length(batch_size: int, alpha: float) -> int:
    """Moves per trace: ``B`` without restarts, else until a restart-free trace is
    rarer than ``_TRACE_TAIL`` (infinite for a subnormal alpha: compare before rounding)."""
    if alpha >= 1.0:
        return 1
    if alpha <= 0.0:
        return batch_size
    tail_moves = math.log(_TRACE_TAIL) / math.log1p(-alpha)
    return batch_size if tail_moves >= batch_size else max(1, math.ceil(tail_moves))


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
    # apply in torch) keeps this cheap enough to run once per round.
    flat = rows.reshape(-1)
    positions = torch.nonzero(flat >= 0).squeeze(1)
    values = flat[positions]
    row_of = positions // width
    key = row_of * (int(values.max()) + 1 if values.numel() else 1) + values
    first = torch.nonzero(_first_occurrences(key)).squeeze(1)
    row_of, values = row_of[first], values[first]
    found = torch.bincount(row_of, minlength=num_rows)
    rank = torch.arange(row_of.numel()) - (torch.cumsum(found, 0) - found)[row_of]
    widest = max(count, int(found.max()) if num_rows else 0)
    firsts = torch.full((num_rows, widest), -1, dtype=torch.int64)
    firsts[row_of, rank] = values
    firsts = firsts[:, :count].contiguous()
    return firsts, found.clamp_max(count)
