"""Coverage and batch hardness of each epoch policy (the walk-fidelity issue, item 1).

For fixed embeddings (no training), one epoch of each sampler at the paper's settings
(M = 500, K = 100, alpha = 0.2): the share of instances the epoch trains on, how often
the most frequent instance appears, the mean in-batch cosine similarity (hardness), the
in-batch false-negative rate (pairs with the same label) and the sampling time per
batch, averaged over 3 epochs. Embeddings: Gaussian noise, Fashion-MNIST pixels, and the
mean node features of PROTEINS graphs (bag of node labels), all from bundled data.

Usage:
    python benchmarks/bench_coverage.py [--data-dir ../shared/data]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from dglbs import KNNBatchSampler, UniformBatchSampler, WalkBatchSampler
from dglbs.data.images import load_fashion_mnist
from dglbs.data.tu import TUDataset
from dglbs.diagnostics import epoch_coverage, false_negative_rate, pairwise_cosine


def sources(data_dir: Path) -> dict[str, tuple[torch.Tensor, torch.Tensor | None, int]]:
    images = load_fashion_mnist(data_dir, "train")
    pixels = torch.stack([images[i][0] for i in range(20_000)]).flatten(1).float()
    pixel_labels = torch.tensor([images[i][1] for i in range(20_000)])
    proteins = TUDataset("PROTEINS", root=data_dir / "tu")
    bags = torch.stack([graph.ndata["feat"].float().mean(0) for graph, _ in proteins])
    return {
        "gaussian (N=20,000, B=256)": (torch.randn(20_000, 64, generator=torch.Generator().manual_seed(0)), None, 256),
        "Fashion-MNIST pixels (N=20,000, B=256)": (pixels - pixels.mean(0), pixel_labels, 256),
        "PROTEINS node-label bags (N=1,113, B=128)": (bags - bags.mean(0), proteins.labels, 128),
    }


def samplers(n: int, b: int):
    # prefetch=False: the time column is the work per batch (nothing trains in between).
    yield "uniform", UniformBatchSampler(n, b)
    for policy in ("independent", "cover"):
        yield f"kNN, {policy}", KNNBatchSampler(n, b, epoch_policy=policy, prefetch=False)
        yield f"BatchSampler, {policy}", WalkBatchSampler(
            n, b, num_candidates=500, num_neighbors=100, restart_prob=0.2, epoch_policy=policy, prefetch=False
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    args = parser.parse_args()
    for name, (embeddings, labels, b) in sources(args.data_dir).items():
        n = embeddings.shape[0]
        print(f"\n{name}")
        print(f"{'sampler':>26} {'coverage':>9} {'max count':>9} {'cosine':>7} {'FN rate':>8} {'ms/batch':>9}")
        for label, sampler in samplers(n, b):
            if hasattr(sampler, "set_embeddings"):
                sampler.set_embeddings(embeddings)
            coverage, most, cosine, false_negatives, seconds, batches = 0.0, 0.0, [], [], 0.0, 0
            for epoch in range(3):
                sampler.set_epoch(epoch)
                start = time.perf_counter()
                epoch_batches = list(sampler)
                seconds += time.perf_counter() - start
                batches += len(epoch_batches)
                for batch in epoch_batches:
                    cosine.append(float(pairwise_cosine(embeddings[batch]).mean()))
                    if labels is not None:
                        false_negatives.append(false_negative_rate(labels[batch]))
                share, count = epoch_coverage(epoch_batches, n)
                coverage += share / 3
                most += count / 3
            fn = f"{sum(false_negatives) / len(false_negatives):8.3f}" if false_negatives else f"{'-':>8}"
            print(f"{label:>26} {coverage:9.3f} {most:9.1f} {sum(cosine) / len(cosine):7.3f} {fn} "
                  f"{seconds / batches * 1e3:9.2f}", flush=True)


if __name__ == "__main__":
    main()
