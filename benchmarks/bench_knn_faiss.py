"""kNN graph and kNN sampler at a million instances through faiss (the scale-out issue, item 5).

For N instances (default N = 1,280,000, d = 128: the mixture of 1,000 Gaussian clusters
``benchmarks/bench_million.py`` trains on, cosine similarity), each arm runs in its
own process so that its peak RSS is its own:

- ``graph:<index>``: ``knn_graph(emb, K, index=..., normalize=True)`` for ``ivf``,
  ``hnsw`` or ``exact`` (faiss ``IndexFlatIP``; O(N^2), only for small N): build time,
  peak RSS, recall@K on a sample of rows (:func:`dglbs.knn.knn_recall`).
- ``sampler:<index>``: ``KNNBatchSampler(N, B, index=...)`` for ``exact`` or ``ivf``:
  ``set_embeddings`` time (the IVF index build), one epoch of ``ceil(N / B)`` batches
  (``prefetch=False``, so the time is the sampling work), peak RSS, and recall@(B - 1)
  of the batches of a sample of seeds against exact search.
- ``sampler-cover:<index>``: the same with covering epochs (recall not measured:
  their neighbours are searched among the instances still unused).

Usage:
    python benchmarks/bench_knn_faiss.py --log        # N = 1,280,000; log in benchmarks/results/
    python benchmarks/bench_knn_faiss.py --n 100000 --arms graph:exact graph:ivf sampler:ivf
    python benchmarks/bench_knn_faiss.py --embeddings bank.pt   # a saved (N, d) tensor instead
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import subprocess
import sys
import time
from pathlib import Path

import torch

from dglbs import KNNBatchSampler
from dglbs.knn import DEFAULT_EF_SEARCH, DEFAULT_NPROBE, ivf_lists, knn_graph, knn_recall, neighbor_recall

ARMS = ("graph:exact", "graph:ivf", "graph:hnsw", "sampler:exact", "sampler:ivf", "sampler-cover:exact", "sampler-cover:ivf")
DEFAULT_ARMS = ("graph:ivf", "graph:hnsw", "sampler:exact", "sampler:ivf")
DEFAULT_LOG = Path(__file__).resolve().parent / "results" / "knn_faiss_million.txt"


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


class Timer:
    """Wall and CPU seconds (all threads) of a ``with`` block: on a shared machine the
    CPU time says how much work it was, the wall time how long it took."""

    def __enter__(self) -> "Timer":
        self.wall, self.cpu = time.perf_counter(), self._cpu()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall, self.cpu = time.perf_counter() - self.wall, self._cpu() - self.cpu

    @staticmethod
    def _cpu() -> float:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime


def load_embeddings(args: argparse.Namespace) -> torch.Tensor:
    if args.embeddings is not None:
        embeddings = torch.load(args.embeddings, map_location="cpu")
        if not isinstance(embeddings, torch.Tensor) or embeddings.dim() != 2:
            raise SystemExit(f"--embeddings must hold one (N, d) tensor (torch.save), got {type(embeddings).__name__}")
        return embeddings.float()
    # The instances of benchmarks/bench_million.py (same draws in the same order, so
    # the same values), summed in place a slice at a time: no N x d temporaries.
    generator = torch.Generator().manual_seed(0)
    centres = torch.randn(args.clusters, args.d, generator=generator) * 2
    cluster = torch.randint(args.clusters, (args.n,), generator=generator)
    instances = torch.randn(args.n, args.d, generator=generator)
    for start in range(0, args.n, 2**16):
        instances[start : start + 2**16] += centres[cluster[start : start + 2**16]]
    return instances


def run_arm(args: argparse.Namespace) -> dict:
    """One arm in this process; returns its figures."""
    kind, index = args.arm.split(":")
    embeddings = load_embeddings(args)
    n = embeddings.shape[0]
    figures = {"arm": args.arm, "n": n, "data_rss_gib": peak_rss_gib()}
    if index == "ivf":
        figures["ivf_lists"] = ivf_lists(n)
    if kind == "graph":
        with Timer() as build:
            graph = knn_graph(embeddings, args.k, backend="faiss", index=index, nprobe=args.nprobe,
                              ef_search=args.ef_search, normalize=True)
        figures |= {"build_s": build.wall, "build_cpu_s": build.cpu, "peak_rss_gib": peak_rss_gib()}
        with Timer() as check:
            figures["recall"] = knn_recall(embeddings, graph, sample_size=args.sample, normalize=True)
        figures["recall_s"] = check.wall
        return figures
    policy = "cover" if kind == "sampler-cover" else "independent"
    sampler = KNNBatchSampler(n, args.batch_size, index=index, nprobe=args.nprobe, epoch_policy=policy,
                              prefetch=False, refresh_every=10**9, chunk_size=128)
    with Timer() as build:
        sampler.set_embeddings(embeddings)
    with Timer() as epoch:
        batches = list(sampler)
    figures |= {"build_s": build.wall, "build_cpu_s": build.cpu, "epoch_s": epoch.wall, "epoch_cpu_s": epoch.cpu,
                "batches": len(batches), "peak_rss_gib": peak_rss_gib()}
    if policy == "independent":
        full = torch.tensor([batch for batch in batches if len(batch) == args.batch_size])
        sample = torch.randperm(len(full), generator=torch.Generator().manual_seed(0))[: args.sample]
        with Timer() as check:
            figures["recall"] = neighbor_recall(embeddings, full[sample, 0], full[sample, 1:], normalize=True)
        figures["recall_s"] = check.wall
    return figures


def describe(figures: dict, args: argparse.Namespace) -> str:
    arm = figures["arm"]
    k = args.k if arm.startswith("graph") else args.batch_size - 1
    recall = f"{figures['recall']:.4f} ({min(args.sample, figures['n']):,} rows, {figures['recall_s']:.0f} s)" if "recall" in figures else "-"
    if arm.startswith("graph"):
        work = f"build {figures['build_s']:7.1f} s (cpu {figures['build_cpu_s']:.1f} s)"
    else:
        batches = figures["batches"]
        work = (f"index {figures['build_s']:6.1f} s (cpu {figures['build_cpu_s']:.1f} s), epoch of {batches:,} "
                f"batches {figures['epoch_s']:7.1f} s (cpu {figures['epoch_cpu_s']:.1f} s; "
                f"{figures['epoch_s'] / batches * 1e3:.1f} ms a batch)")
    if "ivf_lists" in figures:
        work += f" ({figures['ivf_lists']} lists)"
    return (f"{arm:<20} {work}; peak RSS {figures['peak_rss_gib']:.2f} GiB "
            f"(data {figures['data_rss_gib']:.2f}); recall@{k} {recall}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_280_000)
    parser.add_argument("--d", type=int, default=128)
    parser.add_argument("--clusters", type=int, default=1000)
    parser.add_argument("--embeddings", type=Path, help="a torch.save'd (N, d) tensor instead of the mixture")
    parser.add_argument("--k", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--nprobe", type=int, default=DEFAULT_NPROBE)
    parser.add_argument("--ef-search", type=int, default=DEFAULT_EF_SEARCH)
    parser.add_argument("--sample", type=int, default=2000, help="rows (seeds) recall is measured on")
    parser.add_argument("--arms", nargs="+", choices=ARMS, default=list(DEFAULT_ARMS))
    parser.add_argument("--log", nargs="?", const=DEFAULT_LOG, type=Path, help=f"write the report (default {DEFAULT_LOG})")
    parser.add_argument("--arm", help=argparse.SUPPRESS)  # set for the child processes
    args = parser.parse_args()
    if args.arm is not None:
        print(json.dumps(run_arm(args)))
        return

    import faiss

    source = f"N={args.n:,} d={args.d}, {args.clusters} clusters" if args.embeddings is None else f"{args.embeddings}"
    lines = [
        f"$ python {shlex.join(sys.argv)}",
        f"{source}; K={args.k} B={args.batch_size} nprobe={args.nprobe} ef_search={args.ef_search}; "
        f"torch threads {torch.get_num_threads()}, faiss threads {faiss.omp_get_max_threads()}, "
        f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the start",
    ]
    print("\n".join(lines), flush=True)
    shared = [
        "--n", str(args.n), "--d", str(args.d), "--clusters", str(args.clusters), "--k", str(args.k),
        "--batch-size", str(args.batch_size), "--nprobe", str(args.nprobe), "--ef-search", str(args.ef_search),
        "--sample", str(args.sample), *(["--embeddings", str(args.embeddings)] if args.embeddings else []),
    ]
    for arm in args.arms:
        start = time.perf_counter()
        child = subprocess.run([sys.executable, __file__, *shared, "--arm", arm], capture_output=True, text=True)
        if child.returncode:
            line = f"{arm:<20} failed ({child.returncode}): {child.stderr.strip().splitlines()[-1:]}"
        else:
            figures = json.loads(child.stdout.strip().splitlines()[-1])
            line = describe(figures, args) + f"; wall {time.perf_counter() - start:.0f} s"
        lines.append(line)
        print(line, flush=True)
    lines.append(f"load average {os.getloadavg()[0]:.1f} at the end")
    print(lines[-1])
    if args.log is not None:
        args.log.parent.mkdir(parents=True, exist_ok=True)
        args.log.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
