from __future__ import annotations

import pytest
import torch
from scipy.stats import spearmanr

from dglbs.data.sts import STS_TASKS, STSB_DEV, STSPairs
from dglbs.evaluation.sts import AVERAGE, encode_sentences, evaluate_sts, spearman_cosine


def bag_of_letters(sentences: list[str]) -> torch.Tensor:
    """A deterministic toy encoder: letter counts, shape (n, 26)."""
    rows = torch.zeros(len(sentences), 26)
    for i, sentence in enumerate(sentences):
        for letter in sentence.lower():
            if "a" <= letter <= "z":
                rows[i, ord(letter) - ord("a")] += 1
    return rows + 0.1


SENTENCES = ["a cat sat", "dogs bark loudly", "a cat sits", "zebras zig zag", "the end", "xylophone music",
             "cats sit on mats", "bark bark"]


def make_pairs(name: str, shift: int) -> STSPairs:
    first = SENTENCES[shift:] + SENTENCES[:shift]
    second = SENTENCES[::-1]
    scores = torch.arange(len(first), dtype=torch.float64) % 5
    return STSPairs(name, first, second, scores)


def test_encode_keeps_input_order_whatever_the_batch_size():
    reference = bag_of_letters(SENTENCES)
    for batch_size in (1, 3, 100):
        embeddings = encode_sentences(bag_of_letters, SENTENCES, batch_size=batch_size, progress=False)
        assert torch.equal(embeddings, reference)


def test_encode_batches_longest_first_without_gradients():
    calls = []

    def encode(sentences):
        calls.append((list(sentences), torch.is_grad_enabled()))
        return bag_of_letters(sentences)

    encode_sentences(encode, SENTENCES, batch_size=3, progress=False)
    assert [len(batch) for batch, _ in calls] == [3, 3, 2]
    lengths = [len(sentence) for batch, _ in calls for sentence in batch]
    assert lengths == sorted(lengths, reverse=True)
    assert not any(grad for _, grad in calls)


def test_encode_rejects_wrong_shapes():
    with pytest.raises(ValueError, match=r"shape \(2, d\)"):
        encode_sentences(lambda sentences: torch.zeros(len(sentences) + 1, 4), ["a", "b"], progress=False)
    with pytest.raises(ValueError, match="got list"):
        encode_sentences(lambda sentences: [0.0] * len(sentences), ["a", "b"], progress=False)
    with pytest.raises(ValueError, match="non-empty"):
        encode_sentences(bag_of_letters, [], progress=False)


def test_spearman_cosine_is_scipys_spearman_of_cosines_times_100():
    generator = torch.Generator().manual_seed(0)
    first, second = torch.randn(50, 8, generator=generator), torch.randn(50, 8, generator=generator)
    scores = torch.rand(50, generator=generator, dtype=torch.float64)
    cosine = torch.nn.functional.cosine_similarity(first, second).numpy()
    expected = 100 * spearmanr(cosine, scores.numpy()).statistic
    assert spearman_cosine(first, second, scores) == pytest.approx(expected, abs=1e-9)
    # Only the ranking of cosines matters: perfect agreement and perfect disagreement.
    angle = torch.linspace(0.0, 3.0, 20)
    unit = torch.stack([torch.ones(20), torch.zeros(20)], 1)
    rotated = torch.stack([angle.cos(), angle.sin()], 1)
    assert spearman_cosine(unit, rotated, -angle.double()) == pytest.approx(100.0)
    assert spearman_cosine(unit, rotated, angle.double()) == pytest.approx(-100.0)
    with pytest.raises(ValueError, match="at least 2 pairs"):
        spearman_cosine(unit[:1], rotated[:1], angle[:1])
    with pytest.raises(ValueError, match=r"\(n,\) scores"):
        spearman_cosine(unit, rotated, angle[:5])


def test_evaluate_scores_every_benchmark_and_averages_the_seven_tasks():
    benchmarks = {name: make_pairs(name, shift) for shift, name in enumerate(STS_TASKS + (STSB_DEV,))}
    encoded = []

    def encode(sentences):
        encoded.extend(sentences)
        return bag_of_letters(sentences)

    results = evaluate_sts(encode, benchmarks, batch_size=4, progress=False)
    assert list(results) == list(benchmarks) + [AVERAGE]
    for name, pairs in benchmarks.items():
        expected = spearman_cosine(bag_of_letters(pairs.sentences1), bag_of_letters(pairs.sentences2), pairs.scores)
        assert results[name] == pytest.approx(expected, abs=1e-9)
    assert results[AVERAGE] == pytest.approx(sum(results[name] for name in STS_TASKS) / 7)
    # Each distinct sentence is encoded once over all benchmarks.
    assert sorted(encoded) == sorted(SENTENCES)


def test_evaluate_averages_only_the_full_suite():
    results = evaluate_sts(bag_of_letters, {STSB_DEV: make_pairs(STSB_DEV, 1)}, progress=False)
    assert list(results) == [STSB_DEV]
    with pytest.raises(ValueError, match="benchmarks is empty"):
        evaluate_sts(bag_of_letters, {}, progress=False)
