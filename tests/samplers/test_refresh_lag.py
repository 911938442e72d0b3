"""How many batches after a refresh still come from the old graph, per DataLoader setting.

A DataLoader iterates the batch sampler in the main process ahead of training: with
``num_workers = w`` it keeps ``w * prefetch_factor`` batches in flight. A refresh after
the training step that consumed batch ``s`` therefore reaches batch
``s + 1 + w * prefetch_factor`` (``s + 1`` without workers).
"""
import dgl
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from dglbs import WalkBatchSampler

N, B = 240, 4


class Indices(Dataset):
    def __len__(self):
        return N

    def __getitem__(self, index):
        return index


def ring(step):
    nodes = torch.arange(N)
    return dgl.graph((nodes, (nodes + step) % N))


@pytest.mark.parametrize("workers,prefetch", [(0, None), (1, 2), (2, 2), (2, 4)])
def test_a_refresh_reaches_the_batches_after_those_in_flight(workers, prefetch):
    # Walks on a ring going forward (+1) or backward (-1) tell which graph a batch came from.
    sampler = WalkBatchSampler(N, B, num_candidates=2, num_neighbors=1, restart_prob=0.0, chunk_size=1)
    sampler.set_graph(ring(+1))
    options = {} if workers == 0 else {"num_workers": workers, "prefetch_factor": prefetch}
    loader = DataLoader(Indices(), batch_sampler=sampler, **options)
    refresh_after = 10
    directions = []
    for step, batch in enumerate(loader):
        directions.append(1 if (batch[1] - batch[0]) % N == 1 else -1)
        if step == refresh_after:
            sampler.set_graph(ring(-1))
        if step == refresh_after + 20:
            break
    lag = directions[refresh_after + 1 :].index(-1)
    assert lag == (0 if workers == 0 else workers * prefetch)
    assert all(direction == -1 for direction in directions[refresh_after + 1 + lag :])
