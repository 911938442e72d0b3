"""Smoke tests of examples/graph_molhiv.py on the first 1000 HIV molecules.

1000 is about the smallest prefix of the CSV whose scaffold valid and test splits
both hold active molecules (the first 300 give none), which ROC-AUC needs.
"""
from __future__ import annotations

import math

import pytest
import torch

from dglbs.data.molhiv import MolHIVDataset
from dglbs_examples.graph_molhiv import Config, Result, load_dataset, main, probe_rocauc, run, summary_table

# The CSV prefix holds molecules that current RDKit rejects (reported in a warning).
pytestmark = pytest.mark.filterwarnings("ignore:.*cannot parse:UserWarning")

LIMIT = 1000
TINY = {"limit": LIMIT, "epochs": 1, "batch_size": 64, "hidden_dim": 8, "num_layers": 2,
        "num_candidates": 100, "num_neighbors": 10, "refresh_every": 4}


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(tmp_path_factory.mktemp("molhiv-cache"))


@pytest.fixture(scope="module")
def dataset(cache_dir: str):
    return load_dataset(Config(limit=LIMIT, cache_dir=cache_dir))


@pytest.mark.parametrize("sampler", ["uniform", "knn", "batchsampler"])
def test_run_pretrains_and_probes(dataset, sampler: str) -> None:
    config = Config(**TINY, sampler=sampler)
    result = run(config, dataset)

    for score in (result.valid_rocauc, result.test_rocauc):
        assert math.isfinite(score) and 0.0 <= score <= 1.0
    assert result.probe_c in config.probe_c
    [stats] = result.history
    assert stats["steps"] == math.ceil(len(dataset) / config.batch_size)
    for key in ("sampler_share", "encode_share", "cost_g", "cost_s", "cost_t"):
        assert math.isfinite(stats[key]) and stats[key] >= 0.0
    assert result.cost_s > 0.0 and result.train_seconds > 0.0
    if sampler == "uniform":
        assert result.refreshes == 0 and math.isnan(result.cost_g) and result.encode_share == 0.0
    else:
        # 16 steps with t = 4: the build before training, then after steps 4, 8 and 12
        # (none after the last step, which would feed no batch).
        assert result.refreshes == 4
        assert result.cost_g > 0.0 and result.encode_share > 0.0


def test_run_rejects_other_methods_and_integer_features(dataset, cache_dir: str) -> None:
    with pytest.raises(ValueError, match="GraphCL only"):
        run(Config(**TINY, method="mvgrl"), dataset)
    ogb_features = MolHIVDataset(limit=LIMIT, cache_dir=cache_dir, node_features="ogb")
    with pytest.raises(ValueError, match="onehot"):
        run(Config(**TINY), ogb_features)


def _toy_split(n: int) -> dict[str, torch.Tensor]:
    order = torch.arange(n)
    return {"train": order[: n // 2], "valid": order[n // 2: 3 * n // 4], "test": order[3 * n // 4:]}


def test_probe_reads_the_label_from_an_informative_dimension() -> None:
    generator = torch.Generator().manual_seed(0)
    labels = (torch.rand(400, generator=generator) < 0.2).long()
    noise = torch.randn(400, 5, generator=generator)
    informative = noise.clone()
    informative[:, 3] += 4.0 * labels

    clean = probe_rocauc(informative, labels, _toy_split(400), balanced=True)
    assert clean["valid"] > 0.95 and clean["test"] > 0.95
    blind = probe_rocauc(noise, labels, _toy_split(400), cs=(0.5,))
    assert blind["c"] == 0.5 and 0.2 < blind["test"] < 0.8


def test_probe_validates_its_inputs() -> None:
    labels = torch.tensor([0, 1] * 20)
    embeddings = torch.randn(40, 3)
    with pytest.raises(ValueError, match="positive floats"):
        probe_rocauc(embeddings, labels, _toy_split(40), cs=(0.1, -1.0))
    with pytest.raises(ValueError, match="labels"):
        probe_rocauc(embeddings, labels[:-1], _toy_split(40))
    one_class = {"train": torch.arange(20), "valid": torch.tensor([20, 22, 24]), "test": torch.arange(30, 40)}
    with pytest.raises(ValueError, match="valid split .* not both 0 and 1"):
        probe_rocauc(embeddings, labels, one_class)


def test_main_prints_scores_and_costs(cache_dir: str, capsys: pytest.CaptureFixture[str]) -> None:
    main([
        "--limit", str(LIMIT), "--epochs", "1", "--sampler", "batchsampler",
        "--hidden-dim", "8", "--num-layers", "2", "--batch-size", "64", "--num-candidates", "100",
        "--num-neighbors", "10", "--refresh-every", "8", "--probe-c", "0.1", "--cache-dir", cache_dir,
    ])
    out = capsys.readouterr().out
    assert "valid 100 (5 active)" in out
    assert "batchsampler seed 0: ROC-AUC valid" in out and "(probe C 0.1)" in out
    assert "Cost_G" in out and "x 2," in out  # the build before training, then after step 8 of 16
    assert out.rstrip().splitlines()[-1].startswith("infonce  batchsampler")


def test_summary_table_pairs_each_sampler_with_uniform_over_seeds() -> None:
    def result(sampler: str, seed: int, valid: float, test: float) -> Result:
        return Result(Config(sampler=sampler, seed=seed), valid, test, 0.1, 1.0, 0.01, 0.0,
                      cost_g=math.nan, cost_s=1e-4, cost_t=0.1, refreshes=0, history=[])

    results = [result("uniform", 0, 0.70, 0.60), result("uniform", 1, 0.72, 0.64),
               result("batchsampler", 0, 0.71, 0.62), result("batchsampler", 1, 0.74, 0.65)]
    lines = summary_table(results).splitlines()
    valid = next(line for line in lines if line.startswith("valid ROC-AUC: infonce batchsampler - uniform"))
    test = next(line for line in lines if line.startswith("test ROC-AUC: infonce batchsampler - uniform"))
    assert "+1.50 ± 0.71 over 2 paired seeds" in valid
    assert "+1.50 ± 0.71 over 2 paired seeds" in test
