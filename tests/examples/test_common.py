"""The examples' shared tables: paired differences against the uniform sampler."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
from scipy.stats import ttest_rel

from dglbs_examples.common import format_p, pair_by_seed, paired_differences


def run(sampler: str, seed: int, accuracy: float, dataset: str = "X") -> SimpleNamespace:
    config = SimpleNamespace(dataset=dataset, method="graphcl", loss="infonce", sampler=sampler, seed=seed)
    return SimpleNamespace(config=config, accuracy=accuracy)


def percent(result: SimpleNamespace) -> float:
    return 100 * result.accuracy


def test_paired_differences_match_the_seeds_and_the_paired_t_test():
    uniform, walk = [0.80, 0.79, 0.81, 0.70], [0.81, 0.795, 0.80]
    results = [run("uniform", seed, value) for seed, value in enumerate(uniform)]
    results += [run("batchsampler", seed, value) for seed, value in enumerate(walk)]
    results.append(run("batchsampler", 9, 0.99))  # no uniform run of seed 9: left out
    (line,) = paired_differences(results, percent)
    p = ttest_rel([81, 79.5, 80], [80, 79, 81]).pvalue
    assert line == f"X graphcl infonce batchsampler - uniform: +0.17 ± 1.04 over 3 paired seeds (p {p:.2f})"


def test_paired_differences_per_configuration_and_one_seed():
    results = [run("uniform", 0, 0.5, "A"), run("knn", 0, 0.52, "A"), run("knn", 0, 0.4, "B")]
    (line,) = paired_differences(results, percent)  # B has no uniform run
    assert line == "A graphcl infonce knn - uniform: +2.00 ± 0.00 over 1 paired seed (p -)"


@pytest.mark.parametrize("results", [[], [run("uniform", 0, 0.5)]])
def test_paired_differences_without_pairs(results):
    assert paired_differences(results, percent) == []


@pytest.mark.parametrize(("p", "text"), [(0.4567, "0.46"), (0.01, "0.01"), (0.0041, "0.004"), (3.2e-05, "3e-05")])
def test_format_p_never_prints_zero(p, text):
    assert format_p(p) == text


def test_pair_by_seed_keeps_the_seeds_both_ran_in_the_first_ones_order():
    assert pair_by_seed({3: 1.0, 0: 2.0, 7: 5.0}, {0: 1.5, 3: 0.5, 4: 9.0}) == [(1.0, 0.5), (2.0, 1.5)]
    assert pair_by_seed({1: 1.0}, {}) == []
