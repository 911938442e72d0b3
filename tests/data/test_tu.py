from __future__ import annotations

import logging
import os
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from dgl.dataloading import GraphDataLoader
from torch.utils.data import BatchSampler, DataLoader, SequentialSampler

from dglbs.data import tu
from dglbs.data.paths import default_data_dir
from dglbs.data.tu import CACHE_ENV_VAR, DEGREE_CAP, TUDataset, collate, default_cache_dir

# Three graphs: a path 1-2-3 with a duplicated edge (second copy has another
# label), a directed edge 4->5 plus a self-loop, and an isolated node 6.
TINY = {
    "A": "1, 2\n2, 1\n2, 3\n3, 2\n1, 2\n4, 5\n5, 5\n",
    "graph_indicator": "1\n1\n1\n2\n2\n3\n",
    "graph_labels": "5\n-1\n5\n",
    "node_labels": "7\n3\n9\n7\n7\n3\n",
    "node_attributes": "0.5, 1.0\n1.5, 2.0\n2.5, 3.0\n3.5, 4.0\n4.5, 5.0\n5.5, 6.0\n",
    "edge_labels": "0\n0\n1\n1\n2\n3\n4\n",
}


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test caches in its own folder, never in the user's cache."""
    folder = tmp_path / "cache"
    monkeypatch.setenv(CACHE_ENV_VAR, str(folder))
    return folder / "tu"


def write_tu(folder: Path, name: str, files: dict[str, str]) -> Path:
    """Write ``files`` (kind -> text) as ``folder/name/name_<kind>.txt``."""
    target = folder / name
    target.mkdir(parents=True)
    for kind, text in files.items():
        (target / f"{name}_{kind}.txt").write_text(text)
    return folder


def write_tu_zip(folder: Path, name: str, files: dict[str, str]) -> Path:
    """Write ``files`` as members ``name//name_<kind>.txt`` of ``folder/name.zip``, as the TU zips."""
    folder.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(folder / f"{name}.zip", "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for kind, text in files.items():
            zf.writestr(f"{name}//{name}_{kind}.txt", text)
    return folder


WRITERS = {"folder": write_tu, "zip": write_tu_zip}


def edge_list(g) -> list[tuple[int, int]]:
    src, dst = g.edges()
    return list(zip(src.tolist(), dst.tolist()))


def test_tiny_dataset_graph_by_graph(tmp_path: Path) -> None:
    ds = TUDataset("TINY", write_tu(tmp_path, "TINY", TINY))
    assert len(ds) == 3
    assert [g.num_nodes() for g in ds.graphs] == [3, 2, 1]
    # Duplicate (1, 2) dropped with its label 2; self-loop kept, nothing added.
    assert edge_list(ds.graphs[0]) == [(0, 1), (1, 0), (1, 2), (2, 1)]
    assert ds.graphs[0].edata["label"].tolist() == [0, 0, 1, 1]
    assert edge_list(ds.graphs[1]) == [(0, 1), (1, 1)]
    assert ds.graphs[1].edata["label"].tolist() == [3, 4]
    assert edge_list(ds.graphs[2]) == []
    # Labels {-1, 5} -> {0, 1} in sorted order.
    assert ds.labels.dtype == torch.int64
    assert ds.labels.tolist() == [1, 0, 1]
    assert ds.label_values.tolist() == [-1, 5]
    assert ds.num_classes == 2
    # One-hot over node labels {3, 7, 9}, then the two attributes.
    assert ds.features == "labels+attributes"
    assert ds.feat_dim == 5
    expected = torch.tensor(
        [
            [0, 1, 0, 0.5, 1.0],
            [1, 0, 0, 1.5, 2.0],
            [0, 0, 1, 2.5, 3.0],
            [0, 1, 0, 3.5, 4.0],
            [0, 1, 0, 4.5, 5.0],
            [1, 0, 0, 5.5, 6.0],
        ]
    )
    feats = torch.cat([g.ndata["feat"] for g in ds.graphs])
    assert feats.dtype == torch.float32
    torch.testing.assert_close(feats, expected)
    graph, label = ds[1]
    assert graph is ds.graphs[1]
    assert label.dtype == torch.int64 and label.shape == () and int(label) == 0
    assert "TINY" in repr(ds) and "graphs=3" in repr(ds) and "feat_dim=5" in repr(ds)


def test_forced_feature_kinds(tmp_path: Path) -> None:
    root = write_tu(tmp_path, "TINY", TINY)
    labels = TUDataset("TINY", root, node_features="labels")
    assert (labels.features, labels.feat_dim) == ("labels", 3)
    attributes = TUDataset("TINY", root, node_features="attributes")
    assert (attributes.features, attributes.feat_dim) == ("attributes", 2)
    torch.testing.assert_close(attributes.graphs[2].ndata["feat"], torch.tensor([[5.5, 6.0]]))
    degree = TUDataset("TINY", root, node_features="degree")
    # Out-degrees after de-duplication: [1, 2, 1], [1, 1], [0]; max 2 -> width 3.
    assert (degree.features, degree.feat_dim) == ("degree", 3)
    got = torch.cat([g.ndata["feat"] for g in degree.graphs]).argmax(dim=1)
    assert got.tolist() == [1, 2, 1, 1, 1, 0]
    clipped = TUDataset("TINY", root, node_features="degree", max_degree=1)
    assert clipped.feat_dim == 2
    got = torch.cat([g.ndata["feat"] for g in clipped.graphs]).argmax(dim=1)
    assert got.tolist() == [1, 1, 1, 1, 1, 0]


def test_auto_uses_degree_without_node_information(tmp_path: Path) -> None:
    files = {k: TINY[k] for k in ("A", "graph_indicator", "graph_labels")}
    ds = TUDataset("BARE", write_tu(tmp_path, "BARE", files))
    assert (ds.features, ds.feat_dim) == ("degree", 3)
    assert "label" not in ds.graphs[0].edata
    with pytest.raises(ValueError, match="BARE_node_labels.txt"):
        TUDataset("BARE", tmp_path, node_features="labels")
    with pytest.raises(ValueError, match="BARE_node_attributes.txt"):
        TUDataset("BARE", tmp_path, node_features="attributes")


def test_degree_width_is_capped(tmp_path: Path) -> None:
    leaves = np.arange(2, DEGREE_CAP + 7)
    text = "".join(f"1, {v}\n{v}, 1\n" for v in leaves)
    files = {
        "A": text,
        "graph_indicator": "1\n" * (leaves.size + 1),
        "graph_labels": "0\n",
    }
    ds = TUDataset("STAR", write_tu(tmp_path, "STAR", files))
    assert ds.feat_dim == DEGREE_CAP + 1
    feat = ds.graphs[0].ndata["feat"]
    assert feat[0].argmax() == DEGREE_CAP  # the hub's degree is above the cap
    assert bool((feat[1:].argmax(dim=1) == 1).all())


def test_nodes_of_a_graph_need_not_be_contiguous(tmp_path: Path) -> None:
    files = {
        "A": "1, 3\n3, 1\n2, 4\n",
        "graph_indicator": "1\n2\n1\n2\n",
        "graph_labels": "0\n1\n",
        "node_labels": "0\n1\n2\n3\n",
    }
    ds = TUDataset("MIXED", write_tu(tmp_path, "MIXED", files))
    assert edge_list(ds.graphs[0]) == [(0, 1), (1, 0)]
    assert edge_list(ds.graphs[1]) == [(0, 1)]
    assert ds.graphs[0].ndata["feat"].argmax(dim=1).tolist() == [0, 2]
    assert ds.graphs[1].ndata["feat"].argmax(dim=1).tolist() == [1, 3]


def assert_same_dataset(a: TUDataset, b: TUDataset) -> None:
    assert len(a) == len(b)
    assert torch.equal(a.labels, b.labels)
    for ga, gb in zip(a.graphs, b.graphs):
        assert edge_list(ga) == edge_list(gb)
        assert torch.equal(ga.ndata["feat"], gb.ndata["feat"])
        assert torch.equal(ga.edata["label"], gb.edata["label"])


def test_zip_and_folder_agree(tmp_path: Path) -> None:
    folder_root = write_tu(tmp_path / "folder", "TINY", TINY)
    zip_root = tmp_path / "zip"
    zip_root.mkdir()
    with zipfile.ZipFile(zip_root / "TINY.zip", "w") as zf:
        # The original TU zips name members "DS//DS_A.txt".
        for kind, text in TINY.items():
            zf.writestr(f"TINY//TINY_{kind}.txt", text)
        zf.writestr("TINY//README.txt", "not a table")
    from_zip = TUDataset("TINY", zip_root)
    assert from_zip.path == zip_root / "TINY.zip"
    assert_same_dataset(TUDataset("TINY", folder_root), from_zip)
    # With both present the folder is read.
    write_tu(zip_root, "TINY", {**TINY, "graph_labels": "1\n2\n3\n"})
    assert TUDataset("TINY", zip_root).num_classes == 3


def read_raw(zip_path: Path, name: str, kind: str) -> list[str]:
    with zipfile.ZipFile(zip_path) as zf:
        # Values are separated by ", " in most TU files and by "," in some (NCI1).
        return zf.read(f"{name}//{name}_{kind}.txt").decode().replace(",", " ").split()


# name: graphs, class sizes in sorted label order, feat_dim, feature kind
BUNDLED = {
    "MUTAG": (188, [63, 125], 7, "labels"),
    "PROTEINS": (1113, [663, 450], 4, "labels+attributes"),
    "IMDB-BINARY": (1000, [500, 500], 136, "degree"),
    "IMDB-MULTI": (1500, [500, 500, 500], 89, "degree"),
    "PTC_MR": (344, [192, 152], 18, "labels"),
    "NCI1": (4110, [2053, 2057], 37, "labels"),
}


@pytest.mark.parametrize("name", list(BUNDLED))
def test_bundled_dataset_statistics(name: str) -> None:
    num_graphs, class_sizes, feat_dim, features = BUNDLED[name]
    start = time.perf_counter()
    ds = TUDataset(name)
    print(f"{name}: loaded in {time.perf_counter() - start:.3f} s")
    assert len(ds) == num_graphs and ds.num_classes == len(class_sizes)
    assert torch.bincount(ds.labels).tolist() == class_sizes
    assert (ds.feat_dim, ds.features) == (feat_dim, features)

    raw = ds.path
    assert raw == default_data_dir() / "tu" / f"{name}.zip"
    indicator = read_raw(raw, name, "graph_indicator")
    assert sum(g.num_nodes() for g in ds.graphs) == len(indicator)
    assert [g.num_nodes() for g in ds.graphs] == np.bincount(np.array(indicator, int))[1:].tolist()
    tokens = read_raw(raw, name, "A")
    distinct_edges = set(zip(tokens[0::2], tokens[1::2]))
    assert sum(g.num_edges() for g in ds.graphs) == len(distinct_edges)
    raw_labels = sorted(set(int(v) for v in read_raw(raw, name, "graph_labels")))
    assert ds.label_values.tolist() == raw_labels
    for g in ds.graphs[:5]:
        assert g.ndata["feat"].shape == (g.num_nodes(), feat_dim)
        assert g.ndata["feat"].dtype == torch.float32


def test_graph_data_loader_and_collate_batch_alike() -> None:
    ds = TUDataset("MUTAG")
    bg, labels = next(iter(GraphDataLoader(ds, batch_size=32)))
    assert bg.batch_size == 32
    assert labels.dtype == torch.int64 and torch.equal(labels, ds.labels[:32])
    assert bg.ndata["feat"].shape == (sum(g.num_nodes() for g in ds.graphs[:32]), 7)
    loader = DataLoader(
        ds, batch_sampler=BatchSampler(SequentialSampler(ds), 32, False), collate_fn=collate
    )
    bg2, labels2 = next(iter(loader))
    assert torch.equal(labels2, labels)
    assert torch.equal(bg2.batch_num_nodes(), bg.batch_num_nodes())
    assert torch.equal(torch.stack(bg2.edges()), torch.stack(bg.edges()))
    assert torch.equal(bg2.ndata["feat"], bg.ndata["feat"])
    with pytest.raises(ValueError, match="empty"):
        collate([])


def test_sorted_files_match_the_general_path(tmp_path: Path) -> None:
    # Edges sorted without duplicates and nodes listed graph by graph (as COLLAB) are
    # taken as they are; a duplicate edge appended at the end forces the sorting path,
    # which must drop it and give the same graphs.
    edges = [(1, 2), (1, 3), (2, 1), (3, 1), (4, 5), (5, 4), (5, 6), (6, 6)]
    sorted_files = {
        "A": "".join(f"{u}, {v}\n" for u, v in edges),
        "graph_indicator": "1\n1\n1\n2\n2\n2\n3\n",
        "graph_labels": "0\n1\n0\n",
        "node_labels": "4\n5\n4\n6\n5\n4\n6\n",
        "edge_labels": "".join(f"{i}\n" for i in range(len(edges))),
    }
    fast = TUDataset("SORTED", write_tu(tmp_path, "SORTED", sorted_files))
    with_duplicate = {
        **sorted_files,
        "A": sorted_files["A"] + "1, 3\n",
        "edge_labels": sorted_files["edge_labels"] + "99\n",
    }
    general = TUDataset("DUPED", write_tu(tmp_path, "DUPED", with_duplicate))
    assert_same_dataset(fast, general)
    assert edge_list(fast.graphs[1]) == [(0, 1), (1, 0), (1, 2), (2, 2)]
    assert fast.graphs[1].edata["label"].tolist() == [4, 5, 6, 7]
    assert [g.num_nodes() for g in fast.graphs] == [3, 3, 1]


def test_large_synthetic_dataset(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    num_graphs, nodes_per_graph, edges_per_graph = 2000, 250, 500
    offsets = np.repeat(np.arange(num_graphs) * nodes_per_graph, edges_per_graph)
    src = offsets + rng.integers(0, nodes_per_graph, offsets.size) + 1
    dst = offsets + rng.integers(0, nodes_per_graph, offsets.size) + 1
    num_nodes = num_graphs * nodes_per_graph
    graph_of_node = np.repeat(np.arange(1, num_graphs + 1), nodes_per_graph)
    files = {
        "A": "\n".join(f"{u}, {v}" for u, v in zip(src.tolist(), dst.tolist())),
        "graph_indicator": "\n".join(map(str, graph_of_node.tolist())),
        "graph_labels": "\n".join(map(str, (np.arange(num_graphs) % 3).tolist())),
        "node_labels": "\n".join(map(str, rng.integers(0, 10, num_nodes).tolist())),
    }
    root = write_tu(tmp_path, "BIG", files)
    start = time.perf_counter()
    ds = TUDataset("BIG", root)
    seconds = time.perf_counter() - start
    print(f"BIG ({src.size} edges, {num_nodes} nodes): loaded in {seconds:.2f} s")
    assert len(ds) == num_graphs and ds.num_classes == 3 and ds.feat_dim == 10
    assert sum(g.num_edges() for g in ds.graphs) == np.unique(src * (num_nodes + 1) + dst).size
    assert all(g.num_nodes() == nodes_per_graph for g in ds.graphs)


def broken(**changes: str | None) -> dict[str, str]:
    files = {**TINY, **changes}
    return {kind: text for kind, text in files.items() if text is not None}


@pytest.mark.parametrize(
    ("files", "error", "pattern"),
    [
        (broken(graph_labels=None), FileNotFoundError, r"BAD_graph_labels\.txt"),
        (broken(A=None), FileNotFoundError, r"BAD_A\.txt"),
        (broken(A="1, 2\n2, 1\n2, x\n"), ValueError,
         r"BAD_A\.txt: line 3 .*does not hold integers"),
        (broken(graph_labels="5\n-1\n0.5\n"), ValueError, r"BAD_graph_labels\.txt: line 3"),
        (broken(A="1, 2\n2, 1, 3\n"), ValueError,
         r"BAD_A\.txt: line 2 has 3 values, expected 2"),
        (broken(A="1, 2\n2\n"), ValueError, r"BAD_A\.txt: line 2 has 1 values, expected 2"),
        (broken(A="1, 2\n\n2, 1\n"), ValueError, r"BAD_A\.txt: line 2 is blank"),
        (broken(node_attributes="1, 2\n3\n4, 5\n6, 7\n8, 9\n1, 2\n"), ValueError,
         r"BAD_node_attributes\.txt: line 2 has 1 values, expected 2 \(as on line 1\)"),
        (broken(node_labels="1\n2\n3\n"), ValueError,
         r"node count mismatch: .*BAD_node_labels\.txt has 3 lines .* has 6"),
        (broken(node_attributes="1\n" * 7), ValueError,
         r"node count mismatch: .*BAD_node_attributes"),
        (broken(edge_labels="0\n"), ValueError,
         r"edge count mismatch: .*BAD_edge_labels\.txt has 1"),
        (broken(A="1, 2\n3, 4\n", edge_labels=None), ValueError,
         r"BAD_A\.txt: line 2 joins node 3 of graph 1 to node 4 of graph 2"),
        (broken(A="1, 2\n1, 7\n", edge_labels=None), ValueError,
         r"BAD_A\.txt: line 2 holds edge \(1, 7\) but node ids run from 1 to 6"),
        (broken(graph_labels="5\n-1\n"), ValueError,
         r"BAD_graph_indicator\.txt: line 6 names graph 3, but graph ids run from 1 to 2"),
        (broken(graph_labels="5\n-1\n5\n5\n"), ValueError,
         r"BAD_graph_labels\.txt has 4 lines but .* only names graphs up to 3"),
        (broken(graph_indicator="1\n1\n1\n2\n0\n3\n"), ValueError, r"line 5 names graph 0"),
        (broken(graph_indicator="\n"), ValueError,
         r"BAD_graph_indicator\.txt and .* must both be non-empty"),
        # A graph id without nodes inside the range (the tail case is the check above).
        (broken(graph_indicator="1\n1\n1\n3\n3\n3\n"), ValueError,
         r"BAD_graph_indicator\.txt: graph 2 has no nodes .*BAD_graph_labels\.txt gives it a "
         r"label on line 2; number the graphs 1 to N without gaps"),
        # Integers outside int64, which numpy's parser would clip to its bounds.
        (broken(graph_labels="5\n100000000000000000000000000000\n5\n"), ValueError,
         r"BAD_graph_labels\.txt: line 2 holds 100000000000000000000000000000, outside the "
         r"int64 range .*; correct the value"),
        (broken(graph_labels="5\n-1\n9223372036854775808\n"), ValueError,
         r"BAD_graph_labels\.txt: line 3 holds 9223372036854775808, outside the int64 range"),
        (broken(node_labels="7\n3\n-9223372036854775809\n7\n7\n3\n"), ValueError,
         r"BAD_node_labels\.txt: line 3 holds -9223372036854775809, outside the int64 range"),
        (broken(A="1, 2\n2, 99999999999999999999\n", edge_labels=None), ValueError,
         r"BAD_A\.txt: line 2 holds 99999999999999999999, outside the int64 range"),
        # Non-finite node attributes.
        (broken(node_attributes="0.5, 1\n1.5, 2\nnan, 3\n3.5, 4\n4.5, 5\n5.5, 6\n"), ValueError,
         r"BAD_node_attributes\.txt: line 3 holds a non-finite value \(\[nan, 3\.0\]\); node "
         r"attributes must be finite: correct or impute the value, or pass node_features="),
        (broken(node_attributes="0.5, 1\n1.5, 2\n2.5, 3\n3.5, 4\n4.5, 5\n5.5, -inf\n"), ValueError,
         r"BAD_node_attributes\.txt: line 6 holds a non-finite value \(\[5\.5, -inf\]\)"),
        (broken(node_attributes="0.5, 1\n1.5, 2\n2.5, 3\n3.5, 1e999\n4.5, 5\n5.5, 6\n"), ValueError,
         r"BAD_node_attributes\.txt: line 4 holds a non-finite value \(\[3\.5, inf\]\)"),
    ],
)
@pytest.mark.parametrize("layout", list(WRITERS))
def test_malformed_input_errors(
    tmp_path: Path, layout: str, files: dict[str, str], error: type[Exception], pattern: str
) -> None:
    root = WRITERS[layout](tmp_path / "data", "BAD", files)
    source = root / ("BAD" if layout == "folder" else "BAD.zip")
    with pytest.raises(error, match=pattern) as caught:
        TUDataset("BAD", root)
    assert str(source) in str(caught.value)


def test_extreme_but_valid_values_load(tmp_path: Path) -> None:
    # The int64 bounds themselves are legal labels; numpy's parser returns them for
    # out-of-range text too, so they must not be taken for an overflow.
    files = broken(graph_labels="9223372036854775807\n-9223372036854775808\n5\n")
    ds = TUDataset("EDGE", write_tu(tmp_path, "EDGE", files))
    assert ds.label_values.tolist() == [-(2**63), 5, 2**63 - 1]
    # Non-finite attributes are only an error where the attributes are used.
    files = broken(node_attributes="nan, 1\n" * 6)
    assert TUDataset("NAN", write_tu(tmp_path, "NAN", files), node_features="labels").feat_dim == 3


def test_not_a_zip_names_the_archive(tmp_path: Path) -> None:
    (tmp_path / "BAD.zip").write_text("1, 2\n")
    with pytest.raises(ValueError, match=rf"{tmp_path / 'BAD.zip'}: not a readable zip archive .*"
                                         r"download it again, or extract its BAD_\*\.txt files"):
        TUDataset("BAD", tmp_path)


def test_truncated_zip_names_the_archive(tmp_path: Path) -> None:
    archive = write_tu_zip(tmp_path, "BAD", TINY) / "BAD.zip"
    content = archive.read_bytes()
    archive.write_bytes(content[: len(content) // 2])  # an interrupted download
    with pytest.raises(ValueError, match=rf"{archive}: not a readable zip archive"):
        TUDataset("BAD", tmp_path)


def test_damaged_zip_member_names_the_member(tmp_path: Path) -> None:
    # The directory at the end of the zip is intact but a member's compressed bytes are not.
    lines = "".join(f"{i}, {i}\n" for i in range(1, 2001))
    files = {"A": lines, "graph_indicator": "1\n" * 2000, "graph_labels": "0\n"}
    archive = write_tu_zip(tmp_path, "BAD", files) / "BAD.zip"
    with zipfile.ZipFile(archive) as zf:
        info = zf.getinfo("BAD//BAD_A.txt")
    data = bytearray(archive.read_bytes())
    # Local header: 30 bytes, then the name and the extra field, then the compressed data.
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    middle = start + info.compress_size // 2
    data[middle : middle + 8] = bytes(b ^ 0xFF for b in data[middle : middle + 8])
    archive.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=rf"{archive}:BAD//BAD_A\.txt: the archive is damaged .*download "):
        TUDataset("BAD", tmp_path)


def test_missing_dataset_names_both_locations(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"NOPE'.*NOPE\.zip"):
        TUDataset("NOPE", tmp_path)


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"name": ""}, "name=''"),
        ({"name": "TINY", "node_features": "onehot"}, "node_features='onehot'"),
        ({"name": "TINY", "max_degree": -1}, "max_degree=-1"),
        ({"name": "TINY", "max_degree": 2.0}, "max_degree=2.0"),
    ],
)
def test_invalid_arguments(tmp_path: Path, kwargs: dict, pattern: str) -> None:
    root = write_tu(tmp_path, "TINY", TINY)
    with pytest.raises(ValueError, match=pattern):
        TUDataset(root=root, **kwargs)


@pytest.mark.parametrize("layout", list(WRITERS))
def test_small_blocks_cut_lines_anywhere(
    tmp_path: Path, layout: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Blocks of 3 bytes cut values, separators and "\r\n" line ends apart.
    files = {kind: text.replace("\n", "\r\n") for kind, text in TINY.items()}
    files["graph_labels"] += "\r\n \r\n"  # trailing blank lines are ignored
    whole = TUDataset("TINY", WRITERS[layout](tmp_path / "whole", "TINY", files), cache=False)
    monkeypatch.setattr(tu, "BLOCK_BYTES", 3)
    assert_same_dataset(whole, TUDataset("TINY", WRITERS[layout](tmp_path / "cut", "TINY", files), cache=False))
    # Line numbers count across blocks.
    bad = {**files, "A": "1, 2\n" * 20 + "2, x\n"}
    with pytest.raises(ValueError, match=r"BAD_A\.txt: line 21 \('2, x'\) does not hold integers"):
        TUDataset("BAD", WRITERS[layout](tmp_path / "bad", "BAD", bad), cache=False)
    # Edges are checked in blocks too.
    monkeypatch.setattr(tu, "_EDGE_BLOCK", 2)
    across = {kind: text for kind, text in files.items() if kind != "edge_labels"}
    across["A"] = "1, 2\n2, 1\n2, 3\n3, 2\n1, 5\n"
    with pytest.raises(ValueError, match=r"BAD_A\.txt: line 5 joins node 1 of graph 1 to node 5 of graph 2"):
        TUDataset("BAD", WRITERS[layout](tmp_path / "across", "BAD", across), cache=False)


@pytest.mark.parametrize(
    ("block_bytes", "text", "line"),
    [
        (4, "1, 2\n\n\n2, 1\n", 2),  # blank lines inside one block or across two
        (5, "1, 2\n\n\n2, 1\n", 2),
        (1, "1, 2\n\n\n2, 1\n", 2),
        (5, "1, 2\n   \n2, 1\n", 2),
        (3, "\n1, 2\n", 1),  # a blank first line
    ],
)
def test_blank_lines_across_blocks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, block_bytes: int, text: str, line: int
) -> None:
    monkeypatch.setattr(tu, "BLOCK_BYTES", block_bytes)
    files = {"A": text, "graph_indicator": "1\n1\n", "graph_labels": "0\n"}
    with pytest.raises(ValueError, match=rf"BAD_A\.txt: line {line} is blank; delete the blank lines"):
        TUDataset("BAD", write_tu(tmp_path, "BAD", files), cache=False)


def cached_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def refuse_to_parse(files: object) -> None:
    raise AssertionError("parsed the text although the cache was valid")


@pytest.mark.parametrize("layout", list(WRITERS))
def test_cache_hit_skips_parsing(
    tmp_path: Path, layout: str, private_cache: Path, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    root = WRITERS[layout](tmp_path / "data", "TINY", TINY)
    with caplog.at_level(logging.INFO, logger="dglbs.data.tu"):
        first = TUDataset("TINY", root)
    assert first.cache_path is not None and first.cache_path.parent == private_cache == default_cache_dir()
    assert cached_files(private_cache) == [first.cache_path.name]  # no temporary file left
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("TINY: parsing") for m in messages)
    assert any(m.startswith(f"TINY: cached the parsed tables in {first.cache_path}") for m in messages)
    assert any(m.startswith("TUDataset(name='TINY'") and " loaded in " in m for m in messages)
    caplog.clear()
    monkeypatch.setattr(tu, "_parse_files", refuse_to_parse)
    with caplog.at_level(logging.INFO, logger="dglbs.data.tu"):
        second = TUDataset("TINY", root)
    assert second.cache_path == first.cache_path
    assert f"TINY: read the parsed tables from the cache {first.cache_path}" in caplog.messages
    assert_same_dataset(first, second)
    # The cache holds the tables, not the features: other options use it too.
    assert TUDataset("TINY", root, node_features="degree").features == "degree"


def test_cache_is_invalidated_by_a_changed_file(tmp_path: Path, private_cache: Path) -> None:
    root = write_tu(tmp_path / "data", "TINY", TINY)
    assert TUDataset("TINY", root).label_values.tolist() == [-1, 5]
    labels = root / "TINY" / "TINY_graph_labels.txt"
    # Same size, new modification time (set, as a quick rewrite may keep the clock tick).
    mtime = labels.stat().st_mtime_ns
    labels.write_text("5\n-2\n5\n")
    os.utime(labels, ns=(mtime + 10**9, mtime + 10**9))
    assert TUDataset("TINY", root).label_values.tolist() == [-2, 5]
    # Same modification time, new size.
    mtime = labels.stat().st_mtime_ns
    labels.write_text("5\n-20\n5\n")
    os.utime(labels, ns=(mtime, mtime))
    assert TUDataset("TINY", root).label_values.tolist() == [-20, 5]
    # An optional file appears.
    (root / "TINY" / "TINY_node_labels.txt").unlink()
    assert TUDataset("TINY", root).features == "attributes"
    # A rewritten zip.
    zip_root = write_tu_zip(tmp_path / "zipped", "TINY", TINY)
    assert TUDataset("TINY", zip_root).num_classes == 2
    mtime = (zip_root / "TINY.zip").stat().st_mtime_ns
    write_tu_zip(zip_root, "TINY", {**TINY, "graph_labels": "1\n2\n3\n"})
    os.utime(zip_root / "TINY.zip", ns=(mtime + 10**9, mtime + 10**9))
    assert TUDataset("TINY", zip_root).num_classes == 3
    # One cache file per source, each rewritten in place.
    assert len(cached_files(private_cache)) == 2


def corrupt_truncated(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:100])


def corrupt_flipped_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # inside the arrays: the zip CRC catches it
    path.write_bytes(bytes(data))


def corrupt_garbage(path: Path) -> None:
    path.write_bytes(b"not a cache")


def corrupt_wrong_dtype(path: Path) -> None:
    with np.load(path) as npz:
        tables = dict(npz)
    tables["A"] = tables["A"].astype(np.float64)  # intact zip, right key, wrong content
    np.savez(path, **tables)


@pytest.mark.parametrize(
    "corrupt", [corrupt_truncated, corrupt_flipped_byte, corrupt_garbage, corrupt_wrong_dtype]
)
def test_corrupt_cache_is_parsed_again_and_overwritten(
    tmp_path: Path, corrupt, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    root = write_tu(tmp_path / "data", "TINY", TINY)
    expected = TUDataset("TINY", root)
    corrupt(expected.cache_path)
    with caplog.at_level(logging.WARNING, logger="dglbs.data.tu"):
        recovered = TUDataset("TINY", root)
    assert_same_dataset(expected, recovered)
    assert any(
        m.startswith(f"TINY: ignoring the unreadable cache {expected.cache_path}") for m in caplog.messages
    )
    monkeypatch.setattr(tu, "_parse_files", refuse_to_parse)
    assert_same_dataset(expected, TUDataset("TINY", root))  # the rewritten cache is valid


def test_read_only_data_folder_is_never_written(tmp_path: Path, private_cache: Path) -> None:
    root = write_tu_zip(tmp_path / "data", "TINY", TINY)
    root.chmod(0o555)
    try:
        ds = TUDataset("TINY", root)
        assert cached_files(root) == ["TINY.zip"]  # also when run as root, who could write
        assert ds.cache_path is not None and ds.cache_path.parent == private_cache
        assert ds.cache_path.is_file()
    finally:
        root.chmod(0o755)


def test_unwritable_cache_folder_still_loads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    root = write_tu(tmp_path / "data", "TINY", TINY)
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with caplog.at_level(logging.WARNING, logger="dglbs.data.tu"):
        ds = TUDataset("TINY", root, cache_dir=blocker / "cache")  # cannot mkdir under a file
    assert len(ds) == 3
    assert any("could not write the cache" in m and CACHE_ENV_VAR in m for m in caplog.messages)


def test_failed_cache_write_keeps_the_old_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = write_tu(tmp_path / "data", "TINY", TINY)
    cache_path = TUDataset("TINY", root).cache_path
    before = cache_path.read_bytes()
    (root / "TINY" / "TINY_graph_labels.txt").write_text("1\n2\n3\n")

    def disk_full(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(tu.np, "savez", disk_full)
    assert TUDataset("TINY", root).num_classes == 3
    assert cache_path.read_bytes() == before  # the stale cache stays whole; its key no longer matches
    assert cached_files(cache_path.parent) == [cache_path.name]  # no temporary file left


def test_cache_false_writes_nothing(tmp_path: Path, private_cache: Path) -> None:
    ds = TUDataset("TINY", write_tu(tmp_path / "data", "TINY", TINY), cache=False)
    assert ds.cache_path is None and not private_cache.exists()
    with pytest.raises(TypeError, match="cache='no'"):
        TUDataset("TINY", tmp_path / "data", cache="no")


def test_a_wrong_dataset_name_lists_the_datasets_found(tmp_path):
    (tmp_path / "ALPHA").mkdir()
    (tmp_path / "BETA.zip").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("")
    with pytest.raises(FileNotFoundError, match=r"'GAMMA' not found.*datasets found there: ALPHA, BETA\)"):
        TUDataset("GAMMA", root=tmp_path)


def test_subset_shares_graphs_and_maps_indices() -> None:
    dataset = TUDataset("MUTAG", default_data_dir() / "tu")
    part = dataset.subset([5, 0, 7])
    assert len(part) == 3 and part.graphs[0] is dataset.graphs[5]
    assert torch.equal(part.labels, dataset.labels[[5, 0, 7]])
    assert part.indices.tolist() == [5, 0, 7] and part.feat_dim == dataset.feat_dim
    assert "graphs=3 of 188" in repr(part) and dataset.indices is None
    inner = part.subset(torch.tensor([2, 1]))
    assert inner.indices.tolist() == [7, 0] and inner[0][0] is dataset.graphs[7]


@pytest.mark.parametrize(
    ("indices", "pattern"),
    [([], "non-empty 1-D"), ([[0, 1]], "non-empty 1-D"), ([0.5], "non-empty 1-D"), ([0, 188], r"\[0, 188\).*\[188\]"),
     ([-1], r"got \[-1\]"), ([3, 3], "distinct")],
)
def test_subset_rejects_bad_indices(indices: list, pattern: str) -> None:
    dataset = TUDataset("MUTAG", default_data_dir() / "tu")
    with pytest.raises(ValueError, match=pattern):
        dataset.subset(indices)
