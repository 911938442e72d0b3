"""Graph-classification datasets of the TU Dortmund collection as DGL graphs.

A TU dataset ``DS`` is a set of text files, either in a folder ``DS/`` or in the
original ``DS.zip`` (read in place, never extracted):

``DS_A.txt`` (required, m lines ``src, dst``)
    Directed edge list of 1-based global node ids. Undirected graphs list both
    directions.
``DS_graph_indicator.txt`` (required, n lines)
    1-based graph id of every node.
``DS_graph_labels.txt`` (required, N lines)
    Integer class label of every graph.
``DS_node_labels.txt``, ``DS_node_attributes.txt`` (optional, n lines)
    Integer node labels / comma-separated float node attributes.
``DS_edge_labels.txt`` (optional, m lines)
    Integer edge labels, aligned with ``DS_A.txt``.

Other files (README, edge or graph attributes) are ignored. All files are parsed
in vectorised numpy and the graphs are cut out of one batched graph with
:func:`dgl.unbatch`, so datasets with millions of edges load in seconds.
"""
from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import dgl
import numpy as np
import torch
from torch.utils.data import Dataset

from dglbs.data.paths import default_data_dir

DEGREE_CAP = 1000
"""Largest degree one-hot width chosen automatically (``max_degree=None``).

Degrees above the cap share the last one-hot slot. The degree features take
``num_nodes * (max_degree + 1) * 4`` bytes, e.g. about 3.4 GB for REDDIT-BINARY
at the cap; pass a smaller ``max_degree`` to shrink them.
"""

NODE_FEATURE_MODES = ("auto", "labels", "attributes", "degree")

_SEPARATORS = np.zeros(256, dtype=bool)
_SEPARATORS[[ord(c) for c in " \t\r\n,"]] = True


class _TUFiles:
    """Reads the ``DS_*.txt`` files of one dataset from a folder or a zip."""

    def __init__(self, name: str, root: Path) -> None:
        folder, archive = root / name, root / f"{name}.zip"
        self.name = name
        # An extracted folder wins over the zip so that a user can edit a copy.
        if folder.is_dir():
            self.path = folder
            self._members: dict[str, str] | None = None
        elif archive.is_file():
            self.path = archive
            with zipfile.ZipFile(archive) as zf:
                names = zf.namelist()
            # Members are "DS/DS_A.txt" (sometimes "DS//DS_A.txt"): match on the basename.
            self._members = {}
            for member in names:
                base = member.rsplit("/", 1)[-1]
                if base.startswith(f"{name}_") and base.endswith(".txt"):
                    if base in self._members:
                        raise ValueError(
                            f"{archive}: holds two files named {base!r} "
                            f"({self._members[base]!r} and {member!r}); keep one"
                        )
                    self._members[base] = member
        else:
            raise FileNotFoundError(
                f"TU dataset {name!r} not found: neither the folder {str(folder)!r} "
                f"nor the archive {str(archive)!r} exists; pass root= the directory "
                "that holds it (default: <data dir>/tu, see dglbs.data.paths)"
            )

    def where(self, kind: str) -> str:
        """Human-readable location of ``DS_<kind>.txt`` for error messages."""
        base = f"{self.name}_{kind}.txt"
        if self._members is None:
            return str(self.path / base)
        return f"{self.path}:{self._members.get(base, base)}"

    def read(self, kind: str, required: bool) -> bytes | None:
        """Bytes of ``DS_<kind>.txt``; ``None`` if absent and not required."""
        base = f"{self.name}_{kind}.txt"
        if self._members is None:
            file = self.path / base
            if file.is_file():
                return file.read_bytes()
        elif base in self._members:
            with zipfile.ZipFile(self.path) as zf:
                return zf.read(self._members[base])
        if required:
            raise FileNotFoundError(
                f"TU dataset {self.name!r} at {str(self.path)!r} lacks the required "
                f"file {base!r}"
            )
        return None


def _parse_table(
    text: bytes, where: str, dtype: type[np.generic], columns: int | None
) -> np.ndarray:
    """Parse a comma/whitespace separated numeric table.

    Parameters
    ----------
    text : bytes
        File contents; trailing blank lines are ignored, inner blank lines are errors.
    where : str
        File location used in error messages.
    dtype : np.int64 or np.float64
        Type every value must parse as.
    columns : int or None
        Required number of values per line; ``None`` accepts any number that
        is the same on every line.

    Returns
    -------
    np.ndarray of shape ``(lines, columns)`` and dtype ``dtype``.
    """
    text = text.rstrip()
    if not text:
        return np.empty((0, columns or 1), dtype=dtype)
    buf = np.frombuffer(text, dtype=np.uint8)
    newlines = np.flatnonzero(buf == ord("\n"))
    num_lines = newlines.size + 1
    is_sep = _SEPARATORS[buf]
    token_starts = np.flatnonzero(~is_sep & np.concatenate(([True], is_sep[:-1])))
    per_line = np.bincount(np.searchsorted(newlines, token_starts), minlength=num_lines)
    expected = int(per_line[0]) if columns is None else columns
    bad_lines = np.flatnonzero((per_line != expected) | (per_line == 0))
    if bad_lines.size:
        line = int(bad_lines[0])
        if per_line[line] == 0:
            raise ValueError(f"{where}: line {line + 1} is blank")
        raise ValueError(
            f"{where}: line {line + 1} has {per_line[line]} values, expected {expected}"
            + ("" if columns else " (as on line 1)")
        )
    try:
        values = np.fromstring(text.replace(b",", b" "), dtype=dtype, sep=" ")
    except ValueError:
        values = None
    if values is None or values.size != num_lines * expected:
        _raise_unparsable(text, where, dtype)
    return values.reshape(num_lines, expected)


def _raise_unparsable(text: bytes, where: str, dtype: type[np.generic]) -> NoReturn:
    # Runs only after the vectorised parse failed, to name the offending line.
    convert = int if np.issubdtype(dtype, np.integer) else float
    kind = "integers" if convert is int else "numbers"
    for number, line in enumerate(text.splitlines(), start=1):
        try:
            [convert(token) for token in line.replace(b",", b" ").split()]
        except ValueError:
            raise ValueError(
                f"{where}: line {number} ({line.decode(errors='replace')!r}) does not "
                f"hold {kind}"
            ) from None
    raise ValueError(f"{where}: could not be parsed as {kind}")


def _one_hot(index: np.ndarray, width: int) -> np.ndarray:
    """``(len(index), width)`` float32 one-hot rows of int64 ``index``."""
    out = np.zeros((index.size, width), dtype=np.float32)
    out[np.arange(index.size), index] = 1.0
    return out


def _first_line(mask: np.ndarray) -> int:
    """1-based number of the first line where ``mask`` holds."""
    return int(np.flatnonzero(mask)[0]) + 1


@dataclass
class _TUTables:
    """The validated contents of one dataset's files, with 0-based ids.

    ``src``/``dst``: int64 ``(m,)``; ``graph_of_node``: int64 ``(n,)``;
    ``graph_labels``: int64 ``(N,)``; ``node_labels``: int64 ``(n, k)``;
    ``node_attributes``: float64 ``(n, d)``; ``edge_labels``: int64 ``(m, k)``.
    """

    src: np.ndarray
    dst: np.ndarray
    graph_of_node: np.ndarray
    graph_labels: np.ndarray
    node_labels: np.ndarray | None
    node_attributes: np.ndarray | None
    edge_labels: np.ndarray | None

    @classmethod
    def read(cls, files: _TUFiles) -> _TUTables:
        def table(
            kind: str, dtype: type[np.generic], columns: int | None, required: bool
        ) -> np.ndarray | None:
            text = files.read(kind, required)
            return None if text is None else _parse_table(text, files.where(kind), dtype, columns)

        edges = table("A", np.int64, 2, True)
        graph_of_node = table("graph_indicator", np.int64, 1, True)[:, 0]
        graph_labels = table("graph_labels", np.int64, 1, True)[:, 0]
        node_labels = table("node_labels", np.int64, None, False)
        node_attributes = table("node_attributes", np.float64, None, False)
        edge_labels = table("edge_labels", np.int64, None, False)

        num_nodes, num_graphs = graph_of_node.size, graph_labels.size
        indicator, labels, a_file = (
            files.where("graph_indicator"), files.where("graph_labels"), files.where("A")
        )
        if num_nodes == 0 or num_graphs == 0:
            raise ValueError(f"{indicator} and {labels} must both be non-empty")
        bad = (graph_of_node < 1) | (graph_of_node > num_graphs)
        if bad.any():
            line = _first_line(bad)
            raise ValueError(
                f"{indicator}: line {line} names graph {graph_of_node[line - 1]}, but graph "
                f"ids run from 1 to {num_graphs} (the number of lines of {labels})"
            )
        if graph_of_node.max() != num_graphs:
            raise ValueError(
                f"{labels} has {num_graphs} lines but {indicator} only names graphs up to "
                f"{graph_of_node.max()}"
            )
        for kind, rows in (("node_labels", node_labels), ("node_attributes", node_attributes)):
            if rows is not None and len(rows) != num_nodes:
                raise ValueError(
                    f"node count mismatch: {files.where(kind)} has {len(rows)} lines but "
                    f"{indicator} has {num_nodes}"
                )
        if edge_labels is not None and len(edge_labels) != len(edges):
            raise ValueError(
                f"edge count mismatch: {files.where('edge_labels')} has {len(edge_labels)} "
                f"lines but {a_file} has {len(edges)}"
            )
        bad = ((edges < 1) | (edges > num_nodes)).any(axis=1)
        if bad.any():
            line = _first_line(bad)
            raise ValueError(
                f"{a_file}: line {line} holds edge {tuple(edges[line - 1].tolist())} but node "
                f"ids run from 1 to {num_nodes} (the number of lines of {indicator})"
            )
        src, dst, graph_of_node = edges[:, 0] - 1, edges[:, 1] - 1, graph_of_node - 1
        bad = graph_of_node[src] != graph_of_node[dst]
        if bad.any():
            line = _first_line(bad)
            u, v = edges[line - 1].tolist()
            raise ValueError(
                f"{a_file}: line {line} joins node {u} of graph {graph_of_node[u - 1] + 1} to "
                f"node {v} of graph {graph_of_node[v - 1] + 1}; edges must stay inside one graph"
            )
        return cls(src, dst, graph_of_node, graph_labels, node_labels, node_attributes, edge_labels)


def _node_features(
    mode: str,
    max_degree: int | None,
    t: _TUTables,
    node_order: np.ndarray,
    degree: np.ndarray,
    files: _TUFiles,
) -> tuple[np.ndarray, str]:
    """``(n, feat_dim)`` float32 features of the nodes in ``node_order``, and their kind.

    ``node_order`` (int64 ``(n,)``) lists file node indices in output order;
    ``degree`` (int64 ``(n,)``) is the out-degree after duplicate removal, already
    in output order. The features are built in output order because degree
    one-hots can take gigabytes that a reordering copy would double.
    """
    if mode == "auto":
        mode = "degree" if t.node_labels is None and t.node_attributes is None else "present"
    for wanted, rows in (("labels", t.node_labels), ("attributes", t.node_attributes)):
        if mode == wanted and rows is None:
            raise ValueError(
                f"node_features={wanted!r} but {files.where('node_' + wanted)} does not "
                "exist; use node_features='auto' or 'degree'"
            )
    if mode == "degree":
        if max_degree is None:
            max_degree = min(int(degree.max(initial=0)), DEGREE_CAP)
        return _one_hot(np.minimum(degree, max_degree), max_degree + 1), "degree"
    blocks, kinds = [], []
    if mode in ("labels", "present") and t.node_labels is not None:
        for column in t.node_labels[node_order].T:
            values, index = np.unique(column, return_inverse=True)
            blocks.append(_one_hot(index, values.size))
        kinds.append("labels")
    if mode in ("attributes", "present") and t.node_attributes is not None:
        blocks.append(t.node_attributes[node_order].astype(np.float32))
        kinds.append("attributes")
    return np.concatenate(blocks, axis=1), "+".join(kinds)


class TUDataset(Dataset):
    """A TU graph-classification dataset as a list of DGL graphs with labels.

    Parameters
    ----------
    name : str
        Dataset name, e.g. ``"MUTAG"``; the files are ``root/name/`` or ``root/name.zip``
        (the folder wins when both exist).
    root : str, Path or None
        Directory holding the dataset; default ``default_data_dir() / "tu"``.
    node_features : {"auto", "labels", "attributes", "degree"}
        What ``g.ndata["feat"]`` holds:

        ``"labels"``
            One-hot node labels; a multi-column label file gives one one-hot
            block per column, each over the values seen in the whole dataset.
        ``"attributes"``
            The node attributes.
        ``"degree"``
            One-hot out-degree clipped at ``max_degree`` (as PyG's
            ``OneHotDegree``, used by GraphCL for featureless datasets).
        ``"auto"``
            Labels and attributes concatenated (whichever exist); degree
            features when the dataset has neither (IMDB-*, COLLAB, REDDIT-*).
    max_degree : int or None
        Width - 1 of the degree one-hot. ``None`` uses the dataset's largest
        degree, capped at :data:`DEGREE_CAP`.

    Notes
    -----
    Edges are kept as listed in ``DS_A.txt`` (both directions for undirected
    graphs), minus duplicates (the first copy and its label are kept). No
    self-loops are added and existing ones are kept. Edge labels, if present,
    are in ``g.edata["label"]`` (int64, shape ``(E,)``, or ``(E, k)`` for k columns).
    Nodes and edges of each graph keep their file order.

    Attributes
    ----------
    graphs : list of dgl.DGLGraph
        ``ndata["feat"]`` is float32 of shape ``(num_nodes, feat_dim)``.
    labels : torch.LongTensor of shape ``(N,)``
        Graph labels remapped to ``0..C-1`` in sorted order of the original values.
    label_values : torch.LongTensor of shape ``(C,)``
        Original label value of each class index.
    num_classes, feat_dim : int
    features : str
        The resolved feature kind: ``"labels"``, ``"attributes"``,
        ``"labels+attributes"`` or ``"degree"``.
    path : Path
        The folder or zip the dataset was read from.
    """

    def __init__(
        self,
        name: str,
        root: str | Path | None = None,
        *,
        node_features: str = "auto",
        max_degree: int | None = None,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError(f"name={name!r} must be a non-empty dataset name such as 'MUTAG'")
        if node_features not in NODE_FEATURE_MODES:
            raise ValueError(
                f"node_features={node_features!r} is not supported; use one of {NODE_FEATURE_MODES}"
            )
        if max_degree is not None and (
            isinstance(max_degree, bool) or not isinstance(max_degree, int) or max_degree < 0
        ):
            raise ValueError(f"max_degree={max_degree!r} must be None or an int >= 0")
        files = _TUFiles(name, default_data_dir() / "tu" if root is None else Path(root))
        t = _TUTables.read(files)
        self.name = name
        self.path = files.path

        num_nodes, num_graphs = t.graph_of_node.size, t.graph_labels.size
        _, first_copy = np.unique(t.src * num_nodes + t.dst, return_index=True)
        # The graphs are cut out of one batched graph, which needs nodes and
        # edges grouped by graph; stable sorts keep the file order inside a graph.
        edge_graph = t.graph_of_node[t.src[first_copy]]
        keep = first_copy[np.lexsort((first_copy, edge_graph))]
        node_order = np.argsort(t.graph_of_node, kind="stable")
        new_id = np.empty(num_nodes, dtype=np.int64)
        new_id[node_order] = np.arange(num_nodes)
        src, dst = new_id[t.src[keep]], new_id[t.dst[keep]]

        feat, self.features = _node_features(
            node_features, max_degree, t, node_order, np.bincount(src, minlength=num_nodes), files
        )
        big = dgl.graph((torch.from_numpy(src), torch.from_numpy(dst)), num_nodes=num_nodes)
        big.ndata["feat"] = torch.from_numpy(feat)
        if t.edge_labels is not None:
            edge_label = t.edge_labels[keep]
            big.edata["label"] = torch.from_numpy(
                edge_label[:, 0] if edge_label.shape[1] == 1 else edge_label
            )
        nodes_per_graph = np.bincount(t.graph_of_node, minlength=num_graphs)
        big.set_batch_num_nodes(torch.from_numpy(nodes_per_graph))
        big.set_batch_num_edges(torch.from_numpy(np.bincount(edge_graph, minlength=num_graphs)))
        self.graphs: list[dgl.DGLGraph] = dgl.unbatch(big)

        values, classes = np.unique(t.graph_labels, return_inverse=True)
        self.labels = torch.from_numpy(classes.astype(np.int64))
        self.label_values = torch.from_numpy(values)
        self.num_classes = int(values.size)
        self.feat_dim = int(feat.shape[1])

    def __len__(self) -> int:
        return len(self.graphs)

    def __getitem__(self, index: int) -> tuple[dgl.DGLGraph, torch.Tensor]:
        """Graph ``index`` and its class as an int64 scalar tensor."""
        return self.graphs[index], self.labels[index]

    def __repr__(self) -> str:
        return (
            f"TUDataset(name={self.name!r}, graphs={len(self)}, classes={self.num_classes}, "
            f"feat_dim={self.feat_dim}, features={self.features!r}, path={str(self.path)!r})"
        )


def collate(samples: list[tuple[dgl.DGLGraph, torch.Tensor]]) -> tuple[dgl.DGLGraph, torch.Tensor]:
    """Batch ``(graph, label)`` pairs for a plain :class:`torch.utils.data.DataLoader`.

    Parameters
    ----------
    samples : list of (dgl.DGLGraph, int64 scalar tensor)
        As returned by :meth:`TUDataset.__getitem__`.

    Returns
    -------
    (bg, labels)
        ``bg`` batches the B graphs; ``labels`` is int64 of shape ``(B,)``.
    """
    if not samples:
        raise ValueError("collate() got an empty list of samples; batches need at least one graph")
    graphs, labels = zip(*samples)
    return dgl.batch(list(graphs)), torch.stack(list(labels))
