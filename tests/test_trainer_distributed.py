"""The shared Trainer under torchrun: two gloo processes on 127.0.0.1 against one process.

Run as a script (``python test_trainer_distributed.py OUT_DIR``, with torchrun's
environment variables), this file is one process of the two-process runs: it trains
every scenario below and saves what it saw to ``OUT_DIR/rank<r>.pt``. The tests train
the same scenarios in one process on the same global batch and compare.
"""
from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from dglbs import UniformBatchSampler, WalkBatchSampler
from dglbs.losses import InfoNCELoss
from dglbs.method import ContrastiveMethod
from dglbs.metrics import read_metrics
from dglbs.trainer import Trainer

sys.path[:0] = [str(Path(__file__).parent), str(Path(__file__).parent / "integrations")]
from _launch import run_processes  # noqa: E402
from test_trainer import interrupt_after_step  # noqa: E402

N, DIM, GLOBAL_BATCH, EPOCHS, WORLD_SIZE = 64, 6, 16, 2, 2
STEPS = EPOCHS * N // GLOBAL_BATCH
INTERRUPT_AT, CHECKPOINT_EVERY = 6, 5
LABELS = torch.arange(N) % 3
HISTORY_KEYS = ("steps", "refreshes", "loss", "batch_similarity", "false_negative_rate")

pytestmark = pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is not available")


class FixedViews(ContrastiveMethod):
    """A linear encoder and head; the two views of instance ``i`` are fixed noisy copies
    of it, so a batch's views do not depend on the process that computes them. Records
    the indices of every training batch it sees."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.encoder = nn.Linear(DIM, 4)
        self.head = nn.Linear(4, 4)
        self.noise = 0.1 * torch.randn(2, N, DIM, generator=torch.Generator().manual_seed(1))
        self.seen: list[list[int]] = []

    def forward(self, batch):
        indices, x = batch
        if self.training:
            self.seen.append(indices.tolist())
        return tuple(self.head(self.encoder(x + self.noise[view][indices])) for view in range(2))

    def embed(self, batch):
        return self.encoder(batch[1])


class RandomViews(FixedViews):
    """Adds noise from its own generator (one seed per process, kept in checkpoints as
    extra state) and from torch's global generator: state that differs between processes."""

    def __init__(self, seed: int) -> None:
        super().__init__()
        self.generator = torch.Generator().manual_seed(seed)

    def forward(self, batch):
        z1, z2 = super().forward(batch)
        return z1 + 0.01 * torch.randn(z1.shape, generator=self.generator), z2 + 0.01 * torch.randn(z2.shape)

    def get_extra_state(self):
        return self.generator.get_state()

    def set_extra_state(self, state):
        self.generator.set_state(state)


class PlainInfoNCE(nn.Module):
    """InfoNCE behind a module that is not a dglbs ContrastiveLoss (no ``anchors``)."""

    def forward(self, z1, z2):
        return InfoNCELoss(0.5)(z1, z2)


class SliceWiseInfoNCE(nn.Module):
    """One process's reference for gather_negatives=False: the mean of InfoNCE over
    each process's slice of the global batch."""

    def forward(self, z1, z2):
        return torch.stack([InfoNCELoss(0.5)(a, b) for a, b in zip(z1.chunk(WORLD_SIZE), z2.chunk(WORLD_SIZE))]).mean()


def dataset() -> list[tuple[int, torch.Tensor]]:
    features = torch.randn(N, DIM, generator=torch.Generator().manual_seed(0))
    return list(zip(range(N), features))


def collate(items):
    indices, x = zip(*items)
    return torch.tensor(indices), torch.stack(x)


def walk_sampler(**kwargs) -> WalkBatchSampler:
    """Built for one process: the Trainer splits its batch over the processes."""
    options = dict(num_candidates=20, num_neighbors=5, restart_prob=0.3, refresh_every=3, chunk_size=2, seed=5)
    return WalkBatchSampler(N, GLOBAL_BATCH, **options | kwargs)


def make_trainer(sampler, method=None, loss=None, **kwargs) -> Trainer:
    return Trainer(method or FixedViews(), loss or InfoNCELoss(0.5), sampler, dataset(), collate_fn=collate, lr=0.05,
                   labels=LABELS, progress=False, **kwargs)


SCENARIOS = {
    "encode": lambda **kw: make_trainer(walk_sampler(), **kw),
    "bank": lambda **kw: make_trainer(walk_sampler(build_lag=1), refresh="bank", **kw),
    "plain loss": lambda **kw: make_trainer(UniformBatchSampler(N, GLOBAL_BATCH, seed=2), loss=PlainInfoNCE(), **kw),
}


def outcome(trainer: Trainer) -> dict:
    """What a finished run is compared by."""
    graph = getattr(trainer.sampler, "graph", None)
    return {
        "parameters": {name: value.clone() for name, value in trainer.method.state_dict().items()},
        "history": [{key: stats[key] for key in HISTORY_KEYS} for stats in trainer.history],
        "seen": trainer.method.seen,
        "graph": None if graph is None else torch.stack(graph.edges()),
        "bank": None if trainer.bank is None else trainer.bank.embeddings.clone(),
        "replica": (trainer.sampler.batch_size, trainer.sampler.num_replicas, trainer.sampler.rank),
    }


def resume_runs(out: Path, rank: int) -> dict:
    """An uninterrupted run and one interrupted after step INTERRUPT_AT and resumed
    from its last checkpoint (step CHECKPOINT_EVERY, mid-epoch), with per-process
    randomness; records who wrote checkpoints and whether the file was there for
    every process once save_checkpoint returned."""
    saves = []  # files this process wrote (all_gather_object also uses torch.save, on buffers)
    original_save = torch.save

    def recording_save(obj, file, *args, **kwargs):
        if isinstance(file, (str, Path)):
            saves.append(Path(file).name)
        return original_save(obj, file, *args, **kwargs)

    torch.save = recording_save
    runs = {}
    try:
        for name in ("uninterrupted", "interrupted", "resumed"):
            trainer = make_trainer(walk_sampler(), method=RandomViews(seed=10 + rank),
                                   checkpoint_path=out / name / "run.ckpt", checkpoint_every=CHECKPOINT_EVERY)
            torch.manual_seed(100 + rank)  # after the model's initialisation, which seeds it alike
            if name == "interrupted":
                complete = []
                save_checkpoint = trainer.save_checkpoint
                trainer.save_checkpoint = lambda: complete.append(save_checkpoint().is_file()) or None
                interrupt_after_step(trainer, INTERRUPT_AT, epochs=EPOCHS)
                runs["complete after save"] = complete
            else:
                trainer.fit(EPOCHS, resume_from=out / "interrupted" / "run.ckpt" if name == "resumed" else None)
                runs[name] = outcome(trainer) | {"generator": trainer.method.generator.get_state(),
                                                 "torch_rng": torch.get_rng_state(),
                                                 "step": trainer.sampler.global_step}
    finally:
        torch.save = original_save
    return runs | {"saves": saves}


def construction_errors(rank: int) -> dict[str, str]:
    """Samplers the Trainer cannot use under two processes: raised before any communication."""
    errors = {}
    samplers = {
        "other world": walk_sampler(num_replicas=4, rank=rank),
        "odd batch": UniformBatchSampler(N, 15),
    }
    for name, sampler in samplers.items():
        try:
            make_trainer(sampler)
        except ValueError as error:
            errors[name] = str(error)
    return errors


def mismatched_graph_error(rank: int) -> str | None:
    """Samplers seeded differently per process build different graphs from the same embeddings."""
    try:
        make_trainer(walk_sampler(seed=5 + rank)).fit(1)
    except RuntimeError as error:
        return str(error)
    return None


def worker(out: Path) -> None:
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    rank = int(os.environ["RANK"])
    result = {}
    for name, build in SCENARIOS.items():
        trainer = build(metrics_path=out / f"{name}.jsonl")
        trainer.fit(EPOCHS)
        result[name] = outcome(trainer) | {"repr": repr(trainer)}
    trainer = make_trainer(UniformBatchSampler(N, GLOBAL_BATCH, seed=2), gather_negatives=False)
    trainer.fit(EPOCHS)
    result["own negatives"] = outcome(trainer)
    result["resume"] = resume_runs(out, rank)
    result["errors"] = construction_errors(rank)
    result["mismatch"] = mismatched_graph_error(rank)
    torch.save(result, out / f"rank{rank}.pt")


@pytest.fixture(scope="module")
def ranks(tmp_path_factory) -> tuple[list[dict], Path]:
    """The two processes' results (one launch for all tests; killed after 120 s)."""
    out = tmp_path_factory.mktemp("trainer-2-processes")
    run_processes(Path(__file__), [str(out)], out, world_size=WORLD_SIZE, timeout=120)
    return [torch.load(out / f"rank{rank}.pt", weights_only=False) for rank in range(WORLD_SIZE)], out


def one_process(name: str, **kwargs) -> dict:
    trainer = SCENARIOS[name](**kwargs) if name in SCENARIOS else make_trainer(**kwargs)
    trainer.fit(EPOCHS)
    return outcome(trainer)


def assert_same_training(ranks: list[dict], reference: dict) -> None:
    """Each process trained on its half of the one-process global batches, and the
    parameters, losses and batch diagnostics are those of the one process."""
    for rank, result in enumerate(ranks):
        assert result["replica"] == (GLOBAL_BATCH // WORLD_SIZE, WORLD_SIZE, rank)
        assert len(result["seen"]) == len(reference["seen"]) == STEPS
        for name, value in reference["parameters"].items():
            torch.testing.assert_close(result["parameters"][name], value, rtol=1e-5, atol=1e-6, msg=name)
        for stats, expected in zip(result["history"], reference["history"], strict=True):
            assert stats == pytest.approx(expected, rel=1e-5, abs=1e-6)
    assert [half0 + half1 for half0, half1 in zip(ranks[0]["seen"], ranks[1]["seen"])] == reference["seen"]


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_two_processes_train_as_one_process_on_the_global_batch(ranks, name):
    results, out = ranks
    reference = one_process(name)
    assert_same_training([result[name] for result in results], reference)
    # Every process ends with the same graph (and bank), that of the one process.
    if reference["graph"] is not None:
        assert torch.equal(results[0][name]["graph"], results[1][name]["graph"])
        assert torch.equal(results[0][name]["graph"], reference["graph"])
    if reference["bank"] is not None:
        assert torch.equal(results[0][name]["bank"], results[1][name]["bank"])
        torch.testing.assert_close(results[0][name]["bank"], reference["bank"], rtol=1e-5, atol=1e-6)
    # Rank 0 alone wrote the figures: one record per step and per epoch.
    records = read_metrics(out / f"{name}.jsonl")
    assert [record["event"] for record in records].count("step") == STEPS
    assert [record["event"] for record in records].count("epoch") == EPOCHS
    assert [record["loss"] for record in records if record["event"] == "epoch"] == [
        stats["loss"] for stats in results[0][name]["history"]]
    assert "process 1 of 2" in results[1][name]["repr"]


def test_rank_0_alone_logs_the_epochs(ranks):
    _, out = ranks
    logs = [(out / f"rank{rank}.log").read_text() for rank in range(WORLD_SIZE)]
    # The scenarios, "own negatives" and the two resume runs that reach epoch 1's end.
    assert logs[0].count("dglbs.trainer: epoch 1: loss") == len(SCENARIOS) + 1 + 2
    assert "dglbs.trainer: epoch" not in logs[1]


def test_refreshes_happen_on_schedule_in_both_processes(ranks):
    results, _ = ranks
    for result in results:
        # Before training, then every 3 steps except after the last one.
        assert [stats["refreshes"] for stats in result["encode"]["history"]] == [2, 1]
        assert [stats["refreshes"] for stats in result["bank"]["history"]] == [2, 1]


def test_own_negatives_contrast_each_slice_alone(ranks):
    results, _ = ranks
    reference = one_process("own negatives", sampler=UniformBatchSampler(N, GLOBAL_BATCH, seed=2),
                            loss=SliceWiseInfoNCE())
    assert_same_training([result["own negatives"] for result in results], reference)
    gathered = results[0]["plain loss"]["parameters"]["encoder.weight"]
    assert not torch.allclose(results[0]["own negatives"]["parameters"]["encoder.weight"], gathered, atol=1e-4)


def test_rank_0_writes_checkpoints_and_both_processes_resume_exactly(ranks):
    results, out = ranks
    for rank, result in enumerate(results):
        runs = result["resume"]
        # Checkpoints at step 4 (end of epoch 0) and step 5; the file was complete in
        # both processes whenever save_checkpoint returned.
        assert runs["complete after save"] == [True, True]
        # Uninterrupted: steps 4, 5 and 8; interrupted: 4 and 5; resumed: 8.
        assert runs["saves"] == (["run.ckpt.partial"] * 6 if rank == 0 else [])
        uninterrupted, resumed = runs["uninterrupted"], runs["resumed"]
        assert resumed["step"] == uninterrupted["step"] == STEPS
        for name, value in uninterrupted["parameters"].items():
            assert torch.equal(resumed["parameters"][name], value), name
        assert torch.equal(resumed["generator"], uninterrupted["generator"])
        assert torch.equal(resumed["torch_rng"], uninterrupted["torch_rng"])
        assert resumed["history"] == uninterrupted["history"]
        assert torch.equal(resumed["graph"], uninterrupted["graph"])
        # The resumed run trained on the batches after the checkpoint (step 5).
        assert resumed["seen"] == uninterrupted["seen"][CHECKPOINT_EVERY:]
    # The processes' random states differ, and the checkpoint keeps both.
    assert not torch.equal(results[0]["resume"]["resumed"]["generator"], results[1]["resume"]["resumed"]["generator"])
    checkpoint = torch.load(out / "interrupted" / "run.ckpt", weights_only=False)
    assert [set(replica) for replica in checkpoint["replicas"]] == [{"torch_rng", "method"}] * 2
    assert checkpoint["sampler"]["num_replicas"] == 2 and checkpoint["sampler"]["position"] == 1


def test_a_two_process_checkpoint_does_not_resume_in_one_process(ranks):
    _, out = ranks
    trainer = make_trainer(walk_sampler(), method=RandomViews(seed=10))
    with pytest.raises(ValueError, match=r"checkpoint\['replicas'\] holds the state of 2 processes but this Trainer"):
        trainer.fit(EPOCHS, resume_from=out / "interrupted" / "run.ckpt")


def test_samplers_that_cannot_be_split_are_refused_by_name(ranks):
    results, _ = ranks
    for rank, result in enumerate(results):
        errors = result["errors"]
        assert f"built with num_replicas=4, rank={rank} but this is process {rank} of 2" in errors["other world"]
        assert "batch_size 15, which the Trainer splits over 2 processes, so it must be a multiple of 2" in (
            errors["odd batch"])


def test_processes_walking_different_graphs_fail_together(ranks):
    results, _ = ranks
    for result in results:
        assert result["mismatch"] is not None and "2 processes' samplers walk different graphs" in result["mismatch"]


if __name__ == "__main__":
    worker(Path(sys.argv[1]))
