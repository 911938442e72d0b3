"""Drawing the next chunk ahead on the walk thread changes timing, never batches."""
import threading

import pytest
import torch

from dglbs import KNNBatchSampler, LinearSchedule, WalkBatchSampler

N = 240


def make(kind, prefetch, policy):
    if kind == "knn":
        sampler = KNNBatchSampler(N, 16, chunk_size=3, epoch_policy=policy, prefetch=prefetch, refresh_every=7)
    else:
        sampler = WalkBatchSampler(
            N, 16, num_candidates=40, num_neighbors=6, chunk_size=3, strategy=kind, epoch_policy=policy,
            restart_prob=LinearSchedule(0.5, 0.05), total_steps=60, prefetch=prefetch, refresh_every=7,
        )
    sampler.set_embeddings(torch.randn(N, 6, generator=torch.Generator().manual_seed(0)))
    return sampler


def train(sampler, epochs=3):
    """A training loop: one step per batch, a refresh every t steps; returns the batches."""
    seen = []
    generator = torch.Generator().manual_seed(1)
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        for batch in sampler:
            seen.append(batch)
            sampler.step()
            if sampler.refresh_due:
                sampler.set_embeddings(torch.randn(N, 6, generator=generator))
    return seen


@pytest.mark.parametrize("kind", ["knn", "rwr", "bfs"])
@pytest.mark.parametrize("policy", ["cover", "independent"])
def test_prefetch_gives_the_same_batches(kind, policy):
    assert train(make(kind, True, policy)) == train(make(kind, False, policy))


def test_chunks_after_the_first_are_drawn_on_the_walk_thread(monkeypatch):
    sampler = make("rwr", True, "independent")
    threads = []
    original = type(sampler)._compute_chunk

    def recording(self, *args):
        threads.append(threading.current_thread().name)
        return original(self, *args)

    monkeypatch.setattr(type(sampler), "_compute_chunk", recording)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 15
    # 5 chunks of 3; the epoch's last batch also starts the next epoch's first chunk.
    key, future = sampler._pending
    future.result()
    assert key[:2] == (1, 0)
    assert threads[0] == threading.current_thread().name
    assert set(threads[1:]) == {"dglbs-dgl-random"} and len(threads) == 6


def test_a_refresh_discards_the_chunk_drawn_ahead():
    sampler = make("rwr", True, "independent")
    reference = make("rwr", False, "independent")
    for current in (sampler, reference):
        iterator = iter(current)
        [next(iterator) for _ in range(3)]  # the next chunk is being drawn ahead now
        current.set_embeddings(torch.randn(N, 6, generator=torch.Generator().manual_seed(9)))
        current.rest = list(iterator)
    assert sampler.rest == reference.rest
    stale = make("rwr", False, "independent")
    assert sampler.rest != list(stale)[3:], "batches after the refresh come from the new graph"
