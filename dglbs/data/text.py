"""An unlabelled sentence corpus, one sentence a line (SimCSE's training data)."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from dglbs._checks import check_int
from dglbs.data.paths import default_data_dir
from dglbs.data.sts import load_stsb

DEFAULT_CORPUS = Path("text") / "wiki1m_for_simcse.head11914.txt"
"""The bundled corpus, relative to the data directory: the first 11,914 sentences
of SimCSE's unsupervised Wikipedia corpus."""


class SentenceDataset(Sequence[str]):
    """Sentences of a text file, ``dataset[i]`` is sentence ``i`` (a ``str``).

    Lines are stripped of surrounding whitespace and blank lines skipped; duplicates
    are kept, as SimCSE does. A collate function (e.g.
    :class:`dglbs_models.simcse.SentenceCollator`) turns a list of sentences into a batch.

    Parameters
    ----------
    path : str or Path, optional
        UTF-8 text file, one sentence a line. Default: the bundled corpus,
        ``default_data_dir() / "text/wiki1m_for_simcse.head11914.txt"``.
    max_sentences : int, optional
        Keep only the first ``max_sentences`` sentences of the file.
    add_stsb_train : bool
        Append the distinct sentences of STS-B train (both columns, scores dropped),
        after ``max_sentences`` is applied.
    sts_root : str or Path, optional
        Folder holding ``STS/`` for ``add_stsb_train`` (see :func:`dglbs.data.sts.sts_root`).
    """

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        max_sentences: int | None = None,
        add_stsb_train: bool = False,
        sts_root: str | Path | None = None,
    ) -> None:
        self.path = default_data_dir() / DEFAULT_CORPUS if path is None else Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(
                f"sentence file {str(self.path)!r} not found; pass path= a UTF-8 text file with "
                "one sentence a line"
            )
        if max_sentences is not None:
            check_int("max_sentences", max_sentences, low=1)
        if not isinstance(add_stsb_train, bool):
            raise TypeError(f"add_stsb_train must be a bool, got {add_stsb_train!r}")
        sentences = []
        with self.path.open(encoding="utf-8") as lines:
            for line in lines:
                if max_sentences is not None and len(sentences) == max_sentences:
                    break
                if line.strip():
                    sentences.append(line.strip())
        if add_stsb_train:
            stsb = load_stsb("train", sts_root)
            sentences.extend(dict.fromkeys(stsb.sentences1 + stsb.sentences2))
        if not sentences:
            raise ValueError(f"{self.path} holds no sentences; give a file with one sentence a line")
        self.sentences: list[str] = sentences

    def __len__(self) -> int:
        return len(self.sentences)

    def __getitem__(self, index: int) -> str:
        return self.sentences[index]

    def __repr__(self) -> str:
        return f"SentenceDataset(path={str(self.path)!r}, sentences={len(self)})"
