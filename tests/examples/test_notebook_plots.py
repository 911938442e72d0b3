"""The notebooks' measurements and plots: the same embeddings for every policy, bands over seeds."""
from types import SimpleNamespace

import matplotlib.pyplot as plt
import pytest
import torch
from matplotlib.colors import to_rgb

from dglbs.diagnostics import pairwise_cosine
from dglbs_examples.graph_tu import Config
from dglbs_examples.notebook_plots import (
    SAMPLER_NAMES, draw_policies, plot_accuracy, plot_coverage, plot_policy_histograms, plot_training_curves,
    policy_table, save_figure,
)


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def two_clusters(n: int = 96) -> tuple[torch.Tensor, torch.Tensor]:
    """Two tight, opposite clusters; the label is the cluster."""
    generator = torch.Generator().manual_seed(0)
    labels = torch.arange(n) % 2
    centres = torch.tensor([[1.0, 0.0, 0.0, 0.0], [-1.0, 0.0, 0.0, 0.0]])
    return centres[labels] + 0.05 * torch.randn(n, 4, generator=generator), labels


CONFIG = Config(batch_size=16, num_candidates=40, num_neighbors=10)


def test_draws_compare_the_policies_on_the_same_embeddings():
    embeddings, labels = two_clusters()
    draws = draw_policies(CONFIG, embeddings, labels, epochs=2)
    by_policy = {draw.policy: draw for draw in draws}
    assert list(by_policy) == ["uniform", "knn", "batchsampler", "batchsampler-cover"]
    uniform = by_policy["uniform"]
    # 96 / 16 = 6 batches of 120 pairs per epoch, every instance once.
    assert len(uniform.similarities) == len(uniform.same_label) == 2 * 6 * 120
    assert (uniform.coverage, uniform.max_count) == (1.0, 1.0)
    assert (by_policy["batchsampler-cover"].coverage, by_policy["batchsampler-cover"].max_count) == (1.0, 1.0)
    # Same-cluster pairs are the same-label pairs, at cosine near 1; the others near -1.
    assert torch.equal(uniform.same_label, uniform.similarities > 0)
    assert 0.4 < uniform.false_negative_rate < 0.5
    # kNN batches are one cluster's neighbourhood: harder, and all false negatives.
    assert by_policy["knn"].false_negative_rate > 0.9 and by_policy["knn"].mean_similarity > 0.9
    assert uniform.mean_similarity < 0
    assert uniform.mean_similarity == pytest.approx(float(uniform.similarities.mean()))
    assert "coverage=1.000" in repr(uniform)


def test_draws_measure_pairs_of_the_given_embeddings():
    embeddings, labels = two_clusters(32)
    (draw,) = draw_policies(Config(batch_size=32), embeddings, labels, policies=["uniform"], epochs=1)
    assert sorted(draw.similarities.tolist()) == pytest.approx(sorted(pairwise_cosine(embeddings).tolist()))


def test_draws_reject_bad_input():
    embeddings, labels = two_clusters(32)
    with pytest.raises(ValueError, match=r"labels must have shape \(32,\)"):
        draw_policies(CONFIG, embeddings, labels[:-1])
    with pytest.raises(ValueError, match="floating-point"):
        draw_policies(CONFIG, labels, labels)
    with pytest.raises(ValueError, match="epochs must be a positive int"):
        draw_policies(CONFIG, embeddings, labels, epochs=0)
    with pytest.raises(ValueError, match="sampler must be one of"):
        draw_policies(CONFIG, embeddings, labels, policies=["random"])


def test_policy_figures_have_one_panel_per_policy_and_labelled_axes():
    embeddings, labels = two_clusters()
    draws = draw_policies(CONFIG, embeddings, labels, epochs=1)
    table = policy_table(draws).splitlines()
    assert len(table) == 1 + len(draws) and table[1].split()[:3] == ["uniform", "1.00", "1.0"]
    figure = plot_policy_histograms(draws, "two clusters")
    assert [axis.get_title().splitlines()[0] for axis in figure.axes] == [SAMPLER_NAMES[d.policy] for d in draws]
    assert all(axis.get_xlabel() for axis in figure.axes) and figure.axes[0].get_ylabel()
    # Each panel's bars are the shares of that policy's pairs: they sum to 1.
    all_pairs = figure.axes[0].containers[0]
    assert sum(bar.get_height() for bar in all_pairs) == pytest.approx(1.0, rel=1e-4)
    coverage = plot_coverage(draws, "two clusters")
    share_axis, count_axis = coverage.axes
    assert [bar.get_width() for bar in share_axis.containers[0]] == pytest.approx([100 * d.coverage for d in draws])
    assert [bar.get_width() for bar in count_axis.containers[0]] == pytest.approx([d.max_count for d in draws])
    assert share_axis.get_xlabel() and count_axis.get_xlabel() and coverage._suptitle.get_text() == "two clusters"
    with pytest.raises(ValueError, match="draws is empty"):
        plot_policy_histograms([], "x")


def fake_run(sampler: str, seed: int, accuracy: float, false_negatives: list[float]) -> SimpleNamespace:
    history = [{"loss": 1.0, "batch_similarity": 0.5, "false_negative_rate": rate} for rate in false_negatives]
    return SimpleNamespace(config=SimpleNamespace(sampler=sampler, seed=seed), accuracy=accuracy, history=history)


RUNS = [
    fake_run("uniform", 0, 0.80, [0.5, 0.5]), fake_run("uniform", 1, 0.82, [0.5, 0.5]),
    fake_run("batchsampler", 0, 0.79, [0.6, 0.7]), fake_run("batchsampler", 1, 0.83, [0.8, 0.9]),
]


def test_training_curves_are_the_mean_over_seeds_with_a_std_band():
    figure = plot_training_curves(RUNS, "fake")
    false_negatives = figure.axes[2]
    uniform_line, walk_line = false_negatives.get_lines()
    assert list(walk_line.get_xdata()) == [1, 2]
    assert list(walk_line.get_ydata()) == pytest.approx([70.0, 80.0])
    assert list(uniform_line.get_ydata()) == pytest.approx([50.0, 50.0])
    (walk_band,) = [band for band in false_negatives.collections if band.get_facecolor()[0][:3].tolist()
                    == list(to_rgb(walk_line.get_color()))]
    top = walk_band.get_paths()[0].vertices[:, 1].max()
    assert top == pytest.approx(80 + torch.tensor([70.0, 90.0]).std().item())  # epoch 2: 70 and 90
    assert [axis.get_ylabel() for axis in figure.axes] == [
        "training loss", "mean in-batch cosine similarity", "same-class pairs in a batch (%)"]
    one_seed = plot_training_curves(RUNS[:1], "one seed")
    assert not one_seed.axes[0].collections  # one seed has no spread to draw


def test_accuracy_plot_shows_each_seed_joined_across_samplers():
    figure = plot_accuracy(RUNS, "fake")
    (axis,) = figure.axes
    assert [label.get_text() for label in axis.get_xticklabels()] == ["uniform", "BatchSampler"]
    seed_lines = [line for line in axis.get_lines() if line.get_color() == "grey"]
    assert sorted(tuple(line.get_ydata()) for line in seed_lines) == [(80.0, 79.0), (82.0, 83.0)]
    baseline = [line for line in axis.get_lines() if line.get_linestyle() == "--"]
    assert baseline[0].get_ydata()[0] == pytest.approx(81.0)
    assert axis.get_ylabel()
    with pytest.raises(ValueError, match="results is empty"):
        plot_accuracy([], "x")


def test_save_figure_writes_a_png_in_a_new_folder(tmp_path):
    figure = plot_accuracy(RUNS, "fake")
    path = save_figure(figure, tmp_path / "figures", "tu_x_accuracy")
    assert path == tmp_path / "figures" / "tu_x_accuracy.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="without a folder"):
        save_figure(figure, tmp_path, "sub/name")
