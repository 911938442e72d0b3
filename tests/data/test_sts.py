from __future__ import annotations

from pathlib import Path

import pytest
import torch

from dglbs.data.paths import default_data_dir
from dglbs.data.sts import (
    STS_TASKS,
    STS_YEARS,
    STSB_DEV,
    load_sick,
    load_sts_benchmarks,
    load_sts_task,
    load_sts_year,
    load_stsb,
    sts_root,
)


def write_year(root: Path, year: str) -> None:
    """Every subset of ``year``: three pairs, the middle one unscored."""
    folder = root / "STS" / f"{year}-en-test"
    folder.mkdir(parents=True)
    for subset in STS_YEARS[year]:
        pairs = [f"{subset} {number} a\t{subset} {number} b" for number in ("one", "two", "three")]
        (folder / f"STS.input.{subset}.txt").write_text("\n".join(pairs) + "\n")
        (folder / f"STS.gs.{subset}.txt").write_text("4.5\n\n1.25\n")


@pytest.fixture
def sts_dir(tmp_path: Path) -> Path:
    for year in STS_YEARS:
        write_year(tmp_path, year)
    # The real STS13 folder has SMT gold scores but not its (non-redistributable) input.
    (tmp_path / "STS" / "STS13-en-test" / "STS.gs.SMT.txt").write_text("3.0\n")
    stsb = tmp_path / "STS" / "STSBenchmark"
    stsb.mkdir()
    for split, score in (("train", "1.0"), ("dev", "2.0"), ("test", "3.0")):
        rows = [f"main-captions\tMSRvid\t2012test\t{i:04d}\t{score}\t{split} a{i}\t{split} b{i}" for i in range(3)]
        # Some STS-B rows carry extra source columns after the sentences.
        rows[1] += "\textra\tcolumns"
        (stsb / f"sts-{split}.csv").write_text("\n".join(rows) + "\n")
    sick = tmp_path / "SICK"
    sick.mkdir()
    for name in ("SICK_train.txt", "SICK_trial.txt", "SICK_test_annotated.txt"):
        rows = ["pair_ID\tsentence_A\tsentence_B\trelatedness_score\tentailment_judgment"]
        rows += [f"{i}\t{name} A{i}\t{name} B{i}\t{1 + i}.5\tNEUTRAL" for i in range(4)]
        (sick / name).write_text("\n".join(rows) + "\n")
    return tmp_path


def test_year_concatenates_subsets_and_skips_unscored_pairs(sts_dir):
    pairs = load_sts_year("STS12", sts_dir)
    subsets = STS_YEARS["STS12"]
    assert len(pairs) == 2 * len(subsets)
    assert pairs.sentences1[:2] == [f"{subsets[0]} one a", f"{subsets[0]} three a"]
    assert pairs.sentences2[-1] == f"{subsets[-1]} three b"
    assert pairs.scores.dtype == torch.float64
    assert pairs.scores.tolist() == [4.5, 1.25] * len(subsets)


def test_sts13_is_read_without_smt(sts_dir):
    pairs = load_sts_year("STS13", sts_dir)
    assert len(pairs) == 6
    assert not any(sentence.startswith("SMT") for sentence in pairs.sentences1)


def test_stsb_takes_score_from_column_5_and_sentences_from_6_and_7(sts_dir):
    test = load_stsb("test", sts_dir)
    assert test.name == "STS-B"
    assert test.sentences1 == ["test a0", "test a1", "test a2"]
    assert test.sentences2 == ["test b0", "test b1", "test b2"]
    assert test.scores.tolist() == [3.0, 3.0, 3.0]
    assert load_stsb("dev", sts_dir).name == "STS-B dev"
    assert load_stsb("train", sts_dir).scores.tolist() == [1.0, 1.0, 1.0]


def test_sick_skips_the_header(sts_dir):
    pairs = load_sick("test", sts_dir)
    assert pairs.name == "SICK-R"
    assert pairs.sentences1[0] == "SICK_test_annotated.txt A0"
    assert pairs.sentences2[3] == "SICK_test_annotated.txt B3"
    assert pairs.scores.tolist() == [1.5, 2.5, 3.5, 4.5]
    assert len(load_sick("trial", sts_dir)) == len(load_sick("train", sts_dir)) == 4


def test_benchmarks_are_the_seven_tasks_and_stsb_dev(sts_dir):
    benchmarks = load_sts_benchmarks(sts_dir)
    assert list(benchmarks) == list(STS_TASKS) + [STSB_DEV]
    assert benchmarks["STS-B"].sentences1[0] == "test a0"
    assert benchmarks[STSB_DEV].sentences1[0] == "dev a0"
    assert load_sts_task("STS16", sts_dir).name == "STS16"


def test_default_root_is_the_data_dir(sts_dir, monkeypatch):
    monkeypatch.setenv("DGLBS_DATA", str(sts_dir.parent))
    sts_dir.rename(sts_dir.parent / "sts")
    assert sts_root() == default_data_dir() / "sts"
    assert len(load_sick()) == 4


def test_missing_file_names_the_path_and_the_fix(sts_dir):
    (sts_dir / "STS" / "STS14-en-test" / "STS.input.images.txt").unlink()
    with pytest.raises(FileNotFoundError, match=r"STS\.input\.images\.txt.*root="):
        load_sts_year("STS14", sts_dir)
    with pytest.raises(FileNotFoundError, match="sts-test.csv"):
        load_stsb("test", sts_dir / "elsewhere")


def test_malformed_files_are_reported(sts_dir):
    gold = sts_dir / "STS" / "STS15-en-test" / "STS.gs.belief.txt"
    gold.write_text("4.5\n")
    with pytest.raises(ValueError, match="must align"):
        load_sts_year("STS15", sts_dir)
    gold.write_text("4.5\nhigh\n1.0\n")
    with pytest.raises(ValueError, match="line 2: score 'high'"):
        load_sts_year("STS15", sts_dir)
    (sts_dir / "STS" / "STSBenchmark" / "sts-dev.csv").write_text("only\ttwo\n")
    with pytest.raises(ValueError, match="at least 7 tab-separated fields"):
        load_stsb("dev", sts_dir)


def test_bad_names_are_rejected(sts_dir):
    with pytest.raises(ValueError, match="year must be one of"):
        load_sts_year("STS17", sts_dir)
    with pytest.raises(ValueError, match="split must be one of"):
        load_stsb("validation", sts_dir)
    with pytest.raises(ValueError, match="split must be one of"):
        load_sick("dev", sts_dir)
    with pytest.raises(ValueError, match="task must be one of"):
        load_sts_task("STS-B train", sts_dir)


def test_bundled_suite_has_senteval_sizes(bundled_sts_dir):
    sizes = {name: len(pairs) for name, pairs in load_sts_benchmarks(bundled_sts_dir).items()}
    assert sizes == {"STS12": 3108, "STS13": 1500, "STS14": 3750, "STS15": 3000, "STS16": 1186,
                     "STS-B": 1379, "SICK-R": 4927, STSB_DEV: 1500}
    assert len(load_stsb("train", bundled_sts_dir)) == 5749
