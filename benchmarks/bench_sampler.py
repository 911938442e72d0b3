"""Cost of BatchSampler on random unit-norm embeddings (paper Table 5: Cost_G, Cost_S).

Prints, on the same embeddings and in one run:
- Cost_G: our proximity-graph build;
- (a) the naive build that gathers each node's candidate embeddings into an
  (rows, M, d) tensor and runs a batched matmul + top-K (the approach of the
  paper's public code), timed on a subset of rows and scaled to N;
- (b) a bare (N, d) @ (d, M) matmul + top-K: the floor for this work on this machine;
- Cost_S: per-batch sampling time of each walk strategy, amortised over an epoch.

Usage:
    python benchmarks/bench_sampler.py                       # N=50,000, d=128, M=1000, K=100
    python benchmarks/bench_sampler.py --scale 1000000       # peak RSS of a 1M-node build
"""
from __future__ import annotations

import argparse
import resource
import time

import torch

from dglbs import WalkBatchSampler, proximity_graph


def unit_embeddings(n: int, d: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.nn.functional.normalize(torch.randn(n, d, generator=generator), dim=1)


def best_of(repeats: int, function) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def naive_build(embeddings: torch.Tensor, rows: torch.Tensor, m: int, k: int, generator: torch.Generator) -> None:
    """Per-node candidate draws, gathered: (rows, M, d) -> bmm -> top-K, in row chunks.

    Candidates are drawn with replacement in one call, which favours the baseline:
    its cost is the gather and the batched matrix-vector products."""
    n = embeddings.shape[0]
    for part in rows.split(256):
        candidates = torch.randint(n, (part.numel(), m), generator=generator)
        gathered = embeddings[candidates]  # (rows, M, d)
        scores = torch.bmm(gathered, embeddings[part].unsqueeze(2)).squeeze(2)
        torch.topk(scores, k, dim=1)


def bare_matmul(embeddings: torch.Tensor, m: int, k: int) -> None:
    candidates = embeddings[:m]
    for part in embeddings.split(8192):
        torch.topk(part @ candidates.T, k, dim=1)


def sampling_cost(embeddings: torch.Tensor, m: int, k: int, batch_size: int, strategy: str, epochs: int) -> float:
    sampler = WalkBatchSampler(
        embeddings.shape[0], batch_size, num_candidates=m, num_neighbors=k,
        strategy=strategy, restart_prob=0.2,
    )
    sampler.set_embeddings(embeddings)
    list(sampler)  # warm-up: builds the neighbour table BFS/DFS use
    start = time.perf_counter()
    batches = 0
    for epoch in range(epochs):
        sampler.set_epoch(epoch + 1)
        batches += sum(1 for _ in sampler)
    return (time.perf_counter() - start) / batches


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=50_000)
    parser.add_argument("--d", type=int, default=128)
    parser.add_argument("--m", type=int, default=1000)
    parser.add_argument("--k", type=int, default=100)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[256, 1024])
    parser.add_argument("--strategies", nargs="+", default=["rwr", "rw", "bfs", "dfs"])
    parser.add_argument("--naive-rows", type=int, default=5000, help="rows the naive build is timed on")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--scale", type=int, help="only build a graph of this many nodes and report peak RSS")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")

    if args.scale:
        embeddings = unit_embeddings(args.scale, args.d)
        start = time.perf_counter()
        graph = proximity_graph(embeddings, args.m, args.k, generator=torch.Generator().manual_seed(0))
        elapsed = time.perf_counter() - start
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        print(f"N={args.scale:,} d={args.d} M={args.m} K={args.k}: build {elapsed:.1f} s, "
              f"{graph.num_edges():,} edges, peak RSS {peak:.2f} GiB")
        return

    n, m, k = args.n, args.m, args.k
    embeddings = unit_embeddings(n, args.d)
    generator = torch.Generator().manual_seed(0)
    ours = best_of(args.repeats, lambda: proximity_graph(embeddings, m, k, generator=generator))
    rows = torch.randperm(n, generator=generator)[: args.naive_rows]
    naive = best_of(1, lambda: naive_build(embeddings, rows, m, k, generator)) * n / rows.numel()
    bare = best_of(args.repeats, lambda: bare_matmul(embeddings, m, k))
    print(f"\nGraph build, N={n:,} d={args.d} M={m} K={k}")
    print(f"  Cost_G (ours)                     {ours:8.3f} s")
    print(f"  (a) naive gather + bmm + top-K    {naive:8.3f} s  (timed on {rows.numel():,} rows, scaled)"
          f"  -> ours is {naive / ours:.1f}x faster")
    print(f"  (b) bare N x d @ d x M + top-K    {bare:8.3f} s  -> ours is {ours / bare:.2f}x of it")

    print("\nCost_S, per batch, amortised over 2 epochs (alpha = 0.2)")
    for batch_size in args.batch_sizes:
        for strategy in args.strategies:
            epochs = 2 if strategy != "dfs" else 1
            cost = sampling_cost(embeddings, m, k, batch_size, strategy, epochs)
            print(f"  B={batch_size:5d} {strategy:4s} {cost * 1e3:8.3f} ms")


if __name__ == "__main__":
    main()
