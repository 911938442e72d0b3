"""Behaviour every sampler shares: the DataLoader protocol, epochs, determinism,
resume, replicas and argument checks."""
import dgl
import pytest
import torch
from dgl.dataloading import GraphDataLoader
from torch.utils.data import DataLoader, Dataset

from dglbs import KNNBatchSampler, LinearSchedule, UniformBatchSampler, WalkBatchSampler
from dglbs.knn import knn_recall, neighbor_recall

N = 300


def embeddings(n=N, seed=0):
    return torch.randn(n, 8, generator=torch.Generator().manual_seed(seed))


def make(kind, n=N, batch_size=32, **kwargs):
    if kind == "uniform":
        return UniformBatchSampler(n, batch_size, **kwargs)
    if kind == "knn":
        sampler = KNNBatchSampler(n, batch_size, chunk_size=5, **kwargs)
    elif kind == "knn-ivf":
        # One probed list of about 43: most seeds' batches come from the index, some
        # (too few hits) from exact search.
        sampler = KNNBatchSampler(n, batch_size, chunk_size=5, index="ivf", nprobe=1, **kwargs)
    else:
        options = {"num_candidates": 50, "num_neighbors": 10, "chunk_size": 5, "strategy": kind}
        sampler = WalkBatchSampler(n, batch_size, **(options | kwargs))
    sampler.set_embeddings(embeddings(n))
    return sampler


KINDS = ["uniform", "knn", "knn-ivf", "rwr", "rw", "bfs", "dfs"]


class Indices(Dataset):
    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, index):
        return index


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("policy", ["cover", "independent"])
def test_epoch_has_uniform_batch_count_and_distinct_indices(kind, policy):
    sampler = make(kind, **({} if kind == "uniform" else {"epoch_policy": policy}))
    batches = list(sampler)
    assert len(batches) == len(sampler) == -(-N // 32)
    assert all(len(set(batch)) == len(batch) for batch in batches)
    assert all(0 <= index < N for batch in batches for index in batch)
    if kind == "uniform" or policy == "cover":
        assert sorted(index for batch in batches for index in batch) == list(range(N))
        assert [len(batch) for batch in batches] == [32] * (N // 32) + [N % 32]
    else:
        assert all(len(batch) == 32 for batch in batches)
    if kind != "uniform":
        seeds = [batch[0] for batch in batches]
        assert len(set(seeds)) == len(seeds), "seeds are drawn without replacement"


@pytest.mark.parametrize("kind", KINDS)
def test_drop_last(kind):
    sampler = make(kind, drop_last=True)
    batches = list(sampler)
    assert len(batches) == len(sampler) == N // 32
    assert all(len(batch) == 32 for batch in batches)


@pytest.mark.parametrize("kind", KINDS)
def test_same_seed_and_epoch_same_batches(kind):
    first, second = make(kind), make(kind)
    assert list(first) == list(second)
    assert list(first) == list(first), "a second pass of the same epoch repeats"
    second.set_epoch(1)
    assert list(first) != list(second)
    assert list(make(kind, seed=1)) != list(first)


@pytest.mark.parametrize("kind", ["uniform", "rwr", "dfs"])
def test_dataloader_with_workers_gives_the_same_batches(kind):
    expected = list(make(kind))
    loader = DataLoader(Indices(N), batch_sampler=make(kind), num_workers=2)
    assert [batch.tolist() for batch in loader] == expected


def test_graph_dataloader_accepts_the_sampler():
    graphs = [dgl.rand_graph(5, 8) for _ in range(40)]
    dataset = [(graph, torch.tensor(i)) for i, graph in enumerate(graphs)]
    sampler = make("rwr", n=40, batch_size=8)
    loader = GraphDataLoader(dataset, batch_sampler=sampler)
    batches = list(loader)
    assert len(batches) == 5
    for (graph, labels), indices in zip(batches, sampler):
        assert graph.batch_size == 8
        assert labels.tolist() == indices


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("stop", [0, 3, 7, 10])
def test_resume_gives_exactly_the_remaining_batches(kind, stop):
    sampler = make(kind)
    sampler.set_epoch(2)
    iterator = iter(sampler)
    head = [next(iterator) for _ in range(stop)]
    state = sampler.state_dict()
    tail = list(iterator)

    resumed = make(kind)
    resumed.load_state_dict(state)
    resumed.set_epoch(2)  # a training loop does this every epoch; it must keep the position
    assert list(resumed) == tail
    assert len(head) + len(tail) == len(sampler)
    assert len(list(resumed)) == len(sampler), "the pass after a resumed one is whole"


@pytest.mark.parametrize("kind", ["knn", "knn-ivf", "rwr"])
def test_resume_after_a_mid_epoch_refresh(kind):
    sampler = make(kind)
    iterator = iter(sampler)
    [next(iterator) for _ in range(2)]
    sampler.set_embeddings(embeddings(seed=5))
    [next(iterator) for _ in range(4)]
    state = sampler.state_dict()
    tail = list(iterator)
    resumed = make(kind)
    resumed.load_state_dict(state)
    assert list(resumed) == tail


@pytest.mark.parametrize("kind", ["knn", "knn-ivf", "rwr", "rw", "bfs", "dfs"])
def test_batches_do_not_depend_on_the_thread_count(kind):
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        single = list(make(kind))
        torch.set_num_threads(2)
        assert list(make(kind)) == single
        assert torch.get_num_threads() == 2, "the walk restores the caller's thread count"
    finally:
        torch.set_num_threads(threads)


def test_refresh_takes_effect_for_batches_after_it():
    sampler = make("rwr")
    reference = make("rwr")
    reference.set_embeddings(embeddings(seed=7))
    iterator = iter(sampler)
    before = [next(iterator) for _ in range(3)]
    assert before == list(make("rwr"))[:3]
    sampler.set_embeddings(embeddings(seed=7))
    after = list(iterator)
    # A chunk drawn at position 3 on the new graph: differs from the old graph's.
    assert after != list(make("rwr"))[3:]
    assert after[0][0] == list(make("rwr"))[3][0], "the seed order does not change"


def test_refresh_due_every_t_steps():
    sampler = WalkBatchSampler(N, 16, num_candidates=20, num_neighbors=5, refresh_every=3)
    assert sampler.refresh_due
    sampler.set_embeddings(embeddings())
    assert not sampler.refresh_due
    list(sampler)  # batches drawn are not progress
    assert not sampler.refresh_due
    sampler.step()
    sampler.step()
    assert not sampler.refresh_due
    sampler.step()
    assert sampler.refresh_due


def test_restart_schedule_follows_training_steps_not_batches():
    sampler = make("rwr", restart_prob=LinearSchedule(0.2, 0.05), total_steps=100)
    assert sampler.current_restart_prob == pytest.approx(0.2)
    list(sampler)
    assert sampler.current_restart_prob == pytest.approx(0.2)
    sampler.step(50)
    assert sampler.current_restart_prob == pytest.approx(0.125)
    sampler.step(500)
    assert sampler.current_restart_prob == pytest.approx(0.05)


def test_schedule_without_total_steps_fails_clearly():
    sampler = make("rwr", restart_prob=LinearSchedule(0.2, 0.05))
    with pytest.raises(RuntimeError, match="set_total_steps"):
        list(sampler)
    sampler.set_total_steps(10)
    assert len(list(sampler)) == len(sampler)


def test_schedule_returning_a_bad_value_fails_clearly():
    sampler = make("rwr", restart_prob=lambda progress: 2.0, total_steps=10)
    with pytest.raises(ValueError, match=r"restart_prob must be in \[0, 1\], got 2.0"):
        list(sampler)


@pytest.mark.parametrize("kind", KINDS)
def test_replicas_split_one_global_batch(kind):
    replicas = 3
    ranks = [make(kind, batch_size=16, num_replicas=replicas, rank=rank) for rank in range(replicas)]
    single = make(kind, batch_size=16 * replicas)
    per_rank = [list(sampler) for sampler in ranks]
    assert len({len(batches) for batches in per_rank}) == 1
    for position, global_batch in enumerate(single):
        parts = [batches[position] for batches in per_rank]
        assert len({len(part) for part in parts}) == 1
        if kind != "uniform":
            assert sum(parts, []) == global_batch
        assert len(set(sum(parts, []))) == sum(len(part) for part in parts)


def test_uniform_replicas_pad_to_cover_every_index():
    ranks = [UniformBatchSampler(10, 2, num_replicas=3, rank=rank) for rank in range(3)]
    per_rank = [list(sampler) for sampler in ranks]
    assert [len(batches) for batches in per_rank] == [2, 2, 2]
    assert set(i for batches in per_rank for batch in batches for i in batch) == set(range(10))


def test_walk_sampler_requires_embeddings_before_iterating():
    sampler = WalkBatchSampler(N, 16, num_candidates=20, num_neighbors=5)
    with pytest.raises(RuntimeError, match="set_embeddings"):
        list(sampler)


def test_set_graph_walks_on_the_given_graph():
    sampler = WalkBatchSampler(6, 3, num_candidates=2, num_neighbors=1, restart_prob=0.0, epoch_policy="independent")
    ring = dgl.graph((torch.arange(6), (torch.arange(6) + 1) % 6))
    sampler.set_graph(ring)
    for batch in sampler:
        assert batch == [(batch[0] + i) % 6 for i in range(3)]
    with pytest.raises(ValueError, match="graph has 5 nodes but the dataset has 6"):
        sampler.set_graph(dgl.graph(([0], [1]), num_nodes=5))


def test_knn_graph_variant():
    sampler = make("rwr", graph="knn")
    assert len(list(sampler)) == len(sampler)


def test_repr_names_the_configuration():
    text = repr(make("rwr"))
    assert text.startswith("WalkBatchSampler(") and "num_candidates=50" in text and "strategy='rwr'" in text


@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        ({"batch_size": 0}, ValueError, r"batch_size must be >= 1, got 0"),
        ({"batch_size": N + 1}, ValueError, r"batch_size \(301\) x num_replicas \(1\) exceeds the dataset length \(300\)"),
        ({"batch_size": 200, "num_replicas": 2}, ValueError, "exceeds the dataset length"),
        ({"num_neighbors": 0}, ValueError, r"num_neighbors \(K\) must be \[1, 299\], got 0"),
        ({"num_neighbors": 300, "num_candidates": 400}, ValueError, "got 300"),
        ({"num_neighbors": 30, "num_candidates": 20}, ValueError, r"K=30.*M=20"),
        ({"num_candidates": 0}, ValueError, r"num_candidates \(M\) must be >= 1, got 0"),
        ({"restart_prob": 1.2}, ValueError, r"restart_prob must be in \[0, 1\], got 1.2"),
        ({"restart_prob": "high"}, TypeError, "'high'"),
        ({"refresh_every": 0}, ValueError, r"refresh_every \(t\) must be >= 1, got 0"),
        ({"strategy": "teleport"}, ValueError, "strategy must be one of"),
        ({"graph": "hnsw"}, ValueError, "graph must be one of"),
        ({"rank": 2, "num_replicas": 2}, ValueError, r"rank must be \[0, 1\], got 2"),
        ({"drop_last": "yes"}, TypeError, "drop_last"),
        ({"seed": -1}, ValueError, "seed must be >= 0"),
    ],
)
def test_bad_constructor_arguments(kwargs, error, match):
    options = {"batch_size": 16, "num_candidates": 50, "num_neighbors": 10} | kwargs
    with pytest.raises(error, match=match):
        WalkBatchSampler(N, options.pop("batch_size"), **options)


@pytest.mark.parametrize("kind", ["knn", "rwr"])
@pytest.mark.parametrize(
    "bad,error,match",
    [
        (torch.zeros(N), ValueError, "2-D"),
        (torch.zeros(N, 4, dtype=torch.int32), TypeError, "floating point"),
        (torch.zeros(N - 1, 4), ValueError, "has 299 rows but the dataset has 300"),
        (torch.full((N, 4), float("nan")), ValueError, "NaN or inf"),
        (torch.ones(N, 4).index_fill_(0, torch.tensor([17]), float("inf")), ValueError, "row 17"),
    ],
)
def test_bad_embeddings(kind, bad, error, match):
    sampler = make(kind)
    with pytest.raises(error, match=match):
        sampler.set_embeddings(bad)


@pytest.mark.parametrize(
    "change,match",
    [({"n": 301}, "num_instances=300"), ({"batch_size": 16}, "batch_size=32"), ({"seed": 1}, "seed=0")],
)
def test_load_state_from_a_different_sampler_is_rejected(change, match):
    state = make("rwr").state_dict()
    other = make("rwr", **change)
    with pytest.raises(ValueError, match=match):
        other.load_state_dict(state)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("policy", ["cover", "independent"])
def test_dataset_barely_larger_than_the_batch(kind, policy):
    options = {} if kind == "uniform" else {"epoch_policy": policy}
    if kind not in ("uniform", "knn", "knn-ivf"):
        options |= {"num_candidates": 20, "num_neighbors": 3}
    batches = list(make(kind, n=33, batch_size=32, **options))
    assert len(batches) == 2
    assert all(len(set(batch)) == len(batch) for batch in batches)
    if kind != "uniform" and policy == "independent":
        assert all(len(batch) == 32 for batch in batches)
    else:
        assert sorted(sum(batches, [])) == list(range(33))


def clustered(n, dim=32, clusters=10, seed=0):
    generator = torch.Generator().manual_seed(seed)
    centres = torch.randn(clusters, dim, generator=generator) * 2
    return centres[torch.randint(clusters, (n,), generator=generator)] + torch.randn(n, dim, generator=generator)


def test_knn_ivf_batches_recall_exact_search_at_5000():
    embeddings = clustered(5000)
    sampler = KNNBatchSampler(5000, 64, index="ivf")
    sampler.set_embeddings(embeddings)
    assert sampler.search_index is not None and sampler.search_index.nprobe == 16
    batches = torch.tensor(list(sampler))
    recall = neighbor_recall(embeddings, batches[:, 0], batches[:, 1:], normalize=True)
    assert 0.9 <= recall < 1.0, "approximate, but close"
    exact = KNNBatchSampler(5000, 64)
    exact.set_embeddings(embeddings)
    exact_batches = torch.tensor(list(exact))
    assert torch.equal(batches[:, 0], exact_batches[:, 0]), "the same seeds"
    assert neighbor_recall(embeddings, exact_batches[:, 0], exact_batches[:, 1:], normalize=True) == 1.0


def test_walk_sampler_on_an_ivf_knn_graph():
    embeddings = clustered(5000)
    sampler = WalkBatchSampler(5000, 64, num_candidates=50, num_neighbors=10, graph="knn", knn_index="ivf", seed=3)
    sampler.set_embeddings(embeddings)
    assert sampler.config()["knn_index"] == "ivf"
    assert knn_recall(embeddings, sampler.graph, sample_size=500, normalize=True) >= 0.9
    again = WalkBatchSampler(5000, 64, num_candidates=50, num_neighbors=10, graph="knn", knn_index="ivf", seed=3)
    again.set_embeddings(embeddings)
    assert torch.equal(torch.tensor(list(sampler)), torch.tensor(list(again))), "a seeded IVF graph"


@pytest.mark.parametrize(
    "kwargs,match",
    [({"graph": "knn", "knn_index": "hnsw"}, r"knn_index must be one of \('exact', 'ivf', 'auto'\), got 'hnsw'"),
     ({"knn_index": "ivf"}, r"knn_index='ivf' applies to graph='knn' only, got graph='proximity'")],
)
def test_walk_sampler_knn_index_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        WalkBatchSampler(300, 10, num_candidates=50, num_neighbors=10, **kwargs)


def test_knn_auto_index_is_exact_below_the_threshold(monkeypatch):
    import dglbs.knn

    sampler = make("knn", index="auto")
    assert sampler.search_index is None
    assert list(sampler) == list(make("knn"))
    monkeypatch.setattr(dglbs.knn, "EXACT_BELOW", 100)
    sampler = make("knn", index="auto", nprobe=1)
    assert sampler.search_index is not None
    assert list(sampler) == list(make("knn-ivf"))


def test_knn_state_from_another_index_is_rejected():
    with pytest.raises(ValueError, match="index='exact'"):
        make("knn").load_state_dict(make("knn-ivf").state_dict())


@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        ({"index": "hnsw"}, ValueError, r"index must be one of \('exact', 'ivf', 'auto'\), got 'hnsw' \(HNSW is only offered by knn_graph\)"),
        ({"index": "annoy"}, ValueError, "got 'annoy'$"),
        ({"index": "ivf", "nprobe": 0}, ValueError, "nprobe must be >= 1, got 0"),
    ],
)
def test_knn_index_argument_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        KNNBatchSampler(N, 16, **kwargs)


def test_knn_ivf_without_faiss_names_the_install_command(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "faiss", None)
    with pytest.raises(ImportError, match=r"KNNBatchSampler\(index='ivf'\) needs faiss: pip install 'dglbs\[faiss\]'"):
        KNNBatchSampler(N, 16, index="ivf")
    assert KNNBatchSampler(N, 16, index="auto").index == "auto", "exact at this N: no faiss needed"


def test_knn_ivf_seed_with_too_few_hits_gets_the_exact_batch():
    # 7 lists of 35-50 instances, one probed: seeds in lists under 48 are short.
    ivf, exact = make("knn-ivf", batch_size=48), make("knn", batch_size=48)
    search = ivf._search()
    lists = search.index.quantizer.search(search.embeddings.numpy(), 1)[1][:, 0]
    sizes = torch.tensor([search.index.invlists.list_size(int(i)) for i in lists])
    short = 0
    for approximate, reference in zip(ivf, exact):
        assert approximate[0] == reference[0] and len(set(approximate)) == 48
        if sizes[approximate[0]] < 48:
            short += 1
            assert approximate == reference
    assert 0 < short < len(ivf)
