"""GraphCL pre-training on ogbg-molhiv with the uniform, kNN or BatchSampler sampler.

A real large-N test of the samplers: N = 41,120 molecules (the MoleculeNet HIV CSV
converted offline, see :mod:`dglbs.data.molhiv`). GraphCL is pre-trained without
labels on all molecules (train, valid and test), the encoder is frozen, and a
logistic-regression probe on the standardised train-split embeddings is scored by
ROC-AUC (OGB's evaluator) on the scaffold split; the probe's inverse regularisation
C is chosen on the valid split. Each run also reports the proximity-graph build
time (Cost_G, seconds per refresh) and the per-batch sampling time (Cost_S).

Defaults follow the paper for large datasets: B = 256, M = 1000, K = 100, t = 50,
alpha decayed 0.2 -> 0.05; GIN with 3 layers of 32 and one-hot atom features.
The first run converts the SMILES (about a minute) and caches the graphs.

    dglbs-molhiv --epochs 1 --sampler uniform batchsampler --seeds 0
    dglbs-molhiv --limit 5000 --loss dcl --balanced
    python examples/graph_molhiv.py --epochs 1 --limit 5000    # from a clone

The CSV is read from ``<data dir>/molecules/HIV.csv`` (``--data-dir``, see
:mod:`dglbs.data.paths`).
"""
from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from dglbs.cli import UsageError, configure_logging, data_dir_argument, extra_imports, run_main
from dglbs.data.tu import collate
from dglbs.losses import make_loss
from dglbs.trainer import Trainer, summarize_history
from dglbs_examples.common import (
    PAPER_SAMPLERS,
    SAMPLERS,
    add_common_arguments,
    group_by_config,
    paired_differences,
    run_outputs,
)

with extra_imports("mol", __name__):
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    from dglbs.data.molhiv import MolHIVDataset, evaluate_rocauc
    from dglbs.evaluation.svm import summarize
    from dglbs_examples.graph_tu import Config as TUConfig
    from dglbs_examples.graph_tu import make_method, make_sampler

PROBE_C = (0.001, 0.01, 0.1, 1.0)
"""Inverse regularisation strengths of the logistic-regression probe tried on valid."""


@dataclass
class Config(TUConfig):
    """The TU example's settings with ogbg-molhiv defaults and the probe's options.

    ``method`` must stay ``"graphcl"``; the TU-only ``svm_folds`` is not used.
    """

    dataset: str = "ogbg-molhiv"
    epochs: int = 2
    batch_size: int = 256
    num_candidates: int = 1000
    refresh_every: int = 50
    limit: int | None = None
    cache_dir: str | None = None
    balanced: bool = False
    probe_c: tuple[float, ...] = PROBE_C


@dataclass
class Result:
    config: Config
    valid_rocauc: float
    test_rocauc: float
    probe_c: float
    train_seconds: float
    sampler_share: float
    encode_share: float
    cost_g: float
    """Seconds per sampler rebuild during training: the proximity graph for BatchSampler,
    only storing the embeddings for kNN (whose search is in ``cost_s``); NaN without a
    rebuild (uniform sampling, or fewer than ``refresh_every`` steps: the Trainer's
    epoch statistics leave out the build before the first step)."""
    cost_s: float
    """Seconds of sampling per batch."""
    cost_t: float
    """Seconds per training step."""
    refreshes: int
    history: list[dict] = field(repr=False)


def load_dataset(config: Config) -> MolHIVDataset:
    """ogbg-molhiv with one-hot float atom features, as the plain GIN takes them."""
    return MolHIVDataset(config.data_dir, cache_dir=config.cache_dir, limit=config.limit,
                         node_features="onehot")


def probe_rocauc(
    embeddings: torch.Tensor,
    labels: torch.Tensor,
    split: dict[str, torch.Tensor],
    *,
    cs: Sequence[float] = PROBE_C,
    balanced: bool = False,
    seed: int = 0,
) -> dict[str, float]:
    """Fit a logistic-regression probe on train, pick C on valid, score valid and test.

    Parameters
    ----------
    embeddings : Tensor of shape (N, d), float
        Frozen embeddings of all graphs.
    labels : Tensor of shape (N,), int64
        Binary labels, 0 or 1.
    split : dict of int64 index tensors
        ``"train"``, ``"valid"`` and ``"test"`` graph ids, e.g. ``get_idx_split()``.
    cs : sequence of float
        Candidate inverse regularisation strengths, all positive.
    balanced : bool
        Weight classes inversely to their train frequency (HIV has 3.5% actives).
    seed : int
        Seed of the solver.

    Returns
    -------
    dict with ``"c"`` (the C chosen), ``"valid"`` and ``"test"`` ROC-AUC of that probe.
    """
    if not cs or any(isinstance(c, bool) or not isinstance(c, (int, float)) or not c > 0 for c in cs):
        raise ValueError(f"cs must be a non-empty sequence of positive floats, got {cs!r}")
    if embeddings.dim() != 2 or labels.shape != (len(embeddings),):
        raise ValueError(
            f"embeddings must be (N, d) and labels (N,), got {tuple(embeddings.shape)} and "
            f"{tuple(labels.shape)}"
        )
    missing = {"train", "valid", "test"} - set(split)
    if missing:
        raise ValueError(f"split is missing {sorted(missing)}; pass the dict of get_idx_split()")
    for name in ("train", "valid", "test"):
        found = labels[split[name]].unique().tolist()
        if found != [0, 1]:
            raise ValueError(
                f"the {name} split ({len(split[name])} graphs) holds labels {found}, not both 0 and 1 "
                "as the probe and ROC-AUC need; use more molecules (--limit 1000 or more)"
            )
    features, targets = embeddings.detach().cpu().double().numpy(), labels.cpu().numpy()
    # Standardise with train statistics only: valid and test stay unseen until scoring.
    scaler = StandardScaler().fit(features[split["train"].numpy()])
    parts = {name: (scaler.transform(features[idx.numpy()]), targets[idx.numpy()]) for name, idx in split.items()}
    fits = []
    for c in cs:
        probe = LogisticRegression(C=c, class_weight="balanced" if balanced else None,
                                   max_iter=1000, random_state=seed)
        probe.fit(*parts["train"])
        scores = {name: evaluate_rocauc(parts[name][1], probe.decision_function(parts[name][0]))
                  for name in ("valid", "test")}
        fits.append({"c": float(c), **scores})
    return max(fits, key=lambda fit: fit["valid"])


def run(config: Config, dataset: MolHIVDataset | None = None) -> Result:
    """Pre-train GraphCL on all molecules, then probe the frozen embeddings."""
    if config.method != "graphcl":
        raise ValueError(f"graph_molhiv.py trains GraphCL only; got method={config.method!r}, use 'graphcl'")
    dataset = dataset if dataset is not None else load_dataset(config)
    if dataset.node_features != "onehot":
        raise ValueError(
            f"the GIN needs float atom features: load the dataset with node_features='onehot', "
            f"got {dataset.node_features!r}"
        )
    method = make_method(config, dataset.node_feature_dim)
    loss = make_loss(config.loss, temperature=config.temperature, intra_view=False)
    # No labels: pre-training is self-supervised on every molecule, valid and test included.
    trainer = Trainer(
        method, loss, make_sampler(config, len(dataset)), dataset,
        collate_fn=collate, lr=config.lr, refresh=config.refresh, progress=config.progress,
        **run_outputs(config, ("loss", "sampler")),
    )
    start = time.perf_counter()
    history = trainer.fit(config.epochs)
    train_seconds = time.perf_counter() - start
    scores = probe_rocauc(trainer.encode().cpu(), dataset.labels, dataset.get_idx_split(),
                          cs=config.probe_c, balanced=config.balanced, seed=config.seed)
    costs = summarize_history(history)
    return Result(
        config, scores["valid"], scores["test"], scores["c"], train_seconds,
        sampler_share=costs["sampler_share"], encode_share=costs["encode_share"],
        cost_g=costs["cost_g"], cost_s=costs["cost_s"], cost_t=costs["cost_t"],
        refreshes=costs["refreshes"], history=history,
    )


def describe(result: Result) -> str:
    """One line: ROC-AUCs, times and sampler costs of a run."""
    config = result.config
    return (
        f"{config.loss} {config.sampler} seed {config.seed}: ROC-AUC valid {100 * result.valid_rocauc:.2f} "
        f"test {100 * result.test_rocauc:.2f} (probe C {result.probe_c:g}) | train {result.train_seconds:.1f} s, "
        f"Cost_T {1e3 * result.cost_t:.1f} ms/step, Cost_S {1e3 * result.cost_s:.2f} ms/batch, "
        f"Cost_G {result.cost_g:.2f} s/build x {result.refreshes}, sampler {100 * result.sampler_share:.2f}% "
        f"and encode {100 * result.encode_share:.1f}% of the step"
    )


def summary_table(results: list[Result]) -> str:
    """Mean ± std over seeds of valid and test ROC-AUC (%) and costs, per loss and sampler,
    then each sampler's paired difference to uniform over the same seeds."""
    lines = [f"{'loss':8s} {'sampler':13s} {'valid ROC-AUC':>15s} {'test ROC-AUC':>15s} {'seeds':>5s} "
             f"{'train s':>8s} {'Cost_S ms':>9s} {'Cost_G s':>8s} {'sampler %':>9s}"]
    for (loss, sampler), group in group_by_config(results, ("loss", "sampler")).items():
        valid = summarize([100 * result.valid_rocauc for result in group])
        test = summarize([100 * result.test_rocauc for result in group])

        def mean(key: str) -> float:
            return sum(getattr(result, key) for result in group) / len(group)

        lines.append(
            f"{loss:8s} {sampler:13s} {valid[0]:8.2f} ± {valid[1]:4.2f} {test[0]:8.2f} ± {test[1]:4.2f} "
            f"{len(group):5d} {mean('train_seconds'):8.1f} {1e3 * mean('cost_s'):9.2f} "
            f"{mean('cost_g'):8.2f} {100 * mean('sampler_share'):9.2f}"
        )
    for split in ("valid", "test"):
        lines += [f"{split} ROC-AUC: {line}" for line in paired_differences(
            results, lambda result: 100 * getattr(result, f"{split}_rocauc"), ("loss", "sampler"))]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    defaults = Config()
    parser.add_argument("--sampler", nargs="+", choices=SAMPLERS, default=list(PAPER_SAMPLERS))
    parser.add_argument("--loss", nargs="+", choices=("infonce", "dcl", "hcl"), default=[defaults.loss])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    for name in ("epochs", "batch_size", "hidden_dim", "num_layers", "num_candidates", "num_neighbors",
                 "refresh_every"):
        parser.add_argument(f"--{name.replace('_', '-')}", type=int, default=getattr(defaults, name))
    for name in ("lr", "temperature", "alpha_start", "alpha_end"):
        parser.add_argument(f"--{name.replace('_', '-')}", type=float, default=getattr(defaults, name))
    parser.add_argument("--limit", type=int, help="use only the first LIMIT molecules of the CSV")
    parser.add_argument("--probe-c", type=float, nargs="+", default=list(defaults.probe_c),
                        help="probe C values tried on the valid split")
    parser.add_argument("--balanced", action="store_true", help="class_weight='balanced' in the probe")
    parser.add_argument("--refresh", choices=("encode", "bank"), default=defaults.refresh)
    parser.add_argument("--cache-dir", help="where converted graphs are cached (default: ~/.cache/dglbs)")
    add_common_arguments(parser)
    args = vars(parser.parse_args(argv))
    configure_logging(args.pop("log_level"))
    args["probe_c"] = tuple(args["probe_c"])
    args["data_dir"] = str(data_dir_argument(args["data_dir"]))
    if not (Path(args["data_dir"]) / "molecules" / "HIV.csv").is_file():
        raise UsageError(f"no molecules/HIV.csv in the data folder {args['data_dir']!r}; pass --data-dir the "
                         "folder that holds molecules/HIV.csv")

    options = {key: value for key, value in args.items() if key in Config.__dataclass_fields__}
    start = time.perf_counter()
    dataset = load_dataset(Config(**options))
    split = dataset.get_idx_split()
    print(f"{dataset} loaded in {time.perf_counter() - start:.1f} s; scaffold split "
          + ", ".join(f"{name} {len(idx)} ({int(dataset.labels[idx].sum())} active)" for name, idx in split.items()),
          flush=True)
    results = []
    for loss in args["loss"]:
        for sampler in args["sampler"]:
            for seed in args["seeds"]:
                result = run(Config(**options | {"sampler": sampler, "loss": loss, "seed": seed}), dataset)
                results.append(result)
                print(describe(result), flush=True)
    print()
    print(summary_table(results))


if __name__ == "__main__":
    sys.exit(run_main(main))
