"""What every example script shares: the samplers it compares, its command-line options
for data and outputs, and its tables over seeds."""
from __future__ import annotations

import argparse
import math
import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from dglbs import KNNBatchSampler, LinearSchedule, UniformBatchSampler, WalkBatchSampler
from dglbs.cli import UsageError, add_data_dir_argument, add_output_arguments, data_subfolder
from dglbs.data.tu import available_datasets
from dglbs.samplers import ContrastiveBatchSampler
from dglbs.schedules import Schedule

SAMPLERS = ("uniform", "knn", "batchsampler", "knn-cover", "batchsampler-cover")
"""``-cover``: covering epochs, every instance once per epoch (``epoch_policy="cover"``);
without it each batch is an independent walk or neighbourhood (``"independent"``)."""

PAPER_SAMPLERS = SAMPLERS[:3]
"""The three the paper compares; what the examples run by default."""


def build_sampler(
    name: str,
    num_instances: int,
    batch_size: int,
    *,
    seed: int,
    refresh_every: int,
    num_candidates: int,
    num_neighbors: int,
    restart_prob: float | Schedule,
    uniform_epochs: int = 0,
) -> ContrastiveBatchSampler:
    """One of ``SAMPLERS``; M and K are capped for datasets smaller than them.
    ``uniform_epochs``: uniform warm-up epochs of the kNN and walk samplers."""
    if name not in SAMPLERS:
        raise ValueError(f"sampler must be one of {SAMPLERS}, got {name!r}")
    # A last batch of one instance has no negatives: drop it then.
    drop_last = num_instances % batch_size == 1
    common = {"seed": seed, "drop_last": drop_last}
    if name == "uniform":
        return UniformBatchSampler(num_instances, batch_size, **common)
    kind, _, policy = name.partition("-")
    common["epoch_policy"] = "cover" if policy == "cover" else "independent"
    common["uniform_epochs"] = uniform_epochs
    if kind == "knn":
        return KNNBatchSampler(num_instances, batch_size, refresh_every=refresh_every, **common)
    if kind == "batchsampler":
        num_candidates = min(num_candidates, num_instances - 1)
        return WalkBatchSampler(
            num_instances, batch_size, num_candidates=num_candidates,
            num_neighbors=min(num_neighbors, num_candidates), restart_prob=restart_prob,
            refresh_every=refresh_every, **common,
        )
    raise AssertionError(name)


def make_sampler(config: Any, num_instances: int) -> ContrastiveBatchSampler:
    """``build_sampler`` from a config with the paper's decaying alpha (``alpha_start`` ->
    ``alpha_end``), as the graph and vision examples use it."""
    return build_sampler(
        config.sampler, num_instances, config.batch_size, seed=config.seed,
        refresh_every=config.refresh_every, num_candidates=config.num_candidates,
        num_neighbors=config.num_neighbors, restart_prob=LinearSchedule(config.alpha_start, config.alpha_end),
        uniform_epochs=config.uniform_epochs,
    )


CONFIG_FIELDS = ("dataset", "method", "loss", "sampler")

COST_HEADER = f"{'seeds':>5s} {'train s':>8s} {'sampler %':>9s} {'encode %':>8s}"


def group_by_config(results: Iterable[Any], fields: Sequence[str] = CONFIG_FIELDS) -> dict[tuple, list[Any]]:
    """Runs that differ only in their seed, keyed by ``result.config``'s ``fields``."""
    groups: dict[tuple, list[Any]] = {}
    for result in results:
        groups.setdefault(tuple(getattr(result.config, name) for name in fields), []).append(result)
    return groups


def mean_and_spread(mean: float, std: float, runs: int) -> str:
    """``mean ± std`` over runs, 16 characters wide; one run has no spread to show, so it
    says so rather than ``± 0.00``."""
    return f"{mean:9.2f} ± {std:4.2f}" if runs > 1 else f"{mean:9.2f}  1 run"


def format_p(p: float) -> str:
    """A p-value with two decimals, or one significant digit below 0.01 (never "0.00")."""
    return f"{p:.2f}" if p >= 0.01 else f"{p:.1g}"


def paired_statistics(pairs: Sequence[tuple[float, float]]) -> tuple[float, float, float]:
    """Mean and sample std of ``mine - theirs`` over ``pairs`` of (mine, theirs) scores,
    and the paired t-test's two-sided p. Below 2 pairs the std and p are NaN (the mean
    too without pairs); identical differences (up to rounding) leave the t statistic
    undefined, so p is NaN rather than 0."""
    from scipy.stats import ttest_rel  # imported here: only the tables need scipy

    differences = [mine - theirs for mine, theirs in pairs]
    if len(differences) < 2:
        return (differences[0] if differences else math.nan), math.nan, math.nan
    spread = statistics.stdev(differences)
    p = float(ttest_rel(*zip(*pairs)).pvalue) if spread > 1e-9 else math.nan
    return statistics.fmean(differences), spread, p


def pair_by_seed(scores: Mapping[int, float], baseline: Mapping[int, float]) -> list[tuple[float, float]]:
    """``(score, baseline score)`` of every seed both ran, in the order of ``scores``
    (seed -> score): the pairs :func:`paired_statistics` takes."""
    return [(score, baseline[seed]) for seed, score in scores.items() if seed in baseline]


def paired_differences(
    results: Iterable[Any], score: Callable[[Any], float], fields: Sequence[str] = CONFIG_FIELDS,
    baseline: str = "uniform",
) -> list[str]:
    """Per configuration, its ``score`` minus the ``baseline`` sampler's over the seeds
    both ran (the same seeds, so the same data splits and initialisations): mean ± sample
    std of the differences and the paired t-test's two-sided p (``-`` below 2 seeds).

    ``fields`` name the configuration, ``"sampler"`` among them; ``score(result)`` is
    a run's score in the table's units.
    """
    groups = group_by_config(results, fields)
    where = list(fields).index("sampler")
    lines = []
    for key, group in groups.items():
        reference = groups.get(key[:where] + (baseline,) + key[where + 1:])
        if key[where] == baseline or reference is None:
            continue
        pairs = pair_by_seed({result.config.seed: score(result) for result in group},
                             {result.config.seed: score(result) for result in reference})
        if not pairs:
            continue
        mean, std, p = paired_statistics(pairs)
        # One pair has no spread to show: "± 0.00 (p -)".
        std, p = (0.0, "p -") if math.isnan(std) else (std, "p -" if math.isnan(p) else f"p {format_p(p)}")
        lines.append(f"{' '.join(str(part) for part in key)} - {baseline}: {mean:+.2f} ± {std:.2f} "
                     f"over {len(pairs)} paired seed{'s' if len(pairs) > 1 else ''} ({p})")
    return lines


def cost_columns(group: Sequence[Any]) -> str:
    """Seed count and mean training time, sampler share and encode share (``COST_HEADER``)."""

    def mean(attribute: str) -> float:
        return sum(getattr(result, attribute) for result in group) / len(group)

    return (f"{len(group):5d} {mean('train_seconds'):8.1f} {100 * mean('sampler_share'):9.2f} "
            f"{100 * mean('encode_share'):8.1f}")


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """``--data-dir``, ``--progress``, ``--log-level``, ``--metrics-dir`` and ``--tensorboard-dir``."""
    add_data_dir_argument(parser)
    add_output_arguments(parser)
    parser.add_argument("--metrics-dir", help="write each run's per-step and per-epoch figures to "
                                              "METRICS_DIR/<run>.jsonl (JSON Lines)")
    parser.add_argument("--tensorboard-dir", help="log each run to TensorBoard in TENSORBOARD_DIR/<run> "
                                                  "(needs the tensorboard extra)")


def check_uniform_epochs(args: dict[str, Any]) -> None:
    """``--uniform-epochs`` must leave at least one epoch of kNN / walk batches.

    Raises
    ------
    UsageError
        Naming the value, when it is negative or not below ``--epochs``.
    """
    if not 0 <= args["uniform_epochs"] < args["epochs"]:
        raise UsageError(
            f"--uniform-epochs {args['uniform_epochs']} must be at least 0 and below --epochs {args['epochs']} "
            "(with as many uniform epochs as epochs, run --sampler uniform instead)"
        )


def run_outputs(config: Any, fields: Sequence[str] = CONFIG_FIELDS) -> dict[str, Path | None]:
    """``Trainer`` keyword arguments ``metrics_path`` and ``tensorboard_dir`` for one run,
    named after its ``fields`` and seed, e.g. ``MUTAG_graphcl_infonce_uniform_seed0``."""
    name = "_".join(str(getattr(config, field)) for field in fields) + f"_seed{config.seed}"
    return {
        "metrics_path": None if config.metrics_dir is None else Path(config.metrics_dir) / f"{name}.jsonl",
        "tensorboard_dir": None if config.tensorboard_dir is None else Path(config.tensorboard_dir) / name,
    }


def tu_folder(data_dir: Path, names: Sequence[str]) -> Path:
    """``data_dir/tu``, checked to hold every dataset of ``names`` (as ``NAME.zip`` or ``NAME/``).

    Raises
    ------
    UsageError
        Naming the first missing dataset and listing the datasets found.
    """
    folder = data_subfolder(data_dir, "tu", "TU datasets")
    found = available_datasets(folder)
    for name in names:
        if name not in found:
            raise UsageError(f"--dataset {name!r} is not in {str(folder)!r}; found {', '.join(found) or 'nothing'} "
                             "(or pass --data-dir the folder whose tu/ holds it)")
    return folder
