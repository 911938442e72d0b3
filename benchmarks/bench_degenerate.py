"""Worst cases of walk sampling: per-batch cost on degenerate graphs vs random ones.

Graphs a real training run can produce make walks run out of new nodes: a collapsed
encoder (identical, near-identical or all-zero embeddings), hubs everybody points to,
many tiny closed components, K = 1, M = K = 1, a dataset barely larger than a batch,
alpha = 0 or 1. For each shape and strategy this prints the sampling time per batch
(a whole epoch of ``WalkBatchSampler``, both epoch policies) and its ratio to random
unit embeddings at the same N, B and strategy, all in one run (the issue's bound: 10x).

Usage:
    python benchmarks/bench_degenerate.py                 # N=20,000, B=256, M=500, K=100, alpha=0.2
    python benchmarks/bench_degenerate.py --quick         # N=4,000, B=128
"""
from __future__ import annotations

import argparse
import time

import dgl
import torch

from dglbs import WalkBatchSampler
from dglbs.walks import STRATEGIES


def embeddings_of(shape: str, n: int, d: int = 32) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    if shape == "collapsed":
        return torch.ones(n, d)
    if shape == "near-identical":
        return torch.ones(n, d) + 1e-6 * torch.randn(n, d, generator=generator)
    if shape == "all-zero":
        return torch.zeros(n, d)
    return torch.randn(n, d, generator=generator)


def hub_graph(n: int, k: int) -> dgl.DGLGraph:
    """Every node points to the same k hubs; hubs point to each other."""
    src = torch.arange(n).repeat_interleave(k)
    dst = torch.arange(k).repeat(n)
    dst = torch.where(dst == src, (dst + 1) % k, dst)
    return dgl.graph((src, dst), num_nodes=n)


def components_graph(n: int, size: int = 3) -> dgl.DGLGraph:
    """Closed components of `size` nodes, each node pointing to the others."""
    nodes = torch.arange(n)
    first = nodes - nodes % size
    src, dst = [], []
    for offset in range(1, size):
        target = first + (nodes - first + offset) % size
        keep = target < n
        src.append(nodes[keep])
        dst.append(target[keep])
    return dgl.graph((torch.cat(src), torch.cat(dst)), num_nodes=n)


def sampler_for(shape: str, n: int, b: int, m: int, k: int, alpha: float, strategy: str, policy: str):
    options = {"num_candidates": m, "num_neighbors": k, "restart_prob": alpha}
    if shape == "K=1":
        options["num_neighbors"] = 1
    if shape == "M=K=1":
        options["num_candidates"] = options["num_neighbors"] = 1
    if shape == "alpha=0":
        options["restart_prob"] = 0.0
    if shape == "alpha=1":
        options["restart_prob"] = 1.0
    if shape == "N=B+1":
        n = b + 1
    options["num_neighbors"] = min(options["num_neighbors"], n - 1)
    options["num_candidates"] = max(options["num_candidates"], options["num_neighbors"])
    # prefetch=False: this measures the work per batch, not what a training loop waits for.
    sampler = WalkBatchSampler(n, b, strategy=strategy, epoch_policy=policy, chunk_size=128, prefetch=False, **options)
    if shape == "hub":
        sampler.set_graph(hub_graph(n, k))
    elif shape == "components":
        sampler.set_graph(components_graph(n))
    else:
        sampler.set_embeddings(embeddings_of(shape, n))
    return sampler


def per_batch_seconds(sampler: WalkBatchSampler, epochs: int) -> float:
    batches = 0
    start = time.perf_counter()
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        batches += sum(1 for _ in sampler)
    return (time.perf_counter() - start) / batches


SHAPES = ("random", "collapsed", "near-identical", "all-zero", "hub", "components", "K=1", "M=K=1", "N=B+1", "alpha=0", "alpha=1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    n, b, m, k, alpha = (4000, 128, 500, 100, 0.2) if args.quick else (20_000, 256, 500, 100, 0.2)
    print(f"N={n} B={b} M={m} K={k} alpha={alpha}; ms per batch (ratio to random at the same N, B, strategy)")
    for policy in ("cover", "independent"):
        print(f"\nepoch_policy={policy!r}")
        print(f"{'shape':>15} " + " ".join(f"{s:>16}" for s in STRATEGIES))
        references = {}
        for shape in SHAPES:
            cells = []
            for strategy in STRATEGIES:
                epochs = 1 if strategy == "dfs" else 3
                seconds = per_batch_seconds(sampler_for(shape, n, b, m, k, alpha, strategy, policy), epochs)
                key = (strategy, shape == "N=B+1")
                if shape in ("random", "N=B+1") and key not in references:
                    reference = seconds
                    if shape == "N=B+1":  # its reference: random embeddings at N = B + 1
                        reference = per_batch_seconds(sampler_for("N=B+1", n, b, m, k, alpha, strategy, policy), epochs)
                    references[key] = reference
                cells.append(f"{seconds * 1e3:8.3f} ({seconds / references[key]:4.1f}x)")
            print(f"{shape:>15} " + " ".join(f"{c:>16}" for c in cells), flush=True)


if __name__ == "__main__":
    main()
