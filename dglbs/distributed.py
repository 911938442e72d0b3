"""Several processes training one model: ``torch.distributed`` helpers for the samplers.

Every process of the default process group holds a replica of the sampler
(``num_replicas`` / ``rank`` slicing): the replicas walk the same graph and each
takes its slice of one global batch. The helpers here keep them in step: the
embeddings of a refresh are encoded one shard per process and all-gathered, and a
checksum confirms that every process walks the same graph. They are used by the
shared :class:`~dglbs.trainer.Trainer` under ``torchrun`` and by the Lightning and
accelerate bridges (:mod:`dglbs.integrations`). Every process must call them at the
same point of training; with one process (or none initialised) they need no
process group and do no communication.
"""
from __future__ import annotations

import atexit
import os
import time
import warnings
from collections.abc import Callable

import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_nn
from torch import nn

from .samplers import ContrastiveBatchSampler, EmbeddingBatchSampler

__all__ = [
    "all_gather_rows", "broadcast_buffers", "check_same_graph", "gather_embeddings", "init_from_torchrun_env",
    "refresh_from_shards", "world_size_and_rank",
]


def world_size_and_rank() -> tuple[int, int]:
    """``(world_size, rank)`` of the default process group, ``(1, 0)`` without one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size(), dist.get_rank()
    return 1, 0


def init_from_torchrun_env(device: torch.device) -> bool:
    """Initialise the default process group from ``torchrun``'s environment.

    Does so only when no group exists yet and ``WORLD_SIZE`` (set by ``torchrun``,
    with ``RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``) names more than one process:
    the ``nccl`` backend for a CUDA ``device``, ``gloo`` otherwise. A group initialised
    here is destroyed at interpreter exit (a gloo group left to interpreter shutdown
    can abort the process).

    Returns
    -------
    bool
        Whether a group was initialised.
    """
    if not dist.is_available() or dist.is_initialized():
        return False
    world_size = os.environ.get("WORLD_SIZE", "1")
    if not world_size.isdigit():
        raise ValueError(f"the WORLD_SIZE environment variable must be a process count, got {world_size!r}")
    if int(world_size) <= 1:
        return False
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    atexit.register(_destroy_process_group)
    return True


def _destroy_process_group() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def _collective_device(tensor: torch.Tensor) -> torch.device:
    """Where the default group's backend can all-gather ``tensor``."""
    backend = dist.get_backend()
    if backend == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    if backend == "gloo":
        return torch.device("cpu")
    return tensor.device


def all_gather_rows(tensor: torch.Tensor, *, differentiable: bool = False) -> torch.Tensor:
    """Every process's ``tensor``, concatenated along the first dimension in rank order.

    Parameters
    ----------
    tensor : Tensor of shape (n, ...)
        The same shape and dtype in every process (each process's slice of a global
        batch has ``n`` rows).
    differentiable : bool
        Gather through ``torch.distributed.nn.functional.all_gather``, so that the
        gradient of each process's loss with respect to the gathered rows flows back
        (summed over processes) to the process that computed them.

    Returns
    -------
    Tensor of shape (world_size * n, ...)
        ``tensor`` itself with one process.
    """
    world_size, _ = world_size_and_rank()
    if world_size == 1:
        return tensor
    if differentiable:
        with warnings.catch_warnings():
            # Recent torch deprecates it for a private module's function that torch 2.0 lacks;
            # it is still the public all-gather with gradients on every torch we support.
            warnings.filterwarnings("ignore", "torch.distributed.nn.functional.all_gather is deprecated",
                                    FutureWarning)
            return torch.cat(dist_nn.all_gather(tensor))
    parts = [torch.empty_like(tensor) for _ in range(world_size)]
    dist.all_gather(parts, tensor.contiguous())
    return torch.cat(parts)


def broadcast_buffers(module: nn.Module) -> None:
    """Give every process rank 0's buffers of ``module`` (e.g. BatchNorm statistics),
    as ``DistributedDataParallel`` does before each forward pass; a no-op with one process."""
    world_size, _ = world_size_and_rank()
    if world_size > 1:
        for buffer in module.buffers():
            dist.broadcast(buffer, src=0)


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
