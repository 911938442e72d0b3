"""prepare_loader in a plain accelerate loop: one process, and two gloo processes.

Run as a script (``python test_accelerate.py OUT_DIR``, with torchrun's environment
variables), this file is one process of the two-process loop.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader

pytest.importorskip("accelerate")

from accelerate import Accelerator  # noqa: E402
from accelerate.state import AcceleratorState  # noqa: E402

from dglbs import UniformBatchSampler  # noqa: E402
from dglbs.integrations import check_same_graph, gather_embeddings, refresh_from_shards  # noqa: E402
from dglbs.integrations.accelerate import prepare_loader, replica_kwargs  # noqa: E402
from dglbs.losses import InfoNCELoss  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from _launch import (  # noqa: E402
    BATCH_SIZE, DIM, EPOCHS, NUM_INSTANCES, IndexedFeatures, assert_ranks_split_the_replayed_global_batches,
    initial_encoder, instance_features, make_sampler, replayed_batches, run_processes,
)


def train(accelerator: Accelerator, **sampler_options) -> dict:
    """The module docstring's recipe on the synthetic set; returns what it saw."""
    features = instance_features()
    sampler = make_sampler(**replica_kwargs(accelerator), **sampler_options)
    loader = prepare_loader(accelerator, DataLoader(IndexedFeatures(features), batch_sampler=sampler))
    model = initial_encoder()
    model, optimizer = accelerator.prepare(model, torch.optim.SGD(model.parameters(), lr=0.5))
    encoder, loss_fn = accelerator.unwrap_model(model), InfoNCELoss(0.5)

    @torch.no_grad()
    def embed(indices: torch.Tensor) -> torch.Tensor:
        encoder.eval()
        embeddings = encoder(features[indices].to(accelerator.device))
        encoder.train()
        return embeddings

    seen = []
    if sampler.refresh_due:
        refresh_from_shards(sampler, embed)
    for epoch in range(EPOCHS):
        loader.set_epoch(epoch)
        for indices, x in loader:
            seen.append(indices.tolist())
            loss = loss_fn(model(x + 0.1 * torch.randn_like(x)), model(x + 0.1 * torch.randn_like(x)))
            accelerator.backward(loss)
            optimizer.step()
            optimizer.zero_grad()
            sampler.step()
            if sampler.refresh_due and sampler.global_step < EPOCHS * len(sampler):
                refresh_from_shards(sampler, embed)
    return {"seen": seen, "rebuilds": sampler.rebuilds, "epoch": sampler.epoch,
            "weights_changed": not torch.equal(encoder.weight, initial_encoder().weight)}


def probe_mismatches(rank: int) -> dict[str, str]:
    """The errors raised when this process's embeddings differ from the others'."""
    errors = {}
    sampler = make_sampler(num_replicas=2, rank=rank)
    sampler.set_embeddings(torch.randn(NUM_INSTANCES, DIM, generator=torch.Generator().manual_seed(rank)))
    try:
        check_same_graph(sampler)
    except RuntimeError as error:
        errors["graph"] = str(error)
    try:
        gather_embeddings(lambda indices: torch.zeros(len(indices), 4 + rank), NUM_INSTANCES)
    except ValueError as error:
        errors["layout"] = str(error)
    return errors


@pytest.fixture
def accelerator():
    yield Accelerator(cpu=True)
    # Accelerator state is a process-wide singleton: leave none behind for other tests.
    AcceleratorState._reset_state(reset_partial_state=True)


def test_one_process_loop_trains_on_fresh_walk_batches_every_epoch(accelerator):
    result = train(accelerator)
    assert result["seen"] == replayed_batches(result["rebuilds"])
    assert [step for step, _, _ in result["rebuilds"]] == [0, 20]
    assert torch.allclose(result["rebuilds"][0][1], initial_encoder()(instance_features()))
    assert result["seen"][:20] != result["seen"][20:] and result["epoch"] == 1 and result["weights_changed"]


def test_one_process_loop_with_a_uniform_warm_up_builds_the_first_graph_after_it(accelerator):
    result = train(accelerator, uniform_epochs=1)
    assert [step for step, _, _ in result["rebuilds"]] == [20]
    uniform = UniformBatchSampler(NUM_INSTANCES, BATCH_SIZE, seed=3)
    assert result["seen"][:20] == list(uniform)
    assert result["seen"] == replayed_batches(result["rebuilds"], uniform_epochs=1)


def test_refresh_helpers_in_one_process():
    embed_calls = []

    def embed(indices):
        embed_calls.append(indices.tolist())
        return instance_features()[indices] * 2

    assert torch.equal(gather_embeddings(embed, NUM_INSTANCES), instance_features() * 2)
    assert embed_calls == [list(range(NUM_INSTANCES))]
    sampler = make_sampler()
    encode_seconds, build_seconds = refresh_from_shards(sampler, embed)
    assert encode_seconds > 0 and build_seconds > 0 and not sampler.refresh_due
    check_same_graph(sampler)  # one process: nothing to compare, no collective
    with pytest.raises(ValueError, match=r"shape \(len\(indices\), d\); for 200 indices it returned \(200,\)"):
        gather_embeddings(lambda indices: torch.zeros(len(indices)), NUM_INSTANCES)
    with pytest.raises(TypeError, match="uniform sampler needs no refresh"):
        refresh_from_shards(UniformBatchSampler(30, 4), embed)


def test_prepared_loader_passes_the_epoch_on_and_stays_prepared(accelerator):
    sampler = UniformBatchSampler(30, 4, seed=2)
    loader = prepare_loader(accelerator, DataLoader(IndexedFeatures(torch.zeros(30, 2)), batch_sampler=sampler))
    assert accelerator.prepare(loader) is loader
    loader.set_epoch(3)
    assert sampler.epoch == 3
    batches = [indices.tolist() for indices, _ in loader]
    reference = UniformBatchSampler(30, 4, seed=2)
    reference.set_epoch(3)
    assert batches == list(reference)
    # A full pass advances the epoch by itself.
    next(iter(loader))
    assert sampler.epoch == 4


def test_prepare_loader_rejects_loaders_it_cannot_leave_unsharded(accelerator):
    features = IndexedFeatures(torch.zeros(30, 2))
    with pytest.raises(ValueError, match="process 0 of 1.*replica_kwargs"):
        prepare_loader(accelerator, DataLoader(features, batch_sampler=UniformBatchSampler(30, 4, num_replicas=2)))
    with pytest.raises(TypeError, match="accelerator.prepare for other loaders"):
        prepare_loader(accelerator, DataLoader(features, batch_size=4))
    with pytest.raises(TypeError, match="DataLoader"):
        prepare_loader(accelerator, UniformBatchSampler(30, 4))


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is not available")
def test_two_processes_train_on_disjoint_halves_of_the_same_global_batches(tmp_path):
    run_processes(Path(__file__), [str(tmp_path)], tmp_path, timeout=120)
    ranks = [torch.load(tmp_path / f"rank{rank}.pt") for rank in range(2)]

    # Not sharded twice: 10 batches of 10 per epoch on each process.
    assert_ranks_split_the_replayed_global_batches(ranks)
    for rank in ranks:
        assert rank["epoch"] == 1 and rank["weights_changed"]
    # Ranks given different embeddings are caught, on every rank, instead of hanging.
    for rank in ranks:
        assert "walk different graphs" in rank["errors"]["graph"]
        assert "different (dim, dtype): [(4, 'torch.float32'), (5, 'torch.float32')]" in rank["errors"]["layout"]


if __name__ == "__main__":
    process = Accelerator(cpu=True)
    result = train(process) | {"errors": probe_mismatches(process.process_index)}
    torch.save(result, Path(sys.argv[1]) / f"rank{process.process_index}.pt")
    # Leaving the gloo group to interpreter shutdown can abort the process.
    process.end_training()
