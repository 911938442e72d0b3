"""Shared by the multi-process integration tests: a synthetic data set whose batches
name their instances, a walk sampler that records its rebuilds, the replay of its
batches in one process, and a launcher for a test's worker script as the processes
of one torch.distributed job on 127.0.0.1."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import torch
from torch.utils.data import Dataset

from dglbs import WalkBatchSampler

NUM_INSTANCES, DIM, BATCH_SIZE, EPOCHS = 200, 8, 10, 2


def instance_features() -> torch.Tensor:
    """(NUM_INSTANCES, DIM) float32 features, the same in every process."""
    return torch.randn(NUM_INSTANCES, DIM, generator=torch.Generator().manual_seed(0))


def initial_encoder() -> torch.nn.Linear:
    """The untrained encoder, the same in every process."""
    torch.manual_seed(0)
    return torch.nn.Linear(DIM, 4)


class IndexedFeatures(Dataset):
    """Instance ``i`` is ``(i, features[i])``, so a batch tells which instances it holds."""

    def __init__(self, features: torch.Tensor) -> None:
        self.features = features

    def __len__(self) -> int:
        return len(self.features)

    def __getitem__(self, index: int) -> tuple[int, torch.Tensor]:
        return index, self.features[index]


class RecordingWalkSampler(WalkBatchSampler):
    """Remembers ``(global_step, embeddings, graph's edge destinations)`` of every rebuild."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.rebuilds: list[tuple[int, torch.Tensor, torch.Tensor]] = []

    def set_embeddings(self, embeddings: torch.Tensor) -> None:
        super().set_embeddings(embeddings)
        self.rebuilds.append((self.global_step, embeddings.clone(), self.graph.edges()[1].clone()))


def make_sampler(num_replicas: int = 1, rank: int = 0, **options) -> RecordingWalkSampler:
    """The tests' walk sampler: one rebuild per epoch (before the first, then after
    each epoch's last step); ``options`` go to the sampler."""
    steps_per_epoch = NUM_INSTANCES // (BATCH_SIZE * num_replicas)
    return RecordingWalkSampler(NUM_INSTANCES, BATCH_SIZE, num_candidates=20, num_neighbors=5, restart_prob=0.3,
                                refresh_every=steps_per_epoch, seed=3, num_replicas=num_replicas, rank=rank,
                                **options)


def replayed_batches(rebuilds, num_replicas: int = 1, rank: int = 0, **options) -> list[list[int]]:
    """The batches of EPOCHS epochs of a fresh :func:`make_sampler` (with ``options``)
    given the recorded embeddings at the start of each epoch, as training gave them."""
    sampler = make_sampler(num_replicas, rank, **options)
    batches = []
    for epoch in range(EPOCHS):
        for step, embeddings, _ in rebuilds:
            if step == epoch * len(sampler):
                sampler.set_embeddings(embeddings)
        sampler.set_epoch(epoch)
        batches += list(sampler)
    return batches


def assert_ranks_split_the_replayed_global_batches(ranks: list[dict]) -> None:
    """What two ranks' records (``seen`` batches, ``rebuilds`` as (step, embeddings,
    graph)) must show: 10 batches of ``BATCH_SIZE`` per epoch on each rank, disjoint
    halves, the same embeddings and graph at the same steps (each rank encoded half, all
    gathered in order), and each rank's slice of what a one-process sampler with
    ``num_replicas=2`` makes on those graphs."""
    assert [len(rank["seen"]) for rank in ranks] == [20, 20]
    for half0, half1 in zip(ranks[0]["seen"], ranks[1]["seen"]):
        assert len(half0) == len(half1) == BATCH_SIZE and not set(half0) & set(half1)
    assert [step for step, _, _ in ranks[0]["rebuilds"]] == [0, 10]
    for (step0, embeddings0, graph0), (step1, embeddings1, graph1) in zip(ranks[0]["rebuilds"], ranks[1]["rebuilds"]):
        assert step0 == step1 and torch.equal(embeddings0, embeddings1) and torch.equal(graph0, graph1)
    assert torch.allclose(ranks[0]["rebuilds"][0][1], initial_encoder()(instance_features()))
    for rank in range(2):
        assert ranks[rank]["seen"] == replayed_batches(ranks[rank]["rebuilds"], num_replicas=2, rank=rank)
    assert ranks[0]["seen"][:10] != ranks[0]["seen"][10:]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run_processes(script: Path, arguments: list[str], log_dir: Path, *, world_size: int = 2,
                  timeout: float = 90.0) -> None:
    """Run ``python script *arguments`` as ranks ``0 .. world_size - 1``.

    Each process gets the environment torchrun would give it (``MASTER_ADDR``,
    ``MASTER_PORT``, ``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``, ``NODE_RANK``), one
    thread, and the repository on ``PYTHONPATH``; its output goes to
    ``log_dir/rank<r>.log``. As soon as one process fails, or ``timeout`` seconds
    after the start, the others are killed, so a deadlock fails the test instead
    of hanging it.

    Raises
    ------
    AssertionError
        Naming the rank that failed or timed out, with its output.
    """
    port = str(free_port())
    repository = str(Path(__file__).resolve().parents[2])
    logs = [log_dir / f"rank{rank}.log" for rank in range(world_size)]
    workers = []
    for rank, log in enumerate(logs):
        env = dict(
            os.environ, MASTER_ADDR="127.0.0.1", MASTER_PORT=port, WORLD_SIZE=str(world_size), RANK=str(rank),
            LOCAL_RANK=str(rank), NODE_RANK="0", OMP_NUM_THREADS="1",
            PYTHONPATH=os.pathsep.join(filter(None, [repository, os.environ.get("PYTHONPATH")])),
        )
        with open(log, "w") as out:
            workers.append(subprocess.Popen([sys.executable, str(script), *arguments], env=env,
                                            stdout=out, stderr=subprocess.STDOUT))
    deadline = time.monotonic() + timeout
    try:
        while any(worker.poll() is None for worker in workers):
            failed = [rank for rank, worker in enumerate(workers) if worker.poll() not in (None, 0)]
            if failed:
                break
            if time.monotonic() > deadline:
                late = [rank for rank, worker in enumerate(workers) if worker.poll() is None]
                raise AssertionError(
                    f"ranks {late} of {world_size} did not finish within {timeout} s; rank {late[0]} printed:\n"
                    + logs[late[0]].read_text()
                )
            time.sleep(0.1)
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
            worker.wait()
    # Report a rank that failed by itself before those killed here.
    failed = sorted((worker.returncode == -signal.SIGKILL, rank) for rank, worker in enumerate(workers)
                    if worker.returncode != 0)
    if failed:
        rank = failed[0][1]
        raise AssertionError(f"rank {rank} of {world_size} failed:\n{logs[rank].read_text()}")
