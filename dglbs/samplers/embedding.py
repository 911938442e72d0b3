"""Samplers whose batches depend on the instances' current embeddings."""
from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import Future
from typing import Any

import torch

from .._checks import check_embeddings, check_int, check_probability
from .._dgl_random import submit_to_build_thread, submit_to_walk_thread
from .._seeds import generator_for
from .base import ContrastiveBatchSampler

DEFAULT_CHUNK_SIZE = 128
"""Batches drawn together by default; enough to amortise per-call overhead."""

EPOCH_POLICIES = ("cover", "independent")

SEED_STREAM, CHUNK_STREAM = 1, 2
"""Stream keys of the seed order and of the batch draws (see :mod:`dglbs._seeds`)."""


class EmbeddingBatchSampler(ContrastiveBatchSampler):
    """Base of the kNN and walk samplers: one seed per batch, batches grown around it.

    An epoch has as many batches as uniform sampling (``ceil(N / (B * replicas))``,
    floor with ``drop_last``), known as soon as the sampler is built. What a batch may
    contain depends on ``epoch_policy``:

    - ``"cover"``: every instance appears exactly once per epoch, like
      uniform sampling. Batch ``j`` grows from the first instance of the epoch's seed
      order not used yet, and collects only instances no earlier batch of the epoch
      has (walks still pass through used ones). Late in an epoch few unused
      instances are near each other, so the last batches are closer to uniform.
      The last batch holds the remaining ``N mod (B * replicas)`` instances (padded
      with used ones to split evenly over replicas), unless ``drop_last``.
    - ``"independent"`` (default: over 5 paired seeds covering epochs trained no
      better on PROTEINS, IMDB-BINARY and NCI1, and they sample one batch at a time,
      at several ms a batch): every batch is grown from its own seed over all
      instances, as in the paper's description; batches overlap, and one epoch visits
      only part of the data (54-61 % at K = 100, M = 500, alpha = 0.2 in
      ``benchmarks/bench_coverage.py``), biased to instances many others point to.

    Seeds follow a permutation drawn per epoch. Batches are computed ``chunk_size``
    at a time; new embeddings (:meth:`set_embeddings`) discard the chunk (and the one
    drawn ahead), so a refresh takes effect for every batch yielded after it. A chunk
    uses the schedule's value at the training step its first batch is due: the step
    of the first chunk after a refresh or at the start of a pass, plus the batches
    before it. Batch ``j`` depends only on ``(seed, epoch)``, the embeddings, that
    step and where its chunk started, so passes are reproducible, prefetching does
    not change them, and :meth:`load_state_dict` resumes exactly.

    Parameters
    ----------
    refresh_every : int
        ``t``: :attr:`refresh_due` turns true every ``t`` training steps.
    normalize : bool
        L2-normalise embeddings, so similarities are cosines.
    chunk_size : int, optional
        Batches computed together. Default ``min(128, refresh_every)``: a refresh
        discards the rest of a chunk, so chunks longer than ``t`` waste work.
    epoch_policy : {"cover", "independent"}
    prefetch : bool
        Draw the next chunk on a background thread while the current one is used,
        so sampling leaves the training loop's critical path. The batches are the
        same either way.
    uniform_epochs : int
        Epochs of uniform shuffling before the first walk (or kNN) epoch, as the
        paper's public code does (``random_epochs``, 10 there): their batches are those
        of a :class:`~dglbs.UniformBatchSampler` with the same seed, no embeddings are
        needed during them, and :attr:`refresh_due` first turns true at training step
        ``uniform_epochs * len(self)``, so the first graph is built from an encoder that
        has trained that long instead of from its initialisation. ``0`` (default): walk
        batches from the first step, as the paper describes the method.
    build_lag : int
        ``0``: :meth:`set_embeddings` builds the graph (or search structure) at once.
        ``L > 0`` (``L < t``): it is built on a background thread while training goes
        on with the current one, and takes over after exactly ``L`` more steps
        (:meth:`step`), whatever the timing, so batches stay reproducible.
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
        epoch_policy: str = "independent",
        uniform_epochs: int = 0,
        prefetch: bool = True,
        build_lag: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(num_instances, batch_size, **kwargs)
        self.refresh_every = check_int("refresh_every (t)", refresh_every, low=1)
        if not isinstance(normalize, bool):
            raise TypeError(f"normalize must be a bool, got {normalize!r}")
        self.normalize = normalize
        if chunk_size is None:
            chunk_size = min(DEFAULT_CHUNK_SIZE, self.refresh_every)
        self.chunk_size = check_int("chunk_size", chunk_size, low=1)
        if epoch_policy not in EPOCH_POLICIES:
            raise ValueError(f"epoch_policy must be one of {EPOCH_POLICIES}, got {epoch_policy!r}")
        self.epoch_policy = epoch_policy
        self.uniform_epochs = check_int("uniform_epochs", uniform_epochs, low=0)
        if not isinstance(prefetch, bool):
            raise TypeError(f"prefetch must be a bool, got {prefetch!r}")
        self.prefetch = prefetch
        self.build_lag = check_int("build_lag", build_lag, low=0, high=self.refresh_every - 1)
        # A structure built in the background: (the step it takes over at, its future).
        self._building: tuple[int, Future] | None = None
        self.refreshed_at: int | None = None
        self._chunk: list[torch.Tensor] | None = None
        self._chunk_start = 0
        self._chunk_value = 0.0
        self._chunk_step = 0
        self._chunk_epoch = -1
        self._chunk_base: torch.Tensor | None = None
        # The next chunk drawn ahead on the walk thread: (key, future); the key says
        # which chunk it is and on which search structure (refreshes count up).
        self._pending: tuple[tuple[int, int, int, int], Future] | None = None
        self._structure_id = 0
        # Covering epochs: (epoch, position) -> instances used by the batches before it.
        self._used_record: tuple[tuple[int, int], torch.Tensor] | None = None

    def _describe(self) -> str:
        return (
            f"{super()._describe()}, refresh_every={self.refresh_every}, "
            f"normalize={self.normalize}, chunk_size={self.chunk_size}, "
            f"epoch_policy={self.epoch_policy!r}, uniform_epochs={self.uniform_epochs}, "
            f"prefetch={self.prefetch}, build_lag={self.build_lag}"
        )

    def config(self) -> dict[str, Any]:
        return super().config() | {
            "refresh_every": self.refresh_every,
            "normalize": self.normalize,
            "chunk_size": self.chunk_size,
            "epoch_policy": self.epoch_policy,
            "uniform_epochs": self.uniform_epochs,
            "build_lag": self.build_lag,
        }

    @property
    def refresh_due(self) -> bool:
        """True before the first :meth:`set_embeddings` and every ``t`` steps after;
        never before the ``uniform_epochs`` have been trained (they need no embeddings)."""
        if self.global_step < self.uniform_epochs * len(self):
            return False
        return self.refreshed_at is None or self.global_step - self.refreshed_at >= self.refresh_every

    @property
    def in_uniform_epoch(self) -> bool:
        """Whether the current epoch is one of the first ``uniform_epochs`` (uniform batches)."""
        return self.epoch < self.uniform_epochs

    def set_embeddings(self, embeddings: torch.Tensor) -> None:
        """Rebuild from embeddings of all instances: at once, or (``build_lag > 0``)
        in the background, taking over ``build_lag`` steps from now.

        Parameters
        ----------
        embeddings : Tensor of shape (N, d), floating point, finite, ``d >= 1``
            Row ``i`` embeds dataset index ``i``; any device (the similarity search
            runs there). Detached (and copied for a background build, so the caller
            may change it); with ``normalize``, rows are scaled to unit norm without
            overflow (all-zero rows stay zero).
        """
        embeddings = check_embeddings(embeddings, num_instances=self.num_instances).detach()
        if self.build_lag == 0 or not self.ready:
            # The first structure is needed before any batch: build it now.
            self._drop_build()
            self._use_search(self._make_search(embeddings))
            self._invalidate_chunks()
        else:
            self._finish_build()
            self._building = (self.global_step + self.build_lag,
                              submit_to_build_thread(self._make_search, embeddings.clone()))
        self.refreshed_at = self.global_step

    def step(self, num_steps: int = 1) -> None:
        super().step(num_steps)
        if self._building is not None and self.global_step >= self._building[0]:
            self._finish_build()

    def _finish_build(self) -> None:
        """Install the structure being built, if any (waiting for it)."""
        if self._building is not None:
            search = self._building[1].result()
            self._building = None
            self._use_search(search)
            self._invalidate_chunks()

    def _drop_build(self) -> None:
        if self._building is not None:
            self._building[1].cancel()
            self._building = None

    def _invalidate_chunks(self) -> None:
        """Batches not yet yielded are redrawn from the new structure."""
        if self.epoch_policy == "cover" and self._chunk_live():
            self._used_record = ((self.epoch, self.position), self._used_before(self.position))
        self._drop_pending()
        self._chunk = None
        self._structure_id += 1

    def _drop_pending(self) -> None:
        """Forget the chunk drawn ahead (cancelled if still queued on the walk thread)."""
        if self._pending is not None:
            self._pending[1].cancel()
            self._pending = None

    def _make_search(self, embeddings: torch.Tensor) -> Any:
        """The search structure (graph walker, normalised embeddings) for checked
        embeddings; a function of them and the configuration only, so it can run on
        another thread. Installed by :meth:`_use_search`."""
        raise NotImplementedError

    @property
    def ready(self) -> bool:
        """Whether embeddings (or a graph) have been given."""
        return self.refreshed_at is not None

    def _chunk_parameter(self, step: int) -> float:
        """The schedule value a chunk due at training step ``step`` is drawn with (0
        when there is none)."""
        return 0.0

    def _search(self) -> Any:
        """The current search structure (graph walker, embeddings), handed whole to the
        draws so that one drawn ahead keeps the structure it started with."""
        raise NotImplementedError

    def _batches(self, search: Any, seeds: torch.Tensor, parameter: float, generator: torch.Generator) -> torch.Tensor:
        """Independent batches: LongTensor of shape (len(seeds), B * num_replicas),
        row ``s`` grown from ``seeds[s]`` over all instances."""
        raise NotImplementedError

    def _cover_batches(
        self, search: Any, order: torch.Tensor, count: int, used: torch.Tensor, parameter: float,
        generator: torch.Generator,
    ) -> torch.Tensor:
        """Covering batches: LongTensor of shape (count, B * num_replicas), disjoint,
        none containing an instance marked in ``used`` (BoolTensor of shape (N,)), each
        grown from the first unused instance of ``order`` (the seed order); marks
        them in ``used``."""
        raise NotImplementedError

    def _start_epoch(self) -> None:
        if self.in_uniform_epoch:
            self._uniform_order = self.shuffled_order()
            return
        if not self.ready:
            raise RuntimeError(
                f"{type(self).__name__} has no embeddings yet: call "
                "set_embeddings(embeddings) (or let the Trainer do it) before iterating"
            )
        self._seeds = self._seed_order(self.epoch)
        if self._chunk is not None and self._chunk_epoch != self.epoch:
            self._chunk = None

    def _seed_order(self, epoch: int) -> torch.Tensor:
        """The permutation batches of ``epoch`` take their seeds from."""
        return torch.randperm(self.num_instances, generator=generator_for(self.seed, epoch, SEED_STREAM))

    def _chunk_live(self) -> bool:
        return self._chunk is not None and self._chunk_epoch == self.epoch

    def _global_batch(self, position: int) -> torch.Tensor:
        if self.in_uniform_epoch:
            return self.slice_of(self._uniform_order, position)
        chunk = self._chunk
        if chunk is None or not self._chunk_start <= position < self._chunk_start + len(chunk):
            chained = self._chunk_live() and position == self._chunk_start + len(chunk)
            step = self._chunk_step + len(chunk) if chained else self.global_step
            pending = self._pending
            if pending is not None and pending[0] == self._chunk_key(position, step):
                self._pending = None
                rows, base = pending[1].result()
                self._install_chunk(position, self._chunk_parameter(step), step, rows, base)
            else:
                self._drop_pending()  # not needed after all
                self._draw_chunk(position, self._chunk_parameter(step), step)
            if self.prefetch:
                self._draw_ahead()
        if self.prefetch and position == len(self) - 1 and self._pending is None:
            self._draw_next_epoch_ahead()
        return self._chunk[position - self._chunk_start]

    def _chunk_key(self, start: int, step: int) -> tuple[int, int, int, int]:
        """Which chunk, drawn for which step, on which search structure."""
        return (self.epoch, start, step, self._structure_id)

    def _draw_ahead(self) -> None:
        """Start drawing the chunk after the current one of this epoch on the walk thread."""
        start = self._chunk_start + len(self._chunk)
        if start < len(self):
            step = self._chunk_step + len(self._chunk)
            base = self._used_before(start) if self.epoch_policy == "cover" else None
            self._submit(self.epoch, start, step, base, self._seeds)

    def _draw_next_epoch_ahead(self) -> None:
        """With the epoch's last batch out, start drawing the next epoch's first chunk:
        it is due at the next step if the loop steps (one step per batch), else now.
        Used only if training reaches it at that step; else drawn anew."""
        step = self.global_step + (1 if self.global_step > self._chunk_step else 0)
        base = torch.zeros(self.num_instances, dtype=torch.bool) if self.epoch_policy == "cover" else None
        self._submit(self.epoch + 1, 0, step, base, self._seed_order(self.epoch + 1))

    def _submit(self, epoch: int, start: int, step: int, base: torch.Tensor | None, order: torch.Tensor) -> None:
        future = submit_to_walk_thread(
            self._compute_chunk, start, self._chunk_parameter(step), base, self._search(), order, epoch
        )
        self._pending = ((epoch, start, step, self._structure_id), future)

    def _draw_chunk(self, start: int, parameter: float, step: int) -> None:
        base = self._used_before(start) if self.epoch_policy == "cover" else None
        rows, base = self._compute_chunk(start, parameter, base, self._search(), self._seeds, self.epoch)
        self._install_chunk(start, parameter, step, rows, base)

    def _install_chunk(
        self, start: int, parameter: float, step: int, rows: list[torch.Tensor], base: torch.Tensor | None
    ) -> None:
        self._chunk, self._chunk_base = rows, base
        self._chunk_start, self._chunk_value, self._chunk_step, self._chunk_epoch = start, parameter, step, self.epoch

    def _compute_chunk(
        self, start: int, parameter: float, base: torch.Tensor | None, search: Any, order: torch.Tensor, epoch: int
    ) -> tuple[list[torch.Tensor], torch.Tensor | None]:
        """Batches ``start ..`` of a chunk, a function of its arguments and the
        sampler's configuration only (so it can run ahead on another thread)."""
        stop = min(start + self.chunk_size, len(self))
        # Seeded by position, not by draw order, so a resumed pass redraws the same.
        generator = generator_for(self.seed, epoch, CHUNK_STREAM, start)
        if self.epoch_policy == "independent":
            return list(self._batches(search, order[start:stop], parameter, generator)), None
        used = base.clone()
        partial = stop == len(self) and not self.drop_last and self.num_instances % self.global_batch_size
        full = stop - start - bool(partial)
        rows = list(self._cover_batches(search, order, full, used, parameter, generator)) if full else []
        if partial:
            rows.append(self._last_batch(order, used))
        return rows, base

    def _used_before(self, position: int) -> torch.Tensor:
        """Covering epochs: BoolTensor (N,) of the instances in batches before ``position``."""
        if position == 0:
            return torch.zeros(self.num_instances, dtype=torch.bool)
        if self._chunk_live() and self._chunk_start <= position <= self._chunk_start + len(self._chunk):
            used = self._chunk_base.clone()
            for batch in self._chunk[: position - self._chunk_start]:
                used[batch] = True
            return used
        if self._used_record is not None and self._used_record[0] == (self.epoch, position):
            return self._used_record[1].clone()
        raise RuntimeError(f"no record of the instances used before batch {position} of epoch {self.epoch}")

    def _last_batch(self, order: torch.Tensor, used: torch.Tensor) -> torch.Tensor:
        """The instances left unused, padded with used ones to split over replicas."""
        remaining = order[~used[order]]
        padding = -remaining.numel() % self.num_replicas
        return torch.cat([remaining, order[used[order]][:padding]])

    @staticmethod
    def _unused_seeds(order: torch.Tensor, used: torch.Tensor, count: int) -> torch.Tensor:
        """The first ``count`` instances of ``order`` not marked in ``used``."""
        return order[~used[order]][:count]

    def _search_state(self, search: Any) -> dict[str, Any]:
        """What :meth:`_parse_search` needs to rebuild ``search``."""
        raise NotImplementedError

    def _installed_search(self) -> Any:
        """The installed structure, as :meth:`_make_search` returns it."""
        raise NotImplementedError

    def _parse_search(self, search: object) -> Any:
        """Validate a saved search structure; return what :meth:`_use_search` installs."""
        raise NotImplementedError

    def _use_search(self, parsed: Any) -> None:
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["search"] = self._search_state(self._installed_search()) if self.ready else None
        state["refreshed_at"] = self.refreshed_at
        building = self._building
        state["building"] = None if building is None else (building[0], self._search_state(building[1].result()))
        if self._chunk_live():
            state["chunk"] = (self._chunk_start, self._chunk_value, self._chunk_step)
            used = (self._chunk_start, self._chunk_base) if self._chunk_base is not None else None
        else:
            state["chunk"] = None
            record = self._used_record
            used = (self.position, record[1]) if record is not None and record[0] == (self.epoch, self.position) else None
        state["used"] = used
        return state

    def _state_keys(self) -> set[str]:
        return super()._state_keys() | {"search", "refreshed_at", "chunk", "used", "building"}

    def _parse_state(self, state: Mapping[str, Any]) -> dict[str, Any]:
        parsed = super()._parse_state(state)
        search, refreshed_at = state["search"], state["refreshed_at"]
        if (search is None) != (refreshed_at is None):
            raise ValueError(
                "state['search'] and state['refreshed_at'] must both be None (no embeddings "
                f"yet) or both be set, got search={type(search).__name__} and refreshed_at={refreshed_at!r}"
            )
        parsed["search"] = None if search is None else self._parse_search(search)
        building = state["building"]
        if building is not None:
            if search is None or not isinstance(building, (tuple, list)) or len(building) != 2:
                raise ValueError(
                    "state['building'] must be None or (swap step, structure) of a sampler that has one"
                )
            swap = check_int("state['building'][0]", building[0], low=parsed["global_step"] + 1)
            building = (swap, self._parse_search(building[1]))
        parsed["building"] = building
        parsed["refreshed_at"] = None if refreshed_at is None else check_int(
            "state['refreshed_at']", refreshed_at, low=0, high=parsed["global_step"]
        )
        chunk = state["chunk"]
        if chunk is not None:
            if search is None:
                raise ValueError("state['chunk'] is set but state['search'] is None: a chunk needs the graph or embeddings")
            if not isinstance(chunk, (tuple, list)) or len(chunk) != 3:
                raise ValueError(f"state['chunk'] must be None or (start, value, step), got {chunk!r}")
            start = check_int("state['chunk'][0]", chunk[0], low=0, high=parsed["position"])
            if start >= len(self) and len(self):
                raise ValueError(f"state['chunk'][0] must be < {len(self)} batches per epoch, got {start}")
            chunk = (start, check_probability("state['chunk'][1]", chunk[1]), check_int("state['chunk'][2]", chunk[2], low=0))
        parsed["chunk"] = chunk
        if parsed["epoch"] < self.uniform_epochs:
            if chunk is not None or state["used"] is not None:
                raise ValueError(
                    f"state['chunk'] and state['used'] must be None in epoch {parsed['epoch']}, one of the "
                    f"uniform_epochs={self.uniform_epochs}; pass the dict from state_dict()"
                )
            parsed["used"] = None
        else:
            parsed["used"] = self._parse_used(state["used"], chunk, parsed["position"])
        return parsed

    def _parse_used(self, used: object, chunk: tuple[int, float, int] | None, position: int) -> tuple[int, torch.Tensor] | None:
        resume_at = chunk[0] if chunk is not None else position
        if used is None:
            if self.epoch_policy == "cover" and resume_at > 0 and position < len(self):
                raise ValueError(
                    "state['used'] is None but a covering epoch resumed mid-way needs the "
                    "instances used so far; pass the dict from state_dict()"
                )
            return None
        if self.epoch_policy != "cover":
            raise ValueError(f"state['used'] must be None with epoch_policy={self.epoch_policy!r}")
        if not isinstance(used, (tuple, list)) or len(used) != 2:
            raise ValueError(f"state['used'] must be None or (position, mask), got {type(used).__name__}")
        at, mask = used
        at = check_int("state['used'][0]", at, low=0, high=len(self))
        if at != resume_at:
            raise ValueError(f"state['used'][0] must be {resume_at} (where the batches resume), got {at}")
        if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool or mask.shape != (self.num_instances,):
            raise ValueError(
                f"state['used'][1] must be a BoolTensor of shape ({self.num_instances},), got "
                f"{getattr(mask, 'dtype', type(mask).__name__)} of shape {tuple(getattr(mask, 'shape', ()))}"
            )
        expected = min(at * self.global_batch_size, self.num_instances)
        if int(mask.sum()) != expected:
            raise ValueError(
                f"state['used'][1] marks {int(mask.sum())} instances but {at} batches of "
                f"{self.global_batch_size} use {expected}"
            )
        return at, mask.clone()

    def _apply_state(self, parsed: dict[str, Any]) -> None:
        super()._apply_state(parsed)
        if parsed["search"] is not None:
            self._use_search(parsed["search"])
        self._drop_build()
        if parsed["building"] is not None:
            swap, search = parsed["building"]
            done: Future = Future()
            done.set_result(search)
            self._building = (swap, done)
        self.refreshed_at = parsed["refreshed_at"]
        self._drop_pending()
        self._chunk = None
        used = parsed["used"]
        self._used_record = None if used is None else ((self.epoch, used[0]), used[1])
        if parsed["chunk"] is not None:
            start, value, step = parsed["chunk"]
            self._start_epoch()
            self._draw_chunk(start, value, step)
