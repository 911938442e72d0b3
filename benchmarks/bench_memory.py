"""Peak memory of a proximity-graph build and of walking on it (the walk-fidelity issue's
target: build peak <= graph + memory_budget + a small constant).

Each N runs in a fresh process, so the peak RSS (``ru_maxrss``) belongs to that N alone.
Prints, in MiB: the embeddings, the graph's own tensors (CSR indices, indptr, float32
similarities), the budget, and the RSS growth over the baseline (process with its
embeddings) at the end of the build, at its peak, and after a BFS epoch (which builds
the neighbour table) and an RWR epoch.

Usage:
    python benchmarks/bench_memory.py                        # N = 200,000 and 1,000,000, d = 128, M = 1000, K = 100
    python benchmarks/bench_memory.py --sizes 20000
"""
from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time

MIB = 2**20


def rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(n: int, d: int, m: int, k: int, batch_size: int) -> None:
    import torch

    from dglbs import WalkBatchSampler
    from dglbs.proximity import DEFAULT_MEMORY_BUDGET

    torch.manual_seed(0)
    embeddings = torch.nn.functional.normalize(torch.randn(n, d), dim=1)
    sampler = WalkBatchSampler(n, batch_size, num_candidates=m, num_neighbors=k, strategy="bfs")
    base = rss_mib()
    start = time.perf_counter()
    sampler.set_embeddings(embeddings)
    seconds = time.perf_counter() - start
    built, build_peak = rss_mib() - base, peak_mib() - base
    graph = sampler.graph
    indptr, indices, _ = graph.adj_tensors("csr")
    graph_mib = (indptr.numel() * indptr.element_size() + indices.numel() * indices.element_size()
                 + graph.edata["sim"].numel() * 4) / MIB
    iterator = iter(sampler)
    for _ in range(20):
        next(iterator)
    bfs = peak_mib() - base
    sampler.strategy = "rwr"
    sampler.set_epoch(1)
    iterator = iter(sampler)
    for _ in range(20):
        next(iterator)
    rwr = peak_mib() - base
    print(
        f"N={n:>9,} d={d} M={m} K={k} ({graph.idtype}): build {seconds:5.1f} s | "
        f"embeddings {embeddings.numel() * 4 / MIB:7.0f} | graph {graph_mib:7.0f} | "
        f"budget {DEFAULT_MEMORY_BUDGET / MIB:4.0f} | RSS growth: after build {built:7.0f}, "
        f"build peak {build_peak:7.0f} (graph + budget + {build_peak - graph_mib - DEFAULT_MEMORY_BUDGET / MIB:5.0f}), "
        f"after BFS {bfs:7.0f}, after RWR {rwr:7.0f}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[200_000, 1_000_000])
    parser.add_argument("--d", type=int, default=128)
    parser.add_argument("--m", type=int, default=1000)
    parser.add_argument("--k", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.sizes[0], args.d, args.m, args.k, args.batch_size)
        return
    print("MiB; RSS growth is over the process holding its embeddings, before the build")
    for n in args.sizes:
        subprocess.run(
            [sys.executable, __file__, "--child", "--sizes", str(n), "--d", str(args.d), "--m", str(args.m),
             "--k", str(args.k), "--batch-size", str(args.batch_size)],
            check=True,
        )


if __name__ == "__main__":
    main()
