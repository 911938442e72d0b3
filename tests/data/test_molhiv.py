from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from dgl.dataloading import GraphDataLoader
from ogb.utils import smiles2graph
from ogb.utils.features import get_atom_feature_dims
from sklearn.metrics import roc_auc_score

from dglbs.data import molhiv
from dglbs.data.molhiv import (
    MolHIVDataset,
    default_cache_dir,
    evaluate_rocauc,
    murcko_scaffolds,
    scaffold_split,
)
from dglbs.data.paths import default_data_dir

LIMIT = 300
BAD_ROW = 137  # the first HIV row that current RDKit rejects (hypervalent Al)
SMALL_ROWS = [
    ("CCO", "CI", 0),
    ("c1ccccc1O", "CM", 1),
    ("CC(=O)Nc1ccc(O)cc1", "CI", 0),
    ("[Na+].[Cl-]", "CI", 0),
]


def write_csv(root: Path, rows: list[tuple[str, str, int]]) -> Path:
    path = root / "molecules" / "HIV.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["smiles,activity,HIV_active", *(f"{s},{a},{y}" for s, a, y in rows)]
    path.write_text("\n".join(lines) + "\n")
    return path


def load_quietly(*args: object, **kwargs: object) -> MolHIVDataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return MolHIVDataset(*args, **kwargs)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("molhiv-cache")


@pytest.fixture(scope="module")
def hiv(cache_dir: Path) -> MolHIVDataset:
    return load_quietly(cache_dir=cache_dir, limit=LIMIT)


def test_graphs_match_smiles2graph(hiv: MolHIVDataset) -> None:
    for index in (0, 1, 100, len(hiv) - 1):
        graph, label = hiv[index]
        expected = smiles2graph(hiv.smiles[index])
        src, dst = graph.edges()
        assert graph.num_nodes() == expected["num_nodes"]
        assert torch.equal(torch.stack([src, dst]), torch.from_numpy(expected["edge_index"]))
        assert graph.ndata["feat"].dtype == torch.int64
        assert graph.edata["feat"].dtype == torch.int64
        assert torch.equal(graph.ndata["feat"], torch.from_numpy(expected["node_feat"]))
        assert torch.equal(graph.edata["feat"], torch.from_numpy(expected["edge_feat"]))
        assert label.dtype == torch.int64 and label.dim() == 0
    assert hiv.node_feature_dim == 9


def test_labels_and_rows_follow_the_csv(hiv: MolHIVDataset) -> None:
    import pandas as pd

    table = pd.read_csv(default_data_dir() / "molecules" / "HIV.csv", nrows=LIMIT)
    assert hiv.rows.tolist() == [r for r in range(LIMIT) if r != BAD_ROW]
    assert hiv.smiles == table["smiles"].drop(index=BAD_ROW).tolist()
    assert hiv.labels.dtype == torch.int64 and hiv.labels.shape == (LIMIT - 1,)
    assert torch.equal(hiv.labels, torch.tensor(table["HIV_active"].drop(index=BAD_ROW).to_numpy()))
    assert int(hiv.labels.sum()) > 0
    assert hiv[-1][1] == hiv.labels[-1]
    with pytest.raises(IndexError, match="out of range"):
        hiv[len(hiv)]


def test_unparsable_hiv_molecule_is_reported(cache_dir: Path) -> None:
    with pytest.warns(UserWarning, match=rf"skipped 1 of {LIMIT} .*row {BAD_ROW} 'O=C1O\[Al\]"):
        dataset = MolHIVDataset(cache_dir=cache_dir, limit=LIMIT)  # cache hit: warns again
    assert dataset.failed_rows.tolist() == [BAD_ROW]


def test_cache_hit_gives_identical_graphs_without_conversion(
    hiv: MolHIVDataset, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert hiv.cache_path.parent == cache_dir and hiv.cache_path.is_file()

    def fail(molecule: object) -> None:
        raise AssertionError("a molecule was converted although the cache should be used")

    monkeypatch.setattr(molhiv, "smiles2graph", fail)
    monkeypatch.setattr(molhiv, "_murcko_scaffold", fail)
    again = load_quietly(cache_dir=cache_dir, limit=LIMIT)
    assert again.cache_path == hiv.cache_path
    assert torch.equal(again.labels, hiv.labels) and again.smiles == hiv.smiles
    assert {k: v.tolist() for k, v in again.get_idx_split().items()} == {
        k: v.tolist() for k, v in hiv.get_idx_split().items()
    }
    for index in range(0, len(hiv), 37):
        (g1, _), (g2, _) = hiv[index], again[index]
        assert torch.equal(torch.stack(g1.edges()), torch.stack(g2.edges()))
        assert torch.equal(g1.ndata["feat"], g2.ndata["feat"])
        assert torch.equal(g1.edata["feat"], g2.edata["feat"])


def test_changed_csv_invalidates_cache(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "data", SMALL_ROWS)
    cache = tmp_path / "cache"
    first = MolHIVDataset(tmp_path / "data", cache_dir=cache)
    assert len(first) == 4 and first.labels.tolist() == [0, 1, 0, 0]

    write_csv(tmp_path / "data", [*SMALL_ROWS[:2], ("CCN", "CA", 1)])
    second = MolHIVDataset(tmp_path / "data", cache_dir=cache)
    assert second.cache_path != first.cache_path
    assert len(second) == 3 and second.labels.tolist() == [0, 1, 1]
    assert second[2][0].num_nodes() == 3

    # Same bytes, new modification time: a new key too (the brief keys on size+mtime+sha).
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert MolHIVDataset(tmp_path / "data", cache_dir=cache).cache_path != second.cache_path


def test_default_cache_dir_follows_dglbs_cache_then_xdg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DGLBS_CACHE", str(tmp_path / "mine"))
    assert default_cache_dir() == tmp_path / "mine"
    monkeypatch.delenv("DGLBS_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_cache_dir() == tmp_path / "dglbs"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert default_cache_dir() == Path.home() / ".cache" / "dglbs"
    assert default_data_dir() not in default_cache_dir().parents


def test_bad_smiles_are_skipped_with_warning(tmp_path: Path) -> None:
    bad = [("C1CC", "CI", 1), ("", "CI", 0), ("not_a_molecule", "CI", 0)]
    write_csv(tmp_path, [SMALL_ROWS[0], bad[0], SMALL_ROWS[1], bad[1], bad[2]])
    expected = r"skipped 3 of 5 .*row 1 'C1CC', row 3 '', row 4 'not_a_molecule'"
    with pytest.warns(UserWarning, match=expected):
        dataset = MolHIVDataset(tmp_path, cache_dir=tmp_path / "cache")
    assert dataset.rows.tolist() == [0, 2]
    assert dataset.failed_rows.tolist() == [1, 3, 4]
    assert dataset.smiles == ["CCO", "c1ccccc1O"]
    assert dataset.labels.tolist() == [0, 1]


def test_all_smiles_bad_is_an_error(tmp_path: Path) -> None:
    write_csv(tmp_path, [("C1CC", "CI", 0), ("xyz", "CI", 1)])
    with pytest.raises(ValueError, match="cannot parse any of its 2 SMILES"):
        load_quietly(tmp_path, cache_dir=tmp_path / "cache")


def test_limit_takes_first_rows(tmp_path: Path) -> None:
    write_csv(tmp_path, SMALL_ROWS)
    dataset = MolHIVDataset(tmp_path, cache_dir=tmp_path / "cache", limit=2)
    assert dataset.smiles == ["CCO", "c1ccccc1O"]
    for bad, error in ((0, ValueError), (2.5, TypeError)):
        with pytest.raises(error, match="limit"):
            MolHIVDataset(tmp_path, cache_dir=tmp_path / "cache", limit=bad)


def test_onehot_features(hiv: MolHIVDataset, cache_dir: Path) -> None:
    dims = get_atom_feature_dims()
    onehot = load_quietly(cache_dir=cache_dir, limit=LIMIT, node_features="onehot")
    assert onehot.node_feature_dim == sum(dims) == 174
    for index in (0, 57):
        feat = onehot[index][0].ndata["feat"]
        atoms = hiv[index][0].ndata["feat"]
        assert feat.dtype == torch.float32 and feat.shape == (atoms.shape[0], sum(dims))
        blocks = torch.split(feat, dims, dim=1)
        for column, block in enumerate(blocks):
            assert torch.equal(block.sum(1), torch.ones(atoms.shape[0]))
            assert torch.equal(block.argmax(1), atoms[:, column])
        assert onehot[index][0].edata["feat"].dtype == torch.int64


def test_graph_data_loader_batches(cache_dir: Path) -> None:
    dataset = load_quietly(cache_dir=cache_dir, limit=LIMIT, node_features="onehot")
    batch, labels = next(iter(GraphDataLoader(dataset, batch_size=8)))
    assert batch.batch_size == 8
    assert labels.dtype == torch.int64 and torch.equal(labels, dataset.labels[:8])
    assert batch.ndata["feat"].dtype == torch.float32
    assert batch.num_nodes() == sum(dataset[i][0].num_nodes() for i in range(8))


def test_missing_file_and_columns(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"molecules/HIV.csv.*root="):
        MolHIVDataset(tmp_path, cache_dir=tmp_path / "cache")
    path = tmp_path / "molecules" / "HIV.csv"
    path.parent.mkdir()
    path.write_text("smiles,activity\nCCO,CI\n")
    with pytest.raises(ValueError, match=r"missing column\(s\) \['HIV_active'\]"):
        MolHIVDataset(tmp_path, cache_dir=tmp_path / "cache")
    path.write_text("smiles,activity,HIV_active\nCCO,CI,0\nCCN,CI,\n")
    with pytest.raises(ValueError, match=r"HIV_active must be 0 or 1.*data row 1 \(line 3\)"):
        MolHIVDataset(tmp_path, cache_dir=tmp_path / "cache")
    path.write_text("smiles,activity,HIV_active\n")
    with pytest.raises(ValueError, match="no molecule rows"):
        MolHIVDataset(tmp_path, cache_dir=tmp_path / "cache")
    path.write_text("")
    with pytest.raises(ValueError, match="not a readable CSV"):
        MolHIVDataset(tmp_path, cache_dir=tmp_path / "cache")
    write_csv(tmp_path, SMALL_ROWS)
    with pytest.raises(ValueError, match="node_features"):
        MolHIVDataset(tmp_path, cache_dir=tmp_path / "cache", node_features="float")


def test_unreadable_cache_file_is_a_clear_error(tmp_path: Path) -> None:
    write_csv(tmp_path, SMALL_ROWS)
    dataset = MolHIVDataset(tmp_path, cache_dir=tmp_path / "cache")
    dataset.cache_path.write_bytes(b"garbage")
    with pytest.raises(RuntimeError, match="delete it to rebuild"):
        MolHIVDataset(tmp_path, cache_dir=tmp_path / "cache")


def test_scaffold_split_partitions_and_groups(hiv: MolHIVDataset) -> None:
    split = hiv.get_idx_split()
    n = len(hiv)
    joined = torch.cat([split["train"], split["valid"], split["test"]])
    assert joined.dtype == torch.int64
    assert torch.equal(joined.sort().values, torch.arange(n))  # disjoint and covering
    assert abs(len(split["train"]) - 0.8 * n) <= 0.02 * n
    assert abs(len(split["valid"]) - 0.1 * n) <= 0.02 * n
    scaffolds = np.asarray(murcko_scaffolds(hiv.smiles))
    sets = {name: set(scaffolds[idx.numpy()]) for name, idx in split.items()}
    assert not sets["train"] & sets["valid"] and not sets["train"] & sets["test"]
    assert not sets["valid"] & sets["test"]
    assert {k: v.tolist() for k, v in scaffold_split(hiv.smiles).items()} == {
        k: v.tolist() for k, v in split.items()
    }


def test_scaffold_split_order_follows_reference() -> None:
    benzene = ["c1ccccc1C", "c1ccccc1O", "c1ccccc1N", "c1ccccc1Cl"]  # scaffold c1ccccc1
    smiles = ["C1CCCCC1C", benzene[0], "CCO", benzene[1], "C1CCCCC1O", benzene[2], "CCN"]
    smiles += [benzene[3], "C1CCC1C", "C1CC1C"]
    # Groups: benzene (4 rows), cyclohexane rows 0, 4, acyclic rows 2, 6, cyclobutane row 8,
    # cyclopropane row 9. Ties go to the group whose first row is later: acyclic (first
    # row 2) before cyclohexane (row 0); the reverse order would put cyclohexane in train.
    split = scaffold_split(smiles, 0.6, 0.2, 0.2)
    assert split["train"].tolist() == [1, 2, 3, 5, 6, 7]
    assert split["valid"].tolist() == [0, 4]
    assert split["test"].tolist() == [8, 9]


def test_scaffold_split_errors() -> None:
    with pytest.raises(ValueError, match="must be 1"):
        scaffold_split(["CCO"], 0.8, 0.1, 0.2)
    with pytest.raises(ValueError, match="frac_valid"):
        scaffold_split(["CCO"], 0.8, -0.1, 0.3)
    with pytest.raises(ValueError, match=r"smiles\[1\] = 'C1CC'"):
        scaffold_split(["CCO", "C1CC"])
    with pytest.raises(ValueError, match="empty"):
        scaffold_split([])


def test_evaluate_rocauc_known_values() -> None:
    y_true = torch.tensor([0, 0, 1, 1])
    y_score = torch.tensor([0.1, 0.4, 0.35, 0.8])
    assert evaluate_rocauc(y_true, y_score) == pytest.approx(0.75)
    column_true, column_score = y_true.numpy()[:, None], -y_score.numpy()[:, None]
    assert evaluate_rocauc(column_true, column_score) == pytest.approx(0.25)
    rng = np.random.default_rng(0)
    truth, score = rng.integers(0, 2, 200), rng.normal(size=200)
    assert evaluate_rocauc(truth, score) == pytest.approx(roc_auc_score(truth, score))


def test_evaluate_rocauc_errors() -> None:
    with pytest.raises(ValueError, match="both classes"):
        evaluate_rocauc(torch.zeros(4), torch.rand(4))
    with pytest.raises(ValueError, match="4 labels and 3 scores"):
        evaluate_rocauc(torch.tensor([0, 1, 0, 1]), torch.rand(3))
    with pytest.raises(ValueError, match=r"y_score must have shape.*\(4, 2\)"):
        evaluate_rocauc(torch.tensor([0, 1, 0, 1]), torch.rand(4, 2))
    with pytest.raises(ValueError, match="only 0 and 1"):
        evaluate_rocauc(torch.tensor([0, 1, 2, 1]), torch.rand(4))

