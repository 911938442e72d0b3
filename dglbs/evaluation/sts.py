"""SimCSE's STS protocol: Spearman correlation of cosine similarity with gold scores.

For every benchmark, both sentences of each pair are embedded, their cosine
similarity is correlated (Spearman) with the gold scores and reported ×100. The
average is over the seven test tasks of :data:`dglbs.data.sts.STS_TASKS`; STS-B dev
is reported apart, for model selection. The encoder is any callable from a list of
sentences to a ``(n, d)`` tensor, so the protocol is model-agnostic.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from scipy.stats import spearmanr
from tqdm import tqdm

from dglbs._checks import check_int
from dglbs.data.sts import STS_TASKS, STSPairs, load_sts_benchmarks

logger = logging.getLogger(__name__)

AVERAGE = "avg"
"""Key of the seven-task average in :func:`evaluate_sts`'s result."""

Encoder = Callable[[list[str]], torch.Tensor]


@torch.no_grad()
def encode_sentences(
    encode: Encoder, sentences: Sequence[str], *, batch_size: int = 128, progress: bool | None = None
) -> torch.Tensor:
    """Embed ``sentences`` in batches under ``torch.no_grad``.

    Sentences are encoded longest first, so that batches of similar length pad
    little; the result is in the input order.

    Parameters
    ----------
    encode : callable
        ``encode(list of B str) -> Tensor of shape (B, d)``. It should put its model
        in eval mode (no dropout); it is called under ``torch.no_grad``.
    sentences : sequence of str
    batch_size : int
    progress : bool, optional
        Show a progress bar; default (None): only when stderr is a terminal.

    Returns
    -------
    Tensor of shape (len(sentences), d), float32, on the CPU.
    """
    check_int("batch_size", batch_size, low=1)
    order = sorted(range(len(sentences)), key=lambda i: -len(sentences[i]))
    parts = []
    bar = tqdm(total=len(order), desc="STS encode", unit="sentence", leave=False,
               disable=None if progress is None else not progress)
    for start in range(0, len(order), batch_size):
        batch = [sentences[i] for i in order[start : start + batch_size]]
        embeddings = encode(batch)
        if not isinstance(embeddings, torch.Tensor) or embeddings.dim() != 2 or len(embeddings) != len(batch):
            got = tuple(embeddings.shape) if isinstance(embeddings, torch.Tensor) else type(embeddings).__name__
            raise ValueError(
                f"encode must return a tensor of shape ({len(batch)}, d) for {len(batch)} sentences, got {got}"
            )
        parts.append(embeddings.detach().float().cpu())
        bar.update(len(batch))
    bar.close()
    if not parts:
        raise ValueError("no sentences to encode; pass a non-empty list")
    embeddings = torch.cat(parts)
    result = torch.empty_like(embeddings)
    result[torch.tensor(order)] = embeddings
    return result


def spearman_cosine(embeddings1: torch.Tensor, embeddings2: torch.Tensor, scores: torch.Tensor) -> float:
    """Spearman correlation ×100 between row-wise cosine similarities and ``scores``.

    Parameters
    ----------
    embeddings1, embeddings2 : Tensor of shape (n, d)
    scores : Tensor of shape (n,)
    """
    if embeddings1.shape != embeddings2.shape or embeddings1.dim() != 2 or scores.shape != embeddings1.shape[:1]:
        raise ValueError(
            f"need two (n, d) embeddings and (n,) scores, got {tuple(embeddings1.shape)}, "
            f"{tuple(embeddings2.shape)} and {tuple(scores.shape)}"
        )
    if len(scores) < 2:
        raise ValueError(f"a correlation needs at least 2 pairs, got {len(scores)}")
    cosine = F.cosine_similarity(embeddings1.double(), embeddings2.double(), dim=1)
    return 100.0 * float(spearmanr(cosine.numpy(), scores.double().numpy()).statistic)


def evaluate_sts(
    encode: Encoder,
    benchmarks: Mapping[str, STSPairs] | None = None,
    *,
    root: str | Path | None = None,
    batch_size: int = 128,
    progress: bool | None = None,
) -> dict[str, float]:
    """Spearman ×100 of cosine similarity on each benchmark, and their average.

    Parameters
    ----------
    encode : callable
        ``encode(list of B str) -> Tensor of shape (B, d)``; see :func:`encode_sentences`.
    benchmarks : mapping of name to STSPairs, optional
        Default: :func:`dglbs.data.sts.load_sts_benchmarks` from ``root`` (the seven
        test tasks and STS-B dev).
    root : str or Path, optional
        STS folder when ``benchmarks`` is not given.
    batch_size : int
        Sentences per ``encode`` call.
    progress : bool, optional
        Progress bar of the encode pass; default (None): only when stderr is a terminal.

    Returns
    -------
    dict
        Benchmark name -> score, in the order of ``benchmarks``, then
        ``"avg"`` -> the mean over :data:`~dglbs.data.sts.STS_TASKS` when all seven
        are among the benchmarks.
    """
    benchmarks = load_sts_benchmarks(root) if benchmarks is None else benchmarks
    if not benchmarks:
        raise ValueError("benchmarks is empty; pass at least one STSPairs or leave it None for the suite")
    # Each distinct sentence is encoded once, however many pairs and tasks use it.
    unique = list(dict.fromkeys(
        sentence for pairs in benchmarks.values() for sentence in pairs.sentences1 + pairs.sentences2
    ))
    row = {sentence: i for i, sentence in enumerate(unique)}
    embeddings = encode_sentences(encode, unique, batch_size=batch_size, progress=progress)
    results = {}
    for name, pairs in benchmarks.items():
        first = embeddings[torch.tensor([row[sentence] for sentence in pairs.sentences1])]
        second = embeddings[torch.tensor([row[sentence] for sentence in pairs.sentences2])]
        results[name] = spearman_cosine(first, second, pairs.scores)
    if all(task in results for task in STS_TASKS):
        results[AVERAGE] = sum(results[task] for task in STS_TASKS) / len(STS_TASKS)
    logger.info("STS: %s", ", ".join(f"{name} {score:.2f}" for name, score in results.items()))
    return results
