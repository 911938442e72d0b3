"""Where an RWR batch's time goes: DGL's walk against everything around it.

N = 50,000 random unit vectors (d = 128), the proximity graph at M = 1000, K = 100,
chunks of 128 batches of B = 256 at alpha = 0.2 (the cost issue's target: at most
0.1 ms a batch). CPU seconds (``time.process_time``: the walk thread's and this
thread's), so that load from other jobs on a shared machine inflates the figures
less than wall time would; every figure comes from the same calls.

    python benchmarks/bench_rwr_breakdown.py
"""
from __future__ import annotations

import argparse
import time

import torch

import dglbs.walks as walks
from dglbs import proximity_graph


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=50_000)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--chunk", type=int, default=128)
    parser.add_argument("--calls", type=int, default=20)
    args = parser.parse_args()
    generator = torch.Generator().manual_seed(0)
    embeddings = torch.nn.functional.normalize(torch.randn(args.n, 128, generator=generator), dim=1)
    walker = walks.GraphWalker(proximity_graph(embeddings, 1000, 100, generator=generator))
    seeds = torch.randint(args.n, (args.chunk,), generator=generator)

    calls = []
    dgl_walk = walks.random_walk_traces

    def timed_walk(graph, nodes, length, restart, seed):
        start = time.process_time()
        traces = dgl_walk(graph, nodes, length, restart, seed)
        calls.append((int((traces[:, 1:] >= 0).sum()), time.process_time() - start))
        return traces

    walks.random_walk_traces = timed_walk
    for _ in range(3):  # warm-up
        walker.batches(seeds, args.batch_size, restart_prob=0.2, generator=generator)
    calls.clear()
    start = time.process_time()
    for _ in range(args.calls):
        walker.batches(seeds, args.batch_size, restart_prob=0.2, generator=generator)
    total = time.process_time() - start
    batches = args.calls * args.chunk
    moves = sum(count for count, _ in calls)
    in_dgl = sum(seconds for _, seconds in calls)
    print(f"N={args.n} B={args.batch_size} M=1000 K=100 alpha=0.2, {batches} batches in chunks of {args.chunk}")
    print(f"RWR: {1e3 * total / batches:.3f} ms a batch (CPU); DGL calls per chunk {len(calls) / args.calls:.2f}")
    print(f"  inside dgl.sampling.random_walk: {1e3 * in_dgl / batches:.3f} ms a batch ({100 * in_dgl / total:.0f} %), "
          f"{moves / batches:.0f} moves a batch at {1e9 * in_dgl / moves:.0f} ns a move")
    print(f"  everything else (rounds, de-duplication, top-up checks): {1e3 * (total - in_dgl) / batches:.3f} ms a batch")


if __name__ == "__main__":
    main()
