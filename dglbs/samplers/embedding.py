"""Samplers whose batches depend on the instances' current embeddings."""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from .._checks import check_embeddings, check_int
from .base import ContrastiveBatchSampler


DEFAULT_CHUNK_SIZE = 128
"""Batches drawn together by default; enough to amortise per-call overhead."""


class EmbeddingBatchSampler(ContrastiveBatchSampler):
    """Base of the kNN and walk samplers: one seed per batch, batches grown around it.

    Seeds are drawn without replacement over an epoch (a permutation seeded with
    ``seed + epoch``), one per batch, so an epoch has as many batches as uniform
    sampling. Batches are computed ``chunk_size`` at a time to amortise the cost;
    new embeddings (:meth:`set_embeddings`) discard the chunk, so a refresh takes
    effect for every batch yielded after it. Batch ``j`` of an epoch depends only on
    ``(seed, epoch, j's chunk start)``, the embeddings and the schedule's value when
    its chunk was computed, so passes are reproducible and :meth:`load_state_dict`
    resumes exactly.

    Parameters
    ----------
    refresh_every : int
        ``t``: :attr:`refresh_due` turns true every ``t`` training steps.
    normalize : bool
        L2-normalise embeddings, so similarities are cosines.
    chunk_size : int, optional
        Batches computed together. Default ``min(128, refresh_every)``: a refresh
        discards the rest of a chunk, so chunks longer than ``t`` waste work.
    **kwargs
        See :class:`ContrastiveBatchSampler`.
    """

    def __init__(
        self,
        num_instances: int,
        batch_size: int,
        *,
        refresh_every: int = 50,
        normalize: bool = True,
        chunk_size: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(num_instances, batch_size, **kwargs)
        self.refresh_every = check_int("refresh_every (t)", refresh_every, low=1)
        self.normalize = bool(normalize)
        if chunk_size is None:
            chunk_size = min(DEFAULT_CHUNK_SIZE, self.refresh_every)
        self.chunk_size = check_int("chunk_size", chunk_size, low=1)
        self.refreshed_at: int | None = None
        self._chunk: torch.Tensor | None = None
        self._chunk_start = 0
        self._chunk_value = 0.0

    def _describe(self) -> str:
        return (
            f"{super()._describe()}, refresh_every={self.refresh_every}, "
            f"normalize={self.normalize}, chunk_size={self.chunk_size}"
        )

    @property
    def refresh_due(self) -> bool:
        """True before the first :meth:`set_embeddings` and every ``t`` steps after."""
        return self.refreshed_at is None or self.global_step - self.refreshed_at >= self.refresh_every

    def set_embeddings(self, embeddings: torch.Tensor) -> None:
        """Rebuild from embeddings of all instances.

        Parameters
        ----------
        embeddings : Tensor of shape (N, d), floating point, finite
            Row ``i`` embeds dataset index ``i``; any device (the similarity search
            runs there).
        """
        embeddings = check_embeddings(embeddings, num_instances=self.num_instances).detach()
        if self.normalize:
            embeddings = F.normalize(embeddings.float(), dim=1)
        self._build(embeddings)
        self._mark_refreshed()

    def _mark_refreshed(self) -> None:
        self.refreshed_at = self.global_step
        # Batches not yet yielded are redrawn from the new structure.
        self._chunk = None

    def _build(self, embeddings: torch.Tensor) -> None:
        """Turn checked, normalised embeddings into the sampler's search structure."""
        raise NotImplementedError

    @property
    def ready(self) -> bool:
        """Whether embeddings (or a graph) have been given."""
        return self.refreshed_at is not None

    def _chunk_parameter(self) -> float:
        """The schedule value a new chunk is drawn with (0 when there is none)."""
        return 0.0

    def _batches(self, seeds: torch.Tensor, parameter: float, generator: torch.Generator) -> torch.Tensor:
        """LongTensor of shape (len(seeds), B * num_replicas), row ``s`` grown from
        ``seeds[s]``."""
        raise NotImplementedError

    def _start_epoch(self) -> None:
        if not self.ready:
            raise RuntimeError(
                f"{type(self).__name__} has no embeddings yet: call "
                "set_embeddings(embeddings) (or let the Trainer do it) before iterating"
            )
        self._seeds = torch.randperm(self.num_instances, generator=self.epoch_generator())
        if self._chunk is not None and self._chunk_epoch != self.epoch:
            self._chunk = None

    def _global_batch(self, position: int) -> torch.Tensor:
        chunk = self._chunk
        if chunk is None or not self._chunk_start <= position < self._chunk_start + len(chunk):
            self._draw_chunk(position, self._chunk_parameter())
        return self._chunk[position - self._chunk_start]

    def _draw_chunk(self, start: int, parameter: float) -> None:
        seeds = self._seeds[start : min(start + self.chunk_size, len(self))]
        # Seeded by position, not by draw order, so a resumed pass redraws the same.
        generator = torch.Generator().manual_seed(
            hash((self.seed, self.epoch, start)) & 0x7FFF_FFFF_FFFF_FFFF
        )
        self._chunk = self._batches(seeds, parameter, generator)
        self._chunk_start, self._chunk_value, self._chunk_epoch = start, parameter, self.epoch

    def _search_state(self) -> dict[str, Any]:
        """What :meth:`_restore_search` needs to rebuild the search structure."""
        raise NotImplementedError

    def _restore_search(self, state: dict[str, Any]) -> None:
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["search"] = self._search_state() if self.ready else None
        state["refreshed_at"] = self.refreshed_at
        chunk_live = self._chunk is not None and self._chunk_epoch == self.epoch
        state["chunk"] = (self._chunk_start, self._chunk_value) if chunk_live else None
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        if state["search"] is not None:
            self._restore_search(state["search"])
        self.refreshed_at = state["refreshed_at"]
        self._chunk = None
        if state["chunk"] is not None:
            start, value = state["chunk"]
            if start <= self.position:
                self._start_epoch()
                self._draw_chunk(start, value)
