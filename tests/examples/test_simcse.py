"""examples/simcse.py end to end with a tiny random BERT on the bundled STS suite."""
from __future__ import annotations

import math

import pytest
import torch

pytest.importorskip("transformers")

from dglbs import KNNBatchSampler, UniformBatchSampler, WalkBatchSampler  # noqa: E402
from dglbs.data.sts import load_sts_benchmarks  # noqa: E402
from dglbs.data.text import SentenceDataset  # noqa: E402
from dglbs_examples.simcse import (  # noqa: E402
    COLUMNS, Config, evaluate_pretrained, make_lr_scheduler, make_sampler, run, summary_table,
)

WORDS = "a the man woman dog cat is are plays eats runs guitar ball fish in on park".split()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> SentenceDataset:
    generator = torch.Generator().manual_seed(0)
    picks = torch.randint(len(WORDS), (40, 6), generator=generator).tolist()
    path = tmp_path_factory.mktemp("corpus") / "sentences.txt"
    path.write_text("\n".join(" ".join(WORDS[i] for i in row) for row in picks) + "\n")
    return SentenceDataset(path)


def test_run_trains_and_scores_the_sts_suite(tiny_bert_dir, corpus, bundled_sts_dir):
    benchmarks = load_sts_benchmarks(bundled_sts_dir)
    config = Config(model=str(tiny_bert_dir), sampler="batchsampler", batch_size=8, lr=1e-3, device="cpu",
                    num_candidates=20, num_neighbors=5, lr_decay="linear")
    result = run(config, corpus, benchmarks)
    assert set(COLUMNS) <= set(result.scores)
    assert all(-100 <= result.scores[name] <= 100 for name in COLUMNS)
    assert len(result.history) == 1 and result.history[0]["steps"] == 5
    assert math.isfinite(result.history[0]["loss"])
    pretrained = evaluate_pretrained(config, benchmarks)
    table = summary_table([result], pretrained)
    assert "before train" in table and "batchsampler" in table
    assert f"{pretrained['avg']:.2f}" in table


def test_sampler_choice_follows_the_paper_simcse_setting():
    assert isinstance(make_sampler(Config(sampler="uniform"), 1000), UniformBatchSampler)
    knn = make_sampler(Config(sampler="knn"), 1000)
    assert isinstance(knn, KNNBatchSampler) and knn.refresh_every == 16
    walk = make_sampler(Config(), 11914)
    assert isinstance(walk, WalkBatchSampler)
    # M = 1000, K = 100, alpha = 0.7 constant, graph built once per epoch of 187 steps.
    assert (walk.num_candidates, walk.num_neighbors, walk.batch_size, walk.refresh_every) == (1000, 100, 64, 187)
    assert walk.current_restart_prob == pytest.approx(0.7)
    assert make_sampler(Config(refresh_every=50), 11914).refresh_every == 50
    # Small corpora clip M and K; a last batch of one sentence is dropped.
    small = make_sampler(Config(), 65)
    assert (small.num_candidates, small.num_neighbors, small.drop_last, len(small)) == (64, 64, True, 1)
    with pytest.raises(ValueError, match="sampler must be one of"):
        make_sampler(Config(sampler="random"), 100)


def test_linear_lr_decay_reaches_zero_at_the_last_step():
    assert make_lr_scheduler(Config(), 10) is None
    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([parameter], lr=3.0)
    scheduler = make_lr_scheduler(Config(lr_decay="linear"), 4)(optimizer)
    rates = []
    for _ in range(4):
        optimizer.step()
        scheduler.step()
        rates.append(optimizer.param_groups[0]["lr"])
    assert rates == pytest.approx([2.25, 1.5, 0.75, 0.0])
    with pytest.raises(ValueError, match="lr_decay must be 'constant' or 'linear', got 'cosine'"):
        make_lr_scheduler(Config(lr_decay="cosine"), 4)
