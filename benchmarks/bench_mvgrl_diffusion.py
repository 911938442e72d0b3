"""Size and time of MVGRL's diffusion views on a TU dataset, from an evenly spaced sample.

MVGRL trains on a graph's adjacency and its personalised-PageRank diffusion
(``dglbs_models.diffusion.ppr_diffusion``), which is nearly dense for a connected
graph. This computes both views for every ``--every``-th graph, untruncated and with
each node's ``--topk`` largest in-edges kept, and extrapolates edges, memory (int64
source and destination and a float32 weight per edge) and time to the whole dataset.

    OMP_NUM_THREADS=1 python benchmarks/bench_mvgrl_diffusion.py --dataset REDDIT-BINARY --every 40
"""
from __future__ import annotations

import argparse
import time

import dgl

from dglbs.data.tu import TUDataset
from dglbs_models.mvgrl import mvgrl_views

BYTES_PER_EDGE = 8 + 8 + 4


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="REDDIT-BINARY")
    parser.add_argument("--every", type=int, default=40, help="sample every this many graphs")
    parser.add_argument("--topk", type=int, default=64)
    args = parser.parse_args()
    dataset = TUDataset(args.dataset)
    sample = [dataset[i][0] for i in range(0, len(dataset), args.every)]
    scale = len(dataset) / len(sample)
    nodes = sum(g.num_nodes() for g in sample)
    print(f"{args.dataset}: {len(dataset)} graphs; sample of {len(sample)} (every {args.every}th), "
          f"{nodes} nodes, {nodes / len(sample):.0f} a graph on average")
    for topk in (None, args.topk):
        start = time.perf_counter()
        views = mvgrl_views(dgl.batch(sample), topk=topk)
        seconds = time.perf_counter() - start
        edges = views["ppr"].num_edges()
        print(f"diffusion, topk={topk}: {edges:,} edges in the sample ({edges / nodes:.0f} a node), "
              f"{seconds:.1f} s; whole dataset ≈ {edges * scale / 1e6:,.0f} M edges, "
              f"{edges * scale * BYTES_PER_EDGE / 2**30:.1f} GiB, {seconds * scale / 60:.1f} min")


if __name__ == "__main__":
    main()
