"""Walks depend on the seed alone: not on the process, the thread count, or dgl.seed calls."""
import subprocess
import sys


PROGRAM = """
import sys
import torch
import dglbs, dgl
from dglbs import WalkBatchSampler
torch.set_num_threads(int(sys.argv[1]))
if sys.argv[2] == "user-seed":
    # What many DGL scripts do: seed DGL on all threads and draw before sampling.
    dgl.seed(123)
    graph = dgl.rand_graph(500, 5000)
    dgl.sampling.random_walk(graph, torch.arange(500).repeat(50), length=5)
sampler = WalkBatchSampler(400, 32, num_candidates=60, num_neighbors=8, seed=3)
sampler.set_embeddings(torch.randn(400, 8, generator=torch.Generator().manual_seed(0)))
batches = [batch for epoch in range(2) for batch in (sampler.set_epoch(epoch) or list(sampler))]
import hashlib
print(hashlib.sha256(str(batches).encode()).hexdigest())
"""


def test_batches_are_the_same_in_every_process_whatever_the_program_seeded():
    outputs = {
        subprocess.run(
            [sys.executable, "-c", PROGRAM, threads, mode], capture_output=True, text=True, timeout=120, check=True
        ).stdout.strip()
        for threads, mode in [("1", "plain"), ("2", "plain"), ("2", "user-seed"), ("1", "user-seed")]
    }
    assert len(outputs) == 1, outputs


def test_seeds_do_not_replay_each_other_across_epochs():
    from dglbs import UniformBatchSampler

    def epoch_batches(seed, epoch):
        sampler = UniformBatchSampler(100, 10, seed=seed)
        sampler.set_epoch(epoch)
        return list(sampler)

    assert epoch_batches(0, 1) != epoch_batches(1, 0)
    assert epoch_batches(5, 3) != epoch_batches(6, 2)


def test_a_program_exits_cleanly_while_a_chunk_is_drawn_ahead():
    # One batch, then exit: the next chunk is being drawn on the walk thread.
    program = """
import torch
from dglbs import WalkBatchSampler
sampler = WalkBatchSampler(20000, 64, num_candidates=100, num_neighbors=10, chunk_size=64, epoch_policy="cover")
sampler.set_embeddings(torch.randn(20000, 8))
next(iter(sampler))
print("done")
"""
    for _ in range(3):
        finished = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=120)
        assert finished.returncode == 0, finished.stderr[-2000:]
        assert finished.stdout.strip() == "done"


def test_the_walk_thread_leaves_the_programs_thread_count_alone():
    program = """
import time
import torch
torch.set_num_threads(2)
import dglbs
from dglbs import WalkBatchSampler
sampler = WalkBatchSampler(500, 32, num_candidates=50, num_neighbors=8, build_lag=2, refresh_every=4)
sampler.set_embeddings(torch.randn(500, 8))
for batch in sampler:
    sampler.step()
    if sampler.refresh_due:
        sampler.set_embeddings(torch.randn(500, 8))
time.sleep(0.2)
print(torch.get_num_threads())
"""
    finished = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=120)
    assert finished.returncode == 0, finished.stderr[-2000:]
    assert finished.stdout.strip() == "2"
