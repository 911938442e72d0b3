"""examples/vision.py end to end on a slice of Fashion-MNIST, with tiny budgets."""
import math

import pytest

from dglbs_examples.vision import Config, load_data, run, summary_table


@pytest.fixture(scope="module")
def data():
    return load_data(Config(train_subset=300, test_subset=200))


@pytest.mark.parametrize("method,sampler,loss", [("simclr", "batchsampler", "infonce"), ("mocov3", "knn", "dcl")])
def test_run_pretrains_and_probes(data, method, sampler, loss):
    config = Config(method=method, sampler=sampler, loss=loss, train_subset=300, test_subset=200,
                    width=4, epochs=1, batch_size=64, knn_every=1)
    result = run(config, data)
    assert 0.0 <= result.accuracy <= 1.0 and len(result.knn_accuracies) == 1
    assert math.isfinite(result.history[0]["loss"]) and result.history[0]["steps"] == math.ceil(300 / 64)
    # A ratio of timings (sampling over the training step), not bounded by 1 on a loaded machine.
    assert math.isfinite(result.sampler_share) and result.sampler_share >= 0
    assert "fashion-mnist" in summary_table([result])


def test_bad_uniform_epochs_fail_naming_the_flag():
    from dglbs.cli import UsageError
    from dglbs_examples.vision import main

    with pytest.raises(UsageError, match="--uniform-epochs 1 must be at least 0 and below --epochs 1"):
        main(["--uniform-epochs", "1"])
