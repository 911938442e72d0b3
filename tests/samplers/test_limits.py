"""The two limits of BatchSampler (paper Sec. 4.3): kNN sampler and uniform sampler."""
import torch
from scipy import stats

from dglbs import KNNBatchSampler, UniformBatchSampler, WalkBatchSampler


def test_full_candidates_and_restart_one_give_the_seeds_nearest_neighbours():
    n, b = 400, 16
    embeddings = torch.randn(n, 8, generator=torch.Generator().manual_seed(0))
    walk = WalkBatchSampler(n, b, num_candidates=n - 1, num_neighbors=b - 1, restart_prob=1.0, epoch_policy="independent")
    knn = KNNBatchSampler(n, b, epoch_policy="independent")
    walk.set_embeddings(embeddings)
    knn.set_embeddings(embeddings)
    for walked, nearest in zip(walk, knn):
        assert walked[0] == nearest[0]
        assert set(walked) == set(nearest)


def test_one_candidate_and_no_restart_visit_nodes_uniformly():
    # Averaged over proximity-graph draws, M = 1 and alpha = 0 makes every node
    # equally likely to be in a batch, as with the uniform sampler. A batch holds
    # whole walk segments, so counts within a draw are clumped: compare the nodes'
    # mean counts per draw with a one-way ANOVA, which accounts for that spread.
    n, b, refreshes = 60, 12, 300
    sampler = WalkBatchSampler(
        n, b, num_candidates=1, num_neighbors=1, restart_prob=0.0, chunk_size=5, epoch_policy="independent"
    )
    counts = torch.zeros(refreshes, n)
    generator = torch.Generator().manual_seed(0)
    for epoch in range(refreshes):
        sampler.set_embeddings(torch.randn(n, 4, generator=generator))
        sampler.set_epoch(epoch)
        for batch in sampler:
            counts[epoch, batch] += 1
    assert counts.sum() == refreshes * len(sampler) * b
    assert stats.f_oneway(*counts.T.numpy()).pvalue > 1e-3


def test_the_test_detects_a_skewed_sampler():
    # The statistic used above has power: restart at a kNN graph concentrates mass.
    n, b = 60, 12
    embeddings = torch.randn(n, 4, generator=torch.Generator().manual_seed(0))
    embeddings[:10] *= 10  # a few long vectors win every inner-product neighbourhood
    sampler = WalkBatchSampler(
        n, b, num_candidates=n - 1, num_neighbors=5, restart_prob=0.5, normalize=False, epoch_policy="independent"
    )
    sampler.set_embeddings(embeddings)
    counts = torch.zeros(300, n)
    for epoch in range(300):
        sampler.set_epoch(epoch)
        for batch in sampler:
            counts[epoch, batch] += 1
    assert stats.f_oneway(*counts.T.numpy()).pvalue < 1e-6


def test_uniform_sampler_frequencies():
    sampler = UniformBatchSampler(60, 12)
    counts = torch.zeros(60)
    for epoch in range(50):
        sampler.set_epoch(epoch)
        for batch in sampler:
            counts[batch] += 1
    assert (counts == 50).all()
