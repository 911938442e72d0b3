"""The shared, modality-free contrastive training loop (paper Algorithm 1).

The trainer logs to the ``dglbs.trainer`` logger (one INFO line per epoch with the
loss and the Cost_S / Cost_G / Cost_T figures; refreshes and checkpoints at DEBUG),
shows progress bars for training and encode passes (by default only when stderr is a
terminal), and writes per-step and per-epoch figures to a JSON Lines file and/or
TensorBoard when asked (``metrics_path``, ``tensorboard_dir``; see :mod:`dglbs.metrics`).
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
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from ._checks import check_int
from .bank import EmbeddingBank
from .diagnostics import false_negative_rate, pairwise_cosine
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
        self.device = torch.device(device)
        self.method = method.to(self.device)
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
        self.metrics = MetricsWriter(metrics_path, tensorboard_dir)
        self.bank: EmbeddingBank | None = None
        self.epoch = 0
        self.history: list[dict[str, Any]] = []
        self._encode_seconds = 0.0
        self._graph_seconds = 0.0
        self._refreshes = 0
        self._tally: dict[str, Any] | None = None
        self._resumed_epoch: dict[str, Any] | None = None

    @property
    def needs_embeddings(self) -> bool:
        return isinstance(self.sampler, EmbeddingBatchSampler)

    def collate(self, indices: Sequence[int]) -> Any:
        return to_device(self.collate_fn([self.dataset[i] for i in indices]), self.device)

    @torch.no_grad()
    def encode(self, dataset: Sequence | None = None, *, projections: bool = False) -> torch.Tensor:
        """``method.embed`` of every instance, in order, in eval mode; with
        ``projections``, the bank's quantity: normalised ``z1 + z2`` of the views.

        Returns
        -------
        Tensor of shape (len(dataset), d) on the trainer's device.
        """
        dataset = self.dataset if dataset is None else dataset
        was_training = self.method.training
        self.method.eval()
        try:
            parts = []
            with tqdm(total=len(dataset), desc="encode", unit="instance", leave=False,
                      disable=progress_disabled(self.progress)) as bar:
                for start in range(0, len(dataset), self.encode_batch_size):
                    indices = range(start, min(start + self.encode_batch_size, len(dataset)))
                    batch = to_device(self.collate_fn([dataset[i] for i in indices]), self.device)
                    parts.append(_bank_rows(*self.method(batch)) if projections else self.method.embed(batch))
                    bar.update(len(indices))
            return torch.cat(parts)
        finally:
            self.method.train(was_training)

    def refresh_sampler(self) -> None:
        """Hand the sampler fresh embeddings (paper: rebuild the proximity graph).

        The time to obtain the embeddings (encode pass) and the sampler's rebuild
        (Cost_G) are accounted separately."""
        start = time.perf_counter()
        if self.refresh == "bank":
            if self.bank is None:
                projections = self.encode(projections=True)
                self.bank = EmbeddingBank(*projections.shape, device=self.device)
                self.bank.update(torch.arange(len(projections)), projections)
            embeddings = self.bank.embeddings
        else:
            embeddings = self.encode()
        built = time.perf_counter()
        self.sampler.set_embeddings(embeddings)
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
        self.method.train()
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
                   unit="step", disable=progress_disabled(self.progress), leave=False)
        for indices in sampler:
            # The learning rate and alpha this step trains with.
            record = {"epoch": self.epoch, "step": sampler.global_step + 1,
                      "lr": self.optimizer.param_groups[0]["lr"]}
            if hasattr(sampler, "current_restart_prob"):
                record["restart_prob"] = sampler.current_restart_prob
            start = time.perf_counter()
            batch = self.collate(indices)
            z1, z2 = self.method(batch)
            loss = self.loss(z1, z2)
            if not torch.isfinite(loss):
                raise FloatingPointError(
                    f"loss became {loss.item()} at epoch {self.epoch}, step {sampler.global_step}; "
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
            seconds = time.perf_counter() - start
            tally["step_seconds"] += seconds

            losses.append(loss.item())
            similarities.append(pairwise_cosine(z1).mean().item())
            record |= {"loss": losses[-1], "batch_similarity": similarities[-1]}
            if self.labels is not None:
                false_negatives.append(false_negative_rate(self.labels[indices]))
                record["false_negative_rate"] = false_negatives[-1]
            self.metrics.write("step", record | {"seconds": seconds}, index=sampler.global_step)
            if self.bank is not None:
                self.bank.update(indices, _bank_rows(z1.detach(), z2.detach()))
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
        logger.info(
            "epoch %d: loss %.4f  Cost_S %.2f ms  Cost_G/t %.2f ms  Cost_T %.1f ms  sampler %.1f%%  encode %.1f%%",
            self.epoch, stats["loss"], cost_s * 1e3, stats["cost_g_per_step"] * 1e3, cost_t * 1e3,
            100 * stats["sampler_share"], 100 * stats["encode_share"],
        )
        return stats

    STATE_KEYS = ("epoch", "method", "optimizer", "lr_scheduler", "sampler", "history", "bank", "torch_rng", "epoch_so_far")

    def state_dict(self) -> dict[str, Any]:
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
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a :meth:`state_dict` of a trainer built the same way.

        Every field is checked first; a checkpoint that does not fit raises
        ``TypeError``/``ValueError`` naming the field, and leaves the trainer (model,
        optimizer, scheduler, sampler, bank) exactly as it was.
        """
        if not isinstance(state, Mapping):
            raise TypeError(f"checkpoint must be a dict from Trainer.state_dict(), got {type(state).__name__}")
        missing = sorted(set(self.STATE_KEYS) - state.keys())
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
        rng = state["torch_rng"]
        if not isinstance(rng, torch.Tensor) or rng.dtype != torch.uint8 or rng.dim() != 1:
            raise ValueError(f"checkpoint['torch_rng'] must be a 1-D uint8 tensor from torch.get_rng_state(), got {rng!r:.80}")
        bank = self._parse_bank(state["bank"])
        epoch_so_far = self._parse_epoch_so_far(state["epoch_so_far"], state["sampler"])
        before = [copy.deepcopy(part.state_dict()) for part in self._restorable()]
        field = "method"
        try:
            self.method.load_state_dict(state["method"])
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
        atomically: a crash mid-write leaves the previous checkpoint intact."""
        path = self.checkpoint_path if path is None else Path(path)
        if path is None:
            return None
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".partial")
        torch.save(self.state_dict(), partial)
        os.replace(partial, path)
        logger.debug("checkpoint at epoch %d, step %d written to %s", self.epoch, self.sampler.global_step, path)
        return path

    def load_checkpoint(self, path: str | Path) -> None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no checkpoint at {path}")
        self.load_state_dict(torch.load(path, map_location=self.device, weights_only=False))
