import math

import pytest
import torch
from torch import nn

from dglbs import KNNBatchSampler, UniformBatchSampler, WalkBatchSampler
from dglbs.losses import InfoNCELoss
from dglbs.method import ContrastiveMethod
from dglbs.trainer import Trainer, summarize_history

N, DIM = 120, 6


class NoisyViews(ContrastiveMethod):
    """A linear encoder on Gaussian-noise views, with its own generator."""

    def __init__(self, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.encoder = nn.Linear(DIM, 4)
        self.head = nn.Linear(4, 4)
        self.generator = torch.Generator().manual_seed(seed)
        self.steps_seen = []

    def view(self, x):
        return x + 0.1 * torch.randn(x.shape, generator=self.generator)

    def forward(self, batch):
        x, _ = batch
        return self.head(self.encoder(self.view(x))), self.head(self.encoder(self.view(x)))

    def embed(self, batch):
        return self.encoder(batch[0])

    def on_step_end(self, progress):
        self.steps_seen.append(progress)

    # The view generator is training state: checkpoints must carry it.
    def get_extra_state(self):
        return self.generator.get_state()

    def set_extra_state(self, state):
        self.generator.set_state(state)


def dataset():
    generator = torch.Generator().manual_seed(1)
    centers = torch.randn(3, DIM, generator=generator) * 3
    labels = torch.arange(N) % 3
    x = centers[labels] + torch.randn(N, DIM, generator=generator)
    return list(zip(x, labels)), labels


def collate(items):
    x, y = zip(*items)
    return torch.stack(x), torch.stack(y)


def make_trainer(sampler, tmp_path=None, **kwargs):
    data, labels = dataset()
    return Trainer(
        NoisyViews(), InfoNCELoss(0.5), sampler, data, collate_fn=collate, lr=1e-2,
        labels=labels, progress=False,
        checkpoint_path=None if tmp_path is None else tmp_path / "run.ckpt", **kwargs,
    )


def walk_sampler(**kwargs):
    return WalkBatchSampler(N, 16, num_candidates=30, num_neighbors=5, refresh_every=4, chunk_size=3, **kwargs)


def test_training_lowers_the_loss_and_reports_costs():
    trainer = make_trainer(walk_sampler())
    seen = []
    history = trainer.fit(6, on_epoch_end=lambda t, stats: seen.append(stats["epoch"]) or stats.update(extra=t.epoch))
    assert seen == list(range(6)) and [stats["extra"] for stats in history] == seen
    assert len(history) == 6 and history[-1]["loss"] < history[0]["loss"]
    for stats in history:
        assert stats["steps"] == 8
        assert stats["cost_s"] > 0 and stats["cost_t"] > 0 and stats["sampler_share"] > 0
        assert 0 <= stats["false_negative_rate"] <= 1 and -1 <= stats["batch_similarity"] <= 1
    # one refresh before training (counted in epoch 0), then one every 4 steps
    # except after the last step, which would feed no batch
    assert [stats["refreshes"] for stats in history] == [3, 2, 2, 2, 2, 1]
    assert all(stats["cost_g"] > 0 for stats in history)
    assert trainer.method.steps_seen[-1] == pytest.approx(1.0)


def test_uniform_sampler_needs_no_refresh():
    trainer = make_trainer(UniformBatchSampler(N, 16))
    history = trainer.fit(2)
    assert all(stats["refreshes"] == 0 and stats["cost_g"] == 0 for stats in history)


def test_bank_refresh_skips_encode_passes(monkeypatch):
    trainer = make_trainer(KNNBatchSampler(N, 16, refresh_every=4), refresh="bank")
    encodes, given = [], []
    original = trainer._encode  # every pass over the data, whole or one process's shard
    monkeypatch.setattr(trainer, "_encode", lambda *a, **k: encodes.append(1) or original(*a, **k))
    set_embeddings = trainer.sampler.set_embeddings
    monkeypatch.setattr(trainer.sampler, "set_embeddings", lambda e: given.append(e) or set_embeddings(e))
    history = trainer.fit(3)
    assert sum(stats["refreshes"] for stats in history) == 24 // 4
    assert len(encodes) == 1, "only the bank's initial fill runs a pass over the data"
    assert trainer.bank.full and trainer.bank.embeddings.shape == (N, 4)
    assert all(embeddings is trainer.bank.embeddings for embeddings in given)


@pytest.mark.parametrize("refresh", ["encode", "bank"])
def test_uniform_warm_up_epochs_train_on_uniform_batches_and_refresh_after_them(monkeypatch, refresh):
    sampler = walk_sampler(uniform_epochs=1, seed=3)
    trainer = make_trainer(sampler, refresh=refresh)
    refreshed_at, batches = [], []
    set_embeddings = sampler.set_embeddings
    monkeypatch.setattr(sampler, "set_embeddings", lambda e: refreshed_at.append(sampler.global_step) or set_embeddings(e))
    original = trainer.collate
    monkeypatch.setattr(trainer, "collate", lambda indices: batches.append(indices) or original(indices))
    history = trainer.fit(3)
    # No embeddings before the warm-up's 8 steps are trained, then one refresh every 4.
    assert refreshed_at == [8, 12, 16, 20]
    assert [stats["refreshes"] for stats in history] == [1, 2, 1]
    uniform = UniformBatchSampler(N, 16, seed=3)
    assert batches[:8] == list(uniform), "the warm-up epoch is the uniform sampler's"
    assert trainer.bank is None if refresh == "encode" else trainer.bank.full


def interrupt_after_step(trainer, step, *, epochs):
    """Run ``trainer.fit(epochs)`` and stop it as a Ctrl-C after training step ``step``."""
    original_step = trainer.sampler.step

    def step_then_stop(num_steps=1):
        original_step(num_steps)
        if trainer.sampler.global_step == step:
            raise KeyboardInterrupt

    trainer.sampler.step = step_then_stop
    with pytest.raises(KeyboardInterrupt):
        trainer.fit(epochs)


def test_resume_from_a_mid_epoch_checkpoint_is_exact(tmp_path):
    reference = make_trainer(walk_sampler(), tmp_path / "a")
    reference.fit(3)

    interrupted = make_trainer(walk_sampler(), tmp_path / "b", checkpoint_every=11)
    interrupt_after_step(interrupted, 12, epochs=3)

    resumed = make_trainer(walk_sampler(), tmp_path / "c")
    resumed.fit(3, resume_from=tmp_path / "b" / "run.ckpt")
    for name, value in reference.method.state_dict().items():
        assert torch.allclose(value, resumed.method.state_dict()[name]), name
    assert resumed.sampler.global_step == reference.sampler.global_step == 24
    # The interrupted epoch's statistics cover all of it, not just the steps after the resume.
    assert [stats["steps"] for stats in resumed.history] == [8, 8, 8]
    for key in ("loss", "batch_similarity", "false_negative_rate"):
        assert resumed.history[1][key] == pytest.approx(reference.history[1][key]), key
    assert resumed.history[1]["refreshes"] == reference.history[1]["refreshes"]


def checkpoint_state(tmp_path):
    trainer = make_trainer(walk_sampler(), tmp_path, checkpoint_every=5)
    interrupt_after_step(trainer, 6, epochs=2)
    return torch.load(tmp_path / "run.ckpt", weights_only=False)


@pytest.mark.parametrize(
    "change,match",
    [
        ({"epoch": -1}, r"checkpoint\['epoch'\] must be >= 0"),
        ({"history": [{}]}, r"checkpoint\['history'\] must be a list of 0"),
        ({"torch_rng": torch.zeros(3)}, r"checkpoint\['torch_rng'\]"),
        ({"bank": (torch.zeros(5, 4), torch.zeros(5, dtype=torch.bool))}, r"checkpoint\['bank'\] embeddings must have shape"),
        ({"lr_scheduler": {}}, r"checkpoint\['lr_scheduler'\] does not match"),
        ({"method": {"weight": torch.zeros(1)}}, r"checkpoint\['method'\] does not fit"),
        ({"optimizer": {"state": {}, "param_groups": []}}, r"checkpoint\['optimizer'\] does not fit"),
        ({"sampler": {"kind": "UniformBatchSampler"}, "epoch_so_far": None}, r"checkpoint\['sampler'\] does not fit"),
        ({"epoch_so_far": {"losses": [1.0]}}, r"checkpoint\['epoch_so_far'\]"),
        ({"replicas": [{}, {}]}, r"checkpoint\['replicas'\] holds the state of 2 processes but this Trainer"),
        ({"unexpected": 1}, "unknown keys"),
    ],
)
def test_a_checkpoint_that_does_not_fit_is_named_and_changes_nothing(tmp_path, change, match):
    state = checkpoint_state(tmp_path) | change
    trainer = make_trainer(walk_sampler())
    parameters = {name: value.clone() for name, value in trainer.method.state_dict().items()}
    optimizer = repr(trainer.optimizer.state_dict())
    sampler = trainer.sampler.state_dict()
    with pytest.raises((TypeError, ValueError), match=match):
        trainer.load_state_dict(state)
    assert all(torch.equal(value, trainer.method.state_dict()[name]) for name, value in parameters.items())
    assert repr(trainer.optimizer.state_dict()) == optimizer
    assert trainer.sampler.state_dict().keys() == sampler.keys() and trainer.sampler.position == sampler["position"]
    assert trainer.epoch == 0 and trainer.history == []


def test_a_missing_checkpoint_key_is_named(tmp_path):
    state = checkpoint_state(tmp_path)
    del state["sampler"]
    with pytest.raises(ValueError, match=r"missing keys \['sampler'\]"):
        make_trainer(walk_sampler()).load_state_dict(state)


def test_trainer_argument_errors():
    data, labels = dataset()
    method, loss = NoisyViews(), InfoNCELoss()
    with pytest.raises(ValueError, match="sampler is over 100 instances but the dataset has 120"):
        Trainer(method, loss, UniformBatchSampler(100, 8), data, collate_fn=collate)
    with pytest.raises(ValueError, match="refresh must be one of"):
        Trainer(method, loss, UniformBatchSampler(N, 8), data, collate_fn=collate, refresh="never")
    with pytest.raises(TypeError, match="ContrastiveBatchSampler"):
        Trainer(method, loss, torch.utils.data.BatchSampler(range(N), 8, False), data, collate_fn=collate)
    with pytest.raises(ValueError, match=r"labels must have shape \(120,\)"):
        Trainer(method, loss, UniformBatchSampler(N, 8), data, collate_fn=collate, labels=labels[:5])
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        make_trainer(UniformBatchSampler(N, 8)).fit(1, resume_from="/nonexistent.ckpt")


def test_one_process_trains_alone_with_the_sampler_as_built():
    sampler = walk_sampler()
    trainer = make_trainer(sampler)
    assert (trainer.world_size, trainer.rank) == (1, 0)
    assert trainer.sampler is sampler and (sampler.batch_size, sampler.num_replicas, sampler.rank) == (16, 1, 0)
    assert repr(trainer).startswith("Trainer(method=NoisyViews, loss=InfoNCELoss(temperature=0.5")
    assert "refresh='encode', device='cpu')" in repr(trainer)
    trainer.fit(1)
    assert trainer.state_dict()["replicas"] is None
    with pytest.raises(TypeError, match="gather_negatives must be a bool, got 'yes'"):
        make_trainer(walk_sampler(), gather_negatives="yes")


def test_a_checkpoint_from_before_replicas_existed_still_resumes(tmp_path):
    state = checkpoint_state(tmp_path)
    del state["replicas"]
    trainer = make_trainer(walk_sampler())
    trainer.load_state_dict(state)
    assert trainer.sampler.global_step == 5 and trainer.epoch == 0


def test_diverging_loss_stops_with_a_clear_error():
    trainer = make_trainer(UniformBatchSampler(N, 16))
    trainer.loss = lambda z1, z2: (z1.sum() * float("nan"))
    with pytest.raises(FloatingPointError, match="loss became nan at epoch 0"):
        trainer.fit(1)


def test_learning_rate_schedule_and_gradient_clipping():
    schedule = lambda optimizer: torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1 - step / 16)  # noqa: E731
    trainer = make_trainer(UniformBatchSampler(N, 16), lr_scheduler=schedule, max_grad_norm=0.5)
    trainer.fit(2)
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(0.0)
    with pytest.raises(ValueError, match="max_grad_norm must be positive, got 0"):
        make_trainer(UniformBatchSampler(N, 16), max_grad_norm=0)


def test_summarize_history_weights_by_steps_and_refreshes():
    history = [
        {"steps": 1, "refreshes": 2, "cost_s": 1.0, "cost_t": 2.0, "sampler_share": 0.1, "encode_share": 0.0, "cost_g": 4.0},
        {"steps": 3, "refreshes": 0, "cost_s": 3.0, "cost_t": 2.0, "sampler_share": 0.3, "encode_share": 0.4, "cost_g": 0.0},
    ]
    summary = summarize_history(history)
    assert summary["steps"] == 4 and summary["refreshes"] == 2
    assert summary["cost_s"] == pytest.approx(2.5) and summary["sampler_share"] == pytest.approx(0.25)
    assert summary["cost_g"] == pytest.approx(4.0)
    assert math.isnan(summarize_history([])["cost_t"])
