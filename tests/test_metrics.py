"""dglbs.metrics and the trainer's metrics sink, logging and progress bars."""
import importlib.util
import json
import logging
import math
import re

import pytest
import torch

from torch import nn

from dglbs import LinearSchedule, UniformBatchSampler, WalkBatchSampler
from dglbs.losses import InfoNCELoss
from dglbs.method import ContrastiveMethod
from dglbs.metrics import MetricsWriter, read_metrics
from dglbs.trainer import Trainer

N, DIM = 120, 6


class ScaledViews(ContrastiveMethod):
    """A linear encoder whose two views scale the input by 0.9 and 1.1."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.encoder = nn.Linear(DIM, 4)

    def forward(self, batch):
        x, _ = batch
        return self.encoder(0.9 * x), self.encoder(1.1 * x)

    def embed(self, batch):
        return self.encoder(batch[0])


def collate(items):
    x, y = zip(*items)
    return torch.stack(x), torch.stack(y)


def make_trainer(sampler, checkpoint_dir=None, **kwargs):
    generator = torch.Generator().manual_seed(1)
    labels = torch.arange(N) % 3
    data = list(zip(torch.randn(N, DIM, generator=generator), labels))
    kwargs.setdefault("progress", False)
    return Trainer(ScaledViews(), InfoNCELoss(0.5), sampler, data, collate_fn=collate, lr=1e-2, labels=labels,
                   checkpoint_path=None if checkpoint_dir is None else checkpoint_dir / "run.ckpt", **kwargs)


def walk_sampler():
    return WalkBatchSampler(N, 16, num_candidates=30, num_neighbors=5, refresh_every=4,
                            restart_prob=LinearSchedule(0.5, 0.1))


def test_writer_appends_valid_json_lines_with_nan_as_null(tmp_path):
    path = tmp_path / "runs" / "metrics.jsonl"
    writer = MetricsWriter(path)
    writer.write("step", {"step": 1, "loss": 0.5, "false_negative_rate": math.nan}, index=1)
    writer.write("epoch", {"epoch": 0, "knn_accuracy": torch.tensor(0.25), "note": object()}, index=0)
    writer.close()
    writer.write("step", {"step": 2, "loss": math.inf}, index=2)  # reopened: appended, not truncated
    writer.close()
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["event"] for line in lines] == ["step", "epoch", "step"]
    assert lines[0] == {"event": "step", "step": 1, "loss": 0.5, "false_negative_rate": None}
    assert lines[1]["knn_accuracy"] == 0.25 and lines[1]["note"].startswith("<object")
    assert lines[2]["loss"] is None
    steps = read_metrics(path, "step")
    assert [record["step"] for record in steps] == [1, 2] and math.isnan(steps[0]["false_negative_rate"])
    assert "metrics.jsonl" in repr(writer)


def test_read_metrics_names_the_bad_line(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"event": "step"}\n\nnot json\n')
    with pytest.raises(ValueError, match=r"metrics.jsonl, line 3: not a JSON object"):
        read_metrics(path)


def test_trainer_writes_one_record_per_step_and_per_epoch(tmp_path):
    path = tmp_path / "metrics.jsonl"
    trainer = make_trainer(walk_sampler(), metrics_path=path)
    history = trainer.fit(2)
    steps, epochs = read_metrics(path, "step"), read_metrics(path, "epoch")
    assert [record["step"] for record in steps] == list(range(1, 17))
    assert [record["epoch"] for record in steps] == [0] * 8 + [1] * 8
    for record in steps:
        assert {"loss", "lr", "batch_similarity", "false_negative_rate", "restart_prob", "seconds"} <= set(record)
        assert record["lr"] == pytest.approx(1e-2) and record["seconds"] > 0
    # alpha at each step, as the walk sampler's schedule says.
    assert steps[0]["restart_prob"] == pytest.approx(0.5) and steps[8]["restart_prob"] == pytest.approx(0.3)
    assert steps[-1]["restart_prob"] == pytest.approx(0.5 - 0.4 * 15 / 16)
    assert [record["epoch"] for record in epochs] == [0, 1]
    for record, stats in zip(epochs, history):
        assert record["loss"] == pytest.approx(stats["loss"]) and record["steps"] == stats["steps"] == 8
    # The mean of the step losses is the epoch loss.
    assert sum(record["loss"] for record in steps[:8]) / 8 == pytest.approx(history[0]["loss"])


def test_a_resumed_run_appends_to_the_same_file(tmp_path):
    path = tmp_path / "metrics.jsonl"
    first = make_trainer(UniformBatchSampler(N, 16, seed=0), tmp_path, metrics_path=path)
    first.fit(1)
    resumed = make_trainer(UniformBatchSampler(N, 16, seed=0), metrics_path=path)
    resumed.fit(2, resume_from=tmp_path / "run.ckpt")
    assert [record["epoch"] for record in read_metrics(path, "epoch")] == [0, 1]
    assert [record["step"] for record in read_metrics(path, "step")] == list(range(1, 17))


def test_epoch_summary_goes_to_the_dglbs_logger(caplog):
    trainer = make_trainer(UniformBatchSampler(N, 16, seed=0))
    with caplog.at_level(logging.INFO, logger="dglbs"):
        trainer.fit(2)
    lines = [record.getMessage() for record in caplog.records if record.name == "dglbs.trainer"]
    assert len(lines) == 2 and lines[0].startswith("epoch 0: loss ") and "Cost_S" in lines[0]
    assert re.search(r"batch cosine -?[01]\.\d{3}", lines[0])


def test_progress_bars_show_only_where_asked(capsys):
    make_trainer(UniformBatchSampler(N, 16, seed=0), progress=True).fit(1)
    err = capsys.readouterr().err
    assert "epoch 0" in err and "8/8" in err
    make_trainer(UniformBatchSampler(N, 16, seed=0), progress=True).encode()
    assert "encode" in capsys.readouterr().err
    # Default: bars only on a terminal; pytest's captured stderr is not one.
    quiet = make_trainer(UniformBatchSampler(N, 16, seed=0), progress=None)
    quiet.fit(1)
    quiet.encode()
    assert capsys.readouterr().err == ""
    with pytest.raises(TypeError, match="progress must be True, False or None"):
        make_trainer(UniformBatchSampler(N, 16), progress="yes")


@pytest.mark.skipif(importlib.util.find_spec("tensorboard") is None, reason="tensorboard not installed")
def test_tensorboard_receives_the_step_and_epoch_scalars(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    make_trainer(UniformBatchSampler(N, 16, seed=0), tensorboard_dir=tmp_path / "tb").fit(1)
    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    tags = events.Tags()["scalars"]
    assert {"step/loss", "step/lr", "epoch/loss", "epoch/cost_t"} <= set(tags)
    assert [event.step for event in events.Scalars("step/loss")] == list(range(1, 9))


def test_tensorboard_without_the_package_fails_at_construction(tmp_path, monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *args: None)
    with pytest.raises(ImportError, match=r"tensorboard_dir=.* needs the tensorboard package: pip install"):
        MetricsWriter(tensorboard_dir=tmp_path)
