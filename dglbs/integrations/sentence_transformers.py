"""A dglbs batch sampler in sentence-transformers training.

Two pieces: :class:`BatchSamplerFactory`, the value of
``SentenceTransformerTrainingArguments(batch_sampler=...)`` that hands the trainer our
sampler for the training set, and :class:`SamplerCallback`, which drives the sampler
from the training loop: it reports optimizer steps, selects the epoch and rebuilds
the proximity graph (kNN index) from the model being trained::

    sampler = WalkBatchSampler(len(train_dataset), 64, num_candidates=1000,
                               restart_prob=0.7, refresh_every=steps_per_epoch)
    args = SentenceTransformerTrainingArguments(
        output_dir="out", per_device_train_batch_size=64,
        batch_sampler=BatchSamplerFactory(sampler, train_dataset),
    )
    trainer = SentenceTransformerTrainer(
        model=model, args=args, train_dataset=train_dataset, loss=loss,
        callbacks=[SamplerCallback(sampler, train_dataset["anchor"])],
    )
    trainer.train()

Under multi-process ``accelerate`` every process iterates the same sampler (built
with ``num_replicas=1``) and keeps every n-th batch, so each process trains on whole
walk batches of ``B`` instances. The graph is built from embeddings computed on
process 0 and broadcast, so that all processes walk the same graph.

Importing this module needs ``transformers`` (``pip install 'dglbs[text]'``);
``dglbs`` itself does not.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.distributed as dist
from torch.utils.data import BatchSampler, Sampler, SequentialSampler

from dglbs._checks import check_int
from dglbs.samplers import ContrastiveBatchSampler, EmbeddingBatchSampler

try:
    from transformers import TrainerCallback
except ImportError as error:
    raise ImportError(
        "dglbs.integrations.sentence_transformers needs transformers and sentence-transformers: "
        "pip install -c constraints.txt 'dglbs[text]'"
    ) from error


def _check_sampler(sampler: object) -> ContrastiveBatchSampler:
    if not isinstance(sampler, ContrastiveBatchSampler):
        raise TypeError(f"sampler must be a dglbs ContrastiveBatchSampler, got {type(sampler).__name__}")
    if sampler.num_replicas != 1:
        raise ValueError(
            f"sampler has num_replicas={sampler.num_replicas}; build it with num_replicas=1: "
            "accelerate hands whole batches to the processes itself"
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
        and ``drop_last`` must equal the arguments' ``per_device_train_batch_size``
        and ``dataloader_drop_last``.
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
                "make them equal"
            )
        return self.sampler

    def __getstate__(self) -> dict[str, Any]:
        return {"sampler": self.sampler, "train_dataset": None}


class SamplerCallback(TrainerCallback):
    """Drives a dglbs sampler from a transformers / sentence-transformers ``Trainer``.

    - at each epoch's start: ``sampler.set_epoch(epoch)``. Under multi-process
      ``accelerate`` the sampler sits inside a ``BatchSamplerShard`` and the data
      loader's ``set_epoch`` does not reach it (transformers 5 forwards it; older
      versions do not), so every epoch would otherwise repeat epoch 0's batches;
    - after each optimizer step: ``sampler.step()``;
    - before the first epoch and whenever ``sampler.refresh_due`` (every
      ``refresh_every`` optimizer steps): rebuild the sampler from
      ``model.encode(texts)``, the current sentence embeddings of the model being
      trained. No rebuild follows the last step.

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
        self.refreshes = 0

    def on_train_begin(self, args, state, control, train_dataloader=None, **kwargs) -> None:
        if train_dataloader is not None:
            outer = getattr(train_dataloader, "batch_sampler", None)
            if outer is not self.sampler and getattr(outer, "batch_sampler", None) is not self.sampler:
                raise ValueError(
                    "the trainer's training batches do not come from this callback's sampler; pass "
                    "SentenceTransformerTrainingArguments(batch_sampler=BatchSamplerFactory(sampler, "
                    "train_dataset)) with the same sampler and the trainer's train_dataset"
                )
        if hasattr(self.sampler, "set_total_steps") and state.max_steps > 0:
            self.sampler.set_total_steps(state.max_steps)

    def on_epoch_begin(self, args, state, control, model=None, **kwargs) -> None:
        # state.epoch is fractional inside an epoch (e.g. when resuming), integral at its start.
        self.sampler.set_epoch(math.floor(state.epoch))
        self._refresh_if_due(model)

    def on_step_end(self, args, state, control, model=None, **kwargs) -> None:
        self.sampler.step()
        if state.global_step < state.max_steps:
            self._refresh_if_due(model)

    def _refresh_if_due(self, model) -> None:
        if isinstance(self.sampler, EmbeddingBatchSampler) and self.sampler.refresh_due:
            self.refresh(model)

    def refresh(self, model) -> None:
        """Rebuild the sampler from ``model.encode(texts)`` (a ``SentenceTransformer``);
        the model's train/eval mode is restored afterwards."""
        if model is None:
            raise ValueError("the trainer passed no model to the callback; call refresh(model) with the model")
        was_training = model.training
        try:
            distributed = dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
            if not distributed or dist.get_rank() == 0:
                embeddings = model.encode(
                    self.texts, batch_size=self.encode_batch_size, convert_to_tensor=True,
                    show_progress_bar=self.progress,
                ).float()
            else:
                embeddings = torch.empty(
                    len(self.texts), model.get_sentence_embedding_dimension(), device=model.device
                )
            if distributed:
                dist.broadcast(embeddings, src=0)
        finally:
            model.train(was_training)
        self.sampler.set_embeddings(embeddings)
        self.refreshes += 1
