"""Shared fixtures: the dglbs loggers reset after each test (commands configure them), a
tiny random BERT and the bundled STS data. Loader caches go to a folder of this test run,
not the user's cache."""
import atexit
import logging
import os
import shutil
import tempfile
from pathlib import Path

import pytest
import torch

from dglbs.data.paths import CACHE_ENV_VAR, default_data_dir

os.environ[CACHE_ENV_VAR] = tempfile.mkdtemp(prefix="dglbs-test-cache-")
atexit.register(shutil.rmtree, os.environ[CACHE_ENV_VAR], ignore_errors=True)

COMMAND_LOGGERS = ("dglbs", "dglbs_examples")


@pytest.fixture(autouse=True)
def restore_command_loggers():
    """A command's ``configure_logging`` must not change the loggers of the tests after it."""
    saved = {name: (logging.getLogger(name).level, list(logging.getLogger(name).handlers)) for name in COMMAND_LOGGERS}
    yield
    for name, (level, handlers) in saved.items():
        logger = logging.getLogger(name)
        logger.setLevel(level)
        logger.handlers[:] = handlers


TINY_BERT_WORDS = (
    "a an the man woman child dog cat is are plays runs eats sleeps guitar ball fish grass in on park house"
).split()


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory) -> Path:
    """A tiny random BERT and its tokenizer, saved as a Hugging Face folder."""
    transformers = pytest.importorskip("transformers")
    folder = tmp_path_factory.mktemp("tiny-bert")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + TINY_BERT_WORDS + [str(i) for i in range(100)]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tokenizer = transformers.BertTokenizer(vocab=str(folder / "vocab.txt"))
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=len(vocab), hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=512,
    )
    transformers.BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def bundled_sts_dir() -> Path:
    """The bundled STS folder; the test is skipped where the shared data is absent."""
    try:
        folder = default_data_dir() / "sts"
    except FileNotFoundError:
        folder = None
    if folder is None or not folder.is_dir():
        pytest.skip("bundled STS data not available")
    return folder
