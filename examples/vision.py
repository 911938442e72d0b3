"""SimCLR / MoCo v3 on images with the uniform, kNN or BatchSampler sampler.

Pre-trains a ResNet without labels through the shared trainer (augmentations run
batched on ``--device``), then reports the linear-probe top-1 accuracy on the test
split: a logistic regression on frozen backbone features of the (pre-training)
training images, its weight decay chosen on a held-out part of them. A weighted kNN
monitor (k = 200, tau = 0.1) tracks test accuracy after every ``--knn-every`` epochs.

Paper defaults: B = 256 here (paper: 2048 / 4096 on ImageNet), M = 1000, K = 100,
t = 100, alpha decayed 0.2 -> 0.05; SimCLR with NT-Xent tau = 0.5, MoCo v3 with
tau = 0.2 and momentum 0.99 -> 1. Datasets are read from ``--data-dir`` (never
downloaded); Fashion-MNIST is bundled. CPU budgets: ``--train-subset``, ``--width``,
``--epochs``.

    dglbs-vision --train-subset 2000 --width 16 --epochs 1 --sampler batchsampler
    dglbs-vision --sampler uniform knn batchsampler --seeds 0 1 2 --train-subset 5000 --width 16
    dglbs-vision --dataset cifar10 --data-dir /data --width 64 --epochs 200 --device cuda
    dglbs-vision --dataset imagenet-folder --data-dir /data/imagenet100 --arch resnet50 \\
        --image-size 128 --method mocov3 --device cuda
    python examples/vision.py --train-subset 2000 --width 16    # from a clone

``--data-dir`` is the data folder holding the dataset's folder (``fashion-mnist/``,
``cifar-10-batches-py/``, ``stl10_binary/``, ``imagenet/`` with ``train/`` and
``val/``) or that folder itself; see :mod:`dglbs.data.images`.
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils.data import ConcatDataset

from dglbs.cli import configure_logging, data_dir_argument, extra_imports, run_main
from dglbs.data.images import DATASETS, ImageDataset, channel_stats, collate, load_image_dataset
from dglbs.evaluation.knn_monitor import KNNMonitor
from dglbs.losses import LOSSES, make_loss
from dglbs.trainer import Trainer, summarize_history
from dglbs_examples.common import (
    COST_HEADER, SAMPLERS, add_common_arguments, check_uniform_epochs, cost_columns, group_by_config, make_sampler,
    mean_and_spread, paired_differences, run_outputs,
)
from dglbs_models.augment_image import mocov3_augmentations, simclr_augmentation
from dglbs_models.mocov3 import MoCoV3, MoCoV3Loss
from dglbs_models.resnet import ARCHITECTURES, make_resnet
from dglbs_models.simclr import SimCLR

with extra_imports("vision", __name__, requires=("PIL",)):
    from dglbs.evaluation.linear_probe import linear_probe
    from dglbs.evaluation.svm import summarize

logger = logging.getLogger(__name__)

METHODS = ("simclr", "mocov3")
TEMPERATURES = {"simclr": 0.5, "mocov3": 0.2}
PROJ_DIMS = {"simclr": 128, "mocov3": 256}
SUBSET_SEED = 0
"""Training and test subsets do not depend on the run's seed, so runs compare on the same images."""


@dataclass
class Config:
    dataset: str = "fashion-mnist"
    data_dir: str | None = None
    """The data folder holding the dataset's folder, or that folder (default: the default data folder)."""
    method: str = "simclr"
    sampler: str = "batchsampler"
    loss: str = "infonce"
    seed: int = 0
    epochs: int = 1
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 1e-6
    arch: str = "resnet18"
    width: int = 64
    image_size: int = 128
    """Decode size of ``imagenet-folder`` images (shorter side, then centre crop)."""
    crop_min: float = 0.08
    temperature: float | None = None
    proj_dim: int | None = None
    hidden_dim: int | None = None
    """Head width; default ``backbone.out_dim`` for SimCLR, 4096 for MoCo v3."""
    base_momentum: float = 0.99
    num_candidates: int = 1000
    num_neighbors: int = 100
    refresh_every: int = 100
    alpha_start: float = 0.2
    alpha_end: float = 0.05
    uniform_epochs: int = 0
    """Uniform warm-up epochs before the kNN / walk batches (the paper's public code: 10)."""
    refresh: str = "encode"
    train_subset: int | None = None
    test_subset: int | None = None
    stl10_unlabeled: bool = False
    knn_every: int = 1
    knn_k: int = 200
    device: str = "cpu"
    encode_batch_size: int = 512
    progress: bool | None = None
    """Progress bars; None: only when stderr is a terminal."""
    metrics_dir: str | None = None
    tensorboard_dir: str | None = None


@dataclass
class Data:
    pretrain: ImageDataset | ConcatDataset
    probe_train: ImageDataset
    test: ImageDataset


@dataclass
class Result:
    config: Config
    accuracy: float
    """Linear-probe top-1 test accuracy in [0, 1]."""
    val_accuracy: float
    probe_weight_decay: float
    knn_accuracies: list[float]
    train_seconds: float
    sampler_share: float
    encode_share: float
    history: list[dict] = field(repr=False)


def _subset(dataset: ImageDataset, size: int | None) -> ImageDataset:
    if size is None or size >= len(dataset):
        return dataset
    generator = torch.Generator().manual_seed(SUBSET_SEED)
    return dataset.subset(torch.randperm(len(dataset), generator=generator)[:size].sort().values)


def load_data(config: Config) -> Data:
    """Pre-training, probe-training and test sets (subsets as configured)."""
    options: dict[str, Any] = {"size": config.image_size} if config.dataset == "imagenet-folder" else {}
    train = _subset(load_image_dataset(config.dataset, config.data_dir, "train", **options), config.train_subset)
    test_split = "val" if config.dataset == "imagenet-folder" else "test"
    if config.dataset == "imagenet-folder":
        options["classes"] = train.classes
    test = _subset(load_image_dataset(config.dataset, config.data_dir, test_split, **options), config.test_subset)
    pretrain: ImageDataset | ConcatDataset = train
    if config.stl10_unlabeled:
        if config.dataset != "stl10":
            raise ValueError(f"stl10_unlabeled applies to dataset 'stl10' only, got {config.dataset!r}")
        pretrain = ConcatDataset([train, load_image_dataset("stl10", config.data_dir, "unlabeled")])
    return Data(pretrain, train, test)


def make_method(config: Config, data: Data):
    """The configured method around a fresh backbone, seeded by ``config.seed``."""
    torch.manual_seed(config.seed)
    images = data.probe_train.images
    channels, size = data.probe_train.channels, data.probe_train.image_size[0]
    backbone = make_resnet(config.arch, image_size=size, in_channels=channels, width=config.width)
    mean, std = channel_stats(images)
    crop_scale = (config.crop_min, 1.0)
    proj_dim = config.proj_dim or PROJ_DIMS.get(config.method, 128)
    if config.method == "simclr":
        return SimCLR(backbone, augmentation=simclr_augmentation(size, channels, crop_scale=crop_scale),
                      mean=mean, std=std, hidden_dim=config.hidden_dim, proj_dim=proj_dim, seed=config.seed)
    if config.method == "mocov3":
        return MoCoV3(backbone, augmentations=mocov3_augmentations(size, channels, crop_scale=crop_scale),
                      mean=mean, std=std, hidden_dim=config.hidden_dim or 4096, proj_dim=proj_dim,
                      base_momentum=config.base_momentum, seed=config.seed)
    raise ValueError(f"method must be one of {METHODS}, got {config.method!r}")


def make_loss_for(config: Config):
    """SimCLR: NT-Xent (intra-view negatives, both views as anchors); MoCo v3: its
    query-anchored symmetrised loss (see :class:`dglbs_models.mocov3.MoCoV3Loss`)."""
    temperature = config.temperature or TEMPERATURES.get(config.method, 0.5)
    if config.method == "mocov3":
        return MoCoV3Loss(make_loss(config.loss, temperature=temperature, intra_view=False, symmetric=False))
    return make_loss(config.loss, temperature=temperature, intra_view=True)


class EpochMonitor:
    """An ``on_epoch_end`` hook: the kNN accuracy in the stats of every ``every``-th
    epoch, its encode passes timed apart (they are not training time)."""

    def __init__(self, monitor: KNNMonitor, every: int) -> None:
        self.monitor = monitor
        self.every = every
        self.seconds = 0.0

    def __call__(self, trainer: Trainer, stats: dict[str, Any]) -> None:
        if (trainer.epoch + 1) % self.every:
            return
        start = time.perf_counter()
        stats["knn_accuracy"] = self.monitor(trainer.encode)
        self.seconds += time.perf_counter() - start
        logger.info("epoch %d: kNN accuracy %.2f%%", trainer.epoch, 100 * stats["knn_accuracy"])


def train(config: Config, data: Data | None = None) -> tuple[Trainer, list[dict], float]:
    """Pre-train one configuration: the trainer, its per-epoch stats (with the kNN
    monitor's accuracy every ``knn_every`` epochs) and the seconds training took,
    the monitor's excluded."""
    if config.loss not in LOSSES:
        raise ValueError(f"loss must be one of {sorted(LOSSES)}, got {config.loss!r}")
    data = data if data is not None else load_data(config)
    method = make_method(config, data)
    trainable = [parameter for parameter in method.parameters() if parameter.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=config.lr, weight_decay=config.weight_decay)
    monitor = EpochMonitor(KNNMonitor(data.probe_train, data.test, data.probe_train.labels, data.test.labels,
                                      k=config.knn_k), config.knn_every) if config.knn_every else None
    labelled = isinstance(data.pretrain, ImageDataset)
    trainer = Trainer(
        method, make_loss_for(config), make_sampler(config, len(data.pretrain)), data.pretrain,
        collate_fn=collate, optimizer=optimizer, device=config.device, refresh=config.refresh,
        encode_batch_size=config.encode_batch_size, labels=data.pretrain.labels if labelled else None,
        progress=config.progress, **run_outputs(config),
    )
    start = time.perf_counter()
    history = trainer.fit(config.epochs, on_epoch_end=monitor)
    return trainer, history, time.perf_counter() - start - (monitor.seconds if monitor else 0.0)


def run(config: Config, data: Data | None = None) -> Result:
    """Pre-train one configuration and score it with the linear probe."""
    data = data if data is not None else load_data(config)
    trainer, history, train_seconds = train(config, data)
    probe = linear_probe(trainer.encode(data.probe_train).cpu(), data.probe_train.labels,
                         trainer.encode(data.test).cpu(), data.test.labels, seed=config.seed)
    # With --epochs 0 (the untrained backbone) the shares are NaN: no steps.
    costs = summarize_history(history)
    return Result(config, probe.test_accuracy, probe.val_accuracy, probe.weight_decay,
                  [stats["knn_accuracy"] for stats in history if "knn_accuracy" in stats], train_seconds,
                  costs["sampler_share"], costs["encode_share"], history)


def summary_table(results: list[Result]) -> str:
    """Mean ± std over seeds of the linear-probe accuracy, per method, loss and sampler."""
    lines = [f"{'dataset':14s} {'method':7s} {'loss':8s} {'sampler':13s} {'linear probe (%)':>16s} "
             f"{'kNN (%)':>7s} {COST_HEADER}"]
    for (name, method, loss, sampler), group in group_by_config(results).items():
        mean, std = summarize([100 * result.accuracy for result in group])
        finals = [100 * result.knn_accuracies[-1] for result in group if result.knn_accuracies]
        knn = f"{sum(finals) / len(finals):7.2f}" if finals else f"{'-':>7s}"
        lines.append(f"{name:14s} {method:7s} {loss:8s} {sampler:13s} {mean_and_spread(mean, std, len(group))} {knn} "
                     f"{cost_columns(group)}")
    lines += paired_differences(results, lambda result: 100 * result.accuracy)
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    defaults = Config()
    parser.add_argument("--dataset", choices=DATASETS, default=defaults.dataset)
    parser.add_argument("--method", choices=METHODS, default=defaults.method)
    parser.add_argument("--sampler", nargs="+", choices=SAMPLERS, default=[defaults.sampler])
    parser.add_argument("--loss", nargs="+", choices=sorted(LOSSES), default=[defaults.loss])
    parser.add_argument("--seeds", type=int, nargs="+", default=[defaults.seed])
    parser.add_argument("--arch", choices=sorted(ARCHITECTURES), default=defaults.arch)
    for name in ("epochs", "batch_size", "width", "image_size", "base_momentum", "num_candidates",
                 "num_neighbors", "refresh_every", "uniform_epochs", "knn_every", "knn_k", "encode_batch_size"):
        kind = float if name == "base_momentum" else int
        parser.add_argument(f"--{name.replace('_', '-')}", type=kind, default=getattr(defaults, name))
    for name in ("train_subset", "test_subset", "proj_dim", "hidden_dim"):
        parser.add_argument(f"--{name.replace('_', '-')}", type=int, default=None)
    for name in ("lr", "weight_decay", "crop_min", "alpha_start", "alpha_end"):
        parser.add_argument(f"--{name.replace('_', '-')}", type=float, default=getattr(defaults, name))
    parser.add_argument("--temperature", type=float, default=None,
                        help="default 0.5 for SimCLR, 0.2 for MoCo v3")
    parser.add_argument("--refresh", choices=("encode", "bank"), default=defaults.refresh)
    parser.add_argument("--stl10-unlabeled", action="store_true", help="pre-train STL-10 on train + unlabeled")
    parser.add_argument("--device", default=defaults.device, help="e.g. cpu, cuda, cuda:1")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    add_common_arguments(parser)
    args = vars(parser.parse_args(argv))
    check_uniform_epochs(args)
    configure_logging(args.pop("log_level"))
    args["data_dir"] = str(data_dir_argument(args["data_dir"]))
    threads = args.pop("threads")
    if threads is not None:
        torch.set_num_threads(threads)
    losses, samplers, seeds = args.pop("loss"), args.pop("sampler"), args.pop("seeds")

    options = {key: value for key, value in args.items() if key in Config.__dataclass_fields__}
    data = load_data(Config(**options))
    print(f"pre-training on {len(data.pretrain)} images, probe on {data.probe_train}, test on {data.test}",
          flush=True)
    results = []
    for loss in losses:
        for sampler in samplers:
            for seed in seeds:
                config = Config(**options | {"sampler": sampler, "loss": loss, "seed": seed})
                result = run(config, data)
                results.append(result)
                knn = f", kNN {100 * result.knn_accuracies[-1]:.2f}" if result.knn_accuracies else ""
                print(f"{config.dataset} {config.method} {loss} {sampler} seed {seed}: linear probe "
                      f"{100 * result.accuracy:.2f}% (val {100 * result.val_accuracy:.2f}%, weight decay "
                      f"{result.probe_weight_decay:g}){knn}; {result.train_seconds:.1f} s training, sampler "
                      f"{100 * result.sampler_share:.2f}% of the step, encode passes "
                      f"{100 * result.encode_share:.1f}%", flush=True)
    print()
    print(summary_table(results))


if __name__ == "__main__":
    sys.exit(run_main(main))
