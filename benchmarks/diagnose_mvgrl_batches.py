"""Do kNN and BatchSampler batches of MVGRL's initial embedding bank group REDDIT-BINARY graphs by size?

MVGRL on REDDIT-BINARY (``--diffusion-topk 64``) trains with uniform batches but its
loss sticks at ln 128 with kNN and BatchSampler batches (README). This builds the
example's MVGRL at initialisation (seed 0), fills the bank as the Trainer does
(normalised ``z1 + z2`` of every graph), and prints how strongly the bank follows
graph size and the spread of graph sizes and the cosine similarity inside the first
15 batches of each sampler drawn from it. A few minutes on one thread.

    OMP_NUM_THREADS=1 python benchmarks/diagnose_mvgrl_batches.py
"""
import statistics

import torch
import torch.nn.functional as F

from dglbs.data.tu import TUDataset, collate
from dglbs_examples.graph_tu import Config, make_method, make_sampler, make_training_set


def main() -> None:
    ds = TUDataset("REDDIT-BINARY")
    config = Config(dataset="REDDIT-BINARY", method="mvgrl", diffusion_topk=64, seed=0)
    views = make_training_set(config, ds)
    method = make_method(config, ds.feat_dim).eval()
    rows = []
    with torch.no_grad():
        for start in range(0, len(views), 128):
            z1, z2 = method(collate([views[i] for i in range(start, min(start + 128, len(views)))]))
            rows.append(F.normalize(z1 + z2, dim=1))  # what the bank's fill keeps
    bank = torch.cat(rows)
    log_size = torch.tensor([g.num_nodes() for g, _ in ds]).float().log()
    print(f"bank at init: mean cosine similarity {float((bank @ bank.T).mean()):.3f}; log-size std over the data {float(log_size.std()):.3f}")
    print(f"correlation of the bank's first principal direction with log size: "
          f"{float(torch.corrcoef(torch.stack([(bank - bank.mean(0)) @ torch.linalg.svd(bank - bank.mean(0), full_matrices=False)[2][0], log_size]))[0, 1]):.3f}")
    for name in ("uniform", "knn", "batchsampler"):
        sampler = make_sampler(Config(sampler=name, seed=0), len(ds))
        if hasattr(sampler, "set_embeddings"):
            sampler.set_embeddings(bank)
        if hasattr(sampler, "set_total_steps"):
            sampler.set_total_steps(20 * (len(ds) // 128))
        sampler.set_epoch(0)
        spreads, sims = [], []
        for batch in list(iter(sampler))[:15]:
            batch = torch.as_tensor(batch)
            spreads.append(float(log_size[batch].std()))
            sims.append(float((bank[batch] @ bank[batch].T).mean()))
        print(f"{name:13s} within-batch std of log size {statistics.fmean(spreads):.3f}, mean cosine similarity {statistics.fmean(sims):.4f}")


if __name__ == "__main__":
    main()
