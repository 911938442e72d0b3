"""The shared, modality-free contrastive training loop (paper Algorithm 1).

The trainer logs to the ``dglbs.trainer`` logger (one INFO line per epoch with the
loss and the Cost_S / Cost_G / Cost_T figures; refreshes and checkpoints at DEBUG),
shows progress bars for training and encode passes (by default only when stderr is a
terminal), and writes per-step and per-epoch figures to a JSON Lines file and/or
TensorBoard when asked (``metrics_path``, ``tensorboard_dir``; see :mod:`dglbs.metrics`).
Launched with ``torchrun`` it trains with every process (see :class:`Trainer`).
"""
from __future__ import annotations

import copy
import logging
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from ._checks import check_int
from .bank import EmbeddingBank
from .diagnostics import false_negative_rate, pairwise_cosine
from .distributed import (
    all_gather_rows, broadcast_buffers, check_same_graph, gather_embeddings, init_from_torchrun_env,
    world_size_and_rank,
)
from .losses import ContrastiveLoss
from .method import ContrastiveMethod
from .metrics import MetricsWriter
from .samplers import ContrastiveBatchSampler, EmbeddingBatchSampler

REFRESH_SOURCES = ("encode", "bank")

logger = logging.getLogger(__name__)


def progress_disabled(progress: bool | None) -> bool | None:
    """tqdm's ``disable`` for a ``progress`` option: None shows bars only on a terminal."""
    return None if progress is None else not progress


def to_device(batch: Any, device: torch.device) -> Any:
    """Move tensors and DGL graphs, also inside tuples, lists and dicts, to ``device``."""
    if hasattr(batch, "to") and callable(batch.to):
        return batch.to(device)
    if isinstance(batch, (tuple, list)):
        return type(batch)(to_device(item, device) for item in batch)
    if isinstance(batch, dict):
        return {key: to_device(value, device) for key, value in batch.items()}
    return batch


def summarize_history(history: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Whole-run costs from :meth:`Trainer.fit`'s per-epoch stats.

    Returns
    -------
    dict
        ``steps`` and ``refreshes`` (totals); ``cost_s``, ``cost_t``,
        ``sampler_share`` and ``encode_share`` averaged over steps; ``cost_g``
        averaged over refreshes. Averages are NaN when there is nothing to average.
    """
    steps = sum(stats["steps"] for stats in history)
    refreshes = sum(stats["refreshes"] for stats in history)

    def mean(key: str, weight: str, total: int) -> float:
        return sum(stats[key] * stats[weight] for stats in history) / total if total else math.nan

    summary = {key: mean(key, "steps", steps) for key in ("cost_s", "cost_t", "sampler_share", "encode_share")}
    return summary | {"steps": steps, "refreshes": refreshes, "cost_g": mean("cost_g", "refreshes", refreshes)}


def _bank_rows(z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    """What the embedding bank keeps of a step's two views: their normalised sum."""
    return F.normalize(z1 + z2, dim=1)


def _split_over_processes(sampler: ContrastiveBatchSampler, world_size: int, rank: int) -> None:
    """Make ``sampler`` process ``rank``'s replica of a ``world_size``-process run.

    A sampler built for one process keeps its global batch: its ``batch_size`` is
    split over the processes. Changing the three attributes in place is safe for a
    sampler that has drawn nothing yet: every length and slice is computed from them
    when needed.
    """
    if (sampler.num_replicas, sampler.rank) == (world_size, rank):
        return
    if sampler.num_replicas != 1:
        raise ValueError(
            f"sampler was built with num_replicas={sampler.num_replicas}, rank={sampler.rank} but this is "
            f"process {rank} of {world_size}; build it with num_replicas={world_size}, rank={rank} "
            "(batch_size per process), or for one process (the Trainer splits its batches)"
        )
    if sampler.global_step or sampler.position:
        raise ValueError(
            f"sampler built for one process has already been used (step {sampler.global_step}, "
            f"{sampler.position} batches into epoch {sampler.epoch}); give the Trainer a new sampler "
            "to split over the processes"
        )
    if sampler.batch_size % world_size:
        raise ValueError(
            f"sampler built for one process has batch_size {sampler.batch_size}, which the Trainer splits "
            f"over {world_size} processes, so it must be a multiple of {world_size}; change batch_size, or "
            f"build the sampler with num_replicas={world_size}, rank={rank} (batch_size per process)"
        )
    sampler.batch_size //= world_size
    sampler.num_replicas, sampler.rank = world_size, rank


def _checked_rng_state(name: str, rng: object) -> torch.Tensor:
    if not isinstance(rng, torch.Tensor) or rng.dtype != torch.uint8 or rng.dim() != 1:
        raise ValueError(f"{name} must be a 1-D uint8 tensor from torch.get_rng_state(), got {rng!r:.80}")
    return rng


class Trainer:
    """Train a :class:`~dglbs.method.ContrastiveMethod` with any dglbs batch sampler.

    Each step draws a batch of indices from ``sampler``, collates
    ``dataset[i]`` for them, computes the method's two views and the loss, and
    updates the parameters. Samplers that need embeddings (kNN, walk) are
    refreshed before training and then every ``sampler.refresh_every`` steps, from
    a full encode pass of ``method.embed`` (``refresh="encode"``, the paper) or from
    an :class:`~dglbs.bank.EmbeddingBank` of the projections ``z1 + z2`` the training
    steps already computed (``refresh="bank"``, no extra encoder cost; the bank is
    filled once, before training, by a pass of the method's views).

    **Several processes.** When the default ``torch.distributed`` process group is
    initialised, or when ``torchrun``'s environment names several processes (then the
    trainer initialises the group itself: gloo for a CPU ``device``, nccl for CUDA,
    where ``device="cuda"`` means ``cuda:LOCAL_RANK``), every process trains one
    replica, so a script runs unchanged under ``torchrun --nproc_per_node W``:

    - The sampler: a sampler built for one process keeps its global batch and the
      trainer splits ``batch_size`` over the processes (it must be a multiple of
      ``W``), so the processes train on the batches, negatives, epochs and
      refreshes that the same script draws in one process; launching with
      ``torchrun`` divides the work, it does not change the experiment. A sampler
      built with ``num_replicas=W, rank=r`` is used as it is (``batch_size`` per
      process); one built for another world size or rank raises ``ValueError``.
    - The model is wrapped in ``DistributedDataParallel`` for the training steps.
      BatchNorm layers normalise over each process's slice (convert them with
      ``nn.SyncBatchNorm`` on GPUs for whole-batch statistics); encode passes use
      rank 0's buffers, as DDP's forward does.
    - The loss (``gather_negatives=True``): each process's views are all-gathered
      with gradients, a :class:`~dglbs.losses.ContrastiveLoss` takes this process's
      rows as anchors against every process's rows (any other loss is computed on
      the whole gathered batch in every process), so the loss and the parameters
      after each step are those of one process training on the global batch.
      ``gather_negatives=False``: each process contrasts its own slice only.
    - A refresh: with ``refresh="encode"`` each process encodes one shard of the
      instances and the shards are all-gathered; with ``refresh="bank"`` every
      process writes every process's rows of each step into its bank. Every
      process then builds the same graph, and :func:`~dglbs.distributed.check_same_graph`
      verifies it (``RuntimeError`` on a mismatch; with ``build_lag``, when the
      graph takes over).
    - Rank 0 alone writes checkpoints (the others wait until the file is complete;
      it holds every process's random state and method buffers and extra state,
      so a resume is exact in every process), metrics, log lines and progress bars.
      :meth:`fit` returns the same losses and batch diagnostics (those of the global
      batch) in every process; the cost figures (Cost_S, Cost_G, Cost_T, shares)
      are each process's own. ``on_epoch_end`` runs in every process.

    Parameters
    ----------
    method : ContrastiveMethod
        Encoder, views and head.
    loss : nn.Module
        ``loss(z1, z2)`` -> scalar, e.g. :class:`~dglbs.losses.InfoNCELoss`.
    sampler : ContrastiveBatchSampler
        Over ``len(dataset)`` instances.
    dataset : Sequence
        ``dataset[i]`` is one instance; ``collate_fn`` turns a list of them into
        the batch the method takes.
    collate_fn : callable
    optimizer : torch.optim.Optimizer, optional
        Default: Adam over ``method.parameters()`` with ``lr``.
    lr : float
    lr_scheduler : callable, optional
        ``lr_scheduler(optimizer)`` -> a ``torch.optim.lr_scheduler`` stepped after
        every optimizer step, e.g. ``lambda opt: LambdaLR(opt, lambda s: 1 - s / total)``.
    max_grad_norm : float, optional
        Clip the gradients' global norm to this before each step.
    device : str or torch.device
    refresh : {"encode", "bank"}
    encode_batch_size : int
        Batch size of encode passes.
    labels : Tensor of shape (N,), optional
        Class labels, only for the false-negative-rate diagnostic.
    checkpoint_path : str or Path, optional
        Where to save checkpoints: at the end of every epoch and every
        ``checkpoint_every`` steps. Written atomically.
    checkpoint_every : int, optional
    progress : bool, optional
        Show progress bars for training and encode passes; default (None): only
        when stderr is a terminal, so logs and notebooks stay free of them.
    metrics_path : str or Path, optional
        JSON Lines file that receives one ``{"event": "step", ...}`` record per
        training step (epoch, global step, loss, learning rate, mean in-batch
        similarity, false-negative rate with ``labels``, seconds, the walk's
        restart probability) and one ``{"event": "epoch", ...}`` record per epoch
        (the stats :meth:`fit` returns). Appended to, so a resumed run continues it.
    tensorboard_dir : str or Path, optional
        Also log the same figures to TensorBoard (needs the ``tensorboard``
        package: ``pip install 'dglbs[tensorboard]'``).
    gather_negatives : bool
        Under several processes: contrast each anchor with the rows of every
        process's slice (all-gathered with gradients, as SimCLR, MoCo v3 and SimCSE
        do), or, with False, with its own process's slice only. No effect in one
        process.

    Attributes
    ----------
    world_size, rank : int
        The processes training together and this one's rank (1 and 0 alone).
    """

    def __init__(
        self,
        method: ContrastiveMethod,
        loss: nn.Module,
        sampler: ContrastiveBatchSampler,
        dataset: Sequence,
        *,
        collate_fn: Callable[[list[Any]], Any],
        optimizer: torch.optim.Optimizer | None = None,
        lr: float = 1e-3,
        lr_scheduler: Callable[[torch.optim.Optimizer], Any] | None = None,
        max_grad_norm: float | None = None,
        device: str | torch.device = "cpu",
        refresh: str = "encode",
        encode_batch_size: int = 256,
        labels: torch.Tensor | None = None,
        checkpoint_path: str | Path | None = None,
        checkpoint_every: int | None = None,
        progress: bool | None = None,
        metrics_path: str | Path | None = None,
        tensorboard_dir: str | Path | None = None,
        gather_negatives: bool = True,
    ) -> None:
        if not isinstance(sampler, ContrastiveBatchSampler):
            raise TypeError(f"sampler must be a dglbs ContrastiveBatchSampler, got {type(sampler).__name__}")
        if sampler.num_instances != len(dataset):
            raise ValueError(
                f"sampler is over {sampler.num_instances} instances but the dataset has {len(dataset)}"
            )
        if refresh not in REFRESH_SOURCES:
            raise ValueError(f"refresh must be one of {REFRESH_SOURCES}, got {refresh!r}")
        if labels is not None:
            labels = torch.as_tensor(labels)
            if labels.shape != (len(dataset),):
                raise ValueError(f"labels must have shape ({len(dataset)},), got {tuple(labels.shape)}")
        if checkpoint_every is not None and checkpoint_every < 1:
            raise ValueError(f"checkpoint_every must be >= 1, got {checkpoint_every}")
        if progress is not None and not isinstance(progress, bool):
            raise TypeError(f"progress must be True, False or None (only on a terminal), got {progress!r}")
        if not isinstance(gather_negatives, bool):
            raise TypeError(f"gather_negatives must be a bool, got {gather_negatives!r}")
        self.device = torch.device(device)
        init_from_torchrun_env(self.device)
        self.world_size, self.rank = world_size_and_rank()
        if self.world_size > 1:
            self.device = self._process_device()
            _split_over_processes(sampler, self.world_size, self.rank)
        self.gather_negatives = gather_negatives
        self.method = method.to(self.device)
        # What training steps call: the method, or under several processes its DDP wrapper.
        self._step_module: nn.Module = self.method
        if self.world_size > 1:
            self._step_module = DistributedDataParallel(
                self.method, device_ids=[self.device] if self.device.type == "cuda" else None
            )
        self.loss = loss
        self.sampler = sampler
        self.dataset = dataset
        self.collate_fn = collate_fn
        self.optimizer = optimizer or torch.optim.Adam(method.parameters(), lr=lr)
        self.lr_scheduler = None if lr_scheduler is None else lr_scheduler(self.optimizer)
        if max_grad_norm is not None and not max_grad_norm > 0:
            raise ValueError(f"max_grad_norm must be positive, got {max_grad_norm}")
        self.max_grad_norm = max_grad_norm
        self.refresh = refresh
        self.encode_batch_size = encode_batch_size
        self.labels = labels
        self.checkpoint_path = None if checkpoint_path is None else Path(checkpoint_path)
        self.checkpoint_every = checkpoint_every
        self.progress = progress
        # Rank 0 writes the figures of the run (the same in every process, costs aside).
        self.metrics = MetricsWriter(metrics_path, tensorboard_dir) if self.rank == 0 else MetricsWriter()
        self.bank: EmbeddingBank | None = None
        self.epoch = 0
        self.history: list[dict[str, Any]] = []
        self._encode_seconds = 0.0
        self._graph_seconds = 0.0
        self._refreshes = 0
        self._tally: dict[str, Any] | None = None
        self._resumed_epoch: dict[str, Any] | None = None

    def _process_device(self) -> torch.device:
        """This process's device under several processes: ``cuda`` means
        ``cuda:LOCAL_RANK`` (one GPU per process, as ``torchrun`` numbers them)."""
        device = self.device
        if dist.get_backend() == "nccl" and device.type != "cuda":
            raise ValueError(
                f"the default process group uses nccl, which needs CUDA tensors, but device is {str(device)!r}; "
                "pass device='cuda', or initialise the group with the gloo backend"
            )
        if device.type == "cuda":
            if device.index is None:
                device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", torch.cuda.current_device())))
            torch.cuda.set_device(device)  # where nccl's collectives run
        return device

    def __repr__(self) -> str:
        processes = f", process {self.rank} of {self.world_size}" if self.world_size > 1 else ""
        return (f"Trainer(method={type(self.method).__name__}, loss={self.loss!r}, sampler={self.sampler!r}, "
                f"refresh={self.refresh!r}, device={str(self.device)!r}{processes})")

    @property
    def needs_embeddings(self) -> bool:
        return isinstance(self.sampler, EmbeddingBatchSampler)

    @property
    def _bars_disabled(self) -> bool | None:
        """tqdm's ``disable``: bars as ``progress`` says, in rank 0 only."""
        return progress_disabled(self.progress) if self.rank == 0 else True

    def collate(self, indices: Sequence[int]) -> Any:
        return to_device(self.collate_fn([self.dataset[i] for i in indices]), self.device)

    def encode(self, dataset: Sequence | None = None, *, projections: bool = False) -> torch.Tensor:
        """``method.embed`` of every instance, in order, in eval mode; with
        ``projections``, the bank's quantity: normalised ``z1 + z2`` of the views.

        Runs in this process alone, also under several processes (e.g. on rank 0
        after training); refreshes share the work between processes.

        Returns
        -------
        Tensor of shape (len(dataset), d) on the trainer's device.
        """
        dataset = self.dataset if dataset is None else dataset
        return self._encode(dataset, range(len(dataset)), projections=projections)

    @torch.no_grad()
    def _encode(self, dataset: Sequence, indices: Sequence[int], *, projections: bool) -> torch.Tensor:
        """:meth:`encode` of ``dataset[i]`` for ``i`` in ``indices``: Tensor of shape (len(indices), d)."""
        was_training = self.method.training
        self.method.eval()
        try:
            parts = []
            with tqdm(total=len(indices), desc="encode", unit="instance", leave=False,
                      disable=self._bars_disabled) as bar:
                for start in range(0, len(indices), self.encode_batch_size):
                    chunk = indices[start : start + self.encode_batch_size]
                    batch = to_device(self.collate_fn([dataset[i] for i in chunk]), self.device)
                    parts.append(_bank_rows(*self.method(batch)) if projections else self.method.embed(batch))
                    bar.update(len(chunk))
            return torch.cat(parts)
        finally:
            self.method.train(was_training)

    def _encode_shared(self, *, projections: bool = False) -> torch.Tensor:
        """:meth:`encode` of the training set, each process encoding one shard
        (:func:`~dglbs.distributed.gather_embeddings`) with rank 0's buffers."""
        broadcast_buffers(self.method)
        return gather_embeddings(
            lambda indices: self._encode(self.dataset, indices.tolist(), projections=projections), len(self.dataset)
        )

    def refresh_sampler(self) -> None:
        """Hand the sampler fresh embeddings (paper: rebuild the proximity graph).

        The time to obtain the embeddings (encode pass) and the sampler's rebuild
        (Cost_G) are accounted separately. Under several processes every process
        must call it: they share the encode pass and compare their graphs."""
        start = time.perf_counter()
        if self.refresh == "bank":
            if self.bank is None:
                projections = self._encode_shared(projections=True)
                self.bank = EmbeddingBank(*projections.shape, device=self.device)
                self.bank.update(torch.arange(len(projections)), projections)
            embeddings = self.bank.embeddings
        else:
            embeddings = self._encode_shared()
        built = time.perf_counter()
        # With build_lag, the new graph takes over later; it is checked then (_train_epoch).
        takes_over_later = self.sampler.ready and self.sampler.build_lag > 0
        self.sampler.set_embeddings(embeddings)
        if not takes_over_later:
            check_same_graph(self.sampler)
        done = time.perf_counter()
        self._encode_seconds += built - start
        self._graph_seconds += done - built
        self._refreshes += 1
        logger.debug("refresh %d at step %d: embeddings (%s) in %.3f s, sampler rebuilt in %.3f s",
                     self._refreshes, self.sampler.global_step, self.refresh, built - start, done - built)

    def fit(
        self,
        epochs: int,
        *,
        resume_from: str | Path | None = None,
        on_epoch_end: Callable[[Trainer, dict[str, Any]], None] | None = None,
    ) -> list[dict[str, Any]]:
        """Train until ``epochs`` epochs are done; returns one stats dict per epoch.

        With ``resume_from`` (a checkpoint of this trainer's configuration),
        training continues exactly where the checkpoint left off.
        ``on_epoch_end(trainer, stats)`` runs after each epoch, before its
        checkpoint; it may add entries to ``stats`` (e.g. a kNN-monitor accuracy).
        """
        if resume_from is not None:
            self.load_checkpoint(resume_from)
            check_same_graph(self.sampler)
            if self.rank == 0:
                logger.info("resumed from %s at epoch %d, step %d", resume_from, self.epoch, self.sampler.global_step)
        self.metrics.open()
        try:
            return self._fit(epochs, on_epoch_end)
        finally:
            self.metrics.close()

    def _fit(
        self, epochs: int, on_epoch_end: Callable[[Trainer, dict[str, Any]], None] | None
    ) -> list[dict[str, Any]]:
        total_steps = epochs * len(self.sampler)
        if hasattr(self.sampler, "set_total_steps"):
            self.sampler.set_total_steps(total_steps)
        # The refresh before training counts towards the first epoch's costs.
        marks = self._cost_marks()
        if self.needs_embeddings and self.sampler.refresh_due:
            self.refresh_sampler()
        self._step_module.train()
        while self.epoch < epochs:
            self.sampler.set_epoch(self.epoch)
            stats = self._train_epoch(total_steps, marks)
            if on_epoch_end is not None:
                on_epoch_end(self, stats)
            self.metrics.write("epoch", stats, index=self.epoch)
            self.history.append(stats)
            self._tally = None
            marks = self._cost_marks()
            self.epoch += 1
            self.save_checkpoint()
        return self.history

    def _cost_marks(self) -> tuple[float, float, float, int]:
        """Running totals the per-epoch costs are differences of."""
        return self.sampler.sampling_seconds, self._encode_seconds, self._graph_seconds, self._refreshes

    def _epoch_so_far(self) -> dict[str, Any]:
        """The running epoch's per-step figures and costs so far (saved in checkpoints,
        so a resumed epoch's statistics cover the whole epoch)."""
        tally = self._tally
        now = self._cost_marks()
        return {
            "losses": list(tally["losses"]),
            "similarities": list(tally["similarities"]),
            "false_negatives": list(tally["false_negatives"]),
            "step_seconds": tally["step_seconds"],
            # Cost totals: what earlier processes spent plus this one's since the marks.
            "costs": [carried + current - mark for carried, current, mark in zip(tally["costs"], now, tally["marks"])],
        }

    def _train_epoch(self, total_steps: int, marks: tuple[float, float, float, int]) -> dict[str, Any]:
        sampler = self.sampler
        if self._resumed_epoch is not None:
            # Resumed mid-epoch: go on from the interrupted epoch's figures.
            resumed, self._resumed_epoch = self._resumed_epoch, None
            self._tally = {key: resumed[key] for key in ("losses", "similarities", "false_negatives", "step_seconds")}
            self._tally |= {"costs": resumed["costs"], "marks": list(marks)}
        else:
            self._tally = {"losses": [], "similarities": [], "false_negatives": [], "step_seconds": 0.0,
                           "costs": [0.0, 0.0, 0.0, 0], "marks": list(marks)}
        tally = self._tally
        losses, similarities, false_negatives = tally["losses"], tally["similarities"], tally["false_negatives"]
        bar = tqdm(total=len(sampler), initial=sampler.resume_position, desc=f"epoch {self.epoch}",
                   unit="step", disable=self._bars_disabled, leave=False)
        for indices in sampler:
            # The learning rate and alpha this step trains with.
            record = {"epoch": self.epoch, "step": sampler.global_step + 1,
                      "lr": self.optimizer.param_groups[0]["lr"]}
            if hasattr(sampler, "current_restart_prob"):
                record["restart_prob"] = sampler.current_restart_prob
            start = time.perf_counter()
            batch = self.collate(indices)
            z1, z2 = self._step_module(batch)
            # Under several processes, `whole` is the global batch: every process's slice.
            loss, batch_loss, whole = self._loss(indices, z1, z2)
            if not torch.isfinite(batch_loss):
                raise FloatingPointError(
                    f"loss became {batch_loss.item()} at epoch {self.epoch}, step {sampler.global_step}; "
                    "lower the learning rate or check the inputs"
                )
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if self.max_grad_norm is not None:
                nn.utils.clip_grad_norm_(self.method.parameters(), self.max_grad_norm)
            self.optimizer.step()
            if self.lr_scheduler is not None:
                self.lr_scheduler.step()
            sampler.step()
            self.method.on_step_end(min(1.0, sampler.global_step / total_steps))
            if self.world_size > 1 and self._graph_took_over():
                check_same_graph(sampler)
            seconds = time.perf_counter() - start
            tally["step_seconds"] += seconds

            losses.append(batch_loss.item())
            whole_indices, whole_z1, whole_z2 = whole
            similarities.append(pairwise_cosine(whole_z1).mean().item())
            record |= {"loss": losses[-1], "batch_similarity": similarities[-1]}
            if self.labels is not None:
                false_negatives.append(false_negative_rate(self.labels[whole_indices]))
                record["false_negative_rate"] = false_negatives[-1]
            self.metrics.write("step", record | {"seconds": seconds}, index=sampler.global_step)
            if self.bank is not None:
                self.bank.update(whole_indices, _bank_rows(whole_z1.detach(), whole_z2.detach()))
            # A refresh after the last step would feed no batch.
            if self.needs_embeddings and sampler.refresh_due and sampler.global_step < total_steps:
                self.refresh_sampler()
            if self.checkpoint_every and sampler.global_step % self.checkpoint_every == 0:
                self.save_checkpoint()
            bar.update()
            bar.set_postfix(loss=f"{losses[-1]:.4f}")
        bar.close()

        steps = max(1, len(losses))
        sampling, encode, cost_g, refreshes = self._epoch_so_far()["costs"]
        cost_s = sampling / steps
        step_seconds = tally["step_seconds"]
        cost_t = step_seconds / steps
        stats = {
            "epoch": self.epoch,
            "steps": len(losses),
            "loss": sum(losses) / steps,
            "cost_s": cost_s,
            "cost_t": cost_t,
            "cost_g": cost_g / refreshes if refreshes else 0.0,
            "cost_g_per_step": cost_g / steps,
            "encode_per_step": encode / steps,
            "refreshes": refreshes,
            # Sampling and graph building, as a share of the training step.
            "sampler_share": (cost_s + cost_g / steps) / cost_t if cost_t else math.nan,
            # The encode passes that feed refreshes (none with refresh="bank").
            "encode_share": encode / steps / cost_t if cost_t else math.nan,
            "batch_similarity": sum(similarities) / steps,
            "false_negative_rate": sum(false_negatives) / steps if false_negatives else math.nan,
        }
        if self.rank == 0:
            logger.info(
                # The in-batch cosine shows a collapse (all embeddings alike: near 1) at a glance.
                "epoch %d: loss %.4f  batch cosine %.3f  Cost_S %.2f ms  Cost_G/t %.2f ms  Cost_T %.1f ms  "
                "sampler %.1f%%  encode %.1f%%",
                self.epoch, stats["loss"], stats["batch_similarity"], cost_s * 1e3, stats["cost_g_per_step"] * 1e3,
                cost_t * 1e3,
                100 * stats["sampler_share"], 100 * stats["encode_share"],
            )
        return stats

    def _loss(
        self, indices: list[int], z1: torch.Tensor, z2: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, tuple[Any, torch.Tensor, torch.Tensor]]:
        """The loss to backpropagate, its value for the whole (global) batch, and the
        whole batch's indices and views, ``(indices, z1, z2)`` (for diagnostics and the bank).

        Under several processes the batch is every process's slice, gathered in rank
        order; see the class docstring for how the loss is split."""
        if self.world_size == 1:
            loss = self.loss(z1, z2)
            return loss, loss, (indices, z1, z2)
        batch_indices = all_gather_rows(torch.as_tensor(indices, device=self.device)).cpu()
        if self.gather_negatives:
            views = all_gather_rows(z1, differentiable=True), all_gather_rows(z2, differentiable=True)
            if isinstance(self.loss, ContrastiveLoss):
                loss = self.loss(*views, anchors=slice(self.rank * len(z1), (self.rank + 1) * len(z1)))
            else:
                loss = self.loss(*views)
        else:
            loss = self.loss(z1, z2)
            views = all_gather_rows(z1.detach()), all_gather_rows(z2.detach())
        # DDP averages the processes' gradients: the batch's loss is the mean of theirs.
        batch_loss = loss.detach().clone()
        dist.all_reduce(batch_loss)
        return loss, batch_loss / self.world_size, (batch_indices, views[0].detach(), views[1].detach())

    def _graph_took_over(self) -> bool:
        """Whether a graph built in the background (``build_lag``) took over at this step."""
        sampler = self.sampler
        return (self.needs_embeddings and sampler.build_lag > 0 and sampler.refreshed_at is not None
                and sampler.global_step == sampler.refreshed_at + sampler.build_lag)

    STATE_KEYS = ("epoch", "method", "optimizer", "lr_scheduler", "sampler", "history", "bank", "torch_rng",
                  "epoch_so_far", "replicas")

    def state_dict(self) -> dict[str, Any]:
        """The full training state (rank 0's, plus under several processes each
        process's own part in ``"replicas"``). Under several processes every process
        must call it: it gathers those parts."""
        return {
            "epoch": self.epoch,
            "method": self.method.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "lr_scheduler": None if self.lr_scheduler is None else self.lr_scheduler.state_dict(),
            "sampler": self.sampler.state_dict(),
            "history": self.history,
            "bank": None if self.bank is None else (self.bank.embeddings, self.bank.written),
            "torch_rng": torch.get_rng_state(),
            "epoch_so_far": None if self._tally is None else self._epoch_so_far(),
            "replicas": self._replica_states(),
        }

    def _replica_states(self) -> list[dict[str, Any]] | None:
        """Under several processes, what differs between them, in rank order: the
        torch random state and the method's entries other than parameters (buffers,
        extra state such as an augmentation generator). None with one process."""
        if self.world_size == 1:
            return None
        parameters = {name for name, _ in self.method.named_parameters(remove_duplicate=False)}
        # On the CPU: a pickled CUDA tensor would unpickle onto the sender's GPU.
        own = {
            "torch_rng": torch.get_rng_state(),
            "method": {name: value.cpu() if isinstance(value, torch.Tensor) else value
                       for name, value in self.method.state_dict().items() if name not in parameters},
        }
        states: list[Any] = [None] * self.world_size
        dist.all_gather_object(states, own)
        return states

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a :meth:`state_dict` of a trainer built the same way.

        Every field is checked first; a checkpoint that does not fit raises
        ``TypeError``/``ValueError`` naming the field, and leaves the trainer (model,
        optimizer, scheduler, sampler, bank) exactly as it was.
        """
        if not isinstance(state, Mapping):
            raise TypeError(f"checkpoint must be a dict from Trainer.state_dict(), got {type(state).__name__}")
        # Checkpoints written before several processes were supported have no "replicas".
        missing = sorted(set(self.STATE_KEYS) - state.keys() - {"replicas"})
        unknown = sorted(state.keys() - set(self.STATE_KEYS))
        if missing or unknown:
            raise ValueError(
                f"checkpoint does not fit this Trainer: missing keys {missing}, unknown keys {unknown}; "
                "pass a file written by Trainer.save_checkpoint"
            )
        epoch = check_int("checkpoint['epoch']", state["epoch"], low=0)
        history = state["history"]
        if not isinstance(history, list) or not all(isinstance(entry, dict) for entry in history) or len(history) != epoch:
            raise ValueError(
                f"checkpoint['history'] must be a list of {epoch} per-epoch dicts (one per finished epoch), "
                f"got {type(history).__name__} of length {len(history) if isinstance(history, list) else '-'}"
            )
        if (state["lr_scheduler"] is None) != (self.lr_scheduler is None):
            raise ValueError(
                "checkpoint['lr_scheduler'] does not match this Trainer: it was saved "
                f"{'without' if state['lr_scheduler'] is None else 'with'} a learning-rate scheduler"
            )
        rng = _checked_rng_state("checkpoint['torch_rng']", state["torch_rng"])
        method_state = state["method"]
        replica = self._parse_replica(state.get("replicas"))
        if replica is not None:
            rng = replica["torch_rng"]
            method_state = {**method_state, **replica["method"]} if isinstance(method_state, Mapping) else method_state
        bank = self._parse_bank(state["bank"])
        epoch_so_far = self._parse_epoch_so_far(state["epoch_so_far"], state["sampler"])
        before = [copy.deepcopy(part.state_dict()) for part in self._restorable()]
        field = "method"
        try:
            self.method.load_state_dict(method_state)
            field = "optimizer"
            self.optimizer.load_state_dict(state["optimizer"])
            if self.lr_scheduler is not None:
                field = "lr_scheduler"
                self.lr_scheduler.load_state_dict(state["lr_scheduler"])
            field = "sampler"
            self.sampler.load_state_dict(state["sampler"])  # all or nothing by itself
        except Exception as error:
            for part, saved in zip(self._restorable(), before):
                part.load_state_dict(saved)
            raise ValueError(f"checkpoint[{field!r}] does not fit this Trainer: {error}") from error
        self.epoch = epoch
        self.history = list(history)
        self.bank = bank
        self._resumed_epoch = epoch_so_far
        torch.set_rng_state(rng)

    def _parse_replica(self, replicas: object) -> dict[str, Any] | None:
        """This process's entry of ``checkpoint['replicas']`` (None with one process)."""
        if self.world_size == 1:
            if replicas is not None:
                raise ValueError(
                    f"checkpoint['replicas'] holds the state of {len(replicas) if isinstance(replicas, list) else '?'} "
                    "processes but this Trainer runs in one; resume it with as many processes (torchrun) as wrote it"
                )
            return None
        if not isinstance(replicas, list) or len(replicas) != self.world_size:
            count = len(replicas) if isinstance(replicas, list) else "no"
            raise ValueError(
                f"checkpoint['replicas'] must hold the state of each of the {self.world_size} processes, got {count} "
                "entries; resume with as many processes as wrote the checkpoint"
            )
        replica = replicas[self.rank]
        if not (isinstance(replica, dict) and set(replica) == {"torch_rng", "method"}
                and isinstance(replica["method"], dict)):
            raise ValueError(
                f"checkpoint['replicas'][{self.rank}] must be a dict with 'torch_rng' and 'method' entries"
            )
        _checked_rng_state(f"checkpoint['replicas'][{self.rank}]['torch_rng']", replica["torch_rng"])
        return replica

    def _restorable(self) -> list[Any]:
        parts = [self.method, self.optimizer]
        return parts + ([self.lr_scheduler] if self.lr_scheduler is not None else [])

    def _parse_bank(self, bank: object) -> EmbeddingBank | None:
        if bank is None:
            return None
        if not isinstance(bank, (tuple, list)) or len(bank) != 2:
            raise ValueError(f"checkpoint['bank'] must be None or (embeddings, written), got {type(bank).__name__}")
        embeddings, written = bank
        if not isinstance(embeddings, torch.Tensor) or embeddings.dim() != 2 or embeddings.shape[0] != len(self.dataset):
            raise ValueError(
                f"checkpoint['bank'] embeddings must have shape ({len(self.dataset)}, d), got "
                f"{tuple(getattr(embeddings, 'shape', ()))}"
            )
        if not isinstance(written, torch.Tensor) or written.dtype != torch.bool or written.shape != (len(self.dataset),):
            raise ValueError(f"checkpoint['bank'] written must be a BoolTensor of shape ({len(self.dataset)},)")
        restored = EmbeddingBank(*embeddings.shape, device=self.device)
        restored.embeddings.copy_(embeddings)
        restored.written.copy_(written)
        return restored

    def _parse_epoch_so_far(self, so_far: object, sampler_state: object) -> dict[str, Any] | None:
        if so_far is None:
            return None
        keys = {"losses", "similarities", "false_negatives", "step_seconds", "costs"}
        if not isinstance(so_far, dict) or set(so_far) != keys:
            raise ValueError(f"checkpoint['epoch_so_far'] must be None or a dict with keys {sorted(keys)}")
        for key in ("losses", "similarities", "false_negatives"):
            if not isinstance(so_far[key], list) or not all(isinstance(value, float) for value in so_far[key]):
                raise ValueError(f"checkpoint['epoch_so_far'][{key!r}] must be a list of floats")
        position = sampler_state.get("position") if isinstance(sampler_state, Mapping) else None
        if len(so_far["losses"]) != position:
            raise ValueError(
                f"checkpoint['epoch_so_far'] has {len(so_far['losses'])} steps but the sampler resumes "
                f"after {position!r} batches; the checkpoint was not written by one Trainer at one time"
            )
        costs = so_far["costs"]
        if not isinstance(costs, list) or len(costs) != 4 or not all(isinstance(value, (int, float)) for value in costs):
            raise ValueError("checkpoint['epoch_so_far']['costs'] must be a list of 4 numbers")
        return dict(so_far)

    def save_checkpoint(self, path: str | Path | None = None) -> Path | None:
        """Write the full training state to ``path`` (default: ``checkpoint_path``)
        atomically: a crash mid-write leaves the previous checkpoint intact.

        Under several processes every process calls it; rank 0 writes the file and
        the others return once it is complete (every process reads it to resume, so
        it must be on a file system they all see)."""
        path = self.checkpoint_path if path is None else Path(path)
        if path is None:
            return None
        state = self.state_dict()
        if self.rank == 0:
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_name(path.name + ".partial")
            torch.save(state, partial)
            os.replace(partial, path)
            logger.debug("checkpoint at epoch %d, step %d written to %s", self.epoch, self.sampler.global_step, path)
        if self.world_size > 1:
            dist.barrier()
        return path

    def load_checkpoint(self, path: str | Path) -> None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no checkpoint at {path}")
        self.load_state_dict(torch.load(path, map_location=self.device, weights_only=False))
