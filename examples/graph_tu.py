"""GraphCL / MVGRL on TU datasets with the uniform, kNN or BatchSampler sampler.

Trains on the whole dataset without labels, then scores frozen embeddings with an
SVM (GraphCL's protocol: 10-fold CV, inner grid over C). Defaults follow the
paper: B = 128, M = 500, K = 100, t = 25, alpha decayed 0.2 -> 0.05, 20 epochs,
GIN with 3 layers of 32, learning rate 0.01 (GraphCL) or 0.001 (MVGRL, its reference
implementation's: at 0.01 its walk-batch trainings on REDDIT-BINARY collapsed). The
proximity graph is rebuilt from the embeddings the training steps computed
(``--refresh bank``, as the paper's public code; one pass over the data fills the bank
before training): over 5 paired seeds it tied the encode pass (``--refresh encode``) on
PROTEINS, IMDB-BINARY and NCI1 at a fraction of the cost (see the README).

    dglbs-graph --dataset MUTAG --sampler uniform batchsampler --seeds 0 1 2
    dglbs-graph --dataset IMDB-BINARY --method mvgrl --loss dcl
    python examples/graph_tu.py --dataset PROTEINS      # the same, from a clone
    torchrun --nproc_per_node 2 examples/graph_tu.py --dataset PROTEINS   # 2 processes

Under ``torchrun`` every process trains (the shared Trainer splits each batch of
``--batch-size`` over them and gathers the negatives) and rank 0 alone scores with
the SVM and prints.

Datasets are read from ``<data dir>/tu`` (``--data-dir``, see :mod:`dglbs.data.paths`).
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from dglbs.cli import UsageError, configure_logging, data_dir_argument, extra_imports, run_main
from dglbs.data.tu import TUDataset, collate
from dglbs.distributed import init_from_torchrun_env, world_size_and_rank
from dglbs.losses import make_loss
from dglbs.trainer import Trainer, summarize_history
from dglbs_examples.common import (
    COST_HEADER, PAPER_SAMPLERS, SAMPLERS, add_common_arguments, check_uniform_epochs, cost_columns, group_by_config,
    make_sampler, mean_and_spread, paired_differences, run_outputs, tu_folder,
)
from dglbs_models.gin import GIN
from dglbs_models.graphcl import GraphCL
from dglbs_models.mvgrl import MVGRL, WithDiffusion

with extra_imports("graph", __name__):
    from dglbs.evaluation.svm import summarize, svm_cross_val

LEARNING_RATES = {"graphcl": 0.01, "mvgrl": 0.001}
"""Each method's default learning rate, its reference implementation's."""

METHODS = tuple(LEARNING_RATES)

PAPER_DATASETS = ("IMDB-BINARY", "IMDB-MULTI", "COLLAB", "REDDIT-BINARY", "PROTEINS", "MUTAG", "NCI1")
"""Table 3 of the paper; any other TU dataset runs with the same defaults."""


@dataclass
class Config:
    dataset: str = "MUTAG"
    method: str = "graphcl"
    sampler: str = "batchsampler"
    loss: str = "infonce"
    seed: int = 0
    epochs: int = 20
    batch_size: int = 128
    lr: float | None = None
    """Adam's learning rate; None: the method's, from ``LEARNING_RATES``."""
    hidden_dim: int = 32
    num_layers: int = 3
    temperature: float = 0.2
    num_candidates: int = 500
    num_neighbors: int = 100
    refresh_every: int = 25
    alpha_start: float = 0.2
    alpha_end: float = 0.05
    uniform_epochs: int = 0
    """Uniform warm-up epochs before the kNN / walk batches (the paper's public code:
    ``random_epochs``); their steps count towards ``epochs``."""
    refresh: str = "bank"
    diffusion_topk: int | None = None
    """MVGRL only: keep the ``topk`` largest diffusion entries per node (None: every
    entry of at least 1e-4). Bounds the second view on graphs of thousands of nodes."""
    augmentations: tuple[str, ...] = ("drop_nodes", "subgraph")
    data_dir: str | None = None
    """The data folder holding ``tu/`` (default: :func:`dglbs.data.paths.default_data_dir`)."""
    progress: bool | None = None
    """Progress bars; None: only when stderr is a terminal."""
    svm_folds: int = 10
    metrics_dir: str | None = None
    tensorboard_dir: str | None = None

    def __post_init__(self) -> None:
        if self.lr is None:
            self.lr = LEARNING_RATES[check_method(self.method)]


def check_method(method: str) -> str:
    """``method`` if it is one of ``METHODS``; raises ValueError naming it otherwise."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    return method


@dataclass
class Result:
    config: Config
    accuracy: float
    accuracy_std: float
    train_seconds: float
    sampler_share: float
    encode_share: float
    history: list[dict] = field(repr=False)
    embeddings: torch.Tensor = field(repr=False)
    validation: float = math.nan
    """The SVM's inner cross-validation accuracy (outer training folds only): for
    choosing settings without looking at the reported test folds."""


def make_method(config: Config, feat_dim: int):
    check_method(config.method)
    torch.manual_seed(config.seed)
    if config.method == "graphcl":
        encoder = GIN(feat_dim, config.hidden_dim, config.num_layers)
        # One augmentation stream per process (under torchrun), each augmenting its own slice.
        _, rank = world_size_and_rank()
        return GraphCL(encoder, augmentations=config.augmentations, seed=config.seed + rank)
    return MVGRL(feat_dim, config.hidden_dim, config.num_layers)


def load_dataset(config: Config) -> TUDataset:
    """``config.dataset`` from ``<config.data_dir>/tu``."""
    return TUDataset(config.dataset, None if config.data_dir is None else Path(config.data_dir) / "tu")


def make_training_set(config: Config, dataset: TUDataset) -> TUDataset | WithDiffusion:
    """What ``config.method`` trains on: the graphs, or for MVGRL the graphs with their
    diffusion views (computed here, once; pass the result to :func:`run` to reuse it)."""
    if config.method == "mvgrl":
        return WithDiffusion(dataset, topk=config.diffusion_topk)
    return dataset


def train(
    config: Config, dataset: TUDataset | None = None, training_set: TUDataset | WithDiffusion | None = None
) -> tuple[Trainer, list[dict], float]:
    """Train one configuration: the trainer, its per-epoch stats and the seconds
    training took (what :mod:`benchmarks.bench_cost` times). ``training_set`` is
    :func:`make_training_set`'s result for ``dataset`` (made here when None)."""
    init_from_torchrun_env(torch.device("cpu"))
    dataset = dataset if dataset is not None else load_dataset(config)
    if training_set is None:
        training_set = make_training_set(config, dataset)
    elif len(training_set) != len(dataset):
        raise ValueError(f"training_set has {len(training_set)} items for a dataset of {len(dataset)} graphs; "
                         f"pass make_training_set(config, dataset)")
    method = make_method(config, dataset.feat_dim)
    # GraphCL contrasts each graph's view with the other view's graphs only.
    loss = make_loss(config.loss, temperature=config.temperature, intra_view=False)
    trainer = Trainer(
        method, loss, make_sampler(config, len(dataset)), training_set,
        collate_fn=collate, lr=config.lr, refresh=config.refresh,
        labels=dataset.labels, progress=config.progress, **run_outputs(config),
    )
    start = time.perf_counter()
    history = trainer.fit(config.epochs)
    return trainer, history, time.perf_counter() - start


def run(
    config: Config, dataset: TUDataset | None = None, training_set: TUDataset | WithDiffusion | None = None
) -> Result | None:
    """Train one configuration and score its embeddings with the SVM.

    ``training_set`` as in :func:`train`. Under ``torchrun`` every process trains and
    rank 0 alone scores: the other processes return None."""
    dataset = dataset if dataset is not None else load_dataset(config)
    trainer, history, train_seconds = train(config, dataset, training_set)
    if trainer.rank != 0:
        return None
    embeddings = trainer.encode().cpu()
    scores = svm_cross_val(embeddings, dataset.labels, folds=config.svm_folds, seed=config.seed)
    costs = summarize_history(history)
    return Result(config, scores["mean"], scores["std"], train_seconds,
                  costs["sampler_share"], costs["encode_share"], history, embeddings, scores["validation"])


def summary_table(results: list[Result]) -> str:
    """Mean ± std over seeds of the per-seed CV accuracies, per sampler and loss."""
    lines = [f"{'dataset':12s} {'method':8s} {'loss':8s} {'sampler':18s} {'accuracy (%)':>16s} {COST_HEADER}"]
    for (name, method, loss, sampler), group in group_by_config(results).items():
        mean, std = summarize([100 * result.accuracy for result in group])
        lines.append(f"{name:12s} {method:8s} {loss:8s} {sampler:18s} {mean_and_spread(mean, std, len(group))} "
                     f"{cost_columns(group)}")
    lines += paired_differences(results, lambda result: 100 * result.accuracy)
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    defaults = Config()
    parser.add_argument("--dataset", nargs="+", default=[defaults.dataset])
    parser.add_argument("--method", choices=METHODS, default=defaults.method)
    parser.add_argument("--sampler", nargs="+", choices=SAMPLERS, default=list(PAPER_SAMPLERS))
    parser.add_argument("--loss", nargs="+", choices=("infonce", "dcl", "hcl"), default=[defaults.loss])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    for name in ("epochs", "batch_size", "hidden_dim", "num_layers", "num_candidates", "num_neighbors",
                 "refresh_every", "uniform_epochs", "svm_folds"):
        parser.add_argument(f"--{name.replace('_', '-')}", type=int, default=getattr(defaults, name))
    for name in ("temperature", "alpha_start", "alpha_end"):
        parser.add_argument(f"--{name.replace('_', '-')}", type=float, default=getattr(defaults, name))
    parser.add_argument("--lr", type=float, default=None,
                        help="learning rate (default: " + ", ".join(f"{rate} for {method}" for method, rate
                                                                     in LEARNING_RATES.items()) + ")")
    parser.add_argument("--refresh", choices=("encode", "bank"), default=defaults.refresh)
    parser.add_argument("--diffusion-topk", type=int, default=defaults.diffusion_topk,
                        help="MVGRL: keep the K largest diffusion entries per node (default: all of at least 1e-4)")
    add_common_arguments(parser)
    args = vars(parser.parse_args(argv))
    if args["diffusion_topk"] is not None and (args["method"] != "mvgrl" or args["diffusion_topk"] < 1):
        raise UsageError(f"--diffusion-topk {args['diffusion_topk']} needs --method mvgrl and a value of at least 1 "
                         f"(got --method {args['method']})")
    check_uniform_epochs(args)
    init_from_torchrun_env(torch.device("cpu"))
    _, rank = world_size_and_rank()
    # Under torchrun, rank 0 alone reports; the others log only warnings.
    log_level = args.pop("log_level")
    configure_logging(log_level if rank == 0 else "WARNING")
    names = args.pop("dataset")
    args["data_dir"] = str(data_dir_argument(args["data_dir"]))
    tu_folder(Path(args["data_dir"]), names)

    results = []
    for name in names:
        options = {key: value for key, value in args.items() if key in Config.__dataclass_fields__}
        dataset = load_dataset(Config(**options | {"dataset": name}))
        if rank == 0:
            print(dataset, flush=True)
        # MVGRL's diffusion views are computed once per dataset, not per run.
        start = time.perf_counter()
        training_set = make_training_set(Config(**options | {"dataset": name}), dataset)
        if training_set is not dataset and rank == 0:
            print(f"diffusion views: {time.perf_counter() - start:.1f} s", flush=True)
        for loss in args["loss"]:
            for sampler in args["sampler"]:
                for seed in args["seeds"]:
                    config = Config(**options | {"dataset": name, "sampler": sampler, "loss": loss, "seed": seed})
                    result = run(config, dataset, training_set)
                    if result is None:  # not rank 0
                        continue
                    results.append(result)
                    print(f"{name} {config.method} {loss} {sampler} seed {seed}: "
                          f"accuracy {100 * result.accuracy:.2f} ± {100 * result.accuracy_std:.2f} "
                          f"({result.train_seconds:.1f} s, sampler {100 * result.sampler_share:.2f}% "
                          f"of the training step)", flush=True)
    if rank == 0:
        print()
        print(summary_table(results))


if __name__ == "__main__":
    sys.exit(run_main(main))
