"""Uniform warm-up epochs of the embedding samplers (``uniform_epochs``)."""
import pytest
import torch

from dglbs import KNNBatchSampler, UniformBatchSampler, WalkBatchSampler

N, B = 100, 16


def make(kind, **kwargs):
    if kind == "knn":
        return KNNBatchSampler(N, B, refresh_every=5, chunk_size=3, **kwargs)
    return WalkBatchSampler(N, B, num_candidates=30, num_neighbors=5, refresh_every=5, chunk_size=3, **kwargs)


def embeddings():
    return torch.randn(N, 4, generator=torch.Generator().manual_seed(3))


def epoch(sampler, number):
    sampler.set_epoch(number)
    return list(sampler)


@pytest.mark.parametrize("kind", ["knn", "walk"])
@pytest.mark.parametrize("replicas", [1, 3])
def test_warm_up_epochs_are_the_uniform_samplers_batches_and_need_no_embeddings(kind, replicas):
    for rank in range(replicas):
        options = {"seed": 7, "num_replicas": replicas, "rank": rank}
        sampler, uniform = make(kind, uniform_epochs=2, **options), UniformBatchSampler(N, B, **options)
        for number in (0, 1):
            assert epoch(sampler, number) == epoch(uniform, number)
        assert not sampler.ready


@pytest.mark.parametrize("kind", ["knn", "walk"])
def test_refresh_is_due_only_once_the_warm_up_steps_are_trained(kind):
    sampler = make(kind, uniform_epochs=2)
    warm_up_steps = 2 * len(sampler)
    for _ in range(warm_up_steps):
        assert not sampler.refresh_due
        sampler.step()
    assert sampler.refresh_due
    sampler.set_embeddings(embeddings())
    assert not sampler.refresh_due
    sampler.step(5)
    assert sampler.refresh_due


def test_a_walk_epoch_without_embeddings_says_how_to_fix_it():
    sampler = make("walk", uniform_epochs=1)
    sampler.set_epoch(1)
    with pytest.raises(RuntimeError, match="set_embeddings"):
        list(sampler)


@pytest.mark.parametrize("kind", ["knn", "walk"])
def test_warm_up_leaves_the_walk_epochs_as_they_would_be(kind):
    warmed, plain = make(kind, uniform_epochs=1), make(kind)
    for sampler in (warmed, plain):
        sampler.step(len(sampler))
        sampler.set_embeddings(embeddings())
    assert epoch(warmed, 1) == epoch(plain, 1)
    assert epoch(warmed, 1) != epoch(make(kind, uniform_epochs=2), 1)


@pytest.mark.parametrize("policy", ["cover", "independent"])
def test_a_warm_up_epoch_resumes_exactly(policy):
    sampler = make("walk", uniform_epochs=1, epoch_policy=policy)
    sampler.set_epoch(0)
    batches = iter(sampler)
    first = [next(batches) for _ in range(3)]
    sampler.step(3)
    state = sampler.state_dict()
    assert state["chunk"] is None and state["search"] is None and state["uniform_epochs"] == 1
    resumed = make("walk", uniform_epochs=1, epoch_policy=policy)
    resumed.load_state_dict(state)
    resumed.set_epoch(0)
    assert first + list(resumed) == epoch(make("walk", uniform_epochs=1, epoch_policy=policy), 0)


def test_states_that_do_not_fit_the_warm_up_are_rejected():
    sampler = make("walk", uniform_epochs=1)
    state = sampler.state_dict()
    with pytest.raises(ValueError, match="uniform_epochs=1 but this sampler has uniform_epochs=0"):
        make("walk").load_state_dict(state)
    # A chunk of walk batches in a warm-up epoch cannot be: it is named.
    walked = make("walk", uniform_epochs=1)
    walked.set_embeddings(embeddings())
    walked.set_epoch(1)
    next(iter(walked))
    bad = walked.state_dict() | {"epoch": 0}
    with pytest.raises(ValueError, match=r"state\['chunk'\] and state\['used'\] must be None in epoch 0"):
        make("walk", uniform_epochs=1).load_state_dict(bad)


@pytest.mark.parametrize("value", [-1, 1.5, "2", True])
def test_bad_uniform_epochs_are_named(value):
    with pytest.raises((TypeError, ValueError), match="uniform_epochs"):
        make("walk", uniform_epochs=value)


def test_repr_and_config_show_the_warm_up():
    sampler = make("knn", uniform_epochs=3)
    assert "uniform_epochs=3" in repr(sampler) and sampler.config()["uniform_epochs"] == 3
