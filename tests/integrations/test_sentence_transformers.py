"""The dglbs batch sampler inside a real SentenceTransformerTrainer with a tiny random BERT:
one process, and two gloo processes.

Run as a script (``python test_sentence_transformers.py OUT_DIR MODEL_DIR``, with
torchrun's environment variables), this file is one process of the two-process run.
"""
from __future__ import annotations

import math
import os
import pickle
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

pytest.importorskip("sentence_transformers")
pytest.importorskip("accelerate")
datasets = pytest.importorskip("datasets")

from accelerate.data_loader import BatchSamplerShard  # noqa: E402
from sentence_transformers import (  # noqa: E402
    SentenceTransformer,
    SentenceTransformerTrainer,
    SentenceTransformerTrainingArguments,
)
from sentence_transformers.sentence_transformer.data_collator import SentenceTransformerDataCollator  # noqa: E402
from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss  # noqa: E402
from sentence_transformers.sentence_transformer.modules import Pooling, Transformer  # noqa: E402
from transformers import TrainerCallback  # noqa: E402

from dglbs import UniformBatchSampler, WalkBatchSampler  # noqa: E402
from dglbs.integrations.sentence_transformers import BatchSamplerFactory, SamplerCallback  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from _launch import RecordingWalkSampler, run_processes  # noqa: E402

WORDS = "a an the man woman child dog cat plays runs eats sleeps guitar ball fish grass in on park house".split()
COST_KEYS = {"sampler/cost_s", "sampler/cost_g", "sampler/cost_t", "sampler/sampler_share",
             "sampler/encode_share", "sampler/refreshes"}


def make_sentences(count: int) -> list[str]:
    generator = torch.Generator().manual_seed(0)
    picks = torch.randint(len(WORDS), (count, 5), generator=generator)
    return [f"{i} " + " ".join(WORDS[j] for j in row) for i, row in enumerate(picks.tolist())]


def sentence_transformer(tiny_bert_dir) -> SentenceTransformer:
    transformer = Transformer(str(tiny_bert_dir))
    return SentenceTransformer(modules=[transformer, Pooling(16, pooling_mode="cls")], device="cpu")


@dataclass
class RecordingCollator(SentenceTransformerDataCollator):
    """Remembers the anchors of every batch it collates."""

    seen: list[list[str]] = field(default_factory=list)

    def __call__(self, features: list[dict]) -> dict:
        self.seen.append([feature["anchor"] for feature in features])
        return super().__call__(features)


class YieldRecordingSampler(RecordingWalkSampler):
    """Also remembers every batch it yields, with the graph and epoch it was drawn in."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.yielded: list[tuple[list[int], int, int]] = []

    def __iter__(self):
        for batch in super().__iter__():
            self.yielded.append((batch, self.graph_version, self.epoch))
            yield batch


class LogsSeen(TrainerCallback):
    """Remembers the logs the callbacks after the sampler's callback receive."""

    def __init__(self) -> None:
        self.logs: list[dict] = []

    def on_log(self, args, state, control, logs=None, **kwargs):
        self.logs.append(dict(logs))


def training_arguments(output_dir, **overrides) -> SentenceTransformerTrainingArguments:
    settings = dict(output_dir=str(output_dir), num_train_epochs=2, learning_rate=1e-3, use_cpu=True,
                    report_to="none", save_strategy="no", logging_strategy="steps", logging_steps=4, seed=0,
                    disable_tqdm=True)
    return SentenceTransformerTrainingArguments(**settings | overrides)


def check_costs(figures: dict, refreshes: int) -> None:
    """The sampler's figures in one log entry: all there, and plausible."""
    assert COST_KEYS <= figures.keys()
    assert figures["sampler/refreshes"] == refreshes
    assert figures["sampler/cost_s"] > 0 and figures["sampler/cost_t"] > 0
    assert (figures["sampler/cost_g"] > 0) == (refreshes > 0)
    assert 0 < figures["sampler/sampler_share"] < math.inf and figures["sampler/encode_share"] >= 0


def test_trainer_trains_on_the_walk_batches_and_refreshes_the_graph(tiny_bert_dir, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from transformers.integrations import TensorBoardCallback

    sentences = make_sentences(24)
    train = datasets.Dataset.from_dict({"anchor": sentences, "positive": sentences})
    sampler = YieldRecordingSampler(24, 4, num_candidates=10, num_neighbors=3, restart_prob=0.7,
                                    refresh_every=3, seed=1)
    callback, logs_seen = SamplerCallback(sampler, train["anchor"], encode_batch_size=8), LogsSeen()
    model = sentence_transformer(tiny_bert_dir)
    args = training_arguments(tmp_path, per_device_train_batch_size=4,
                              batch_sampler=BatchSamplerFactory(sampler, train))
    collator = RecordingCollator(preprocess_fn=model.preprocess)
    trainer = SentenceTransformerTrainer(
        model=model, args=args, train_dataset=train, data_collator=collator, loss=MultipleNegativesRankingLoss(model),
        callbacks=[callback, logs_seen, TensorBoardCallback()],
    )
    before = [parameter.detach().clone() for parameter in model.parameters()]
    trainer.train()

    # 6 steps an epoch; the trainer consumed exactly the walk batches the sampler yielded.
    assert trainer.state.global_step == 12
    index = {sentence: i for i, sentence in enumerate(sentences)}
    seen = [[index[sentence] for sentence in batch] for batch in collator.seen]
    assert seen == [batch for batch, _, _ in sampler.yielded] and len(seen) == 12
    assert sampler.global_step == 12
    assert [epoch for _, _, epoch in sampler.yielded] == [0] * 6 + [1] * 6
    # Graph 1 before epoch 0, then rebuilds after steps 3, 6 and 9 (none after the last, 12).
    assert [step for step, _, _ in sampler.rebuilds] == [0, 3, 6, 9] and callback.refreshes == 4
    # The loader draws one batch ahead: the rebuild after step 3 reaches step 5, the one after
    # step 9 step 11; the one after step 6 ends epoch 0 and reaches step 7, the next epoch's first.
    assert [version for _, version, _ in sampler.yielded] == [1, 1, 1, 1, 2, 2, 3, 3, 3, 3, 4, 4]
    assert any(not torch.equal(old, new) for old, new in zip(before, model.parameters()))

    # The sampler's figures in the trainer's logs: each training log covers the steps since the
    # last one (rebuilds before step 1 and after 3; after 6; after 9), the summary the whole run.
    training_logs = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert [entry["step"] for entry in training_logs] == [4, 8, 12]
    for entry, refreshes in zip(training_logs, [2, 1, 1]):
        check_costs(entry, refreshes)
    summary = trainer.state.log_history[-1]
    assert "train_runtime" in summary
    check_costs(summary, 4)
    # Callbacks listed after it get them too, e.g. TensorBoard's.
    assert [entry for entry in logs_seen.logs if "loss" in entry] == [
        {key: value for key, value in entry.items() if key != "step"} for entry in training_logs
    ]
    events = EventAccumulator(str(next(tmp_path.glob("runs/*"))))
    events.Reload()
    assert [event.value for event in events.Scalars("train/sampler/refreshes")] == [2, 1, 1, 4]


def test_a_uniform_warm_up_trains_on_uniform_batches_and_builds_the_first_graph_after_it(tiny_bert_dir, tmp_path):
    sentences = make_sentences(24)
    train = datasets.Dataset.from_dict({"anchor": sentences, "positive": sentences})
    sampler = YieldRecordingSampler(24, 4, num_candidates=10, num_neighbors=3, restart_prob=0.7,
                                    refresh_every=3, seed=1, uniform_epochs=1)
    callback = SamplerCallback(sampler, train["anchor"], encode_batch_size=8)
    model = sentence_transformer(tiny_bert_dir)
    args = training_arguments(tmp_path, per_device_train_batch_size=4,
                              batch_sampler=BatchSamplerFactory(sampler, train))
    trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=train,
                                         loss=MultipleNegativesRankingLoss(model), callbacks=[callback])
    trainer.train()
    # Epoch 0 is the uniform sampler's; the first graph is built after its last step (6), then every 3 steps.
    assert [batch for batch, _, _ in sampler.yielded[:6]] == list(UniformBatchSampler(24, 4, seed=1))
    assert [step for step, _, _ in sampler.rebuilds] == [6, 9] and callback.refreshes == 2
    assert [version for _, version, _ in sampler.yielded] == [0] * 6 + [1, 1, 1, 1, 2, 2]


@pytest.mark.parametrize("loader_args, versions", [
    # Two micro-batches a step: the rebuild after step 2 (batch 4) reaches batch 6, the second
    # micro-batch of step 3; batch 5 was drawn ahead with batch 4.
    ({"gradient_accumulation_steps": 2}, [1, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3]),
    # One worker holding 2 batches: 2 more drawn ahead, so the rebuild after step 2 reaches step 6.
    ({"dataloader_num_workers": 1, "dataloader_prefetch_factor": 2}, [1, 1, 1, 1, 1, 2, 2, 3, 3, 4, 4, 5]),
])
def test_a_rebuild_reaches_the_first_batch_the_loader_has_not_drawn(tiny_bert_dir, tmp_path, loader_args, versions):
    sentences = make_sentences(48)
    train = datasets.Dataset.from_dict({"anchor": sentences, "positive": sentences})
    sampler = YieldRecordingSampler(48, 4, num_candidates=10, num_neighbors=3, restart_prob=0.7,
                                    refresh_every=2, seed=1)
    model = sentence_transformer(tiny_bert_dir)
    args = training_arguments(tmp_path, num_train_epochs=1, per_device_train_batch_size=4,
                              batch_sampler=BatchSamplerFactory(sampler, train), **loader_args)
    trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=train,
                                         loss=MultipleNegativesRankingLoss(model),
                                         callbacks=[SamplerCallback(sampler, train["anchor"], encode_batch_size=16)])
    trainer.train()
    assert [version for _, version, _ in sampler.yielded] == versions
    assert [step for step, _, _ in sampler.rebuilds] == list(range(0, trainer.state.global_step, 2))


def test_factory_returns_the_sampler_only_for_the_training_set():
    train = datasets.Dataset.from_dict({"anchor": make_sentences(10)})
    sampler = UniformBatchSampler(10, 4)
    factory = BatchSamplerFactory(sampler, train)
    assert factory(train, 4, False) is sampler
    assert repr(factory) == f"BatchSamplerFactory(sampler={sampler!r}, train_dataset_rows=10)"
    evaluation = datasets.Dataset.from_dict({"anchor": make_sentences(5)})
    assert list(factory(evaluation, 2, False)) == [[0, 1], [2, 3], [4]]
    with pytest.raises(ValueError, match="per_device_train_batch_size=4"):
        factory(train, 8, False)
    with pytest.raises(ValueError, match="dataloader_drop_last=True but the sampler has drop_last=False"):
        factory(train, 4, True)
    with pytest.raises(ValueError, match="num_instances=len"):
        BatchSamplerFactory(UniformBatchSampler(11, 4), train)
    with pytest.raises(ValueError, match="num_replicas=1 and the global batch size"):
        BatchSamplerFactory(UniformBatchSampler(10, 2, num_replicas=2), train)
    # Checkpoints pickle the training arguments, factory included, without the dataset.
    copy = pickle.loads(pickle.dumps(factory))
    assert copy.train_dataset is None and copy.sampler.num_instances == 10


def test_callback_sets_the_epoch_that_a_process_shard_iterates():
    # Under multi-process accelerate, the sampler sits inside a BatchSamplerShard.
    sampler = UniformBatchSampler(40, 4, seed=3)
    shard = BatchSamplerShard(sampler, num_processes=2, process_index=1, split_batches=True)
    callback = SamplerCallback(sampler)
    state = SimpleNamespace(epoch=3.0, global_step=30, max_steps=100)
    callback.on_epoch_begin(None, state, None)
    batches = list(shard)
    reference = UniformBatchSampler(40, 4, seed=3)
    reference.set_epoch(3)
    assert batches == [batch[2:] for batch in reference]
    # Resuming mid-epoch: the epoch is the integral part.
    callback.on_epoch_begin(None, SimpleNamespace(epoch=4.5, global_step=45, max_steps=100), None)
    assert sampler.epoch == 4


def test_callback_checks_its_arguments_and_the_training_loader():
    sampler = WalkBatchSampler(10, 2, num_candidates=5, num_neighbors=3)
    with pytest.raises(ValueError, match="texts="):
        SamplerCallback(sampler)
    with pytest.raises(ValueError, match="one text per training instance"):
        SamplerCallback(sampler, ["a sentence"] * 9)
    with pytest.raises(TypeError, match="ContrastiveBatchSampler"):
        SamplerCallback(list(range(10)))
    callback = SamplerCallback(sampler, ["a sentence"] * 10)
    assert repr(callback) == (f"SamplerCallback(sampler={sampler!r}, texts=<10 texts>, encode_batch_size=256, "
                              "log_costs=True, refreshes=0)")
    state = SimpleNamespace(max_steps=5)

    def start(batch_sampler):
        callback.on_train_begin(None, state, None, train_dataloader=SimpleNamespace(batch_sampler=batch_sampler))

    with pytest.raises(ValueError, match="BatchSamplerFactory"):
        start(UniformBatchSampler(10, 2))
    # Two processes: each walk batch must be split over them.
    with pytest.raises(ValueError, match=r"every 2-th walk batch.*'split_batches': True.*batch_size=2, the global"):
        start(BatchSamplerShard(sampler, num_processes=2, process_index=0))
    start(BatchSamplerShard(sampler, num_processes=2, process_index=0, split_batches=True))
    assert sampler.total_steps == 5


def test_costs_are_logged_without_a_sampler_that_refreshes():
    sampler = UniformBatchSampler(12, 4)
    callback = SamplerCallback(sampler)
    state = SimpleNamespace(max_steps=3, global_step=0, log_history=[])
    callback.on_train_begin(None, state, None)
    for _ in sampler:
        callback.on_step_begin(None, state, None)
        state.global_step += 1
        callback.on_step_end(None, state, None, model=None)
    logs = {"loss": 1.0}
    state.log_history.append({**logs, "step": 3})
    callback.on_log(None, state, None, logs=logs)
    assert state.log_history == [{**logs, "step": 3}]
    assert logs["sampler/refreshes"] == 0 and logs["sampler/cost_g"] == 0 and logs["sampler/cost_t"] > 0
    # Evaluation logs are left alone; with log_costs=False nothing is added.
    evaluation = {"eval_loss": 1.0}
    callback.on_log(None, state, None, logs=evaluation)
    quiet, training = SamplerCallback(sampler, log_costs=False), {"loss": 1.0}
    quiet.on_log(None, state, None, logs=training)
    assert evaluation == {"eval_loss": 1.0} and training == {"loss": 1.0}


# --- two processes -----------------------------------------------------------------------------

NUM_SENTENCES, GLOBAL_BATCH = 32, 8


def train_one_rank(out_dir: Path, model_dir: str) -> None:
    """One process of the two-process run (the module docstring's recipe): 2 epochs of 4
    steps, global walk batches of 8 split 4 + 4, a rebuild every 2 steps. Saves what it
    saw to ``out_dir/rank<r>.pt``."""
    rank = int(os.environ["RANK"])
    # The ranks run on different thread counts: the walks must not depend on them.
    torch.set_num_threads(1 + rank)
    sentences = make_sentences(NUM_SENTENCES)
    train = datasets.Dataset.from_dict({"anchor": sentences, "positive": sentences})
    sampler = YieldRecordingSampler(NUM_SENTENCES, GLOBAL_BATCH, num_candidates=12, num_neighbors=4,
                                    restart_prob=0.5, refresh_every=2, seed=5, drop_last=True)
    callback = SamplerCallback(sampler, train["anchor"], encode_batch_size=8)
    model = sentence_transformer(model_dir)
    args = training_arguments(out_dir / f"trainer{rank}", per_device_train_batch_size=GLOBAL_BATCH,
                              dataloader_drop_last=True,
                              batch_sampler=BatchSamplerFactory(sampler, train),
                              accelerator_config={"split_batches": True})
    collator = RecordingCollator(preprocess_fn=model.preprocess)
    trainer = SentenceTransformerTrainer(
        model=model, args=args, train_dataset=train, data_collator=collator,
        loss=MultipleNegativesRankingLoss(model, gather_across_devices=True), callbacks=[callback],
    )
    trainer.train()
    index = {sentence: i for i, sentence in enumerate(sentences)}
    torch.save({
        "world_size": trainer.accelerator.num_processes,
        "global_step": trainer.state.global_step,
        "seen": [[index[sentence] for sentence in batch] for batch in collator.seen],
        "yielded": sampler.yielded,
        "rebuilds": sampler.rebuilds,
        "log_history": trainer.state.log_history,
        "parameters": [parameter.detach() for parameter in model.parameters()],
    }, out_dir / f"rank{rank}.pt")
    # Leaving the gloo group to interpreter shutdown can abort the process.
    trainer.accelerator.end_training()


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is not available")
def test_two_processes_train_on_disjoint_slices_of_the_same_walk_batches(tiny_bert_dir, tmp_path):
    run_processes(Path(__file__), [str(tmp_path), str(tiny_bert_dir)], tmp_path, timeout=240)
    ranks = [torch.load(tmp_path / f"rank{rank}.pt") for rank in range(2)]

    assert [rank["world_size"] for rank in ranks] == [2, 2]
    assert [rank["global_step"] for rank in ranks] == [8, 8]
    # Both ranks drew the same global walk batches, in the same epochs, from the same graphs...
    assert ranks[0]["yielded"] == ranks[1]["yielded"]
    global_batches = [batch for batch, _, _ in ranks[0]["yielded"]]
    assert len(global_batches) == 8 and all(len(set(batch)) == GLOBAL_BATCH for batch in global_batches)
    # ...and each trained on its half: equal batch counts, disjoint slices of one walk batch.
    assert ranks[0]["seen"] == [batch[:4] for batch in global_batches]
    assert ranks[1]["seen"] == [batch[4:] for batch in global_batches]
    # set_epoch reached the sampler: epoch 1 drew its own batches.
    assert [epoch for _, _, epoch in ranks[0]["yielded"]] == [0] * 4 + [1] * 4
    assert global_batches[:4] != global_batches[4:]
    # Rebuilds before step 1 and after steps 2, 4, 6, on both ranks from the same gathered
    # embeddings, to the same graph; one batch late within an epoch (after step 2 -> step 4),
    # on time across epochs (after step 4 -> step 5, the next epoch's first).
    for rank in ranks:
        assert [step for step, _, _ in rank["rebuilds"]] == [0, 2, 4, 6]
    for (_, embeddings0, graph0), (_, embeddings1, graph1) in zip(ranks[0]["rebuilds"], ranks[1]["rebuilds"]):
        assert torch.equal(embeddings0, embeddings1) and torch.equal(graph0, graph1)
    assert [version for _, version, _ in ranks[0]["yielded"]] == [1, 1, 1, 2, 3, 3, 3, 4]
    # The first graph came from the untrained model's embeddings, each rank encoding its half.
    untrained = sentence_transformer(tiny_bert_dir).encode(make_sentences(NUM_SENTENCES), convert_to_tensor=True)
    assert torch.allclose(ranks[0]["rebuilds"][0][1], untrained, atol=1e-5)
    # DDP kept the replicas equal, and training moved them.
    for parameter0, parameter1 in zip(ranks[0]["parameters"], ranks[1]["parameters"]):
        assert torch.equal(parameter0, parameter1)
    assert any(not torch.equal(trained, initial) for trained, initial
               in zip(ranks[0]["parameters"], sentence_transformer(tiny_bert_dir).parameters()))
    # Each rank's logs carry its sampler's figures: rebuilds before step 1 and after 2 and 4,
    # then after 6; the summary, all four.
    for rank in ranks:
        training_logs = [entry for entry in rank["log_history"] if "loss" in entry]
        assert [entry["step"] for entry in training_logs] == [4, 8]
        check_costs(training_logs[0], 3)
        check_costs(training_logs[1], 1)
        check_costs(rank["log_history"][-1], 4)


if __name__ == "__main__":
    train_one_rank(Path(sys.argv[1]), sys.argv[2])
