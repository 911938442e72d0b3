"""What the TU notebooks measure and plot, in one place: ``notebooks/build.py`` writes
cells that call these functions, so both notebooks draw the same figures the same way.

- :func:`draw_policies`: the batches each sampler draws on the *same* fixed embeddings
  (the cosine similarity and label agreement of every in-batch pair, and how much of
  the data an epoch covers), shown by :func:`plot_policy_histograms`,
  :func:`plot_coverage` and :func:`policy_table`;
- :func:`plot_accuracy` and :func:`plot_training_curves`: trained runs over seeds
  (``dglbs_examples.graph_tu.Result``: ``config.sampler``, ``config.seed``,
  ``accuracy``, ``history``);
- :func:`save_figure`: a figure as ``<folder>/<name>.png``.

Needs the ``notebooks`` extra (matplotlib).
"""
from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from dglbs.cli import extra_imports
from dglbs.diagnostics import epoch_coverage, pairwise_cosine, same_label_pairs
from dglbs.samplers import EmbeddingBatchSampler
from dglbs_examples.common import SAMPLERS, build_sampler, group_by_config

with extra_imports("notebooks", __name__):
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

SAMPLER_NAMES = {
    "uniform": "uniform",
    "knn": "kNN",
    "batchsampler": "BatchSampler",
    "knn-cover": "kNN, covering",
    "batchsampler-cover": "BatchSampler, covering",
}
"""How the figures name each of ``SAMPLERS`` (without ``covering``: independent batches)."""

DRAWN_POLICIES = ("uniform", "knn", "batchsampler", "batchsampler-cover")
"""The batch policies the notebooks compare on the same embeddings."""


def sampler_color(sampler: str) -> str:
    """One colour per sampler, the same in every figure."""
    return f"C{SAMPLERS.index(sampler)}"


@dataclass(repr=False)
class PolicyDraw:
    """The in-batch pairs of the batches one policy drew on fixed embeddings.

    Attributes
    ----------
    policy : str
        One of ``SAMPLERS``.
    similarities : Tensor of shape (P,), float32
        Cosine similarity of every unordered in-batch pair of every batch drawn.
    same_label : BoolTensor of shape (P,)
        Whether the pair's two instances share a class (a false negative).
    coverage : float
        Share of the instances one epoch trains on (mean over the epochs drawn).
    max_count : float
        How many times the most repeated instance appears in one epoch (mean over epochs).
    """

    policy: str
    similarities: torch.Tensor
    same_label: torch.Tensor
    coverage: float
    max_count: float

    @property
    def mean_similarity(self) -> float:
        return float(self.similarities.mean())

    @property
    def false_negative_rate(self) -> float:
        """Share of all in-batch pairs drawn that are same-class pairs."""
        return float(self.same_label.float().mean())

    def __repr__(self) -> str:
        return (f"PolicyDraw({self.policy!r}, pairs={len(self.similarities)}, mean_similarity="
                f"{self.mean_similarity:.3f}, false_negative_rate={self.false_negative_rate:.3f}, "
                f"coverage={self.coverage:.3f}, max_count={self.max_count:.1f})")


def draw_policies(
    config: Any, embeddings: torch.Tensor, labels: torch.Tensor,
    policies: Sequence[str] = DRAWN_POLICIES, epochs: int = 3,
) -> list[PolicyDraw]:
    """Draw ``epochs`` epochs of batches with each policy on the same ``embeddings``.

    The samplers are built as the example builds them (``build_sampler`` with the
    config's ``batch_size``, ``seed``, ``num_candidates``, ``num_neighbors`` and
    ``refresh_every``) at a constant restart probability ``config.alpha_start``, the
    schedule's value at the start of training; nothing trains in between, so every
    policy sees the same embeddings.

    Parameters
    ----------
    config : graph_tu.Config (or any object with those fields)
    embeddings : Tensor of shape (N, d), floating point
    labels : Tensor of shape (N,), integer class labels
    policies : sequence of str, each one of ``SAMPLERS``
    epochs : int, at least 1

    Returns
    -------
    list of PolicyDraw, in the order of ``policies``
    """
    if embeddings.dim() != 2 or not embeddings.is_floating_point():
        raise ValueError(f"embeddings must be a floating-point (N, d) tensor, got shape {tuple(embeddings.shape)} "
                         f"of {embeddings.dtype}")
    labels = torch.as_tensor(labels)
    if labels.shape != (len(embeddings),):
        raise ValueError(f"labels must have shape ({len(embeddings)},), one per embedding row, "
                         f"got {tuple(labels.shape)}")
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a positive int, got {epochs!r}")
    embeddings = embeddings.detach().float().cpu()
    draws = []
    for policy in policies:
        sampler = build_sampler(
            policy, len(embeddings), config.batch_size, seed=config.seed, refresh_every=config.refresh_every,
            num_candidates=config.num_candidates, num_neighbors=config.num_neighbors,
            restart_prob=config.alpha_start,
        )
        if isinstance(sampler, EmbeddingBatchSampler):
            sampler.set_embeddings(embeddings)
        similarities, same_label, coverage, max_count = [], [], 0.0, 0.0
        for epoch in range(epochs):
            sampler.set_epoch(epoch)
            batches = [torch.as_tensor(batch) for batch in sampler]
            share, most = epoch_coverage(batches, len(embeddings))
            coverage, max_count = coverage + share / epochs, max_count + most / epochs
            similarities += [pairwise_cosine(embeddings[batch]) for batch in batches]
            same_label += [same_label_pairs(labels[batch]) for batch in batches]
        draws.append(PolicyDraw(policy, torch.cat(similarities), torch.cat(same_label), coverage, max_count))
    return draws


def policy_table(draws: Sequence[PolicyDraw]) -> str:
    """One line per policy: coverage, most repeated instance, mean in-batch cosine
    similarity and false-negative rate."""
    lines = [f"{'policy':24s} {'coverage':>8s} {'max count':>9s} {'mean cosine':>11s} {'false negatives':>15s}"]
    for draw in draws:
        lines.append(f"{SAMPLER_NAMES[draw.policy]:24s} {draw.coverage:8.2f} {draw.max_count:9.1f} "
                     f"{draw.mean_similarity:11.3f} {100 * draw.false_negative_rate:14.1f}%")
    return "\n".join(lines)


def plot_policy_histograms(draws: Sequence[PolicyDraw], title: str, bins: int = 40) -> Figure:
    """One histogram per policy of its in-batch cosine similarities, the same-class
    pairs (false negatives) shaded; each panel's bars sum to 1 (share of its pairs)."""
    if not draws:
        raise ValueError("draws is empty: pass the list draw_policies returned")
    low = min(float(draw.similarities.min()) for draw in draws)
    # The whole range the pairs cover, from a round number: trained embeddings often
    # have no negative similarities.
    edges = torch.linspace(max(-1.0, math.floor(low * 10) / 10), 1.0, bins + 1).numpy()
    figure, axes = plt.subplots(1, len(draws), figsize=(3.3 * len(draws), 3.4), sharex=True, sharey=True,
                                squeeze=False)
    for axis, draw in zip(axes[0], draws):
        weights = torch.full_like(draw.similarities, 1 / len(draw.similarities)).numpy()
        color = sampler_color(draw.policy)
        axis.hist(draw.similarities.numpy(), bins=edges, weights=weights, color=color, alpha=0.35,
                  label="all pairs")
        axis.hist(draw.similarities[draw.same_label].numpy(), bins=edges, weights=weights[draw.same_label.numpy()],
                  color=color, label="same-class pairs")
        axis.axvline(draw.mean_similarity, color="black", linewidth=1, linestyle="--", label="mean")
        axis.set_title(f"{SAMPLER_NAMES[draw.policy]}\nmean cosine {draw.mean_similarity:.2f}, "
                       f"same class {100 * draw.false_negative_rate:.0f}%", fontsize=10)
        axis.set_xlabel("cosine similarity of an in-batch pair")
    axes[0][0].set_ylabel("share of the policy's pairs")
    # Below the panels: inside one it would hide bars (pairs fill either end).
    figure.legend(*axes[0][0].get_legend_handles_labels(), loc="lower center", ncol=3, fontsize=9)
    figure.suptitle(title)
    figure.tight_layout(rect=(0, 0.08, 1, 1))
    return figure


def plot_coverage(draws: Sequence[PolicyDraw], title: str) -> Figure:
    """Two bar panels: the share of instances one epoch of each policy trains on, and
    how many times its most repeated instance appears."""
    if not draws:
        raise ValueError("draws is empty: pass the list draw_policies returned")
    names = [SAMPLER_NAMES[draw.policy] for draw in draws]
    colors = [sampler_color(draw.policy) for draw in draws]
    figure, (share_axis, count_axis) = plt.subplots(1, 2, figsize=(10, 0.6 * len(draws) + 1.6), sharey=True)
    for axis, values, label, text in (
        (share_axis, [100 * draw.coverage for draw in draws], "instances in one epoch (%)", "{:.0f}%"),
        (count_axis, [draw.max_count for draw in draws], "appearances of the most repeated instance", "{:.1f}"),
    ):
        bars = axis.barh(names, values, color=colors)
        axis.bar_label(bars, [text.format(value) for value in values], padding=3)
        axis.set_xlabel(label)
        axis.set_xlim(0, max(values) * 1.2)  # room for the labels
    share_axis.set_xticks(range(0, 101, 20))
    share_axis.invert_yaxis()  # the first policy on top
    share_axis.set_title("coverage of an epoch")
    count_axis.set_title("repetition within an epoch")
    figure.suptitle(title)
    figure.tight_layout()
    return figure


def _by_sampler(results: Sequence[Any]) -> dict[str, list[Any]]:
    """The runs of each sampler (of one dataset), in the order they first appear."""
    if not results:
        raise ValueError("results is empty: pass the runs of at least one sampler and seed")
    return {key[0]: group for key, group in group_by_config(results, ("sampler",)).items()}


def _mean_and_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for one value, which has no spread)."""
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def plot_accuracy(results: Sequence[Any], title: str, baseline: str = "uniform") -> Figure:
    """Each seed's SVM accuracy per sampler, a grey line joining the same seed across
    samplers (the comparisons are paired), the mean ± std over seeds, and a dashed line
    at the ``baseline`` sampler's mean (when it ran)."""
    groups = _by_sampler(results)
    figure, axis = plt.subplots(figsize=(1.6 * len(groups) + 2.5, 4))
    if baseline in groups:
        axis.axhline(_mean_and_std([100 * result.accuracy for result in groups[baseline]])[0],
                     color=sampler_color(baseline), linestyle="--", linewidth=1,
                     label=f"{SAMPLER_NAMES[baseline]} mean")
        axis.legend(fontsize=8)
    by_seed: dict[int, list[tuple[int, float]]] = {}
    for position, (sampler, group) in enumerate(groups.items()):
        accuracies = [100 * result.accuracy for result in group]
        for result, accuracy in zip(group, accuracies):
            by_seed.setdefault(result.config.seed, []).append((position, accuracy))
        axis.scatter([position] * len(accuracies), accuracies, color=sampler_color(sampler), zorder=3)
        mean, std = _mean_and_std(accuracies)
        axis.errorbar(position + 0.15, mean, yerr=std, fmt="s", color="black", capsize=4, zorder=3)
    for points in by_seed.values():
        axis.plot(*zip(*points), color="grey", linewidth=0.8, alpha=0.6, zorder=2)
    axis.set_xticks(range(len(groups)), [SAMPLER_NAMES[sampler] for sampler in groups], rotation=15)
    axis.set_ylabel("SVM accuracy (%), 10-fold CV mean")
    axis.set_title(f"{title}\ndots: seeds (grey lines join a seed); squares: mean ± std", fontsize=10)
    figure.tight_layout()
    return figure


TRAINING_CURVES = (
    ("loss", "training loss", 1.0),
    ("batch_similarity", "mean in-batch cosine similarity", 1.0),
    ("false_negative_rate", "same-class pairs in a batch (%)", 100.0),
)
"""The per-epoch history keys :func:`plot_training_curves` draws: key, axis label, scale."""


def plot_training_curves(results: Sequence[Any], title: str) -> Figure:
    """Per sampler, the mean over seeds of each epoch's loss, in-batch cosine similarity
    (of the training projections) and false-negative rate, with a band of ± one
    standard deviation over seeds (no band for one seed)."""
    groups = _by_sampler(results)
    figure, axes = plt.subplots(1, len(TRAINING_CURVES), figsize=(5 * len(TRAINING_CURVES), 3.8))
    for axis, (key, label, scale) in zip(axes, TRAINING_CURVES):
        for sampler, group in groups.items():
            curves = torch.tensor([[scale * stats[key] for stats in result.history] for result in group])
            epochs = range(1, curves.shape[1] + 1)
            mean = curves.mean(0)
            color = sampler_color(sampler)
            axis.plot(epochs, mean, color=color, label=f"{SAMPLER_NAMES[sampler]} ({len(group)} seeds)")
            if len(group) > 1:
                std = curves.std(0)
                axis.fill_between(epochs, mean - std, mean + std, color=color, alpha=0.2, linewidth=0)
        axis.set_xlabel("epoch")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.set_ylabel(label)
    axes[0].legend(fontsize=8)
    figure.suptitle(f"{title}: mean over seeds, band ± std")
    figure.tight_layout()
    return figure


def save_figure(figure: Figure, folder: str | Path, name: str) -> Path:
    """Write ``figure`` to ``folder/name.png`` (creating ``folder``) and return that path."""
    if not name or Path(name).name != name:
        raise ValueError(f"name must be a file name without a folder, got {name!r}; put the folder in `folder`")
    path = Path(folder) / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120, bbox_inches="tight")
    return path
