"""A dglbs batch sampler in a plain ``accelerate`` training loop, one process or many.

``accelerator.prepare(loader)`` with several processes wraps the loader's batch
sampler in a ``BatchSamplerShard`` that hands each process every n-th batch: a
dglbs sampler built with ``num_replicas`` (each process already yields its slice
of one global batch) is sharded twice, and the loader's ``set_epoch`` no longer
reaches the sampler, so every epoch repeats epoch 0's batches. The recipe: build
the sampler with the accelerator's world size and rank and prepare its loader with
:func:`prepare_loader`, which moves batches to the device as ``prepare`` does but
leaves the batches alone::

    from accelerate import Accelerator
    from dglbs import WalkBatchSampler
    from dglbs.integrations import refresh_from_shards
    from dglbs.integrations.accelerate import prepare_loader, replica_kwargs

    accelerator = Accelerator()
    sampler = WalkBatchSampler(len(dataset), 64, num_candidates=1000, num_neighbors=100,
                               restart_prob=0.2, refresh_every=50, **replica_kwargs(accelerator))
    loader = prepare_loader(accelerator, DataLoader(dataset, batch_sampler=sampler, collate_fn=collate))
    model, optimizer = accelerator.prepare(model, optimizer)
    encoder = accelerator.unwrap_model(model)

    @torch.no_grad()
    def embed(indices):                 # (n,) LongTensor -> (n, d): this process's shard
        encoder.eval()
        embeddings = encoder(collate([dataset[i] for i in indices.tolist()]).to(accelerator.device))
        encoder.train()
        return embeddings

    if sampler.refresh_due:                       # every process, before training (not
        refresh_from_shards(sampler, embed)       # due with uniform_epochs: the warm-up)
    for epoch in range(epochs):
        loader.set_epoch(epoch)                   # reaches the sampler
        for batch in loader:
            loss = contrastive_loss(model, batch)
            accelerator.backward(loss)
            optimizer.step()
            optimizer.zero_grad()
            sampler.step()
            if sampler.refresh_due:
                refresh_from_shards(sampler, embed)
    accelerator.end_training()

Each of the ``n`` processes then trains on its slice of every global batch of
``n * 64`` instances: together they train on the global batches a one-process
sampler with ``num_replicas=n`` makes, and every process yields the same number
of batches. :func:`dglbs.integrations.refresh_from_shards` has each process embed
its shard of the instances, all-gathers the shards, rebuilds and checks that all
processes walk the same graph; every process must call it at the same step. A
rebuild after step ``s`` reaches batch ``s + 2``: the prepared loader fetches one
batch ahead (workers, ``num_workers > 0``, fetch further ahead).

Importing this module needs ``accelerate`` (``pip install 'dglbs[text]'``);
``dglbs`` itself does not.
"""
from __future__ import annotations

from torch.utils.data import DataLoader

from dglbs.samplers import ContrastiveBatchSampler

try:
    from accelerate import Accelerator
    from accelerate.data_loader import prepare_data_loader
except ImportError as error:
    raise ImportError(
        "dglbs.integrations.accelerate needs accelerate: pip install -c constraints.txt 'dglbs[text]'"
    ) from error

__all__ = ["prepare_loader", "replica_kwargs"]


def replica_kwargs(accelerator: Accelerator) -> dict[str, int]:
    """``num_replicas`` and ``rank`` for a sampler of ``accelerator``'s processes:
    ``accelerator.num_processes`` and ``accelerator.process_index``."""
    return {"num_replicas": accelerator.num_processes, "rank": accelerator.process_index}


def prepare_loader(accelerator: Accelerator, loader: DataLoader) -> DataLoader:
    """``accelerator.prepare_data_loader(loader)`` for a loader whose batch sampler is a
    dglbs sampler of ``accelerator``'s processes, without accelerate's sharding.

    Parameters
    ----------
    accelerator : accelerate.Accelerator
    loader : torch.utils.data.DataLoader
        ``DataLoader(dataset, batch_sampler=sampler)`` with ``sampler`` built with
        ``**replica_kwargs(accelerator)``.

    Returns
    -------
    accelerate.data_loader.DataLoaderShard
        Yields this process's batches as the sampler makes them, moved to
        ``accelerator.device`` (when the accelerator places devices); its
        ``set_epoch`` sets the sampler's epoch, and each full pass advances it.
        Registered with the accelerator like any prepared loader: passing it to
        ``accelerator.prepare`` again returns it unchanged.
    """
    if not isinstance(loader, DataLoader):
        raise TypeError(f"loader must be a torch.utils.data.DataLoader, got {type(loader).__name__}")
    sampler = loader.batch_sampler
    if not isinstance(sampler, ContrastiveBatchSampler):
        raise TypeError(
            "prepare_loader is for DataLoader(dataset, batch_sampler=sampler) with a dglbs sampler; got "
            f"batch_sampler {type(sampler).__name__} (use accelerator.prepare for other loaders)"
        )
    if (sampler.num_replicas, sampler.rank) != (accelerator.num_processes, accelerator.process_index):
        raise ValueError(
            f"the sampler has num_replicas={sampler.num_replicas}, rank={sampler.rank} but this is process "
            f"{accelerator.process_index} of {accelerator.num_processes}; build it with "
            "**replica_kwargs(accelerator)"
        )
    # One process as far as sharding goes: the sampler already yields this process's slice.
    unsharded = prepare_data_loader(
        loader, accelerator.device, num_processes=1, process_index=0,
        put_on_device=accelerator.device_placement, rng_types=accelerator.rng_types.copy(),
        dispatch_batches=False, non_blocking=accelerator.non_blocking,
        use_stateful_dataloader=accelerator.use_stateful_dataloader,
    )
    # accelerate's own mark of a prepared loader: prepare_data_loader then only registers it.
    unsharded._is_accelerate_prepared = True
    return accelerator.prepare_data_loader(unsharded)
