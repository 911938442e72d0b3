"""A dglbs batch sampler in PyTorch Lightning training, one process or DDP.

Lightning's loop calls ``set_epoch`` only on ``loader.sampler`` and
``loader.batch_sampler.sampler``, never on a batch sampler, and under DDP it
rebuilds the training loader's batch sampler around a ``DistributedSampler``,
which a dglbs sampler cannot take. The recipe: build the sampler in
``train_dataloader()`` with the trainer's world size and rank, turn Lightning's
rebuild off, and add :class:`SamplerCallback`::

    from dglbs import WalkBatchSampler
    from dglbs.integrations.lightning import SamplerCallback, replica_kwargs

    class Model(L.LightningModule):
        def train_dataloader(self):
            sampler = WalkBatchSampler(len(self.dataset), 64, num_candidates=1000, num_neighbors=100,
                                       restart_prob=0.2, refresh_every=50, **replica_kwargs(self.trainer))
            return DataLoader(self.dataset, batch_sampler=sampler, collate_fn=collate)

        def embed_instances(self, indices):     # (n,) LongTensor -> (n, d) embeddings
            return self.encoder(collate([self.dataset[i] for i in indices.tolist()]).to(self.device))

    trainer = L.Trainer(strategy="ddp", devices=2, use_distributed_sampler=False,
                        callbacks=[SamplerCallback()])
    trainer.fit(Model())

With ``devices=2`` each process takes its half of every global batch of
``2 * 64`` instances (slice ``rank``), so the processes together train on the
global batches a one-process sampler with ``num_replicas=2`` makes. The callback

- checks that the training loader's batch sampler is a dglbs sampler built for
  this trainer's world size and rank, and that ``use_distributed_sampler=False``
  under several processes (otherwise Lightning fails with a ``TypeError`` while
  rebuilding the loader);
- calls ``sampler.set_epoch(trainer.current_epoch)`` at each epoch's start and
  ``sampler.step(n)`` after each training batch with the ``n`` optimizer steps it
  made (none while accumulating gradients), so the ``alpha`` schedule and the
  refreshes follow ``trainer.global_step``;
- before the first batch and whenever ``sampler.refresh_due`` (no refresh after
  the last step) rebuilds the sampler from the ``LightningModule`` in eval mode
  without gradients: each process embeds its shard of the instances
  (``embed_instances(indices)``, or ``embed=``), the shards are all-gathered and
  every process checks that all walk the same graph
  (:func:`dglbs.integrations.refresh_from_shards`). A rebuild after step ``s``
  reaches batch ``s + 2``: Lightning has fetched batch ``s + 1`` already
  (workers, ``num_workers > 0``, fetch further ahead);
- logs per epoch, through ``pl_module.log`` (averaged over processes):
  ``sampler/cost_s`` (seconds drawing a batch), ``sampler/cost_g`` (seconds per
  rebuild), ``sampler/cost_t`` (seconds per training step, from
  ``on_train_batch_start`` to ``on_train_batch_end``), ``sampler/sampler_share``
  (``(Cost_S + Cost_G / steps) / Cost_T``), ``sampler/encode_share`` (the
  encode passes per step over Cost_T) and ``sampler/refreshes``, as
  :class:`dglbs.trainer.Trainer` defines them;
- saves the sampler's state (graph included) in Lightning checkpoints, with the
  position of the batches trained rather than fetched, and restores it on resume.

Importing this module needs ``lightning`` (``pip install 'dglbs[lightning]'``);
``dglbs`` itself does not.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import torch

from dglbs.integrations import SamplerCosts, refresh_from_shards
from dglbs.samplers import ContrastiveBatchSampler, EmbeddingBatchSampler

try:
    import lightning.pytorch as pl
except ImportError as error:
    raise ImportError(
        "dglbs.integrations.lightning needs lightning: pip install -c constraints.txt 'dglbs[lightning]'"
    ) from error

__all__ = ["SamplerCallback", "replica_kwargs"]


def replica_kwargs(trainer: pl.Trainer) -> dict[str, int]:
    """``num_replicas`` and ``rank`` for a sampler built inside ``trainer``'s processes
    (e.g. in ``train_dataloader()``): ``trainer.world_size`` and ``trainer.global_rank``."""
    return {"num_replicas": trainer.world_size, "rank": trainer.global_rank}


class SamplerCallback(pl.Callback):
    """Drives the dglbs batch sampler of the training ``DataLoader`` from a Lightning
    ``Trainer``; see the module docstring for the recipe and what it does.

    Parameters
    ----------
    embed : callable, optional
        ``embed(pl_module, indices)``: the embeddings, a floating-point Tensor of
        shape (n, d), of the dataset instances ``indices`` (a LongTensor of shape
        (n,)), as the model being trained computes them. Default:
        ``pl_module.embed_instances(indices)``. Needed by the kNN and walk samplers;
        called in eval mode under ``torch.no_grad()``, on every process at once
        (each for its shard).
    log_costs : bool
        Log the sampler's costs through ``pl_module.log`` at each epoch's end.

    Attributes
    ----------
    sampler : ContrastiveBatchSampler or None
        The training loader's batch sampler, once training has started.
    refreshes : int
        Rebuilds done in this process so far.
    """

    def __init__(
        self,
        embed: Callable[[pl.LightningModule, torch.Tensor], torch.Tensor] | None = None,
        *,
        log_costs: bool = True,
    ) -> None:
        if embed is not None and not callable(embed):
            raise TypeError(f"embed must be a callable embed(pl_module, indices), got {type(embed).__name__}")
        self.embed = embed
        self.log_costs = bool(log_costs)
        self.sampler: ContrastiveBatchSampler | None = None
        self.refreshes = 0
        self._state_to_restore: dict[str, Any] | None = None
        self._consumed = 0
        self._step_started = (0.0, 0)
        self._costs = SamplerCosts()

    def __repr__(self) -> str:
        embed = "pl_module.embed_instances" if self.embed is None else repr(self.embed)
        return f"{type(self).__name__}(embed={embed}, log_costs={self.log_costs}, refreshes={self.refreshes})"

    # --- Lightning hooks -------------------------------------------------------------------

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        # Lightning keeps this flag on its private connector only; checked here because
        # Lightning rebuilds the loader (and fails) before any training hook runs.
        connector = getattr(trainer, "_accelerator_connector", None)
        if stage == "fit" and trainer.world_size > 1 and getattr(connector, "use_distributed_sampler", False):
            raise ValueError(
                f"training runs on {trainer.world_size} processes with use_distributed_sampler=True, so "
                "Lightning would replace the dglbs batch sampler; pass "
                "Trainer(use_distributed_sampler=False) and build the sampler with "
                "**replica_kwargs(self.trainer) in train_dataloader()"
            )

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.sampler = None  # each fit adopts its loader's sampler afresh
        sampler = self._use_loader_sampler(trainer, pl_module)
        # Resuming mid-epoch skips on_train_epoch_start.
        sampler.set_epoch(trainer.current_epoch)
        self._consumed = sampler.resume_position
        # The rebuild before training counts towards the first epoch's costs.
        self._costs = SamplerCosts(sampling_mark=sampler.sampling_seconds)
        self._refresh_if_due(pl_module)

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        sampler = self._use_loader_sampler(trainer, pl_module)
        sampler.set_epoch(trainer.current_epoch)
        self._consumed = sampler.resume_position
        self._refresh_if_due(pl_module)

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        self._step_started = (time.perf_counter(), trainer.global_step)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        started, global_step = self._step_started
        self._costs.step_seconds += time.perf_counter() - started
        self._costs.steps += 1
        self._consumed += 1
        optimizer_steps = trainer.global_step - global_step
        if optimizer_steps > 0:
            self.sampler.step(optimizer_steps)
            if trainer.global_step < trainer.estimated_stepping_batches:
                self._refresh_if_due(pl_module)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.log_costs:
            metrics = self._costs.metrics(self.sampler.sampling_seconds)
            pl_module.log_dict(metrics, on_step=False, on_epoch=True, sync_dist=True)
        self._costs = SamplerCosts(sampling_mark=self.sampler.sampling_seconds)

    def state_dict(self) -> dict[str, Any]:
        if self.sampler is None:
            return {}
        state = self.sampler.state_dict()
        # The loader fetches ahead of training; resume after the batches trained on.
        state["position"] = min(self._consumed, len(self.sampler))
        return {"sampler": state}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._state_to_restore = state_dict.get("sampler")

    # --- the work ----------------------------------------------------------------------------

    def _use_loader_sampler(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> ContrastiveBatchSampler:
        """The training loader's batch sampler, checked against the trainer."""
        sampler = getattr(trainer.train_dataloader, "batch_sampler", None)
        if not isinstance(sampler, ContrastiveBatchSampler):
            raise TypeError(
                "SamplerCallback drives the training DataLoader's batch_sampler, which must be a dglbs "
                "sampler: return DataLoader(dataset, batch_sampler=sampler) (one loader) from "
                f"train_dataloader(); got batch_sampler {type(sampler).__name__} of "
                f"{type(trainer.train_dataloader).__name__}"
            )
        if (sampler.num_replicas, sampler.rank) != (trainer.world_size, trainer.global_rank):
            raise ValueError(
                f"the sampler has num_replicas={sampler.num_replicas}, rank={sampler.rank} but this process is "
                f"rank {trainer.global_rank} of {trainer.world_size}; build it in train_dataloader() with "
                "**replica_kwargs(self.trainer)"
            )
        if isinstance(sampler, EmbeddingBatchSampler) and self.embed is None \
                and not callable(getattr(pl_module, "embed_instances", None)):
            raise TypeError(
                f"{type(sampler).__name__} builds its batches from embeddings: define "
                f"{type(pl_module).__name__}.embed_instances(indices) or pass SamplerCallback(embed=...)"
            )
        if sampler is not self.sampler:
            self._adopt(sampler, trainer)
        return sampler

    def _adopt(self, sampler: ContrastiveBatchSampler, trainer: pl.Trainer) -> None:
        """Start driving ``sampler``: the checkpointed state if resuming, the training
        length for its schedule, and the progress Lightning has made (a loader
        reloaded by ``reload_dataloaders_every_n_epochs`` brings a fresh sampler)."""
        if self._state_to_restore is not None:
            sampler.load_state_dict(self._state_to_restore)
            self._state_to_restore = None
        if hasattr(sampler, "set_total_steps") and math.isfinite(trainer.estimated_stepping_batches):
            sampler.set_total_steps(int(trainer.estimated_stepping_batches))
        if sampler.global_step < trainer.global_step:
            sampler.step(trainer.global_step - sampler.global_step)
        self._costs.sampling_mark = sampler.sampling_seconds
        self.sampler = sampler

    def _refresh_if_due(self, pl_module: pl.LightningModule) -> None:
        if isinstance(self.sampler, EmbeddingBatchSampler) and self.sampler.refresh_due:
            self.refresh(pl_module)

    def refresh(self, pl_module: pl.LightningModule) -> None:
        """Rebuild the sampler from ``pl_module``'s embeddings of all instances, each
        process embedding its shard; every process must call it at the same time.
        The module's train/eval mode is restored afterwards."""
        if self.embed is None:
            def embed(indices: torch.Tensor) -> torch.Tensor:
                return pl_module.embed_instances(indices)
        else:
            def embed(indices: torch.Tensor) -> torch.Tensor:
                return self.embed(pl_module, indices)
        was_training = pl_module.training
        pl_module.eval()
        try:
            with torch.no_grad():
                encode_seconds, build_seconds = refresh_from_shards(self.sampler, embed)
        finally:
            pl_module.train(was_training)
        self._costs.encode_seconds += encode_seconds
        self._costs.build_seconds += build_seconds
        self._costs.refreshes += 1
        self.refreshes += 1
