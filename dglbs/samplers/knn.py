"""The paper's kNN Sampler baseline: a random seed and its nearest neighbours."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .._checks import check_embeddings, check_int
from ..knn import DEFAULT_NPROBE, EXACT_BELOW, build_index, drop_self, import_faiss, resolve_index
from ..proximity import DEFAULT_MEMORY_BUDGET, check_memory_budget, similarity_rows, top_k_random_ties
from .embedding import EmbeddingBatchSampler

SAMPLER_INDEXES = ("exact", "ivf", "auto")


@dataclass(frozen=True)
class KNNSearch:
    """What the kNN sampler searches: the rows similarities are computed from
    (Tensor (N, d), normalised with ``normalize``) and a faiss IVF index over them
    (``None`` for exact search)."""

    embeddings: torch.Tensor
    index: Any | None


class KNNBatchSampler(EmbeddingBatchSampler):
    """Each batch is a random seed followed by its ``B * num_replicas - 1`` most
    similar instances by inner product. With ``epoch_policy="cover"`` the neighbours
    are searched among the instances no earlier batch of the epoch used.

    Parameters
    ----------
    memory_budget : int
        Bytes of exact similarity scores (``rows x N`` floats) computed at once; at
        least one row's worth (``8 * N``).
    index : {"exact", "ivf", "auto"}
        ``"exact"`` (default): search all instances on the embeddings' device, ties
        at the cut broken at random; a batch costs ``O(N d)``. ``"ivf"``: a faiss
        ``IndexIVFFlat`` (see :func:`~dglbs.knn.knn_graph`), built on the CPU at every
        :meth:`set_embeddings` (and :meth:`load_state_dict`) from a sample drawn with
        ``seed``, deterministically, so resumes stay exact. A seed is compared with the
        ``4 sqrt(N)`` list centroids and the instances of its ``nprobe`` nearest lists
        (about 9,000 of 1.28M at ``nprobe = 16``) instead of all ``N``, but true
        neighbours outside those lists are missed (recall in
        ``benchmarks/bench_knn_faiss.py``); ties go in faiss's order. A seed whose
        lists hold too few (unused) instances is searched exactly. Pays when the
        index build is cheap against the batches drawn between refreshes.
        ``"auto"``: exact below ``EXACT_BELOW`` (50,000) instances, else ``"ivf"``.
        HNSW is not offered: its build is not reproducible on several threads, and
        covering epochs search among the unused instances, which its graph does
        not support well.
    nprobe : int
        IVF lists searched per seed, ``>= 1``.
    **kwargs
        See :class:`EmbeddingBatchSampler` and :class:`ContrastiveBatchSampler`.
    """

    def __init__(
        self,
        num_instances: int,
        batch_size: int,
        *,
        memory_budget: int = DEFAULT_MEMORY_BUDGET,
        index: str = "exact",
        nprobe: int = DEFAULT_NPROBE,
        **kwargs: Any,
    ) -> None:
        super().__init__(num_instances, batch_size, **kwargs)
        self.memory_budget = check_memory_budget(
            memory_budget, 8 * self.num_instances, "similarity scores", min_rows=1
        )
        if index not in SAMPLER_INDEXES:
            hint = " (HNSW is only offered by knn_graph)" if index == "hnsw" else ""
            raise ValueError(f"index must be one of {SAMPLER_INDEXES}, got {index!r}{hint}")
        self.index = index
        self.nprobe = check_int("nprobe", nprobe, low=1)
        if resolve_index(index, self.num_instances) == "ivf":
            import_faiss(f"KNNBatchSampler(index={index!r}) at N={self.num_instances} (>= {EXACT_BELOW})"
                         if index == "auto" else f"KNNBatchSampler(index={index!r})")
        self.embeddings: torch.Tensor | None = None
        self.search_index: Any | None = None

    def _describe(self) -> str:
        return f"{super()._describe()}, index={self.index!r}, nprobe={self.nprobe}"

    def config(self) -> dict[str, Any]:
        return super().config() | {"index": self.index, "nprobe": self.nprobe}

    def _make_search(self, embeddings: torch.Tensor) -> KNNSearch:
        return self._with_index(similarity_rows(embeddings, self.normalize))

    def _with_index(self, rows: torch.Tensor) -> KNNSearch:
        if resolve_index(self.index, self.num_instances) == "exact":
            return KNNSearch(rows, None)
        vectors = rows.float().cpu().contiguous()
        return KNNSearch(rows, build_index(vectors, "ivf", self.global_batch_size, nprobe=self.nprobe, seed=self.seed))

    def _search(self) -> KNNSearch:
        return KNNSearch(self.embeddings, self.search_index)

    def _nearest(
        self, search: KNNSearch, seeds: torch.Tensor, exclude: torch.Tensor | None, generator: torch.Generator
    ) -> torch.Tensor:
        """Rows ``[seed, its B*replicas - 1 nearest]``, never an instance in ``exclude``
        (BoolTensor (N,))."""
        neighbors = self.global_batch_size - 1
        if not neighbors:
            return seeds.unsqueeze(1)
        if search.index is None:
            return self._exact_nearest(search.embeddings, seeds, exclude, generator)
        params = None
        if exclude is not None:
            # faiss reads the bitmap while searching: keep it referenced until then.
            allowed = np.packbits((~exclude).numpy(), bitorder="little")
            faiss = import_faiss("KNNBatchSampler(index='ivf')")
            params = faiss.SearchParametersIVF(
                sel=faiss.IDSelectorBitmap(self.num_instances, faiss.swig_ptr(allowed)), nprobe=search.index.nprobe
            )
        queries = search.embeddings[seeds.to(search.embeddings.device)].float().cpu().numpy()
        scores, ids = search.index.search(queries, neighbors + 1, params=params)
        ids, _, short = drop_self(torch.from_numpy(ids), torch.from_numpy(scores), seeds, neighbors)
        if bool(short.any()):
            ids[short] = self._exact_nearest(search.embeddings, seeds[short], exclude, generator)[:, 1:]
        return torch.cat([seeds.unsqueeze(1), ids], 1)

    def _exact_nearest(
        self, embeddings: torch.Tensor, seeds: torch.Tensor, exclude: torch.Tensor | None, generator: torch.Generator
    ) -> torch.Tensor:
        device = embeddings.device
        scores = embeddings[seeds.to(device)] @ embeddings.T
        scores[torch.arange(seeds.numel(), device=device), seeds.to(device)] = -torch.inf
        if exclude is not None:
            scores[:, exclude.to(device)] = -torch.inf
        columns = top_k_random_ties(scores, self.global_batch_size - 1, generator)[1].cpu()
        return torch.cat([seeds.unsqueeze(1), columns], 1)

    def _batches(self, search: KNNSearch, seeds: torch.Tensor, parameter: float, generator: torch.Generator) -> torch.Tensor:
        rows_at_once = max(1, self.memory_budget // (8 * self.num_instances))
        return torch.cat([
            self._nearest(search, seeds[start : start + rows_at_once], None, generator)
            for start in range(0, seeds.numel(), rows_at_once)
        ])

    def _cover_batches(
        self, search: KNNSearch, order: torch.Tensor, count: int, used: torch.Tensor, parameter: float,
        generator: torch.Generator,
    ) -> torch.Tensor:
        # One batch at a time: each searches among the instances the previous left.
        batches = []
        for _ in range(count):
            batch = self._nearest(search, self._unused_seeds(order, used, 1), used, generator)[0]
            used[batch] = True
            batches.append(batch)
        return torch.stack(batches) if batches else torch.empty(0, self.global_batch_size, dtype=torch.int64)

    def _search_state(self, search: KNNSearch) -> dict[str, Any]:
        # The IVF index is rebuilt from the rows (deterministically) when loaded.
        return {"embeddings": search.embeddings.cpu()}

    def _installed_search(self) -> KNNSearch:
        return self._search()

    def _parse_search(self, search: object) -> KNNSearch:
        if not isinstance(search, dict) or set(search) != {"embeddings"}:
            raise ValueError(
                "state['search'] must be a dict with the key embeddings, got "
                f"{sorted(search) if isinstance(search, dict) else type(search).__name__}"
            )
        try:
            rows = check_embeddings(search["embeddings"], num_instances=self.num_instances).clone()
        except (TypeError, ValueError) as error:
            raise type(error)(f"state['search']['embeddings']: {error}") from None
        return self._with_index(rows)

    def _use_search(self, parsed: KNNSearch) -> None:
        self.embeddings, self.search_index = parsed.embeddings, parsed.index
