"""Launch a test's worker script as the processes of one torch.distributed job on 127.0.0.1."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path


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
