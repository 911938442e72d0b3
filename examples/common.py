"""What every example script shares: the samplers it compares and its tables over seeds."""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from dglbs import KNNBatchSampler, LinearSchedule, UniformBatchSampler, WalkBatchSampler
from dglbs.samplers import ContrastiveBatchSampler
from dglbs.schedules import Schedule

SAMPLERS = ("uniform", "knn", "batchsampler")


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
) -> ContrastiveBatchSampler:
    """One of ``SAMPLERS``; M and K are capped for datasets smaller than them."""
    # A last uniform batch of one instance has no negatives: drop it then.
    drop_last = num_instances % batch_size == 1
    common = {"seed": seed, "drop_last": drop_last}
    if name == "uniform":
        return UniformBatchSampler(num_instances, batch_size, **common)
    if name == "knn":
        return KNNBatchSampler(num_instances, batch_size, refresh_every=refresh_every, **common)
    if name == "batchsampler":
        num_candidates = min(num_candidates, num_instances - 1)
        return WalkBatchSampler(
            num_instances, batch_size, num_candidates=num_candidates,
            num_neighbors=min(num_neighbors, num_candidates), restart_prob=restart_prob,
            refresh_every=refresh_every, **common,
        )
    raise ValueError(f"sampler must be one of {SAMPLERS}, got {name!r}")


def make_sampler(config: Any, num_instances: int) -> ContrastiveBatchSampler:
    """``build_sampler`` from a config with the paper's decaying alpha (``alpha_start`` ->
    ``alpha_end``), as the graph and vision examples use it."""
    return build_sampler(
        config.sampler, num_instances, config.batch_size, seed=config.seed,
        refresh_every=config.refresh_every, num_candidates=config.num_candidates,
        num_neighbors=config.num_neighbors, restart_prob=LinearSchedule(config.alpha_start, config.alpha_end),
    )

CONFIG_FIELDS = ("dataset", "method", "loss", "sampler")

COST_HEADER = f"{'seeds':>5s} {'train s':>8s} {'sampler %':>9s} {'encode %':>8s}"


def group_by_config(results: Iterable[Any], fields: Sequence[str] = CONFIG_FIELDS) -> dict[tuple, list[Any]]:
    """Runs that differ only in their seed, keyed by ``result.config``'s ``fields``."""
    groups: dict[tuple, list[Any]] = {}
    for result in results:
        groups.setdefault(tuple(getattr(result.config, name) for name in fields), []).append(result)
    return groups


def cost_columns(group: Sequence[Any]) -> str:
    """Seed count and mean training time, sampler share and encode share (``COST_HEADER``)."""

    def mean(attribute: str) -> float:
        return sum(getattr(result, attribute) for result in group) / len(group)

    return (f"{len(group):5d} {mean('train_seconds'):8.1f} {100 * mean('sampler_share'):9.2f} "
            f"{100 * mean('encode_share'):8.1f}")
