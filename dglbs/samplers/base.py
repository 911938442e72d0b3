"""The protocol every dglbs batch sampler follows."""
from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import Sampler

from .._checks import check_int


class ContrastiveBatchSampler(Sampler[list[int]]):
    """Base class: yields lists of dataset indices, one mini-batch at a time.

    Usable as ``DataLoader(dataset, batch_sampler=sampler)`` and
    ``dgl.dataloading.GraphDataLoader(dataset, batch_sampler=sampler)``.

    Parameters
    ----------
    num_instances : int
        ``N``, the dataset length.
    batch_size : int
        ``B``, indices per batch on this process.
    drop_last : bool
        Drop the last, incomplete batch of an epoch.
    seed : int
        Base seed; epoch ``e`` draws from ``seed + e`` (call :meth:`set_epoch`).
    num_replicas, rank : int
        For distributed training: every process builds the same global batch of
        ``B * num_replicas`` indices and takes slice ``rank``; all ranks yield the
        same number of batches.

    Notes
    -----
    Training progress (for schedules and graph refreshes) comes from the training
    loop through :meth:`step`, never from batches yielded: a ``DataLoader`` draws
    batches ahead of training.
    """

    def __init__(
        self,
        num_instances: int,
        batch_size: int,
        *,
        drop_last: bool = False,
        seed: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
    ) -> None:
        self.num_instances = check_int("num_instances", num_instances, low=1)
        self.num_replicas = check_int("num_replicas", num_replicas, low=1)
        self.rank = check_int("rank", rank, low=0, high=self.num_replicas - 1)
        self.batch_size = check_int("batch_size", batch_size, low=1)
        if self.batch_size * self.num_replicas > self.num_instances:
            raise ValueError(
                f"batch_size ({self.batch_size}) x num_replicas ({self.num_replicas}) "
                f"exceeds the dataset length ({self.num_instances}); use a smaller "
                "batch_size"
            )
        if not isinstance(drop_last, bool):
            raise TypeError(f"drop_last must be a bool, got {drop_last!r}")
        self.drop_last = drop_last
        self.seed = check_int("seed", seed, low=0)
        self.epoch = 0
        self.global_step = 0
        self.position = 0
        self._resume_at = 0
        self.sampling_seconds = 0.0
        """Time spent drawing batches so far (the paper's Cost_S, summed)."""

    @property
    def resume_position(self) -> int:
        """Batches the next pass skips, as restored by :meth:`load_state_dict`."""
        return self._resume_at

    @property
    def global_batch_size(self) -> int:
        """Indices per step over all replicas, ``B * num_replicas``."""
        return self.batch_size * self.num_replicas

    def __len__(self) -> int:
        """Batches per epoch: ``ceil(N / (B * num_replicas))``, floor with ``drop_last``."""
        if self.drop_last:
            return self.num_instances // self.global_batch_size
        return -(-self.num_instances // self.global_batch_size)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch, which reseeds the draws with ``seed + epoch``.

        A position restored by :meth:`load_state_dict` survives setting the same
        epoch again and is dropped for any other epoch.
        """
        epoch = check_int("epoch", epoch, low=0)
        if epoch != self.epoch:
            self._resume_at = 0
        self.epoch = epoch

    def step(self, num_steps: int = 1) -> None:
        """Report ``num_steps`` optimizer steps done by the training loop."""
        self.global_step += check_int("num_steps", num_steps, low=0)

    def epoch_generator(self) -> torch.Generator:
        """A CPU generator seeded with ``seed + epoch``."""
        return torch.Generator().manual_seed(self.seed + self.epoch)

    def __iter__(self) -> Iterator[list[int]]:
        self.position, self._resume_at = self._resume_at, 0
        self._start_epoch()
        while self.position < len(self):
            start = time.perf_counter()
            batch = self._global_batch(self.position)
            self.sampling_seconds += time.perf_counter() - start
            self.position += 1
            share = batch.numel() // self.num_replicas
            yield batch[self.rank * share : (self.rank + 1) * share].tolist()

    def _start_epoch(self) -> None:
        """Prepare the draws of ``self.epoch``; called at the start of each pass."""

    def _global_batch(self, position: int) -> torch.Tensor:
        """Global batch number ``position`` of the epoch, a LongTensor whose length
        is a multiple of ``num_replicas``."""
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        """State to resume from: after :meth:`load_state_dict`, the next pass yields
        exactly the batches this one had not yielded yet.

        ``position`` counts batches yielded in the current epoch. With a prefetching
        ``DataLoader`` (``num_workers > 0``) that runs ahead of training; a training
        loop that checkpoints should overwrite it with the batches it consumed.
        """
        return {
            "num_instances": self.num_instances,
            "batch_size": self.batch_size,
            "num_replicas": self.num_replicas,
            "seed": self.seed,
            "drop_last": self.drop_last,
            "epoch": self.epoch,
            "position": self.position,
            "global_step": self.global_step,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a state from :meth:`state_dict` of a sampler with the same
        ``num_instances``, ``batch_size``, ``num_replicas``, ``seed`` and ``drop_last``."""
        for key in ("num_instances", "batch_size", "num_replicas", "seed", "drop_last"):
            if key not in state:
                raise ValueError(f"state has no {key!r}; pass the dict from state_dict()")
            if state[key] != getattr(self, key):
                raise ValueError(
                    f"state was saved with {key}={state[key]!r} but this sampler has "
                    f"{key}={getattr(self, key)!r}; construct the sampler as it was"
                )
        position = check_int("position", state["position"], low=0, high=len(self))
        self.epoch = check_int("epoch", state["epoch"], low=0)
        self.global_step = check_int("global_step", state["global_step"], low=0)
        self.position = self._resume_at = position

    def _describe(self) -> str:
        return (
            f"num_instances={self.num_instances}, batch_size={self.batch_size}, "
            f"drop_last={self.drop_last}, seed={self.seed}, "
            f"num_replicas={self.num_replicas}, rank={self.rank}"
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._describe()})"
