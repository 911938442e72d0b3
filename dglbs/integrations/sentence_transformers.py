"""A dglbs batch sampler in sentence-transformers training, one process or several.

Two pieces: :class:`BatchSamplerFactory`, the value of
``SentenceTransformerTrainingArguments(batch_sampler=...)`` that hands the trainer our
sampler for the training set, and :class:`SamplerCallback`, which drives the sampler
from the training loop: it reports optimizer steps, selects the epoch, rebuilds the
proximity graph (kNN index) from the model being trained and adds the sampler's
costs to the trainer's logs::

    sampler = WalkBatchSampler(len(train_dataset), 64, num_candidates=1000, num_neighbors=100,
                               restart_prob=0.7, refresh_every=steps_per_epoch, drop_last=True)
    args = SentenceTransformerTrainingArguments(
        output_dir="out", per_device_train_batch_size=64, dataloader_drop_last=True,
        batch_sampler=BatchSamplerFactory(sampler, train_dataset),
        accelerator_config={"split_batches": True},     # with several processes
    )
    trainer = SentenceTransformerTrainer(
        model=model, args=args, train_dataset=train_dataset,
        loss=MultipleNegativesRankingLoss(model, gather_across_devices=True),
        callbacks=[SamplerCallback(sampler, train_dataset["anchor"])],
    )
    trainer.train()

Several processes (``torchrun --nproc_per_node n``): every process builds the same
sampler, with ``num_replicas=1``, ``batch_size`` the global batch ``B`` (a multiple of
``n``) and ``drop_last=True`` (sentence-transformers sets ``dataloader_drop_last=True``
under DDP). With ``split_batches=True`` accelerate gives process ``r`` slice ``r`` of
each walk batch, ``B / n`` instances, so the processes train on disjoint slices of one
global walk batch and all take the same number of steps; with
``gather_across_devices=True`` the loss takes its in-batch negatives from the whole
walk batch, as multi-GPU SimCSE does. Without ``split_batches`` accelerate would hand
each process every ``n``-th walk batch instead, and the sampler would draw ``n``
batches per optimizer step, ahead of its schedule; the callback refuses that set-up.
For a refresh each process encodes its shard of the texts, the shards are
all-gathered and every process checks that all walk the same graph
(:func:`dglbs.integrations.refresh_from_shards`).

Importing this module needs ``transformers`` (``pip install 'dglbs[text]'``);
``dglbs`` itself does not.
"""
from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

import torch
from torch.utils.data import BatchSampler, Sampler, SequentialSampler

from dglbs._checks import check_int
from dglbs.integrations import SamplerCosts, refresh_from_shards
from dglbs.samplers import ContrastiveBatchSampler, EmbeddingBatchSampler

try:
    from transformers import TrainerCallback
except ImportError as error:
    raise ImportError(
        "dglbs.integrations.sentence_transformers needs transformers and sentence-transformers: "
        "pip install -c constraints.txt 'dglbs[text]'"
    ) from error

__all__ = ["BatchSamplerFactory", "SamplerCallback"]


def _check_sampler(sampler: object) -> ContrastiveBatchSampler:
    if not isinstance(sampler, ContrastiveBatchSampler):
        raise TypeError(f"sampler must be a dglbs ContrastiveBatchSampler, got {type(sampler).__name__}")
    if sampler.num_replicas != 1:
        raise ValueError(
            f"sampler has num_replicas={sampler.num_replicas}; build it with num_replicas=1 and the global "
            "batch size: accelerate splits each batch over the processes itself "
            "(accelerator_config={'split_batches': True})"
        )
    return sampler


class BatchSamplerFactory:
    """``SentenceTransformerTrainingArguments(batch_sampler=BatchSamplerFactory(...))``.

    sentence-transformers calls it for every data loader it builds: it returns
    ``sampler`` for ``train_dataset`` and plain sequential batches for any other
    dataset (evaluation needs no contrastive batches, and must not advance the
    sampler).

    Parameters
    ----------
    sampler : ContrastiveBatchSampler
        Over ``len(train_dataset)`` instances, ``num_replicas=1``; its ``batch_size``
        (the global batch) and ``drop_last`` must equal the arguments'
        ``per_device_train_batch_size`` and ``dataloader_drop_last``.
    train_dataset : datasets.Dataset
        The very object given to the trainer as ``train_dataset``.

    Notes
    -----
    The trainer pickles its arguments into checkpoints (``training_args.bin``); the
    pickled factory keeps the sampler but not the dataset, so an unpickled copy
    only makes sequential batches.
    """

    def __init__(self, sampler: ContrastiveBatchSampler, train_dataset: Sequence[Any]) -> None:
        self.sampler = _check_sampler(sampler)
        if len(train_dataset) != sampler.num_instances:
            raise ValueError(
                f"sampler is over {sampler.num_instances} instances but train_dataset has "
                f"{len(train_dataset)} rows; build the sampler with num_instances=len(train_dataset)"
            )
        self.train_dataset = train_dataset

    def __repr__(self) -> str:
        rows = "None" if self.train_dataset is None else len(self.train_dataset)
        return f"{type(self).__name__}(sampler={self.sampler!r}, train_dataset_rows={rows})"

    def __call__(
        self,
        dataset: Sequence[Any],
        batch_size: int,
        drop_last: bool,
        valid_label_columns: list[str] | None = None,
        generator: torch.Generator | None = None,
        seed: int = 0,
    ) -> Sampler[list[int]]:
        """The batch sampler for ``dataset`` (sentence-transformers' calling convention;
        ``valid_label_columns``, ``generator`` and ``seed`` are not used: the dglbs
        sampler has its own seed)."""
        if dataset is not self.train_dataset:
            return BatchSampler(SequentialSampler(dataset), batch_size, drop_last)
        if batch_size != self.sampler.batch_size:
            raise ValueError(
                f"the trainer asks for batches of {batch_size} but the sampler makes {self.sampler.batch_size}; "
                f"set per_device_train_batch_size={self.sampler.batch_size}"
            )
        if drop_last != self.sampler.drop_last:
            raise ValueError(
                f"dataloader_drop_last={drop_last} but the sampler has drop_last={self.sampler.drop_last}; "
                "make them equal (sentence-transformers sets dataloader_drop_last=True when training on "
                "several processes)"
            )
        return self.sampler

    def __getstate__(self) -> dict[str, Any]:
        return {"sampler": self.sampler, "train_dataset": None}


class SamplerCallback(TrainerCallback):
    """Drives a dglbs sampler from a transformers / sentence-transformers ``Trainer``.

    - at training start: checks that the training batches come from ``sampler``
      and, with several processes, that accelerate splits each walk batch over
      them (``accelerator_config={"split_batches": True}``);
    - at each epoch's start: ``sampler.set_epoch(epoch)`` (transformers before 5
      do not pass the epoch on to a sampler inside accelerate's
      ``BatchSamplerShard``, so every epoch would repeat epoch 0's batches);
    - after each optimizer step: ``sampler.step()``;
    - before the first epoch and whenever ``sampler.refresh_due`` (every
      ``refresh_every`` optimizer steps; none after the last step): rebuilds the
      sampler from ``model.encode(texts)``, the sentence embeddings of the model
      being trained, each process encoding its shard
      (:func:`dglbs.integrations.refresh_from_shards`);
    - adds the sampler's costs to the trainer's logs (below).

    **When a rebuild takes effect.** A rebuild after step ``s`` reaches the
    batches of steps ``s + 2`` on, not ``s + 1``: the trainer's loader
    (accelerate's ``DataLoaderShard``) draws each batch one ahead, so the batch of
    step ``s + 1`` was drawn from the old graph when step ``s`` began. After an
    epoch's last step a rebuild reaches the next step (the next epoch's batches are
    drawn after it). With gradient accumulation the old graph serves only the first
    micro-batch of step ``s + 1``; with ``dataloader_num_workers=w`` the loader
    draws ``w * dataloader_prefetch_factor`` batches further ahead. (Rebuilding a
    step early would reach step ``s + 1`` with an older model's graph and shift
    ``refresh_every``'s schedule, so the callback keeps the sampler's schedule.)

    **Logs.** Each training log (every ``logging_steps``) gets, over the steps
    since the previous one, and the summary logged after training gets, over the
    whole run: ``sampler/cost_s`` (seconds drawing a batch, per step),
    ``sampler/cost_g`` (seconds per rebuild), ``sampler/cost_t`` (seconds per
    training step, ``on_step_begin`` to ``on_step_end``: forward, backward and
    optimizer), ``sampler/sampler_share`` (``(Cost_S + Cost_G / steps) /
    Cost_T``), ``sampler/encode_share`` (encoding for rebuilds, per step, over
    Cost_T) and ``sampler/refreshes``, as :class:`dglbs.trainer.Trainer` defines
    them; this process's figures. They go into the ``logs`` that the callbacks
    after this one receive (the console printer comes last) and into
    ``state.log_history`` (kept in checkpoints). The ``report_to`` integrations
    (TensorBoard, W&B, ...) run before user callbacks and do not see them: to send
    the figures there, pass ``report_to="none"`` and list the integration's
    callback after this one, e.g. ``callbacks=[sampler_callback,
    TensorBoardCallback()]``.

    Parameters
    ----------
    sampler : ContrastiveBatchSampler
        The sampler given to :class:`BatchSamplerFactory`.
    texts : sequence of str, optional
        What embeds instance ``i`` (e.g. ``train_dataset["anchor"]``), one per
        instance; needed by samplers that use embeddings (kNN, walk).
    encode_batch_size : int
        Batch size of ``model.encode``.
    progress : bool
        Show ``model.encode``'s progress bar.
    log_costs : bool
        Add the sampler's costs to the trainer's logs.

    Attributes
    ----------
    refreshes : int
        Rebuilds done so far.
    """

    def __init__(
        self,
        sampler: ContrastiveBatchSampler,
        texts: Sequence[str] | None = None,
        *,
        encode_batch_size: int = 256,
        progress: bool = False,
        log_costs: bool = True,
    ) -> None:
        self.sampler = _check_sampler(sampler)
        if isinstance(sampler, EmbeddingBatchSampler) and texts is None:
            raise ValueError(
                f"{type(sampler).__name__} builds its batches from embeddings: pass texts=, the "
                "sentence of each training instance (e.g. train_dataset['anchor'])"
            )
        if texts is not None:
            texts = list(texts)
            if len(texts) != sampler.num_instances:
                raise ValueError(
                    f"texts has {len(texts)} entries but the sampler is over {sampler.num_instances} "
                    "instances; pass one text per training instance"
                )
            if not all(isinstance(text, str) for text in texts):
                raise TypeError("texts must be strings, one per training instance")
        self.texts = texts
        self.encode_batch_size = check_int("encode_batch_size", encode_batch_size, low=1)
        self.progress = bool(progress)
        self.log_costs = bool(log_costs)
        self.refreshes = 0
        self._step_started: float | None = None
        # Since the last training log, and since training started.
        self._window = SamplerCosts()
        self._run = SamplerCosts()

    def __repr__(self) -> str:
        texts = "None" if self.texts is None else f"<{len(self.texts)} texts>"
        return (
            f"{type(self).__name__}(sampler={self.sampler!r}, texts={texts}, "
            f"encode_batch_size={self.encode_batch_size}, log_costs={self.log_costs}, refreshes={self.refreshes})"
        )

    def on_train_begin(self, args, state, control, train_dataloader=None, **kwargs) -> None:
        if train_dataloader is not None:
            self._check_loader(train_dataloader)
        if hasattr(self.sampler, "set_total_steps") and state.max_steps > 0:
            self.sampler.set_total_steps(state.max_steps)
        self._window = SamplerCosts(sampling_mark=self.sampler.sampling_seconds)
        self._run = SamplerCosts(sampling_mark=self.sampler.sampling_seconds)

    def on_epoch_begin(self, args, state, control, model=None, **kwargs) -> None:
        # state.epoch is fractional inside an epoch (e.g. when resuming), integral at its start.
        self.sampler.set_epoch(math.floor(state.epoch))
        self._refresh_if_due(model)

    def on_step_begin(self, args, state, control, **kwargs) -> None:
        self._step_started = time.perf_counter()

    def on_step_end(self, args, state, control, model=None, **kwargs) -> None:
        if self._step_started is not None:
            seconds = time.perf_counter() - self._step_started
            self._step_started = None
            for costs in (self._window, self._run):
                costs.steps += 1
                costs.step_seconds += seconds
        self.sampler.step()
        if state.global_step < state.max_steps:
            self._refresh_if_due(model)

    def on_log(self, args, state, control, logs=None, **kwargs) -> None:
        if not self.log_costs or logs is None:
            return
        if "loss" in logs:
            costs = self._window  # a training log
        elif "train_runtime" in logs:
            costs = self._run  # the summary after training
        else:
            return  # evaluation
        figures = costs.metrics(self.sampler.sampling_seconds)
        logs.update(figures)
        # The trainer appended these logs to log_history just before calling on_log.
        if state.log_history and state.log_history[-1].get("step") == state.global_step:
            state.log_history[-1].update(figures)
        if costs is self._window:
            self._window = SamplerCosts(sampling_mark=self.sampler.sampling_seconds)

    def _check_loader(self, loader) -> None:
        """Raise unless ``loader`` yields this callback's sampler's batches, each
        split over the processes when there are several."""
        outer = getattr(loader, "batch_sampler", None)
        if outer is self.sampler:
            return
        if getattr(outer, "batch_sampler", None) is not self.sampler:
            raise ValueError(
                "the trainer's training batches do not come from this callback's sampler; pass "
                "SentenceTransformerTrainingArguments(batch_sampler=BatchSamplerFactory(sampler, "
                "train_dataset)) with the same sampler and the trainer's train_dataset"
            )
        processes = getattr(outer, "num_processes", 1)
        if processes > 1 and not getattr(outer, "split_batches", False):
            raise ValueError(
                f"accelerate hands each of the {processes} processes every {processes}-th walk batch, so they "
                f"would not share a global batch and the sampler would draw {processes} batches per optimizer "
                "step, ahead of its schedule; pass SentenceTransformerTrainingArguments(accelerator_config="
                f"{{'split_batches': True}}) with per_device_train_batch_size={self.sampler.batch_size}, the "
                "global batch"
            )

    def _refresh_if_due(self, model) -> None:
        if isinstance(self.sampler, EmbeddingBatchSampler) and self.sampler.refresh_due:
            self.refresh(model)

    def refresh(self, model) -> None:
        """Rebuild the sampler from ``model.encode(texts)`` (a ``SentenceTransformer``).

        With several processes each encodes its shard of the texts and all must
        call it at the same step; see :func:`dglbs.integrations.refresh_from_shards`.
        The model's train/eval mode is restored afterwards.
        """
        if model is None:
            raise ValueError("the trainer passed no model to the callback; call refresh(model) with the model")

        def embed(indices: torch.Tensor) -> torch.Tensor:
            return model.encode(
                [self.texts[i] for i in indices.tolist()], batch_size=self.encode_batch_size,
                convert_to_tensor=True, show_progress_bar=self.progress,
            ).float()

        was_training = model.training
        try:
            encode_seconds, build_seconds = refresh_from_shards(self.sampler, embed)
        finally:
            model.train(was_training)
        for costs in (self._window, self._run):
            costs.encode_seconds += encode_seconds
            costs.build_seconds += build_seconds
            costs.refreshes += 1
        self.refreshes += 1
