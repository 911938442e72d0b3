"""``dgl.sampling.random_walk`` on one dedicated thread, so traces depend on the seed alone.

DGL keeps one generator per thread and seeds it from ``dgl.seed(s)`` *and* an id the
thread receives the first time it calls ``dgl.seed`` (0, 1, 2, ... in the order threads
get there). Two consequences for a library that must give the same batches in every
process:

- walks drawn on several OpenMP threads depend on which thread got which id, a race
  (observed under load: different traces from the same seed, run to run);
- even on one thread, the id of the calling thread depends on what the program did
  before: ``dgl.seed(...)`` at the default thread count hands ids to the main thread
  and the OpenMP workers in racy order, and each id is a different stream.

So every walk runs on a thread of our own, started when :mod:`dglbs` is imported and
the first to seed DGL in a program that imports dglbs before touching DGL's
generators, with DGL limited to one thread for the duration of each call
(:func:`single_threaded_dgl`). Its stream is then a function of the seed only, whatever
the program does with ``dgl.seed`` later. :func:`stream_is_canonical` checks this
against a fingerprint recorded for the pinned DGL version.
"""
from __future__ import annotations

import atexit
import ctypes
import os
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from concurrent.futures import Future, ThreadPoolExecutor
from queue import Empty, SimpleQueue
from typing import Any, TypeVar

import dgl
import torch

T = TypeVar("T")

_PROBE_SEED = 1_000_003
_FINGERPRINTS = {
    # First 16 moves of a walk from node 0 on the complete 64-node digraph, seeded
    # with _PROBE_SEED by a thread that seeded DGL first (see _probe).
    "1.1.3": (48, 28, 48, 47, 13, 28, 39, 3, 5, 41, 32, 8, 45, 48, 32, 6),
}


def _probe() -> tuple[int, ...]:
    nodes = torch.arange(64, dtype=torch.int32)
    graph = dgl.graph((nodes.repeat_interleave(64), nodes.repeat(64)), num_nodes=64)
    with single_threaded_dgl():
        dgl.seed(_PROBE_SEED)
        trace, _ = dgl.sampling.random_walk(graph, torch.zeros(1, dtype=torch.int32), length=16)
    return tuple(trace[0, 1:].tolist())


@contextmanager
def single_threaded_dgl() -> Iterator[None]:
    """DGL's seeding and walks on one thread, for their duration only.

    DGL's parallel loops do not follow the calling thread's own OpenMP setting (see
    :func:`one_openmp_thread`), only the process-wide one ``torch.set_num_threads``
    sets; so it is lowered to one thread around each call and restored after. While
    a walk drawn ahead runs, the training loop's own parallel regions run on one
    thread too: a walk call lasts about a millisecond."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


_OPENMP_LIBRARIES = ("libgomp.so.1", "libiomp5.so", "libomp.so", "libomp.dylib")


def one_openmp_thread() -> bool:
    """Limit OpenMP parallel regions started by the calling thread to one thread.

    ``omp_set_num_threads`` sets the calling thread's own setting (OpenMP's
    nthreads-var), which torch's parallel regions on this thread follow; the rest of
    the program keeps its threads. (``torch.set_num_threads`` would not do: it sets
    the process-wide count, and left at one it halved the training loop's matrix
    products.) Used by the graph-build thread. Returns whether an OpenMP runtime was
    found (the one torch and DGL share, by soname).
    """
    for name in _OPENMP_LIBRARIES:
        try:
            ctypes.CDLL(name).omp_set_num_threads(1)
        except (OSError, AttributeError):
            continue
        return True
    return False


class _WalkThread:
    """A daemon thread that runs submitted calls one at a time."""

    def __init__(self) -> None:
        self._jobs: SimpleQueue = SimpleQueue()
        self._thread = threading.Thread(target=self._serve, name="dglbs-dgl-random", daemon=True)
        self._thread.start()
        self.fingerprint = self.run(_probe)

    def _serve(self) -> None:
        # No thread setting of its own: single_threaded_dgl reads and restores the
        # program's (process-wide) count from this thread.
        while True:
            job = self._jobs.get()
            if job is None:
                return
            call, args, future = job
            if not future.set_running_or_notify_cancel():
                continue  # cancelled while queued: work drawn ahead and then dropped
            try:
                future.set_result(call(*args))
            except BaseException as error:  # handed to the caller
                future.set_exception(error)

    def run(self, call: Callable[..., T], *args: Any) -> T:
        if threading.current_thread() is self._thread:
            return call(*args)
        return self.submit(call, *args).result()

    def submit(self, call: Callable[..., T], *args: Any) -> Future:
        future: Future = Future()
        self._jobs.put((call, args, future))
        return future

    def stop(self) -> None:
        """Cancel the queued jobs, let the running one finish, and end the thread.

        Called at interpreter exit: a daemon thread still inside DGL or torch when
        the process tears down their C++ state aborts the process (SIGABRT), e.g.
        while drawing ahead a chunk nobody will use."""
        while True:
            try:
                job = self._jobs.get_nowait()
            except Empty:
                break
            if job is not None:
                job[2].cancel()
        self._jobs.put(None)
        self._thread.join()


_thread: _WalkThread | None = None
_lock = threading.Lock()
_stream_checked = False


def _walk_thread() -> _WalkThread:
    global _thread
    with _lock:
        if _thread is None:
            _thread = _WalkThread()
        return _thread


def _forget_thread() -> None:
    # Threads do not survive fork: a child process starts its own on first use.
    global _thread, _lock, _builder
    _thread, _lock, _builder = None, threading.Lock(), None


os.register_at_fork(after_in_child=_forget_thread)


@atexit.register
def _stop_thread() -> None:
    if _thread is not None:
        _thread.stop()


def start() -> None:
    """Start the walk thread now (dglbs calls this on import, before user code can
    seed DGL's generators on other threads)."""
    _walk_thread()


def stream_is_canonical() -> bool | None:
    """Whether walks draw the same streams as in a program that imported dglbs first.

    ``None`` when no fingerprint is recorded for the installed DGL version.
    """
    reference = _FINGERPRINTS.get(dgl.__version__)
    if not reference:
        return None
    return _walk_thread().fingerprint == reference


def on_walk_thread(call: Callable[..., T], *args: Any) -> T:
    """Run ``call(*args)`` on the walk thread and return its result (directly when
    already there). Code that makes many DGL walks runs whole on that thread, so it
    pays one hand-over instead of one per walk."""
    return _walk_thread().run(call, *args)


def submit_to_walk_thread(call: Callable[..., T], *args: Any) -> Future:
    """Queue ``call(*args)`` on the walk thread and return its future at once (for
    work drawn ahead of need, such as the next chunk of batches)."""
    return _walk_thread().submit(call, *args)


_builder: ThreadPoolExecutor | None = None


def submit_to_build_thread(call: Callable[..., T], *args: Any) -> Future:
    """Queue ``call(*args)`` (a graph build) on a background thread limited to one
    OpenMP thread, so it leaves the training loop's threads alone."""
    global _builder
    with _lock:
        if _builder is None:
            _builder = ThreadPoolExecutor(1, "dglbs-graph-build", initializer=one_openmp_thread)
        return _builder.submit(call, *args)


def random_walk_traces(
    graph: dgl.DGLGraph, nodes: torch.Tensor, length: int, restart: torch.Tensor, seed: int
) -> torch.Tensor:
    """``dgl.sampling.random_walk(graph, nodes, length, restart_prob=restart)`` traces
    drawn from DGL's stream ``seed`` on the dedicated thread.

    Returns
    -------
    Tensor of shape (len(nodes), length + 1), the graph's id type; -1 after a trace ends.
    """
    global _stream_checked
    if not _stream_checked:
        # Once per process: the fingerprint cannot change, and this runs every round.
        _stream_checked = True
        if stream_is_canonical() is False:
            warnings.warn(
                "DGL's random generators were seeded on other threads before dglbs was "
                "imported (e.g. dgl.seed(...) called first), so walks are reproducible within "
                "this program but differ from a program that imports dglbs first; import dglbs "
                "before calling dgl.seed to get the same batches everywhere",
                RuntimeWarning,
                stacklevel=3,
            )

    def walk() -> torch.Tensor:
        with single_threaded_dgl():
            dgl.seed(seed)
            traces, _ = dgl.sampling.random_walk(graph, nodes, length=length, restart_prob=restart)
        return traces

    return _walk_thread().run(walk)
