from __future__ import annotations

from pathlib import Path

import pytest

from dglbs.data.paths import default_data_dir
from dglbs.data.text import DEFAULT_CORPUS, SentenceDataset


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    path = tmp_path / "sentences.txt"
    path.write_text("  first sentence .\nsecond one\n\n   \nthird , with comma\nsecond one\n", encoding="utf-8")
    return path


def test_lines_are_stripped_blank_lines_skipped_duplicates_kept(corpus):
    dataset = SentenceDataset(corpus)
    assert len(dataset) == 4
    assert list(dataset) == ["first sentence .", "second one", "third , with comma", "second one"]
    assert dataset[2] == "third , with comma"


def test_max_sentences_counts_sentences_not_lines(corpus):
    first_three = ["first sentence .", "second one", "third , with comma"]
    assert SentenceDataset(corpus, max_sentences=3).sentences == first_three
    with pytest.raises(ValueError, match="max_sentences"):
        SentenceDataset(corpus, max_sentences=0)


def test_stsb_train_sentences_are_added_once_without_scores(corpus, tmp_path):
    folder = tmp_path / "sts" / "STS" / "STSBenchmark"
    folder.mkdir(parents=True)
    rows = ["g\tc\t2012\t0\t5.0\tshared sentence\tb one", "g\tc\t2012\t1\t1.0\tshared sentence\tb two"]
    (folder / "sts-train.csv").write_text("\n".join(rows) + "\n")
    dataset = SentenceDataset(corpus, max_sentences=1, add_stsb_train=True, sts_root=tmp_path / "sts")
    assert dataset.sentences == ["first sentence .", "shared sentence", "b one", "b two"]


def test_default_corpus_comes_from_the_data_dir(tmp_path, monkeypatch):
    path = tmp_path / DEFAULT_CORPUS
    path.parent.mkdir()
    path.write_text("only sentence\n")
    monkeypatch.setenv("DGLBS_DATA", str(tmp_path))
    assert SentenceDataset().sentences == ["only sentence"]


def test_missing_and_empty_files_are_reported(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.txt.*one sentence a line"):
        SentenceDataset(tmp_path / "nothing.txt")
    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n")
    with pytest.raises(ValueError, match="holds no sentences"):
        SentenceDataset(empty)
    with pytest.raises(TypeError, match="add_stsb_train"):
        SentenceDataset(empty, add_stsb_train="yes")


def bundled_corpus() -> Path | None:
    try:
        path = default_data_dir() / DEFAULT_CORPUS
    except FileNotFoundError:
        return None
    return path if path.is_file() else None


@pytest.mark.skipif(bundled_corpus() is None, reason="bundled corpus not available")
def test_bundled_corpus_has_11914_sentences():
    dataset = SentenceDataset(bundled_corpus())
    assert len(dataset) == 11914
    assert all(sentence == sentence.strip() and sentence for sentence in dataset.sentences)
