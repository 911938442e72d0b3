"""SamplerCallback in real Lightning fits: one process, and DDP over two gloo processes.

Run as a script (``python test_lightning.py OUT_DIR``, with torchrun's environment
variables), this file is one rank of the DDP fit.
"""
from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch.utils.data import DataLoader

pytest.importorskip("lightning")

import lightning.pytorch as pl  # noqa: E402

from dglbs import UniformBatchSampler  # noqa: E402
from dglbs.integrations.lightning import SamplerCallback, replica_kwargs  # noqa: E402
from dglbs.losses import InfoNCELoss  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from _launch import (  # noqa: E402
    BATCH_SIZE, assert_ranks_split_the_replayed_global_batches, EPOCHS, NUM_INSTANCES, IndexedFeatures, initial_encoder, instance_features, make_sampler, replayed_batches,
    run_processes,
)


class ContrastiveLinear(pl.LightningModule):
    """A linear encoder trained with InfoNCE on two noisy views; records its batches."""

    def __init__(self, sampler_replicas: dict[str, int] | None = None, **sampler_options) -> None:
        super().__init__()
        self.sampler_options = sampler_options
        self.encoder = initial_encoder()
        self.features = instance_features()
        self.sampler_replicas = sampler_replicas
        self.loss = InfoNCELoss(0.5)
        self.seen: list[list[int]] = []

    def train_dataloader(self) -> DataLoader:
        replicas = self.sampler_replicas or replica_kwargs(self.trainer)
        self.sampler = make_sampler(**replicas, **self.sampler_options)
        return DataLoader(IndexedFeatures(self.features), batch_sampler=self.sampler)

    def embed_instances(self, indices: torch.Tensor) -> torch.Tensor:
        return self.encoder(self.features[indices])

    def training_step(self, batch, batch_idx):
        indices, x = batch
        self.seen.append(indices.tolist())
        return self.loss(self.encoder(x + 0.1 * torch.randn_like(x)), self.encoder(x + 0.1 * torch.randn_like(x)))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.5)


class RecordingLogger(pl.loggers.Logger):
    """Keeps every dict of metrics Lightning logs."""

    name, version = "recording", 0

    def __init__(self) -> None:
        super().__init__()
        self.logged: list[dict[str, float]] = []

    def log_hyperparams(self, params, *args, **kwargs) -> None:
        pass

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        self.logged.append(dict(metrics))


def lightning_trainer(callback: SamplerCallback, **kwargs) -> pl.Trainer:
    options = dict(accelerator="cpu", devices=1, max_epochs=EPOCHS, logger=False, enable_checkpointing=False,
                   enable_progress_bar=False, enable_model_summary=False)
    return pl.Trainer(callbacks=[callback], **options | kwargs)


def test_one_process_fit_trains_on_fresh_walk_batches_every_epoch():
    callback, logger = SamplerCallback(), RecordingLogger()
    module = ContrastiveLinear()
    trainer = lightning_trainer(callback, logger=logger)
    trainer.fit(module)
    sampler = module.sampler

    assert callback.sampler is sampler and trainer.global_step == 40
    assert sampler.global_step == 40 and sampler.epoch == 1
    # Rebuilt before epoch 0 and after step 20; none after the last step.
    assert [step for step, _, _ in sampler.rebuilds] == [0, 20] and callback.refreshes == 2
    # The first rebuild embedded every instance with the untrained encoder, in order.
    assert torch.allclose(sampler.rebuilds[0][1], initial_encoder()(instance_features()))
    # The second used the trained encoder, in eval mode; the module trains again after.
    assert not torch.allclose(sampler.rebuilds[1][1], sampler.rebuilds[0][1]) and module.training
    # Training saw exactly the batches of epochs 0 and 1 (set_epoch reached the sampler).
    assert module.seen == replayed_batches(sampler.rebuilds)
    assert module.seen[:20] != module.seen[20:]
    # One row of costs per epoch; both rebuilds count towards epoch 0 (the second ran
    # in its last step), as in dglbs.trainer.Trainer.
    epoch0, epoch1 = [row for row in logger.logged if "sampler/cost_s" in row]
    assert (epoch0["sampler/refreshes"], epoch1["sampler/refreshes"]) == (2.0, 0.0)
    assert epoch0["sampler/cost_g"] > 0 and epoch1["sampler/cost_g"] == 0.0
    assert epoch1["sampler/encode_share"] == 0.0 < epoch0["sampler/encode_share"]
    for row in (epoch0, epoch1):
        assert row["sampler/cost_s"] > 0 and row["sampler/cost_t"] > 0
        assert row["sampler/sampler_share"] == pytest.approx(
            (row["sampler/cost_s"] + row["sampler/cost_g"] * row["sampler/refreshes"] / 20) / row["sampler/cost_t"]
        )


def test_uniform_warm_up_epoch_needs_no_rebuild_before_training():
    callback = SamplerCallback()
    module = ContrastiveLinear(uniform_epochs=1)
    lightning_trainer(callback).fit(module)
    sampler = module.sampler
    # No embeddings before the warm-up epoch; the first rebuild after its last step.
    assert [step for step, _, _ in sampler.rebuilds] == [20] and callback.refreshes == 1
    assert module.seen[:20] == list(UniformBatchSampler(NUM_INSTANCES, BATCH_SIZE, seed=3))
    assert module.seen == replayed_batches(sampler.rebuilds, uniform_epochs=1)


def test_resume_from_a_checkpoint_continues_with_the_same_batches(tmp_path):
    whole = ContrastiveLinear()
    lightning_trainer(SamplerCallback()).fit(whole)

    first = ContrastiveLinear()
    lightning_trainer(SamplerCallback(), max_epochs=1).fit(first)
    first.trainer.save_checkpoint(tmp_path / "epoch0.ckpt")
    resumed = ContrastiveLinear()
    resumed_callback = SamplerCallback()
    lightning_trainer(resumed_callback).fit(resumed, ckpt_path=tmp_path / "epoch0.ckpt")

    assert first.seen == whole.seen[:20]
    # The restored sampler knows it is at step 20 with graph version 1: it rebuilds
    # from the restored encoder as the whole run did after step 20.
    assert [step for step, _, _ in resumed.sampler.rebuilds] == [20] and resumed.sampler.graph_version == 2
    assert resumed.seen == whole.seen[20:]


def test_a_given_embed_callable_replaces_embed_instances():
    module = ContrastiveLinear()
    callback = SamplerCallback(embed=lambda pl_module, indices: 2 * pl_module.encoder(pl_module.features[indices]))
    lightning_trainer(callback, max_epochs=1).fit(module)
    assert len(module.sampler.rebuilds) == 1
    assert torch.allclose(module.sampler.rebuilds[0][1], 2 * initial_encoder()(instance_features()))


def test_a_uniform_sampler_reloaded_every_epoch_keeps_the_epoch_and_progress():
    class Uniform(ContrastiveLinear):
        def train_dataloader(self):
            self.sampler = UniformBatchSampler(NUM_INSTANCES, BATCH_SIZE, seed=5)
            return DataLoader(IndexedFeatures(self.features), batch_sampler=self.sampler)

    module = Uniform()
    lightning_trainer(SamplerCallback(), reload_dataloaders_every_n_epochs=1).fit(module)
    # Epoch 1 ran on a new sampler: told its epoch, and caught up with the 20 steps of epoch 0.
    assert module.sampler.epoch == 1 and module.sampler.global_step == 40
    reference = UniformBatchSampler(NUM_INSTANCES, BATCH_SIZE, seed=5)
    reference.set_epoch(1)
    assert module.seen[20:] == list(reference) != module.seen[:20]


def test_callback_rejects_samplers_lightning_or_the_module_cannot_drive():
    with pytest.raises(ValueError, match="rank 0 of 1.*replica_kwargs"):
        lightning_trainer(SamplerCallback(), max_epochs=1).fit(ContrastiveLinear({"num_replicas": 2, "rank": 0}))

    class NoEmbedding(ContrastiveLinear):
        embed_instances = None

    with pytest.raises(TypeError, match="NoEmbedding.embed_instances"):
        lightning_trainer(SamplerCallback(), max_epochs=1).fit(NoEmbedding())

    class PlainLoader(ContrastiveLinear):
        def train_dataloader(self):
            return DataLoader(IndexedFeatures(self.features), batch_size=BATCH_SIZE)

    with pytest.raises(TypeError, match="batch_sampler=sampler"):
        lightning_trainer(SamplerCallback(), max_epochs=1).fit(PlainLoader())
    with pytest.raises(TypeError, match="embed must be a callable"):
        SamplerCallback(embed="encoder")
    # Lightning would rebuild the loader around a DistributedSampler before any training hook.
    ddp = SimpleNamespace(world_size=2, _accelerator_connector=SimpleNamespace(use_distributed_sampler=True))
    with pytest.raises(ValueError, match="use_distributed_sampler=False"):
        SamplerCallback().setup(ddp, None, "fit")


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is not available")
def test_ddp_ranks_train_on_disjoint_halves_of_the_same_global_batches(tmp_path):
    run_processes(Path(__file__), [str(tmp_path)], tmp_path, timeout=120)
    ranks = [torch.load(tmp_path / f"rank{rank}.pt") for rank in range(2)]

    # 10 global batches of 2 x 10 per epoch, the same count on both ranks, the same graphs.
    assert_ranks_split_the_replayed_global_batches(ranks)
    # The last epoch's costs, averaged over the ranks: no rebuild in epoch 1.
    assert ranks[0]["metrics"]["sampler/refreshes"] == 0.0 and ranks[0]["metrics"]["sampler/cost_s"] > 0


def run_ddp_rank(out_dir: Path) -> None:
    """One rank of the two-process DDP fit (launched by run_processes)."""
    module = ContrastiveLinear()
    trainer = lightning_trainer(SamplerCallback(), devices=2, strategy="ddp", use_distributed_sampler=False)
    trainer.fit(module)
    result = {"seen": module.seen, "rebuilds": module.sampler.rebuilds,
              "metrics": {key: float(value) for key, value in trainer.callback_metrics.items()}}
    torch.save(result, out_dir / f"rank{trainer.global_rank}.pt")
    # Leaving the gloo group to interpreter shutdown can abort the process.
    torch.distributed.destroy_process_group()


if __name__ == "__main__":
    run_ddp_rank(Path(sys.argv[1]))
