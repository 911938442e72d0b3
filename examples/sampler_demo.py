"""BatchSampler as a DGL-style batch sampler, on a bundled TU dataset.

Embeds every graph with a (randomly initialised) GIN, builds the proximity graph,
draws one epoch of batches with the uniform, kNN and BatchSampler samplers, and
prints the costs and batch diagnostics (mean in-batch cosine similarity and
false-negative rate, the share of same-class pairs).

    dglbs-sampler-demo --dataset PROTEINS
    python examples/sampler_demo.py --dataset PROTEINS     # the same, from a clone
"""
from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

import torch
from dgl.dataloading import GraphDataLoader

from dglbs import KNNBatchSampler, UniformBatchSampler, WalkBatchSampler
from dglbs.cli import add_data_dir_argument, data_dir_argument, run_main
from dglbs.data.tu import TUDataset
from dglbs.diagnostics import false_negative_rate, pairwise_cosine
from dglbs_examples.common import tu_folder
from dglbs_models.gin import GIN


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="PROTEINS")
    add_data_dir_argument(parser)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    torch.manual_seed(args.seed)
    dataset = TUDataset(args.dataset, tu_folder(data_dir_argument(args.data_dir), [args.dataset]))
    print(dataset)
    encoder = GIN(dataset.feat_dim).eval()
    start = time.perf_counter()
    with torch.no_grad():
        embeddings = torch.cat([encoder(graphs, graphs.ndata["feat"]) for graphs, _ in
                                GraphDataLoader(dataset, batch_size=512)])
    print(f"encode pass: {time.perf_counter() - start:.3f} s, embeddings {tuple(embeddings.shape)}")

    n, b = len(dataset), args.batch_size
    samplers = {
        "uniform": UniformBatchSampler(n, b, drop_last=True, seed=args.seed),
        "knn": KNNBatchSampler(n, b, drop_last=True, seed=args.seed),
        "batchsampler": WalkBatchSampler(n, b, num_candidates=500, num_neighbors=100, restart_prob=0.2,
                                         drop_last=True, seed=args.seed),
    }
    print(f"\n{'sampler':13s} {'Cost_G':>9s} {'Cost_S':>9s} {'similarity':>10s} {'false neg.':>10s}")
    for name, sampler in samplers.items():
        start = time.perf_counter()
        if hasattr(sampler, "set_embeddings"):
            sampler.set_embeddings(embeddings)
        cost_g = time.perf_counter() - start
        # The drop-in use: the sampler drives a GraphDataLoader.
        loader = GraphDataLoader(dataset, batch_sampler=sampler)
        batches = list(sampler)
        cost_s = sampler.sampling_seconds / len(batches)
        similarity = sum(pairwise_cosine(embeddings[idx]).mean().item() for idx in batches) / len(batches)
        false_neg = sum(false_negative_rate(dataset.labels[idx]) for idx in batches) / len(batches)
        graphs, labels = next(iter(loader))
        assert graphs.batch_size == b
        print(f"{name:13s} {cost_g * 1e3:7.1f}ms {cost_s * 1e3:7.3f}ms {similarity:10.3f} {false_neg:10.3f}")


if __name__ == "__main__":
    sys.exit(run_main(main))
