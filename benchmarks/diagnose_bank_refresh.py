"""Why do bank-refreshed walk batches look uniform? (the graph issue's bank caveat)

With ``--refresh bank`` the proximity graph is built from the bank: the normalised
sum of the two augmented views' *projections* (``z1 + z2`` after GraphCL's head),
written by the training steps. With ``--refresh encode`` it is built from the
*encoder* output on the unaugmented graphs (``method.embed``, what the SVM scores).
On IMDB-BINARY and NCI1 the bank's walk batches had uniform's share of same-class
pairs while the encode pass's had more. This script separates the candidate causes
on one trained model per seed (trained as the example trains, bank refresh):

- ``encoder``: ``trainer.encode()``, the encode refresh's source;
- ``encoder, normalised``: the same on the unit sphere, as the bank's rows are
  (the graph ranks candidates by inner product);
- ``bank``: the bank's rows as training left them (stale by up to an epoch);
- ``projections, fresh``: the bank's quantity recomputed now, with the final
  weights and new augmentations (``trainer.encode(projections=True)``): staleness
  removed, augmentation and head kept;
- ``head, clean graphs``: the projection head on the unaugmented encoder output:
  augmentation removed, head kept.

It also records when each bank row was last written (the bank's ``update`` is
wrapped to count): its age in steps at the end of training and the share of rows
no training step wrote (still the fill's, from the untrained model). For each
source it reports the share of same-class labels among each instance's
10 nearest neighbours (cosine) and the false-negative rate of BatchSampler batches
drawn on it (three epochs at the example's settings, alpha at its start value), beside
uniform batches on the same data.

    OMP_NUM_THREADS=1 python benchmarks/diagnose_bank_refresh.py --dataset IMDB-BINARY --seeds 0 1 2
"""
from __future__ import annotations

import argparse
import statistics

import torch
import torch.nn.functional as F

from dglbs.bank import EmbeddingBank
from dglbs_examples import graph_tu
from dglbs_examples.notebook_plots import draw_policies

SOURCES = ("encoder", "encoder, normalised", "bank", "projections, fresh", "head, clean graphs")


def neighbour_agreement(embeddings: torch.Tensor, labels: torch.Tensor, k: int = 10) -> float:
    """Share of same-label instances among each row's ``k`` nearest rows by cosine
    similarity (itself excluded), averaged over rows."""
    unit = F.normalize(embeddings.float(), dim=1)
    similarity = unit @ unit.T
    similarity.fill_diagonal_(-float("inf"))
    neighbours = similarity.topk(k, dim=1).indices
    return float((labels[neighbours] == labels[:, None]).float().mean())


def track_bank_writes() -> None:
    """Make every EmbeddingBank count its updates (``writes``, the fill is 1) and
    remember the update that last wrote each row (``last_write``)."""
    update = EmbeddingBank.update

    def counting_update(self, indices, embeddings):
        update(self, indices, embeddings)
        self.writes = getattr(self, "writes", 0) + 1
        if not hasattr(self, "last_write"):
            self.last_write = torch.zeros(self.num_instances, dtype=torch.long)
        self.last_write[torch.as_tensor(indices).long().cpu()] = self.writes

    EmbeddingBank.update = counting_update


@torch.no_grad()
def sources(trainer) -> dict[str, torch.Tensor]:
    """The four embeddings of the module docstring, each of shape (N, d), on CPU."""
    encoder = trainer.encode()
    trainer.method.eval()
    head = F.normalize(trainer.method.head(encoder), dim=1)
    return {
        "encoder": encoder.cpu(),
        "encoder, normalised": F.normalize(encoder, dim=1).cpu(),
        "bank": trainer.bank.embeddings.cpu(),
        "projections, fresh": trainer.encode(projections=True).cpu(),
        "head, clean graphs": head.cpu(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="IMDB-BINARY")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=graph_tu.Config.epochs)
    args = parser.parse_args()

    track_bank_writes()
    dataset = None
    rows: dict[str, dict[str, list[float]]] = {name: {"knn": [], "fn": []} for name in SOURCES}
    uniform_fn, never = [], []
    for seed in args.seeds:
        config = graph_tu.Config(dataset=args.dataset, sampler="batchsampler", refresh="bank", seed=seed,
                                 epochs=args.epochs, progress=False)
        dataset = dataset if dataset is not None else graph_tu.load_dataset(config)
        trainer, history, _ = graph_tu.train(config, dataset)
        labels = dataset.labels
        trained_fn = [round(epoch["false_negative_rate"], 3) for epoch in history]
        bank = trainer.bank
        ages = (bank.writes - bank.last_write).float()
        never.append(float((bank.last_write == 1).float().mean()))
        print(f"seed {seed}: training batches' false-negative rate by epoch {trained_fn}")
        print(f"seed {seed}: bank rows' age {ages.mean():.0f} steps on average (median {ages.median():.0f}, "
              f"of {bank.writes - 1} steps); never written by a training step: {never[-1]:.3f}")
        for name, embeddings in sources(trainer).items():
            walk, uniform = draw_policies(config, embeddings, labels, policies=("batchsampler", "uniform"))
            rows[name]["knn"].append(neighbour_agreement(embeddings, labels))
            rows[name]["fn"].append(walk.false_negative_rate)
            uniform_fn.append(uniform.false_negative_rate)
            print(f"seed {seed}: {name:<20} 10-NN same-class {rows[name]['knn'][-1]:.3f}  "
                  f"walk-batch FN rate {walk.false_negative_rate:.3f}  (uniform {uniform.false_negative_rate:.3f})")

    def spread(values: list[float]) -> str:
        return f"{statistics.mean(values):.3f} ± {statistics.pstdev(values):.3f}"

    print(f"\n{args.dataset}, GraphCL trained with the bank refresh, seeds {args.seeds}; mean ± std over seeds")
    print(f"{'source':<20} {'10-NN same-class':>18} {'walk-batch FN rate':>20}")
    for name in SOURCES:
        print(f"{name:<20} {spread(rows[name]['knn']):>18} {spread(rows[name]['fn']):>20}")
    print(f"{'uniform batches':<20} {'':>18} {spread(uniform_fn):>20}")
    print(f"bank rows no training step wrote: {spread(never)}")


if __name__ == "__main__":
    main()
