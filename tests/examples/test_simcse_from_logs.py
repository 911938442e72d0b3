"""examples/simcse_from_logs.py: one-run SimCSE tables folded back into one table."""
from __future__ import annotations

import math
import re

import pytest

pytest.importorskip("transformers")

from dglbs_examples.simcse import COLUMNS, Config, Result, summary_table  # noqa: E402
from dglbs_examples.simcse_from_logs import read_logs  # noqa: E402


def make_result(sampler: str, seed: int, offset: float, seconds: float) -> Result:
    scores = {name: round(70 + offset + 0.37 * column + 0.11 * seed, 2) for column, name in enumerate(COLUMNS)}
    return Result(Config(sampler=sampler, seed=seed), scores, train_seconds=seconds, eval_seconds=1.0,
                  sampler_share=0.0, encode_share=0.0, history=[])


def test_logs_of_one_run_each_give_the_table_of_one_process():
    pretrained = {name: 60.0 + column for column, name in enumerate(COLUMNS)}
    results = [make_result(sampler, seed, offset, 100.0 + 10 * seed)
               for sampler, offset in (("uniform", 0.0), ("batchsampler", 1.5)) for seed in range(3)]
    # Each process prints its own one-run table; the first also has the before-training row.
    logs = [summary_table([result], pretrained if i == 0 else None).splitlines() for i, result in enumerate(results)]

    parsed, parsed_pretrained = [], None
    for i, log in enumerate(logs):
        found, before = read_logs(["some progress line"] + log + [""], source=f"log{i}")
        assert len(found) == 1 and found[0].config.sampler == results[i].config.sampler
        assert found[0].scores == results[i].scores and found[0].train_seconds == results[i].train_seconds
        assert math.isnan(found[0].eval_seconds)
        parsed += found
        parsed_pretrained = before or parsed_pretrained

    assert parsed_pretrained == pretrained
    assert summary_table(parsed, parsed_pretrained) == summary_table(results, pretrained)
    assert "± 0.09" in summary_table(parsed)  # population std of 0.11-spaced seeds, not zero


def test_rows_that_cannot_be_unfolded_are_rejected():
    results = [make_result("knn", seed, 0.0, 1.0) for seed in range(2)]
    with pytest.raises(ValueError, match="log:2: a row averaged over 2 seeds"):
        read_logs(summary_table(results).splitlines())
    ten_seeds = summary_table([make_result("knn", seed, 0.0, 1.0) for seed in range(10)]).splitlines()
    with pytest.raises(ValueError, match="log:2: a row averaged over 10 seeds"):
        read_logs(ten_seeds)
    row = summary_table(results[:1]).splitlines()[1]
    cut = re.sub(r"\d+\.\d+ ± \d+\.\d+", "", row, count=1)  # one score fewer
    with pytest.raises(ValueError, match=f"log:1: expected {len(COLUMNS)} scores"):
        read_logs([cut])
