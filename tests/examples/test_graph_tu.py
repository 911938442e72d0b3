"""examples/graph_tu.py end to end on MUTAG, with tiny budgets."""
import math
from dataclasses import replace
import re
import sys
from pathlib import Path

import pytest
import torch

from dglbs import KNNBatchSampler, UniformBatchSampler, WalkBatchSampler
from dglbs.data.tu import TUDataset
from dglbs_examples.graph_tu import Config, make_sampler, run, summary_table

sys.path.insert(0, str(Path(__file__).parents[1] / "integrations"))
from _launch import run_processes  # noqa: E402

GRAPH_TU = Path(__file__).parents[2] / "examples" / "graph_tu.py"


@pytest.fixture(scope="module")
def mutag():
    return TUDataset("MUTAG")


@pytest.mark.parametrize(
    "method,loss,sampler",
    [("graphcl", "dcl", "batchsampler"), ("graphcl", "hcl", "knn"), ("mvgrl", "infonce", "batchsampler")],
)
def test_run_trains_and_scores(mutag, method, loss, sampler):
    config = Config(method=method, loss=loss, sampler=sampler, epochs=1, svm_folds=3, hidden_dim=16, num_layers=2)
    result = run(config, mutag)
    assert 0.4 <= result.accuracy <= 1.0
    assert result.embeddings.shape[0] == len(mutag)
    assert len(result.history) == 1 and math.isfinite(result.history[0]["loss"])
    # A ratio of timings (sampling over the training step), not bounded by 1 on a loaded machine.
    assert math.isfinite(result.sampler_share) and result.sampler_share >= 0
    assert "MUTAG" in summary_table([result])


def test_sampler_choice_follows_the_paper_defaults():
    assert isinstance(make_sampler(Config(sampler="uniform"), 1000), UniformBatchSampler)
    assert isinstance(make_sampler(Config(sampler="knn"), 1000), KNNBatchSampler)
    walk = make_sampler(Config(), 1000)
    assert isinstance(walk, WalkBatchSampler)
    assert (walk.num_candidates, walk.num_neighbors, walk.refresh_every, walk.batch_size) == (500, 100, 25, 128)
    assert walk.restart_prob(0.0) == pytest.approx(0.2) and walk.restart_prob(1.0) == pytest.approx(0.05)
    # K is capped below N for tiny datasets; a last batch of one is dropped.
    assert make_sampler(Config(batch_size=64), 90).num_neighbors == 89
    assert make_sampler(Config(sampler="uniform"), 129).drop_last


def test_unknown_choices_fail_clearly():
    with pytest.raises(ValueError, match="sampler must be one of"):
        make_sampler(Config(sampler="hardest"), 100)


@pytest.mark.slow
def test_graphcl_on_mutag_reaches_the_papers_range(mutag):
    """Opt-in (`pytest -m slow`): a full 20-epoch run lands near the paper's 86.8 %."""
    for sampler in ("uniform", "batchsampler"):
        assert run(Config(sampler=sampler), mutag).accuracy > 0.82


def test_one_seed_shows_no_spread_rather_than_zero():
    from dglbs_examples.common import mean_and_spread

    assert mean_and_spread(74.85, 0.0, 1) == "    74.85  1 run"
    assert mean_and_spread(75.41, 0.55, 5) == "    75.41 ± 0.55"
    assert len(mean_and_spread(1.0, 0.0, 1)) == len(mean_and_spread(1.0, 0.0, 2))


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is not available")
def test_two_processes_train_and_rank_0_alone_scores_and_prints(tmp_path):
    """As under ``torchrun --nproc_per_node 2 examples/graph_tu.py ...`` (killed after 180 s)."""
    arguments = ["--dataset", "MUTAG", "--epochs", "1", "--sampler", "uniform", "batchsampler", "--svm-folds", "3",
                 "--no-progress"]
    run_processes(GRAPH_TU, arguments, tmp_path, timeout=180)
    rank0, rank1 = ((tmp_path / f"rank{rank}.log").read_text() for rank in range(2))
    accuracies = re.findall(r"MUTAG graphcl infonce (uniform|batchsampler) seed 0: accuracy (\d+\.\d+)", rank0)
    assert [sampler for sampler, _ in accuracies] == ["uniform", "batchsampler"]
    assert all(40 <= float(accuracy) <= 100 for _, accuracy in accuracies)
    assert "dataset      method" in rank0 and rank0.count(" epoch 0: loss ") == 2
    # The other process trained (it took part in every step) but printed and logged nothing.
    assert rank1.strip() == ""


def test_mvgrl_diffusion_views_are_computed_once_per_dataset(monkeypatch, capsys):
    from dglbs_examples import graph_tu

    made = []
    real = graph_tu.WithDiffusion

    def counting(dataset, **kwargs):
        made.append(kwargs)
        return real(dataset, **kwargs)

    monkeypatch.setattr(graph_tu, "WithDiffusion", counting)
    graph_tu.main(["--dataset", "MUTAG", "--method", "mvgrl", "--sampler", "uniform", "batchsampler", "--seeds", "0",
                   "1", "--epochs", "1", "--svm-folds", "3", "--hidden-dim", "8", "--num-layers", "1",
                   "--diffusion-topk", "4", "--no-progress"])
    assert made == [{"topk": 4}]  # four runs, one diffusion
    out = capsys.readouterr().out
    assert "diffusion views:" in out and len(re.findall(r"MUTAG mvgrl infonce \w+ seed \d: accuracy", out)) == 4


def test_learning_rate_defaults_to_the_methods_reference_rate():
    assert Config().lr == 0.01 and Config(method="mvgrl").lr == 0.001
    assert Config(method="mvgrl", lr=0.01).lr == 0.01
    with pytest.raises(ValueError, match="method must be one of .* got 'dgi'"):
        Config(method="dgi")


@pytest.mark.parametrize("arguments,lr", [([], 0.001), (["--lr", "0.02"], 0.02)])
def test_the_learning_rate_reaches_the_optimizer(monkeypatch, arguments, lr):
    from dglbs_examples import graph_tu

    rates = []
    monkeypatch.setattr(graph_tu, "run", lambda config, *_: rates.append(config.lr))
    graph_tu.main(["--dataset", "MUTAG", "--method", "mvgrl", "--sampler", "uniform", "--diffusion-topk", "4",
                   *arguments])
    assert rates == [lr]
    trainer, _, _ = graph_tu.train(Config(method="mvgrl", lr=lr, sampler="uniform", epochs=1, hidden_dim=8,
                                          num_layers=1, diffusion_topk=4, progress=False))
    assert [group["lr"] for group in trainer.optimizer.param_groups] == [lr]


def test_diffusion_topk_bounds_the_second_view(mutag):
    from dglbs_examples.graph_tu import make_training_set

    config = Config(method="mvgrl", diffusion_topk=3)
    views = make_training_set(config, mutag)[0][0]
    assert views.num_edges("ppr") == 3 * views.num_nodes() < make_training_set(Config(method="mvgrl"), mutag)[0][
        0].num_edges("ppr")
    assert make_training_set(Config(), mutag) is mutag
    with pytest.raises(ValueError, match="training_set has 1 items"):
        run(replace(config, epochs=1), mutag, training_set=[mutag[0]])


@pytest.mark.parametrize("arguments", [["--diffusion-topk", "8"], ["--method", "mvgrl", "--diffusion-topk", "0"]])
def test_bad_diffusion_topk_fails_naming_the_flag(arguments):
    from dglbs.cli import UsageError
    from dglbs_examples.graph_tu import main

    with pytest.raises(UsageError, match="--diffusion-topk"):
        main(["--dataset", "MUTAG", *arguments])


def test_uniform_epochs_reach_the_embedding_samplers_only():
    assert make_sampler(Config(uniform_epochs=2), 1000).uniform_epochs == 2
    assert make_sampler(Config(sampler="knn-cover", uniform_epochs=1), 1000).uniform_epochs == 1
    assert isinstance(make_sampler(Config(sampler="uniform", uniform_epochs=2), 1000), UniformBatchSampler)


def test_a_run_with_a_uniform_warm_up_refreshes_only_after_it(mutag):
    config = Config(uniform_epochs=1, epochs=2, svm_folds=3, hidden_dim=16, num_layers=2)
    history = run(config, mutag).history
    # MUTAG: 188 graphs, 2 batches an epoch; the first graph is built after the warm-up's last step.
    assert [stats["refreshes"] for stats in history] == [1, 0]


@pytest.mark.parametrize("arguments", [["--uniform-epochs", "-1"], ["--uniform-epochs", "3", "--epochs", "3"]])
def test_bad_uniform_epochs_fail_naming_the_flag(arguments):
    from dglbs.cli import UsageError
    from dglbs_examples.graph_tu import main

    with pytest.raises(UsageError, match="--uniform-epochs"):
        main(["--dataset", "MUTAG", *arguments])
