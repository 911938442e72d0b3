"""Covering vs independent epochs of the embedding samplers (walk, kNN)."""
import dgl
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dglbs import KNNBatchSampler, WalkBatchSampler
from dglbs.walks import STRATEGIES


def cliques(num, size):
    """`num` disjoint cliques of `size` nodes (every node points to the others)."""
    nodes = torch.arange(num * size)
    first = nodes - nodes % size
    src = nodes.repeat_interleave(size - 1)
    offset = torch.arange(1, size).repeat(num * size)
    return dgl.graph((src, first[src] + (src - first[src] + offset) % size), num_nodes=num * size)


def walk(n, b, **kwargs):
    options = {"num_candidates": min(50, n - 1), "num_neighbors": min(10, n - 1), "epoch_policy": "cover"}
    return WalkBatchSampler(n, b, **(options | kwargs))


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_a_covering_epoch_of_cliques_is_the_cliques(strategy):
    # Each batch grows from an unused seed and collects only unused nodes: on
    # disjoint cliques of exactly B nodes every batch is one whole clique.
    sampler = walk(64, 16, strategy=strategy, restart_prob=0.3)
    sampler.set_graph(cliques(4, 16))
    batches = list(sampler)
    assert sorted(sorted(batch) for batch in batches) == [list(range(i, i + 16)) for i in range(0, 64, 16)]


def test_knn_covering_epoch_of_clusters_is_the_clusters():
    centres = torch.eye(4) * 10
    embeddings = centres.repeat_interleave(16, 0) + 0.01 * torch.randn(64, 4, generator=torch.Generator().manual_seed(0))
    sampler = KNNBatchSampler(64, 16, epoch_policy="cover")
    sampler.set_embeddings(embeddings)
    assert sorted(sorted(batch) for batch in sampler) == [list(range(i, i + 16)) for i in range(0, 64, 16)]


@pytest.mark.parametrize("kind", ["knn", "rwr", "bfs"])
@pytest.mark.parametrize("replicas", [1, 3])
@pytest.mark.parametrize("drop_last", [False, True])
def test_covering_epoch_partitions_the_data_on_every_rank_layout(kind, replicas, drop_last):
    n, b = 203, 8
    ranks = []
    for rank in range(replicas):
        if kind == "knn":
            sampler = KNNBatchSampler(n, b, num_replicas=replicas, rank=rank, drop_last=drop_last, chunk_size=4, epoch_policy="cover")
        else:
            sampler = walk(n, b, strategy=kind, num_replicas=replicas, rank=rank, drop_last=drop_last, chunk_size=4)
        sampler.set_embeddings(torch.randn(n, 6, generator=torch.Generator().manual_seed(1)))
        ranks.append(list(sampler))
    lengths = {len(batches) for batches in ranks}
    assert lengths == {len(sampler)}, "every rank yields len(sampler) batches"
    global_batches = [sum((batches[i] for batches in ranks), []) for i in range(len(sampler))]
    used = sum(global_batches, [])
    if drop_last:
        assert len(used) == len(set(used)) == (n // (b * replicas)) * b * replicas
    else:
        *full, last = global_batches
        assert sorted(set(used)) == list(range(n)), "every instance once per epoch"
        assert sum(len(batch) for batch in full) == len(set(sum(full, [])))
        assert len(last) % replicas == 0 and len(set(last)) == len(last)
        assert len(set(last) - set(sum(full, []))) == n - len(full) * b * replicas


def test_independent_epochs_miss_instances_that_covering_epochs_train_on():
    n = 1000
    embeddings = torch.randn(n, 16, generator=torch.Generator().manual_seed(0))
    seen = {}
    for policy in ("cover", "independent"):
        sampler = WalkBatchSampler(n, 64, num_candidates=500, num_neighbors=100, restart_prob=0.2, epoch_policy=policy)
        sampler.set_embeddings(embeddings)
        seen[policy] = len({i for batch in sampler for i in batch}) / n
    assert seen["cover"] == 1.0
    assert seen["independent"] < 0.8


@pytest.mark.parametrize("kind", ["knn", "rwr", "dfs"])
def test_covering_resume_after_a_mid_epoch_refresh(kind):
    def make():
        if kind == "knn":
            sampler = KNNBatchSampler(300, 16, chunk_size=5, epoch_policy="cover")
        else:
            sampler = walk(300, 16, strategy=kind, chunk_size=5)
        sampler.set_embeddings(torch.randn(300, 6, generator=torch.Generator().manual_seed(0)))
        return sampler

    sampler = make()
    iterator = iter(sampler)
    head = [next(iterator) for _ in range(7)]
    sampler.set_embeddings(torch.randn(300, 6, generator=torch.Generator().manual_seed(5)))
    head += [next(iterator) for _ in range(4)]
    state = sampler.state_dict()
    tail = list(iterator)
    assert sorted(sum(head + tail, [])) == list(range(300)), "a refresh does not break coverage"
    resumed = make()
    resumed.load_state_dict(state)
    assert list(resumed) == tail
    # A state saved right after a refresh, before any new batch, resumes too.
    sampler = make()
    iterator = iter(sampler)
    [next(iterator) for _ in range(3)]
    sampler.set_embeddings(torch.randn(300, 6, generator=torch.Generator().manual_seed(5)))
    state = sampler.state_dict()
    resumed = make()
    resumed.load_state_dict(state)
    assert list(resumed) == list(iterator)


@settings(max_examples=30, deadline=None)
@given(
    n=st.integers(3, 80),
    data=st.data(),
)
def test_property_any_degenerate_graph_covers_exactly(n, data):
    # Random graphs with dead ends, tiny components and hubs, any B and alpha.
    b = data.draw(st.integers(1, n - 1))
    edges = data.draw(st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)), max_size=3 * n))
    hubs = data.draw(st.integers(0, 3))
    src = [s for s, _ in edges] + [i for i in range(n) for _ in range(hubs)]
    dst = [d for _, d in edges] + [h for _ in range(n) for h in range(hubs)]
    strategy = data.draw(st.sampled_from(STRATEGIES))
    policy = data.draw(st.sampled_from(["cover", "independent"]))
    alpha = data.draw(st.floats(0.0, 1.0))
    sampler = WalkBatchSampler(n, b, num_candidates=1, num_neighbors=1, strategy=strategy,
                               restart_prob=alpha, epoch_policy=policy, chunk_size=data.draw(st.integers(1, 5)))
    sampler.set_graph(dgl.graph((torch.tensor(src, dtype=torch.int64), torch.tensor(dst, dtype=torch.int64)), num_nodes=n))
    batches = list(sampler)
    assert len(batches) == len(sampler) == -(-n // b)
    assert all(len(set(batch)) == len(batch) for batch in batches)
    if policy == "cover":
        assert sorted(sum(batches, [])) == list(range(n))
    else:
        assert all(len(batch) == b for batch in batches)
