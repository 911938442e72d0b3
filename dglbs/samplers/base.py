"""The protocol every dglbs batch sampler follows."""
from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from typing import Any

import torch
from torch.utils.data import Sampler

from .._checks import check_int
from .._seeds import generator_for

EPOCH_STREAM = 0
"""Stream key of the per-epoch permutation (see :func:`dglbs._seeds.mix_seed`)."""


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
        Base seed; epoch ``e`` draws from a stream mixed from ``(seed, e)`` (call
        :meth:`set_epoch`), so different seeds never replay each other's epochs.
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
        """Select the epoch, which reseeds the draws from ``(seed, epoch)``.

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
        """A CPU generator for this epoch's permutation, seeded from ``(seed, epoch)``."""
        return generator_for(self.seed, self.epoch, EPOCH_STREAM)

    def shuffled_order(self) -> torch.Tensor:
        """This epoch's permutation of the instances, padded by wrapping around to a
        multiple of ``num_replicas`` (as ``DistributedSampler`` does), so the last, smaller
        global batch still splits evenly: LongTensor of shape (N + padding,)."""
        order = torch.randperm(self.num_instances, generator=self.epoch_generator())
        return torch.cat([order, order[: -self.num_instances % self.num_replicas]])

    def slice_of(self, order: torch.Tensor, position: int) -> torch.Tensor:
        """Global batch ``position`` when batches are consecutive slices of ``order``
        (a :meth:`shuffled_order`)."""
        start = position * self.global_batch_size
        return order[start : start + self.global_batch_size]

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

    def config(self) -> dict[str, Any]:
        """The construction arguments a state must have been saved with."""
        return {
            "num_instances": self.num_instances,
            "batch_size": self.batch_size,
            "num_replicas": self.num_replicas,
            "seed": self.seed,
            "drop_last": self.drop_last,
        }

    def state_dict(self) -> dict[str, Any]:
        """State to resume from: after :meth:`load_state_dict`, the next pass yields
        exactly the batches this one had not yielded yet.

        ``position`` counts batches yielded in the current epoch. With a prefetching
        ``DataLoader`` (``num_workers > 0``) that runs ahead of training; a training
        loop that checkpoints should overwrite it with the batches it consumed.
        """
        return {
            "kind": type(self).__name__,
            **self.config(),
            "epoch": self.epoch,
            "position": self.position,
            "global_step": self.global_step,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a state from :meth:`state_dict` of a sampler of the same class and
        construction arguments.

        Every field is checked before anything changes: a state that does not fit
        raises ``TypeError``/``ValueError`` naming the field, and leaves the sampler
        exactly as it was.
        """
        if not isinstance(state, Mapping):
            raise TypeError(f"state must be a dict from state_dict(), got {type(state).__name__}")
        expected = self._state_keys()
        missing = sorted(expected - state.keys())
        unknown = sorted(state.keys() - expected)
        if missing or unknown:
            raise ValueError(
                f"state does not fit a {type(self).__name__}: missing keys {missing}, "
                f"unknown keys {unknown}; pass the dict from state_dict() of the same sampler class"
            )
        if state["kind"] != type(self).__name__:
            raise ValueError(
                f"state['kind'] is {state['kind']!r} but this sampler is a {type(self).__name__}; "
                "load it into a sampler of the class that saved it"
            )
        for key, value in self.config().items():
            saved = state[key]
            if type(saved) is not type(value) or saved != value:
                raise ValueError(
                    f"state was saved with {key}={saved!r} but this sampler has "
                    f"{key}={value!r}; construct the sampler as it was"
                )
        parsed = self._parse_state(state)
        before = dict(self.__dict__)
        try:
            self._apply_state(parsed)
        except BaseException:
            # Nothing half-loaded: restore every attribute the failed load replaced.
            self.__dict__.clear()
            self.__dict__.update(before)
            raise

    def _state_keys(self) -> set[str]:
        return {"kind", *self.config(), "epoch", "position", "global_step"}

    def _parse_state(self, state: Mapping[str, Any]) -> dict[str, Any]:
        """Checked values of ``state``; raises on the first bad field, changes nothing."""
        return {
            "position": check_int("state['position']", state["position"], low=0, high=len(self)),
            "epoch": check_int("state['epoch']", state["epoch"], low=0),
            "global_step": check_int("state['global_step']", state["global_step"], low=0),
        }

    def _apply_state(self, parsed: dict[str, Any]) -> None:
        self.epoch = parsed["epoch"]
        self.global_step = parsed["global_step"]
        self.position = self._resume_at = parsed["position"]

    def _describe(self) -> str:
        return (
            f"num_instances={self.num_instances}, batch_size={self.batch_size}, "
            f"drop_last={self.drop_last}, seed={self.seed}, "
            f"num_replicas={self.num_replicas}, rank={self.rank}"
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._describe()})"
