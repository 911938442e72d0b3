"""Semantic textual similarity benchmarks in SentEval's on-disk layout.

The folder (default ``default_data_dir() / "sts"``) holds::

    STS/STS12-en-test/STS.input.<subset>.txt   two tab-separated sentences a line
    STS/STS12-en-test/STS.gs.<subset>.txt      gold score a line (blank: unscored)
    ...                                        likewise STS13-en-test … STS16-en-test
    STS/STSBenchmark/sts-{train,dev,test}.csv  tab-separated, score in column 5,
                                               sentences in columns 6 and 7
    SICK/SICK_{train,trial,test_annotated}.txt tab-separated with a header: pair id,
                                               sentence A, sentence B, score, ...

STS12–16 are read in SimCSE's "all" setting: the pairs of every subset of a year
concatenated into one task (unscored pairs skipped, as SentEval does). STS13's SMT
subset is not redistributable and is not read.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from dglbs.data.paths import default_data_dir

STS_YEARS: dict[str, tuple[str, ...]] = {
    "STS12": ("MSRpar", "MSRvid", "SMTeuroparl", "surprise.OnWN", "surprise.SMTnews"),
    "STS13": ("FNWN", "headlines", "OnWN"),
    "STS14": ("deft-forum", "deft-news", "headlines", "images", "OnWN", "tweet-news"),
    "STS15": ("answers-forums", "answers-students", "belief", "headlines", "images"),
    "STS16": ("answer-answer", "headlines", "plagiarism", "postediting", "question-question"),
}
"""SentEval's subsets of each SemEval year (STS13 without SMT)."""

STSB_SPLITS = ("train", "dev", "test")
SICK_SPLITS = {"train": "SICK_train.txt", "trial": "SICK_trial.txt", "test": "SICK_test_annotated.txt"}

STS_TASKS = ("STS12", "STS13", "STS14", "STS15", "STS16", "STS-B", "SICK-R")
"""The seven test tasks SimCSE averages, in its table's order."""

STSB_DEV = "STS-B dev"
"""Name of the model-selection set in :func:`load_sts_benchmarks`."""


@dataclass(frozen=True)
class STSPairs:
    """Scored sentence pairs of one benchmark.

    Attributes
    ----------
    name : str
    sentences1, sentences2 : list of str
        The pairs, ``n`` each.
    scores : Tensor of shape (n,), float64
        Gold similarity (0–5 for STS, 1–5 for SICK).
    """

    name: str
    sentences1: list[str]
    sentences2: list[str]
    scores: torch.Tensor

    def __len__(self) -> int:
        return len(self.scores)

    def __repr__(self) -> str:
        return f"STSPairs(name={self.name!r}, pairs={len(self)})"


def sts_root(root: str | Path | None = None) -> Path:
    """The STS folder: ``root`` if given, else ``default_data_dir() / "sts"``."""
    return default_data_dir() / "sts" if root is None else Path(root)


def _read_lines(path: Path) -> list[str]:
    if not path.is_file():
        raise FileNotFoundError(
            f"STS file {str(path)!r} not found; pass root= the folder holding STS/ and SICK/ "
            "in SentEval's layout (default: $DGLBS_DATA/sts or ../shared/data/sts)"
        )
    return path.read_text(encoding="utf-8").splitlines()


def _split_row(line: str, path: Path, number: int, columns: int) -> list[str]:
    fields = line.split("\t")
    if len(fields) < columns:
        raise ValueError(
            f"{path}, line {number}: expected at least {columns} tab-separated fields, got "
            f"{len(fields)}; is this file in SentEval's layout?"
        )
    return fields


def _score(text: str, path: Path, number: int) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{path}, line {number}: score {text!r} is not a number") from None


def load_sts_year(year: str, root: str | Path | None = None) -> STSPairs:
    """All scored pairs of one SemEval year, its subsets concatenated ("all" setting).

    Parameters
    ----------
    year : {"STS12", "STS13", "STS14", "STS15", "STS16"}
    root : str or Path, optional
        Folder holding ``STS/``; default :func:`sts_root`.
    """
    if year not in STS_YEARS:
        raise ValueError(f"year must be one of {tuple(STS_YEARS)}, got {year!r}")
    folder = sts_root(root) / "STS" / f"{year}-en-test"
    sentences1, sentences2, scores = [], [], []
    for subset in STS_YEARS[year]:
        inputs = folder / f"STS.input.{subset}.txt"
        gold = folder / f"STS.gs.{subset}.txt"
        pairs, golds = _read_lines(inputs), _read_lines(gold)
        if len(pairs) != len(golds):
            raise ValueError(
                f"{inputs} has {len(pairs)} lines but {gold} has {len(golds)}; the two must align"
            )
        for number, (pair, score) in enumerate(zip(pairs, golds), start=1):
            if not score.strip():
                continue
            first, second = _split_row(pair, inputs, number, 2)[:2]
            sentences1.append(first)
            sentences2.append(second)
            scores.append(_score(score, gold, number))
    return STSPairs(year, sentences1, sentences2, torch.tensor(scores, dtype=torch.float64))


def _load_columns(name: str, path: Path, columns: tuple[int, int, int], header: bool) -> STSPairs:
    """Pairs from a tab-separated file; ``columns`` are (score, sentence 1, sentence 2)."""
    lines = _read_lines(path)
    start = 1 if header else 0
    sentences1, sentences2, scores = [], [], []
    for number, line in enumerate(lines[start:], start=start + 1):
        if not line.strip():
            continue
        fields = _split_row(line, path, number, max(columns) + 1)
        scores.append(_score(fields[columns[0]], path, number))
        sentences1.append(fields[columns[1]])
        sentences2.append(fields[columns[2]])
    return STSPairs(name, sentences1, sentences2, torch.tensor(scores, dtype=torch.float64))


def load_stsb(split: str = "test", root: str | Path | None = None) -> STSPairs:
    """STS Benchmark: ``split`` in ``("train", "dev", "test")``."""
    if split not in STSB_SPLITS:
        raise ValueError(f"split must be one of {STSB_SPLITS}, got {split!r}")
    path = sts_root(root) / "STS" / "STSBenchmark" / f"sts-{split}.csv"
    return _load_columns("STS-B" if split == "test" else f"STS-B {split}", path, (4, 5, 6), header=False)


def load_sick(split: str = "test", root: str | Path | None = None) -> STSPairs:
    """SICK relatedness (SICK-R): ``split`` in ``("train", "trial", "test")``."""
    if split not in SICK_SPLITS:
        raise ValueError(f"split must be one of {tuple(SICK_SPLITS)}, got {split!r}")
    path = sts_root(root) / "SICK" / SICK_SPLITS[split]
    return _load_columns("SICK-R" if split == "test" else f"SICK-R {split}", path, (3, 1, 2), header=True)


def load_sts_task(task: str, root: str | Path | None = None) -> STSPairs:
    """One of :data:`STS_TASKS` (test sets) or :data:`STSB_DEV`."""
    if task in STS_YEARS:
        return load_sts_year(task, root)
    if task == "STS-B":
        return load_stsb("test", root)
    if task == STSB_DEV:
        return load_stsb("dev", root)
    if task == "SICK-R":
        return load_sick("test", root)
    raise ValueError(f"task must be one of {STS_TASKS + (STSB_DEV,)}, got {task!r}")


def load_sts_benchmarks(
    root: str | Path | None = None, *, tasks: tuple[str, ...] = STS_TASKS + (STSB_DEV,)
) -> dict[str, STSPairs]:
    """The evaluation suite: task name -> pairs, by default the seven test tasks and
    STS-B dev (for model selection)."""
    return {task: load_sts_task(task, root) for task in tasks}
