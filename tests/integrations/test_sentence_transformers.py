"""The dglbs batch sampler inside a real SentenceTransformerTrainer, with a tiny random BERT."""
from __future__ import annotations

import json
import pickle
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
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

from dglbs import UniformBatchSampler, WalkBatchSampler  # noqa: E402
from dglbs.integrations.sentence_transformers import BatchSamplerFactory, SamplerCallback  # noqa: E402

WORDS = "a an the man woman child dog cat plays runs eats sleeps guitar ball fish grass in on park house".split()


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


class RecordingWalkSampler(WalkBatchSampler):
    """Remembers every batch it yields."""

    def __iter__(self):
        for batch in super().__iter__():
            self.yielded.append(batch)
            yield batch


def test_trainer_trains_on_the_walk_batches_and_refreshes_the_graph(tiny_bert_dir, tmp_path):
    sentences = make_sentences(24)
    train = datasets.Dataset.from_dict({"anchor": sentences, "positive": sentences})
    sampler = RecordingWalkSampler(24, 4, num_candidates=10, num_neighbors=3, restart_prob=0.7,
                                   refresh_every=4, seed=1)
    sampler.yielded = []
    callback = SamplerCallback(sampler, train["anchor"], encode_batch_size=8)
    model = sentence_transformer(tiny_bert_dir)
    args = SentenceTransformerTrainingArguments(
        output_dir=str(tmp_path), num_train_epochs=2, per_device_train_batch_size=4, learning_rate=1e-3,
        batch_sampler=BatchSamplerFactory(sampler, train), use_cpu=True, report_to="none",
        save_strategy="no", logging_strategy="no", seed=0, disable_tqdm=True,
    )
    collator = RecordingCollator(preprocess_fn=model.preprocess)
    trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=train, data_collator=collator,
                                         loss=MultipleNegativesRankingLoss(model), callbacks=[callback])
    before = [parameter.detach().clone() for parameter in model.parameters()]
    trainer.train()

    # 6 steps an epoch; the trainer consumed exactly the walk batches the sampler yielded.
    assert trainer.state.global_step == 12
    index = {sentence: i for i, sentence in enumerate(sentences)}
    seen = [[index[sentence] for sentence in batch] for batch in collator.seen]
    assert seen == sampler.yielded and len(seen) == 12
    assert sampler.global_step == 12
    assert sampler.epoch == 1
    # Before epoch 0, then after steps 4 and 8 (none after the last step, 12).
    assert callback.refreshes == 3 and sampler.graph_version == 3
    assert any(not torch.equal(old, new) for old, new in zip(before, model.parameters()))


def test_factory_returns_the_sampler_only_for_the_training_set():
    train = datasets.Dataset.from_dict({"anchor": make_sentences(10)})
    sampler = UniformBatchSampler(10, 4)
    factory = BatchSamplerFactory(sampler, train)
    assert factory(train, 4, False) is sampler
    evaluation = datasets.Dataset.from_dict({"anchor": make_sentences(5)})
    assert list(factory(evaluation, 2, False)) == [[0, 1], [2, 3], [4]]
    with pytest.raises(ValueError, match="per_device_train_batch_size=4"):
        factory(train, 8, False)
    with pytest.raises(ValueError, match="drop_last"):
        factory(train, 4, True)
    with pytest.raises(ValueError, match="num_instances=len"):
        BatchSamplerFactory(UniformBatchSampler(11, 4), train)
    with pytest.raises(ValueError, match="num_replicas=1"):
        BatchSamplerFactory(UniformBatchSampler(10, 2, num_replicas=2), train)
    # Checkpoints pickle the training arguments, factory included, without the dataset.
    copy = pickle.loads(pickle.dumps(factory))
    assert copy.train_dataset is None and copy.sampler.num_instances == 10


def test_callback_sets_the_epoch_that_a_process_shard_iterates():
    # Under multi-process accelerate, the sampler sits inside a BatchSamplerShard.
    sampler = UniformBatchSampler(40, 4, seed=3)
    shard = BatchSamplerShard(sampler, num_processes=2, process_index=1)
    callback = SamplerCallback(sampler)
    state = SimpleNamespace(epoch=3.0, global_step=30, max_steps=100)
    callback.on_epoch_begin(None, state, None)
    batches = list(shard)
    reference = UniformBatchSampler(40, 4, seed=3)
    reference.set_epoch(3)
    assert batches == list(reference)[1::2]
    # Resuming mid-epoch: the epoch is the integral part.
    callback.on_epoch_begin(None, SimpleNamespace(epoch=4.5, global_step=45, max_steps=100), None)
    assert sampler.epoch == 4


def test_callback_checks_its_arguments():
    sampler = WalkBatchSampler(10, 2, num_candidates=5, num_neighbors=3)
    with pytest.raises(ValueError, match="texts="):
        SamplerCallback(sampler)
    with pytest.raises(ValueError, match="one text per training instance"):
        SamplerCallback(sampler, ["a sentence"] * 9)
    with pytest.raises(TypeError, match="ContrastiveBatchSampler"):
        SamplerCallback(list(range(10)))
    callback = SamplerCallback(sampler, ["a sentence"] * 10)
    unrelated_loader = SimpleNamespace(batch_sampler=UniformBatchSampler(10, 2))
    with pytest.raises(ValueError, match="BatchSamplerFactory"):
        callback.on_train_begin(None, SimpleNamespace(max_steps=5), None, train_dataloader=unrelated_loader)


# One process of a gloo group: every rank's "model" embeds differently, so equal batches
# across ranks mean the graph came from rank 0's embeddings. The ranks run on different
# thread counts: the walks must not depend on them.
DISTRIBUTED_WORKER = textwrap.dedent("""
    import json, sys
    import torch
    import torch.distributed as dist
    from dglbs import WalkBatchSampler
    from dglbs.integrations.sentence_transformers import SamplerCallback

    rank, init_file, out_file, threads = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
    torch.set_num_threads(threads)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)

    class RankModel(torch.nn.Module):
        device = torch.device("cpu")
        encode_calls = 0

        def encode(self, texts, **kwargs):
            self.encode_calls += 1
            generator = torch.Generator().manual_seed(100 + rank)
            return torch.randn(len(texts), 8, generator=generator)

        def get_sentence_embedding_dimension(self):
            return 8

    sampler = WalkBatchSampler(30, 5, num_candidates=12, num_neighbors=4, restart_prob=0.5, seed=7)
    callback = SamplerCallback(sampler, [f"sentence {i}" for i in range(30)])
    model = RankModel().train()
    callback.refresh(model)
    result = {"batches": list(sampler), "encode_calls": model.encode_calls, "training": model.training,
              "neighbors": sampler.graph.edges()[1].tolist()}
    with open(out_file, "w") as out:
        json.dump(result, out)
    dist.destroy_process_group()
""")


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is not available")
def test_refresh_under_two_processes_walks_rank_zeros_graph_everywhere(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(DISTRIBUTED_WORKER)
    init_file = tmp_path / "process_group"
    arguments = [[sys.executable, str(script), str(rank), str(init_file), str(tmp_path / f"{rank}.json"),
                  str(1 + rank)] for rank in range(2)]
    workers = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
               for command in arguments]
    for rank, worker in enumerate(workers):
        output, _ = worker.communicate(timeout=120)
        assert worker.returncode == 0, f"rank {rank} failed:\n{output}"
    rank0, rank1 = (json.loads((tmp_path / f"{rank}.json").read_text()) for rank in range(2))

    # Only rank 0 encodes; rank 1 walks the graph built from rank 0's broadcast embeddings.
    assert (rank0["encode_calls"], rank1["encode_calls"]) == (1, 0)
    assert rank0["training"] and rank1["training"]
    assert rank0["neighbors"] == rank1["neighbors"] and rank0["batches"] == rank1["batches"]
    # The same sampler fed rank 0's embeddings in one process gives those batches.
    reference = WalkBatchSampler(30, 5, num_candidates=12, num_neighbors=4, restart_prob=0.5, seed=7)
    reference.set_embeddings(torch.randn(30, 8, generator=torch.Generator().manual_seed(100)))
    assert list(reference) == rank0["batches"]
