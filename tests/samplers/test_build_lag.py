"""Graph builds in the background (``build_lag``): the new graph takes over after a fixed
number of steps, so batches are the same as a build made then, however long it takes."""
import time

import pytest
import torch

from dglbs import KNNBatchSampler, WalkBatchSampler

N = 200


def embeddings(seed):
    return torch.randn(N, 6, generator=torch.Generator().manual_seed(seed))


def make(kind, build_lag, policy="independent"):
    options = {"chunk_size": 3, "refresh_every": 8, "build_lag": build_lag, "epoch_policy": policy}
    if kind == "knn":
        sampler = KNNBatchSampler(N, 16, **options)
    else:
        sampler = WalkBatchSampler(N, 16, num_candidates=40, num_neighbors=6, **options)
    sampler.set_embeddings(embeddings(0))
    return sampler


def train(sampler, refresh_at, epochs=2, lag=0):
    """One step per batch; at each step ``s`` in ``refresh_at`` the embeddings of step
    ``s - lag`` are handed over."""
    seen = []
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        for batch in sampler:
            seen.append(batch)
            sampler.step()
            if sampler.global_step in refresh_at:
                sampler.set_embeddings(embeddings(sampler.global_step - lag))
    return seen


@pytest.mark.parametrize("kind", ["knn", "rwr"])
@pytest.mark.parametrize("policy", ["independent", "cover"])
def test_a_lagged_build_gives_the_batches_of_a_build_at_the_swap_step(kind, policy):
    lagged = make(kind, 3, policy)
    # The same embeddings handed to a synchronous sampler 3 steps later.
    synchronous = make(kind, 0, policy)
    seen_lagged = train(lagged, refresh_at={4, 13})
    assert seen_lagged == train(synchronous, refresh_at={7, 16}, lag=3)
    assert seen_lagged != train(make(kind, 0, policy), refresh_at={4, 13}), "the lag is real"


def test_a_slow_build_changes_nothing_but_time(monkeypatch):
    fast = train(make("rwr", 2), refresh_at={5})
    slow_sampler = make("rwr", 2)
    original = type(slow_sampler)._make_search

    def slow(self, embeddings):
        time.sleep(0.3)
        return original(self, embeddings)

    monkeypatch.setattr(type(slow_sampler), "_make_search", slow)
    assert train(slow_sampler, refresh_at={5}) == fast


def test_resume_between_the_request_and_the_swap_is_exact():
    reference = make("rwr", 4)
    batches = train(reference, refresh_at={5})

    interrupted = make("rwr", 4)
    interrupted.set_epoch(0)
    iterator = iter(interrupted)
    head = []
    for _ in range(7):  # request at step 5, swap at step 9
        head.append(next(iterator))
        interrupted.step()
        if interrupted.global_step == 5:
            interrupted.set_embeddings(embeddings(5))
    state = interrupted.state_dict()
    assert state["building"] is not None and state["building"][0] == 9

    resumed = make("rwr", 4)
    resumed.load_state_dict(state)
    assert head + train(resumed, refresh_at=set()) == batches


def test_build_lag_must_be_shorter_than_the_refresh_period():
    with pytest.raises(ValueError, match=r"build_lag must be \[0, 7\], got 8"):
        WalkBatchSampler(N, 16, num_candidates=40, num_neighbors=6, refresh_every=8, build_lag=8)
