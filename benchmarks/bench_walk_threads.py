"""What running DGL's random walk on one thread costs (see ``dglbs.walks.random_walk_traces``).

The walker runs ``dgl.sampling.random_walk`` on one thread so that batches do not depend
on the process or the thread count. This times RWR batches that way and with DGL left
on all threads (not reproducible), alternating the two on the same graph and seeds.

    python benchmarks/bench_walk_threads.py
"""
from __future__ import annotations

import argparse
import time

import dgl
import torch

from dglbs import proximity_graph, walks
from dglbs.walks import GraphWalker


def all_threads_walk(graph, nodes, length, restart, seed):
    dgl.seed(seed)
    return dgl.sampling.random_walk(graph, nodes, length=length, restart_prob=restart)[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num-instances", type=int, default=50_000)
    parser.add_argument("--alpha", type=float, default=0.2)
    parser.add_argument("--repeats", type=int, default=4)
    args = parser.parse_args()

    generator = torch.Generator().manual_seed(0)
    embeddings = torch.nn.functional.normalize(torch.randn(args.num_instances, 128, generator=generator), dim=1)
    walker = GraphWalker(proximity_graph(embeddings, 1000, 100))
    variants = {"one thread (ours)": walks.random_walk_traces, "DGL on all threads": all_threads_walk}
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; N={args.num_instances:,}, "
          f"alpha={args.alpha}, 128 batches per call; best of {args.repeats}, ms per batch")
    try:
        for batch_size in (256, 1024):
            best = dict.fromkeys(variants, float("inf"))
            for repeat in range(args.repeats):
                for name, walk in variants.items():
                    walks.random_walk_traces = walk
                    seeds = torch.randint(args.num_instances, (128,), generator=torch.Generator().manual_seed(repeat))
                    start = time.perf_counter()
                    walker.batches(seeds, batch_size, strategy="rwr", restart_prob=args.alpha,
                                   generator=torch.Generator().manual_seed(repeat))
                    best[name] = min(best[name], (time.perf_counter() - start) / 128 * 1e3)
            ours, other = best.values()
            print(f"  B={batch_size:5d}  one thread {ours:.3f}  all threads {other:.3f}  -> {ours / other:.2f}x")
    finally:
        walks.random_walk_traces = variants["one thread (ours)"]


if __name__ == "__main__":
    main()
