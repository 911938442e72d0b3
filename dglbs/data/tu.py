"""Graph-classification datasets of the TU Dortmund collection as DGL graphs.

A TU dataset ``DS`` is a set of text files, either in a folder ``DS/`` or in the
original ``DS.zip`` (read in place, never extracted):

``DS_A.txt`` (required, m lines ``src, dst``)
    Directed edge list of 1-based global node ids. Undirected graphs list both
    directions.
``DS_graph_indicator.txt`` (required, n lines)
    1-based graph id of every node; every graph from 1 to N owns at least one node.
``DS_graph_labels.txt`` (required, N lines)
    Integer class label of every graph.
``DS_node_labels.txt``, ``DS_node_attributes.txt`` (optional, n lines)
    Integer node labels / comma-separated float node attributes.
``DS_edge_labels.txt`` (optional, m lines)
    Integer edge labels, aligned with ``DS_A.txt``.

Other files (README, edge or graph attributes) are ignored. Integers must fit in
int64; node attributes must be finite where they are used. Each file is streamed in blocks of :data:`BLOCK_BYTES` and parsed in
vectorised numpy, so a large text (COLLAB's edge list is 362 MB) is never held
whole, and the graphs are cut out of one batched graph with :func:`dgl.unbatch`.

The parsed tables are cached as an uncompressed ``.npz`` in
:func:`default_cache_dir` (never beside the data, which may be read-only or
shared), so a dataset is parsed once: a warm load of COLLAB takes a few seconds.
A cache file is used only if its key matches the files being read (their
resolved path, size and modification time, and :data:`CACHE_FORMAT`); it is
written under a temporary name and renamed into place, so a reader never sees
half a file; an unreadable or inconsistent one is logged, ignored and
overwritten; and cached tables pass the same checks as freshly parsed ones.
``TUDataset(..., cache=False)`` neither reads nor writes a cache.

Loading is logged on ``logging.getLogger("dglbs.data.tu")``; a parse that takes
more than a second shows a tqdm progress bar when stderr is a terminal.
"""
from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
import tempfile
import time
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import dgl
import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from dglbs.data.paths import CACHE_ENV_VAR, cache_dir, default_data_dir

logger = logging.getLogger(__name__)

DEGREE_CAP = 1000
"""Largest degree one-hot width chosen automatically (``max_degree=None``).

Degrees above the cap share the last one-hot slot. The degree features take
``num_nodes * (max_degree + 1) * 4`` bytes, e.g. about 3.4 GB for REDDIT-BINARY
at the cap; pass a smaller ``max_degree`` to shrink them.
"""

NODE_FEATURE_MODES = ("auto", "labels", "attributes", "degree")

CACHE_FORMAT = 1
"""Version of the cache layout and parsing rules; part of the cache key, bump it when either changes."""

BLOCK_BYTES = 4 << 20
"""Bytes of text parsed at a time: the vectorised parse then works on temporaries
of a few MB that the allocator reuses, instead of page-faulting fresh ones of the
file's size."""

# kind -> (dtype, values per line or None for "any, the same on every line", required)
_TABLES: dict[str, tuple[type[np.generic], int | None, bool]] = {
    "A": (np.int64, 2, True),
    "graph_indicator": (np.int64, 1, True),
    "graph_labels": (np.int64, 1, True),
    "node_labels": (np.int64, None, False),
    "node_attributes": (np.float64, None, False),
    "edge_labels": (np.int64, None, False),
}

_INT64 = np.iinfo(np.int64)
_EDGE_BLOCK = 1 << 20

_SEPARATORS = np.zeros(256, dtype=bool)
_SEPARATORS[[ord(c) for c in " \t\r\n,"]] = True


def default_cache_dir() -> Path:
    """Folder of the TU caches: ``tu/`` in :func:`dglbs.data.paths.cache_dir`."""
    return cache_dir() / "tu"


def available_datasets(root: str | Path) -> list[str]:
    """Names of the TU datasets in ``root`` (``NAME.zip`` archives and ``NAME/`` folders),
    sorted; empty when ``root`` is not a directory."""
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted({path.stem if path.suffix == ".zip" else path.name
                   for path in root.iterdir() if path.suffix == ".zip" or path.is_dir()})


class _TUFiles:
    """The ``DS_*.txt`` files of one dataset, in a folder or a zip."""

    def __init__(self, name: str, root: Path) -> None:
        folder, archive = root / name, root / f"{name}.zip"
        self.name = name
        # An extracted folder wins over the zip so that a user can edit a copy.
        if folder.is_dir():
            self.path = folder
            self._members: dict[str, zipfile.ZipInfo] | None = None
        elif archive.is_file():
            self.path = archive
            try:
                with zipfile.ZipFile(archive) as zf:
                    infos = zf.infolist()
            except zipfile.BadZipFile as error:
                raise ValueError(
                    f"{archive}: not a readable zip archive ({error}); it may be truncated by an "
                    f"interrupted download: download it again, or extract its {name}_*.txt files "
                    f"into the folder {folder}"
                ) from None
            # Members are "DS/DS_A.txt" (sometimes "DS//DS_A.txt"): match on the basename.
            self._members = {}
            for info in infos:
                base = info.filename.rsplit("/", 1)[-1]
                if base.startswith(f"{name}_") and base.endswith(".txt"):
                    if base in self._members:
                        raise ValueError(
                            f"{archive}: holds two files named {base!r} "
                            f"({self._members[base].filename!r} and {info.filename!r}); keep one"
                        )
                    self._members[base] = info
        else:
            found = ", ".join(available_datasets(root)) or "none"
            raise FileNotFoundError(
                f"TU dataset {name!r} not found: neither the folder {str(folder)!r} "
                f"nor the archive {str(archive)!r} exists (datasets found there: {found}); "
                "pass root= the directory that holds it (default: <data dir>/tu, see dglbs.data.paths)"
            )

    def where(self, kind: str) -> str:
        """Human-readable location of ``DS_<kind>.txt`` for messages."""
        base = f"{self.name}_{kind}.txt"
        if self._members is None:
            return str(self.path / base)
        member = self._members.get(base)
        return f"{self.path}:{base if member is None else member.filename}"

    def size(self, kind: str) -> int | None:
        """Bytes of text in ``DS_<kind>.txt``; ``None`` if the file is absent."""
        base = f"{self.name}_{kind}.txt"
        if self._members is None:
            file = self.path / base
            return file.stat().st_size if file.is_file() else None
        member = self._members.get(base)
        return None if member is None else member.file_size

    def blocks(self, kind: str) -> Iterator[bytes]:
        """The bytes of ``DS_<kind>.txt`` (which must exist) in blocks of at most :data:`BLOCK_BYTES`."""
        if self._members is None:
            with open(self.path / f"{self.name}_{kind}.txt", "rb") as stream:
                while block := stream.read(BLOCK_BYTES):
                    yield block
            return
        try:
            with zipfile.ZipFile(self.path) as zf, zf.open(self._members[f"{self.name}_{kind}.txt"]) as stream:
                while block := stream.read(BLOCK_BYTES):
                    yield block
        except (zipfile.BadZipFile, zlib.error, EOFError) as error:
            raise ValueError(
                f"{self.where(kind)}: the archive is damaged ({error}); download {self.path} again"
            ) from None

    def cache_key(self) -> str:
        """What identifies the parsed tables: the resolved path, size and modification time of the files."""
        if self._members is None:
            files = [self.path / f"{self.name}_{kind}.txt" for kind in _TABLES]
        else:
            files = [self.path]
        stats = {file.name: [file.stat().st_size, file.stat().st_mtime_ns] for file in files if file.is_file()}
        return json.dumps(
            {"format": CACHE_FORMAT, "path": str(self.path.resolve()), "files": stats}, sort_keys=True
        )


class _TableParser:
    """Parses one comma/whitespace separated numeric table fed in blocks of bytes.

    Blocks may cut lines anywhere. Trailing blank lines are ignored; a blank line
    before the last value, a line with another number of values than ``columns``
    (or, for ``columns=None``, than line 1), a value that is not a number of the
    table's type and an integer outside int64 are errors naming the line.

    Parameters
    ----------
    where : str
        File location used in messages.
    dtype : np.int64 or np.float64
        Type every value must parse as.
    columns : int or None
        Required number of values per line; ``None`` takes it from line 1.
    """

    def __init__(self, where: str, dtype: type[np.generic], columns: int | None) -> None:
        self.where = where
        self.dtype = dtype
        self.columns = columns
        self.columns_from_line_1 = columns is None
        self.next_line = 1  # number of the first line not yet parsed
        self.blank_line: int | None = None  # first of the blank lines that end the text so far
        self.unfinished: list[bytes] = []  # pieces of a line whose end has not been fed yet
        self.parts: list[np.ndarray] = []

    def feed(self, block: bytes) -> None:
        """Parse the whole lines that ``block`` completes; keep its unfinished last line."""
        cut = block.rfind(b"\n") + 1
        if cut == 0:
            self.unfinished.append(block)
            return
        self._parse_lines(b"".join([*self.unfinished, block[:cut]]))
        self.unfinished = [block[cut:]]

    def finish(self) -> np.ndarray:
        """The table, ``(lines, columns)`` of ``dtype``, after the last block was fed."""
        self._parse_lines(b"".join(self.unfinished))
        if not self.parts:
            return np.empty((0, self.columns or 1), dtype=self.dtype)
        return self.parts[0] if len(self.parts) == 1 else np.concatenate(self.parts)

    def _parse_lines(self, text: bytes) -> None:
        first = self.next_line
        self.next_line += text.count(b"\n")
        body = text.rstrip()
        if not body:
            if text and self.blank_line is None:
                self.blank_line = first
            return
        if self.blank_line is not None:
            self._fail(self.blank_line, "is blank; delete the blank lines before the end of the file")
        # Blank lines after the body are errors only if more values follow in a later block.
        if text.count(b"\n", len(body)) >= 2:
            self.blank_line = first + body.count(b"\n") + 1
        self.parts.append(self._parse_body(body, first))

    def _parse_body(self, body: bytes, first: int) -> np.ndarray:
        """Values of ``body`` (whole lines, the first numbered ``first``, no trailing blanks)."""
        buf = np.frombuffer(body, dtype=np.uint8)
        line_ends = np.flatnonzero(buf == ord("\n"))
        is_sep = _SEPARATORS[buf]
        token_starts = np.flatnonzero(~is_sep & np.concatenate(([True], is_sep[:-1])))
        if self.columns is None:
            self.columns = int(np.searchsorted(token_starts, line_ends[0] if line_ends.size else buf.size))
        columns = self.columns
        num_lines = line_ends.size + 1
        # With exactly lines * columns values, every line holds `columns` of them iff each
        # line's first value starts after the previous line's end and its last value
        # starts before its own end: O(lines) instead of counting the values of every line.
        if not (
            columns > 0
            and token_starts.size == num_lines * columns
            and (token_starts[columns::columns] > line_ends).all()
            and (token_starts[columns - 1 : -1 : columns] < line_ends).all()
        ):
            self._fail_on_counts(token_starts, line_ends, first)
        try:
            values = np.fromstring(body.replace(b",", b" "), dtype=self.dtype, sep=" ")
        except ValueError:  # text that does not parse (NumPy >= 2 raises, older ones stop early)
            values = None
        if values is None or values.size != token_starts.size:
            self._check_values(dict(enumerate(body.split(b"\n"), start=first)))
            kind = "integers" if self.dtype == np.int64 else "numbers"
            raise ValueError(f"{self.where}: lines {first} to {first + num_lines - 1} could not be parsed as {kind}")
        if self.dtype == np.int64:
            # fromstring clips integers outside int64 to its bounds, so a value at a bound
            # is checked against the text (it may also be legal).
            clipped = np.flatnonzero((values == _INT64.max) | (values == _INT64.min))
            if clipped.size:
                lines = body.split(b"\n")
                self._check_values({first + i: lines[i] for i in np.unique(clipped // columns).tolist()})
        return values.reshape(num_lines, columns)

    def _fail(self, line: int, problem: str) -> NoReturn:
        raise ValueError(f"{self.where}: line {line} {problem}")

    def _fail_on_counts(self, token_starts: np.ndarray, line_ends: np.ndarray, first: int) -> NoReturn:
        per_line = np.bincount(np.searchsorted(line_ends, token_starts), minlength=line_ends.size + 1)
        line = int(np.flatnonzero((per_line != self.columns) | (per_line == 0))[0])
        if per_line[line] == 0:
            self._fail(first + line, "is blank; delete the blank lines before the end of the file")
        self._fail(
            first + line,
            f"has {per_line[line]} values, expected {self.columns}"
            + (" (as on line 1)" if self.columns_from_line_1 else "")
            + "; every line of this file must hold the same number of values",
        )

    def _check_values(self, lines: dict[int, bytes]) -> None:
        """Raise for the first of ``lines`` (number -> text) holding a value that is not of
        the table's type or, for integers, outside int64."""
        integers = self.dtype == np.int64
        for number, line in lines.items():
            for token in line.replace(b",", b" ").split():
                try:
                    if b"_" in token:  # Python reads "1_000", numpy does not
                        raise ValueError
                    value = int(token) if integers else float(token)
                except ValueError:
                    kind = "integers" if integers else "numbers"
                    self._fail(
                        number, f"({line.decode(errors='replace')!r}) does not hold {kind}; correct or delete it"
                    )
                if integers and not _INT64.min <= value <= _INT64.max:
                    self._fail(
                        number,
                        f"holds {token.decode()}, outside the int64 range [-2**63, 2**63 - 1] that ids "
                        "and labels must fit in; correct the value (class and node labels are usually "
                        "small integers)",
                    )


def _parse_files(files: _TUFiles) -> dict[str, np.ndarray]:
    """Parse every present ``DS_<kind>.txt`` into kind -> 2-D array (dtype and columns of ``_TABLES``)."""
    sizes = {kind: files.size(kind) for kind in _TABLES}
    for kind, (_, _, required) in _TABLES.items():
        if required and sizes[kind] is None:
            raise FileNotFoundError(
                f"TU dataset {files.name!r} at {str(files.path)!r} lacks the required "
                f"file {files.name}_{kind}.txt"
            )
    present = {kind: size for kind, size in sizes.items() if size is not None}
    total = sum(present.values())
    logger.info("%s: parsing %.1f MB of text in %s", files.name, total / 1e6, files.path)
    tables = {}
    with tqdm(
        total=total, desc=f"parsing {files.name}", unit="B", unit_scale=True, disable=None, delay=1.0, leave=False
    ) as bar:
        for kind in present:
            dtype, columns, _ = _TABLES[kind]
            parser = _TableParser(files.where(kind), dtype, columns)
            for block in files.blocks(kind):
                parser.feed(block)
                bar.update(len(block))
            tables[kind] = parser.finish()
    return tables


def _cache_file(files: _TUFiles, cache_dir: Path) -> Path:
    """``cache_dir/DS-<hash of the resolved source path>.npz``: one cache per source."""
    digest = hashlib.sha256(str(files.path.resolve()).encode()).hexdigest()[:16]
    return cache_dir / f"{files.name}-{digest}.npz"


def _read_cache(path: Path, key: str, name: str) -> dict[str, np.ndarray] | None:
    """The tables cached in ``path`` if it exists, is intact and was made with ``key``; else ``None``."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as npz:
            if str(npz["key"]) != key:
                logger.info("%s: the cache %s was made from other files; parsing again", name, path)
                return None
            tables = {kind: npz[kind] for kind in npz.files if kind != "key"}
        for kind, (dtype, columns, required) in _TABLES.items():
            table = tables.get(kind)
            if table is None:
                if required:
                    raise ValueError(f"it lacks the table {kind!r}")
            elif table.dtype != dtype or table.ndim != 2 or columns not in (None, table.shape[1]):
                raise ValueError(f"its table {kind!r} has dtype {table.dtype} and shape {table.shape}")
        if set(tables) - set(_TABLES):
            raise ValueError(f"it holds unknown tables {sorted(set(tables) - set(_TABLES))}")
    # A damaged npz fails in zipfile, zlib or numpy's header parser; any failure means "parse again".
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error) as error:
        logger.warning("%s: ignoring the unreadable cache %s (%s); parsing again and overwriting it", name, path, error)
        return None
    return tables


def _write_cache(path: Path, key: str, tables: dict[str, np.ndarray], name: str) -> None:
    """Store ``tables`` in ``path``, atomically; a failure is logged, never raised."""
    partial = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Written under a unique temporary name and renamed into place, so that a concurrent
        # reader sees the old file or the new one, never half of one.
        handle, partial = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
        with os.fdopen(handle, "wb") as stream:
            np.savez(stream, key=np.array(key), **tables)
        os.replace(partial, path)
        logger.info("%s: cached the parsed tables in %s", name, path)
    except OSError as error:
        logger.warning(
            "%s: could not write the cache %s (%s); the next load parses the text again. Set %s "
            "to a writable folder to cache there",
            name, path, error, CACHE_ENV_VAR,
        )
    finally:
        if partial is not None and os.path.exists(partial):
            os.unlink(partial)


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
    def load(cls, files: _TUFiles, cache_path: Path | None) -> _TUTables:
        """Take the tables from ``cache_path`` if it holds those of ``files``, else parse the
        files and write the cache there (``None``: parse, no cache); check them either way."""
        if cache_path is None:
            return cls.check(_parse_files(files), files)
        key = files.cache_key()
        tables = _read_cache(cache_path, key, files.name)
        if tables is not None:
            logger.info("%s: read the parsed tables from the cache %s", files.name, cache_path)
            return cls.check(tables, files)
        tables = _parse_files(files)
        checked = cls.check(tables, files)
        _write_cache(cache_path, key, tables, files.name)
        return checked

    @classmethod
    def check(cls, tables: dict[str, np.ndarray], files: _TUFiles) -> _TUTables:
        """Check that the parsed ``tables`` (kind -> 2-D array) form a dataset; messages name files and lines."""
        edges = tables["A"]
        graph_of_node = tables["graph_indicator"][:, 0]
        graph_labels = tables["graph_labels"][:, 0]
        node_labels = tables.get("node_labels")
        node_attributes = tables.get("node_attributes")
        edge_labels = tables.get("edge_labels")

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
                f"{graph_of_node.max()}; delete the labels of graphs without nodes"
            )
        empty = np.flatnonzero(np.bincount(graph_of_node, minlength=num_graphs + 1)[1:] == 0)
        if empty.size:
            graph = int(empty[0]) + 1
            raise ValueError(
                f"{indicator}: graph {graph} has no nodes (no line names it; {empty.size} graphs "
                f"are empty), but {labels} gives it a label on line {graph}; number the graphs "
                f"1 to N without gaps and delete the labels of graphs without nodes"
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
        if edges.size and (edges.min() < 1 or edges.max() > num_nodes):
            line = _first_line(((edges < 1) | (edges > num_nodes)).any(axis=1))
            raise ValueError(
                f"{a_file}: line {line} holds edge {tuple(edges[line - 1].tolist())} but node "
                f"ids run from 1 to {num_nodes} (the number of lines of {indicator})"
            )
        src, dst, graph_of_node = edges[:, 0] - 1, edges[:, 1] - 1, graph_of_node - 1
        # In blocks of edges, so that the gathers reuse small temporaries instead of
        # touching fresh memory the size of the edge list (slow for COLLAB).
        for start in range(0, src.size, _EDGE_BLOCK):
            block = slice(start, start + _EDGE_BLOCK)
            bad = graph_of_node[src[block]] != graph_of_node[dst[block]]
            if not bad.any():
                continue
            line = start + _first_line(bad)
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
    node_order: np.ndarray | slice,
    degree: np.ndarray,
    files: _TUFiles,
) -> tuple[np.ndarray, str]:
    """``(n, feat_dim)`` float32 features of the nodes in ``node_order``, and their kind.

    ``node_order`` (int64 ``(n,)``, or ``slice(None)`` for the file order) lists
    file node indices in output order;
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
        bad = ~np.isfinite(t.node_attributes).all(axis=1)
        if bad.any():
            line = _first_line(bad)
            raise ValueError(
                f"{files.where('node_attributes')}: line {line} holds a non-finite value "
                f"({t.node_attributes[line - 1].tolist()}); node attributes must be finite: correct "
                "or impute the value, or pass node_features='labels' or 'degree' to leave the "
                "attributes out"
            )
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
    cache : bool
        Keep the parsed text files in a cache file so that the next load skips
        parsing (see the module docstring); ``False`` parses every time and writes nothing.
    cache_dir : str, Path or None
        Folder of the cache files; default :func:`default_cache_dir`.

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
    indices : torch.LongTensor or None
        For a :meth:`subset`, the original index of each graph; ``None`` for the whole dataset.
    num_source_graphs : int
        Graphs in the dataset as read (a subset's ``len`` is smaller).
    cache_path : Path or None
        The cache file read or written (``None`` with ``cache=False``).
    """

    def __init__(
        self,
        name: str,
        root: str | Path | None = None,
        *,
        node_features: str = "auto",
        max_degree: int | None = None,
        cache: bool = True,
        cache_dir: str | Path | None = None,
    ) -> None:
        start = time.perf_counter()
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
        if not isinstance(cache, bool):
            raise TypeError(f"cache={cache!r} must be True or False")
        files = _TUFiles(name, default_data_dir() / "tu" if root is None else Path(root))
        if cache:
            cache_dir = default_cache_dir() if cache_dir is None else Path(cache_dir)
            self.cache_path: Path | None = _cache_file(files, cache_dir)
        else:
            self.cache_path = None
        t = _TUTables.load(files, self.cache_path)
        self.name = name
        self.path = files.path

        num_nodes, num_graphs = t.graph_of_node.size, t.graph_labels.size
        # The graphs are cut out of one batched graph, which needs nodes and
        # edges grouped by graph; stable sorts keep the file order inside a graph.
        keys = t.src * num_nodes + t.dst
        if (keys[1:] > keys[:-1]).all() and (t.graph_of_node[1:] >= t.graph_of_node[:-1]).all():
            # Nodes listed graph by graph and edges sorted without duplicates (as in
            # COLLAB and REDDIT-*): already grouped, so skip the sorts and copies.
            keep = node_order = slice(None)
            src, dst = t.src, t.dst
            edge_graph = t.graph_of_node[src]
        else:
            _, first_copy = np.unique(keys, return_index=True)
            edge_graph = t.graph_of_node[t.src[first_copy]]
            keep = first_copy[np.lexsort((first_copy, edge_graph))]
            node_order = np.argsort(t.graph_of_node, kind="stable")
            new_id = np.empty(num_nodes, dtype=np.int64)
            new_id[node_order] = np.arange(num_nodes)
            src, dst = new_id[t.src[keep]], new_id[t.dst[keep]]
        del keys

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
        self.indices: torch.Tensor | None = None
        self.num_source_graphs = len(self.graphs)
        logger.info("%r loaded in %.1f s", self, time.perf_counter() - start)

    def subset(self, indices: torch.Tensor | np.ndarray | list[int]) -> TUDataset:
        """The graphs ``indices`` of this dataset, in that order, as a dataset.

        Graphs are shared, not copied. ``indices`` of the result maps its items to
        the original dataset's (also for a subset of a subset).

        Parameters
        ----------
        indices : 1-D integer tensor, array or list of distinct values in [0, len(self))

        Returns
        -------
        TUDataset of ``len(indices)`` graphs with the same classes and features.
        """
        index = torch.as_tensor(indices)
        if index.dim() != 1 or index.numel() == 0 or index.is_floating_point() or index.dtype == torch.bool:
            raise ValueError(f"indices must be a non-empty 1-D sequence of ints, got {indices!r}")
        index = index.long()
        bad = index[(index < 0) | (index >= len(self))]
        if bad.numel():
            raise ValueError(f"indices must be in [0, {len(self)}) for {self.name}, got {bad[:8].tolist()}")
        if index.unique().numel() != index.numel():
            raise ValueError(f"indices must be distinct, got {index.numel() - index.unique().numel()} repeated")
        part = copy.copy(self)
        part.graphs = [self.graphs[i] for i in index.tolist()]
        part.labels = self.labels[index]
        part.indices = index if self.indices is None else self.indices[index]
        return part

    def __len__(self) -> int:
        return len(self.graphs)

    def __getitem__(self, index: int) -> tuple[dgl.DGLGraph, torch.Tensor]:
        """Graph ``index`` and its class as an int64 scalar tensor."""
        return self.graphs[index], self.labels[index]

    def __repr__(self) -> str:
        graphs = f"{len(self)}" if self.indices is None else f"{len(self)} of {self.num_source_graphs}"
        return (
            f"TUDataset(name={self.name!r}, graphs={graphs}, classes={self.num_classes}, "
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
