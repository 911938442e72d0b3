"""Bridges to other training libraries; each submodule imports its library itself.

The helpers here need only ``torch.distributed``: they refresh a sampler from an
encoder when every process of the default process group holds a replica of it
(``num_replicas`` / ``rank`` slicing), as under Lightning's DDP or a multi-process
``accelerate`` loop. Every process must call them at the same point of training.
"""
from __future__ import annotations

import time
from collections.abc import Callable

import torch
import torch.distributed as dist

from dglbs.samplers import ContrastiveBatchSampler, EmbeddingBatchSampler

__all__ = ["check_same_graph", "gather_embeddings", "world_size_and_rank", "refresh_from_shards"]


def world_size_and_rank() -> tuple[int, int]:
    """``(world_size, rank)`` of the default process group, ``(1, 0)`` without one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size(), dist.get_rank()
    return 1, 0


def _collective_device(tensor: torch.Tensor) -> torch.device:
    """Where the default group's backend can all-gather ``tensor``."""
    backend = dist.get_backend()
    if backend == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    if backend == "gloo":
        return torch.device("cpu")
    return tensor.device


def gather_embeddings(embed: Callable[[torch.Tensor], torch.Tensor], num_instances: int) -> torch.Tensor:
    """Embeddings of all instances, each process encoding one shard of them.

    The indices ``0 .. N-1`` are split into ``world_size`` contiguous shards whose
    sizes differ by at most one; process ``r`` calls ``embed`` on shard ``r`` only
    and the shards are all-gathered, so every process returns the same tensor, bit
    for bit. Without a process group (or with one process) this is
    ``embed(torch.arange(num_instances))``.

    Parameters
    ----------
    embed : callable
        ``embed(indices)`` with ``indices`` a LongTensor of shape (n,) returns a
        floating-point Tensor of shape (n, d): the embeddings of those dataset
        indices, in that order.
    num_instances : int
        ``N``, the dataset length.

    Returns
    -------
    Tensor of shape (N, d)
        On the device ``embed`` returned, or on the backend's device (CPU for
        gloo, the current CUDA device for nccl) with several processes.
    """
    world_size, rank = world_size_and_rank()
    shards = torch.arange(num_instances).tensor_split(world_size)
    local = embed(shards[rank])
    if not isinstance(local, torch.Tensor) or local.dim() != 2 or local.shape[0] != shards[rank].numel():
        got = tuple(local.shape) if isinstance(local, torch.Tensor) else type(local).__name__
        raise ValueError(
            f"embed(indices) must return a Tensor of shape (len(indices), d); for "
            f"{shards[rank].numel()} indices it returned {got}"
        )
    if world_size == 1:
        return local
    # Agree on the row layout first: an all_gather of unequal tensors would hang or crash.
    layouts = [None] * world_size
    dist.all_gather_object(layouts, (local.shape[1], str(local.dtype)))
    if len(set(layouts)) != 1:
        raise ValueError(
            f"the processes' embed(indices) returned different (dim, dtype): {layouts}; every "
            "process must embed with the same model"
        )
    local = local.detach().to(_collective_device(local))
    padded = local.new_zeros(shards[0].numel(), local.shape[1])  # shard 0 is a largest one
    padded[: local.shape[0]] = local
    parts = [torch.empty_like(padded) for _ in range(world_size)]
    dist.all_gather(parts, padded)
    return torch.cat([part[: shard.numel()] for part, shard in zip(parts, shards)])


def _graph_checksum(sampler: ContrastiveBatchSampler) -> int | None:
    """A position-weighted sum of the walk graph's CSR arrays (None without a graph)."""
    graph = getattr(sampler, "graph", None)
    if graph is None:
        return None
    indptr, indices, _ = graph.adj_tensors("csr")
    checksum = 0
    for array in (indptr, indices):
        array = array.long()
        weights = torch.arange(array.numel(), dtype=torch.long) % 65_521 + 1
        checksum = checksum * 1_000_003 + int((array * weights).sum())
    return checksum


def check_same_graph(sampler: ContrastiveBatchSampler) -> None:
    """Raise if the processes' samplers walk different graphs.

    Ranks take disjoint slices of one global batch only if they walk the same
    graph; a graph built from embeddings that differ across ranks (e.g. encoded
    separately on GPUs, which are not bit-exact) puts the same instance on two
    ranks. Compares a checksum of the graph (O(edges), one small all-gather); a
    no-op with one process or for samplers without a graph.

    Raises
    ------
    RuntimeError
        If the checksums differ between processes.
    """
    world_size, _ = world_size_and_rank()
    if world_size == 1:
        return
    checksums = [None] * world_size
    dist.all_gather_object(checksums, _graph_checksum(sampler))
    if len(set(checksums)) != 1:
        raise RuntimeError(
            f"the {world_size} processes' samplers walk different graphs (checksums {checksums}); "
            "give every process the same embeddings, e.g. with refresh_from_shards(sampler, embed)"
        )


def refresh_from_shards(
    sampler: EmbeddingBatchSampler, embed: Callable[[torch.Tensor], torch.Tensor]
) -> tuple[float, float]:
    """Rebuild ``sampler`` from :func:`gather_embeddings` and check that all
    processes now walk the same graph (:func:`check_same_graph`).

    Parameters
    ----------
    sampler : EmbeddingBatchSampler
        This process's replica (kNN or walk sampler).
    embed : callable
        See :func:`gather_embeddings`; run it in eval mode without gradients.

    Returns
    -------
    encode_seconds, build_seconds : float
        Time to obtain the embeddings (encoding and all-gather) and to rebuild the
        sampler (Cost_G) including the graph check.
    """
    if not isinstance(sampler, EmbeddingBatchSampler):
        raise TypeError(
            f"sampler must be a dglbs kNN or walk sampler (EmbeddingBatchSampler), got "
            f"{type(sampler).__name__}; a uniform sampler needs no refresh"
        )
    start = time.perf_counter()
    embeddings = gather_embeddings(embed, sampler.num_instances)
    encoded = time.perf_counter()
    sampler.set_embeddings(embeddings)
    check_same_graph(sampler)
    return encoded - start, time.perf_counter() - encoded
