"""BatchSampler: batches as random walks with restart on a proximity graph."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import dgl
import torch

from .._checks import check_int
from .._dgl_random import on_walk_thread
from .._seeds import generator_for
from ..knn import knn_graph
from ..proximity import DEFAULT_MEMORY_BUDGET, check_memory_budget, proximity_graph
from ..schedules import ConstantSchedule, Schedule, as_schedule, evaluate
from ..walks import STRATEGIES, GraphWalker, check_csr
from .embedding import EmbeddingBatchSampler

GRAPHS = ("proximity", "knn")
KNN_INDEXES = ("exact", "ivf", "auto")
"""How ``graph="knn"`` is searched (HNSW is left out: its faiss build is not reproducible)."""

GRAPH_STREAM = 3
"""Stream key of the proximity graph's candidate draws (see :mod:`dglbs._seeds`)."""


class WalkBatchSampler(EmbeddingBatchSampler):
    """The paper's BatchSampler: each batch is the first ``B * num_replicas`` distinct
    nodes of a walk from a random seed on a graph of the instances.

    Every ``refresh_every`` steps the training loop hands the sampler fresh
    embeddings (:meth:`set_embeddings`), from which it builds the proximity graph
    (``M`` random candidates per node, ``K`` kept), or the exact kNN graph for the
    Table 7 ablation. A graph can also be given directly (:meth:`set_graph`).

    Parameters
    ----------
    num_instances, batch_size : int
        ``N`` and ``B`` (per replica).
    num_candidates : int
        ``M`` (paper: 500 for small datasets, 1000 for large); clipped to ``N - 1``.
    num_neighbors : int
        ``K`` (paper: 100), ``K <= M`` and ``K <= N - 1``.
    restart_prob : float or callable
        ``alpha``: a constant, or a schedule of training progress such as
        ``LinearSchedule(0.2, 0.05)`` (the paper's default); read when a chunk of
        batches is drawn. A schedule other than a constant needs ``total_steps``.
    strategy : {"rwr", "rw", "bfs", "dfs"}
        The walk (paper Table 6); see :mod:`dglbs.walks`.
    graph : {"proximity", "knn"}
        Graph built by :meth:`set_embeddings`.
    knn_index : {"exact", "ivf", "auto"}
        With ``graph="knn"``: how the kNN graph is searched (see
        :func:`~dglbs.knn.knn_graph`): exactly (``O(N^2)``), with a faiss IVF index
        (seeded, so the same graph every run), or exactly below
        :data:`~dglbs.knn.EXACT_BELOW` instances and by IVF from there. HNSW is not
        offered: faiss builds it on several threads, so its graph, and the batches,
        would differ between runs.
    total_steps : int, optional
        Training steps the schedule spans (the Trainer sets it).
    memory_budget : int
        Scratch bytes for graph construction (see
        :func:`~dglbs.proximity.proximity_graph`).
    **kwargs
        ``refresh_every``, ``normalize``, ``chunk_size``, ``epoch_policy`` (see
        :class:`EmbeddingBatchSampler`) and ``drop_last``, ``seed``,
        ``num_replicas``, ``rank`` (see :class:`ContrastiveBatchSampler`).
    """

    def __init__(
        self,
        num_instances: int,
        batch_size: int,
        *,
        num_candidates: int = 1000,
        num_neighbors: int = 100,
        restart_prob: float | Schedule = 0.2,
        strategy: str = "rwr",
        graph: str = "proximity",
        knn_index: str = "exact",
        total_steps: int | None = None,
        memory_budget: int = DEFAULT_MEMORY_BUDGET,
        **kwargs: Any,
    ) -> None:
        super().__init__(num_instances, batch_size, **kwargs)
        if self.num_instances < 2:
            raise ValueError(f"a walk sampler needs at least 2 instances, got {self.num_instances}")
        self.num_candidates = check_int("num_candidates (M)", num_candidates, low=1)
        self.num_neighbors = check_int(
            "num_neighbors (K)", num_neighbors, low=1, high=self.num_instances - 1
        )
        if self.num_neighbors > self.num_candidates:
            raise ValueError(
                f"num_neighbors (K={self.num_neighbors}) must not exceed num_candidates "
                f"(M={self.num_candidates})"
            )
        if strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
        if graph not in GRAPHS:
            raise ValueError(f"graph must be one of {GRAPHS}, got {graph!r}")
        if knn_index not in KNN_INDEXES:
            raise ValueError(f"knn_index must be one of {KNN_INDEXES}, got {knn_index!r}")
        if knn_index != "exact" and graph != "knn":
            raise ValueError(f"knn_index={knn_index!r} applies to graph='knn' only, got graph={graph!r}")
        self.strategy = strategy
        self.graph_kind = graph
        self.knn_index = knn_index
        self.restart_prob = as_schedule(restart_prob)
        self.total_steps = None if total_steps is None else check_int("total_steps", total_steps, low=1)
        candidates = self.num_instances - 1 if graph == "knn" else min(self.num_candidates, self.num_instances - 1)
        self.memory_budget = check_memory_budget(memory_budget, 12 * (candidates + 1), "a proximity-graph row")
        self.walker: GraphWalker | None = None
        self.graph_version = 0

    @property
    def graph(self) -> dgl.DGLGraph | None:
        """The graph batches are walked on (None before the first refresh)."""
        return None if self.walker is None else self.walker.graph

    def set_total_steps(self, total_steps: int) -> None:
        """Training steps the restart-probability schedule spans."""
        self.total_steps = check_int("total_steps", total_steps, low=1)

    @property
    def current_restart_prob(self) -> float:
        """``alpha`` at the current training step."""
        return self.restart_prob_at(self.global_step)

    def restart_prob_at(self, step: int) -> float:
        """``alpha`` at training step ``step``."""
        schedule = self.restart_prob
        if isinstance(schedule, ConstantSchedule):
            return evaluate(schedule, 0.0)
        if self.total_steps is None:
            raise RuntimeError(
                f"restart_prob schedule {schedule!r} needs the training length: pass "
                "total_steps= or call set_total_steps(n) (the Trainer does)"
            )
        return evaluate(schedule, min(1.0, step / self.total_steps))

    def _make_search(self, embeddings: torch.Tensor) -> tuple[GraphWalker, int]:
        version = self.graph_version + 1
        if self.graph_kind == "knn":
            graph = knn_graph(embeddings, self.num_neighbors, index=self.knn_index, seed=self.seed,
                              memory_budget=self.memory_budget, normalize=self.normalize)
        else:
            # One candidate stream per graph, reproducible from the seed.
            generator = generator_for(self.seed, GRAPH_STREAM, version - 1)
            graph = proximity_graph(
                embeddings, self.num_candidates, self.num_neighbors,
                generator=generator, memory_budget=self.memory_budget, normalize=self.normalize,
            )
        return GraphWalker(graph), version

    def set_graph(self, graph: dgl.DGLGraph) -> None:
        """Walk on a given graph from now on (counts as a refresh).

        Parameters
        ----------
        graph : DGLGraph
            Homogeneous CPU graph with ``N`` nodes; walks follow out-edges.
        """
        walker = GraphWalker(graph)
        if walker.num_nodes != self.num_instances:
            raise ValueError(
                f"graph has {walker.num_nodes} nodes but the dataset has "
                f"{self.num_instances} instances"
            )
        self._drop_build()
        self._use_search((walker, self.graph_version + 1))
        self._invalidate_chunks()
        self.refreshed_at = self.global_step

    def _chunk_parameter(self, step: int) -> float:
        return self.restart_prob_at(step)

    def _search(self) -> GraphWalker:
        return self.walker

    def _batches(self, search: GraphWalker, seeds: torch.Tensor, parameter: float, generator: torch.Generator) -> torch.Tensor:
        return search.batches(
            seeds, self.global_batch_size, strategy=self.strategy, restart_prob=parameter, generator=generator,
        )

    def _cover_batches(
        self, search: GraphWalker, order: torch.Tensor, count: int, used: torch.Tensor, parameter: float,
        generator: torch.Generator,
    ) -> torch.Tensor:
        # One batch at a time, so each grows from an instance no earlier batch took
        # (grown together, two seeds of one chunk could split a cluster between them);
        # all on the walk thread, so the many small walks pay one hand-over.
        return on_walk_thread(self._cover_batches_here, search, order, count, used, parameter, generator)

    def _cover_batches_here(
        self, search: GraphWalker, order: torch.Tensor, count: int, used: torch.Tensor, parameter: float,
        generator: torch.Generator,
    ) -> torch.Tensor:
        batches = [
            search.batches(
                self._unused_seeds(order, used, 1), self.global_batch_size, strategy=self.strategy,
                restart_prob=parameter, generator=generator, taken=used,
            )
            for _ in range(count)
        ]
        return torch.cat(batches) if batches else torch.empty(0, self.global_batch_size, dtype=torch.int64)

    def config(self) -> dict[str, Any]:
        return super().config() | {
            "num_candidates": self.num_candidates,
            "num_neighbors": self.num_neighbors,
            "strategy": self.strategy,
            "graph": self.graph_kind,
            "knn_index": self.knn_index,
        }

    def _search_state(self, search: tuple[GraphWalker, int]) -> dict[str, Any]:
        walker, version = search
        return {"indptr": walker._indptr, "indices": walker._indices, "graph_version": version}

    def _installed_search(self) -> tuple[GraphWalker, int]:
        return self.walker, self.graph_version

    def _parse_search(self, search: object) -> tuple[GraphWalker, int]:
        if not isinstance(search, Mapping) or set(search) != {"indptr", "indices", "graph_version"}:
            raise ValueError(
                "state['search'] must be a dict with keys indptr, indices, graph_version, got "
                f"{sorted(search) if isinstance(search, Mapping) else type(search).__name__}"
            )
        indptr, indices = search["indptr"], search["indices"]
        check_csr(indptr, indices, self.num_instances, "state['search']")
        if indptr.dtype != indices.dtype:
            raise ValueError(
                f"state['search'] indptr and indices must share a dtype, got {indptr.dtype} and {indices.dtype}"
            )
        version = check_int("state['search']['graph_version']", search["graph_version"], low=0)
        graph = dgl.graph(
            ("csr", (indptr.clone(), indices.clone(), torch.empty(0, dtype=indices.dtype))),
            num_nodes=self.num_instances, idtype=indices.dtype,
        )
        return GraphWalker(graph), version

    def _use_search(self, parsed: tuple[GraphWalker, int]) -> None:
        self.walker, self.graph_version = parsed

    def _describe(self) -> str:
        return (
            f"{super()._describe()}, num_candidates={self.num_candidates}, "
            f"num_neighbors={self.num_neighbors}, restart_prob={self.restart_prob!r}, "
            f"strategy={self.strategy!r}, graph={self.graph_kind!r}"
        )
