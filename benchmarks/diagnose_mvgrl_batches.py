"""Do kNN and BatchSampler batches of MVGRL's initial embedding bank group REDDIT-BINARY graphs by size?

MVGRL on REDDIT-BINARY (``--diffusion-topk 64``) trains with uniform batches but its
loss sticks at ln 128 in most runs with kNN and BatchSampler batches (README). This
builds the example's MVGRL at initialisation (seed 0), computes what the Trainer fills
the bank with (``Trainer.encode(projections=True)``: normalised ``z1 + z2`` of every
graph), and prints how strongly it follows graph size, then the spread of graph sizes
and the cosine similarity inside the first ``BATCHES`` batches each sampler draws from
it. A few minutes on one thread.

    OMP_NUM_THREADS=1 python benchmarks/diagnose_mvgrl_batches.py
"""
import itertools
import statistics

import torch

from dglbs.data.tu import TUDataset, collate
from dglbs.losses import make_loss
from dglbs.trainer import Trainer
from dglbs_examples.graph_tu import Config, make_method, make_sampler, make_training_set

BATCHES = 15
"""Batches drawn per sampler."""


def main() -> None:
    ds = TUDataset("REDDIT-BINARY")
    config = Config(dataset="REDDIT-BINARY", method="mvgrl", diffusion_topk=64, seed=0)
    views = make_training_set(config, ds)
    trainer = Trainer(make_method(config, ds.feat_dim), make_loss(config.loss), make_sampler(config, len(ds)), views,
                      collate_fn=collate, progress=False)
    bank = trainer.encode(projections=True)  # what the Trainer fills the bank with
    log_size = torch.tensor([g.num_nodes() for g, _ in ds]).float().log()
    centred = bank - bank.mean(0)
    first_direction = torch.linalg.svd(centred, full_matrices=False)[2][0]
    correlation = torch.corrcoef(torch.stack([centred @ first_direction, log_size]))[0, 1]
    print(f"bank at init: mean cosine similarity {float((bank @ bank.T).mean()):.3f}; "
          f"log-size std over the data {float(log_size.std()):.3f}")
    print(f"correlation of the bank's first principal direction with log size: {float(correlation):.3f}")
    for name in ("uniform", "knn", "batchsampler"):
        sampler = make_sampler(Config(sampler=name, seed=0), len(ds))
        if hasattr(sampler, "set_embeddings"):
            sampler.set_embeddings(bank)
        if hasattr(sampler, "set_total_steps"):
            sampler.set_total_steps(config.epochs * len(sampler))
        sampler.set_epoch(0)
        spreads, similarities = [], []
        for batch in itertools.islice(sampler, BATCHES):
            batch = torch.as_tensor(batch)
            spreads.append(float(log_size[batch].std()))
            similarities.append(float((bank[batch] @ bank[batch].T).mean()))
        print(f"{name:13s} within-batch std of log size {statistics.fmean(spreads):.3f}, "
              f"mean cosine similarity {statistics.fmean(similarities):.4f}")


if __name__ == "__main__":
    main()
