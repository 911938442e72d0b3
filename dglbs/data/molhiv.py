"""ogbg-molhiv rebuilt offline from the MoleculeNet HIV CSV, as DGL graphs.

The CSV ``<root>/molecules/HIV.csv`` has one molecule a row with the columns
``smiles,activity,HIV_active`` (``activity`` is the screening outcome CI/CM/CA
that ``HIV_active`` summarises; it is not used). Every SMILES is converted with
:func:`ogb.utils.smiles2graph`, so node and edge features are the integer OGB
features that ``ogb.graphproppred.mol_encoder.AtomEncoder`` /``BondEncoder``
embed. RDKit conversion takes a while (about 45 s for the 41,127 molecules), so
the converted graphs and their scaffolds are cached in a user cache directory,
keyed by the CSV's size, modification time and SHA-256 and by the OGB and RDKit
versions; loading the cache takes a fraction of a second.

Molecules RDKit cannot parse are skipped with a warning. Recent RDKit releases
reject 7 of the 41,127 HIV molecules (Al, B and Ge atoms with hypervalent
explicit valences) that the RDKit used for OGB's ogbg-molhiv accepted, so the
dataset holds 41,120 graphs and its scaffold split is close to, but not
identical with, OGB's official split.
"""
from __future__ import annotations

import hashlib
import io
import logging
import operator
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import dgl
import numpy as np
import ogb
import pandas as pd
import rdkit
import torch
from ogb.graphproppred import Evaluator
from ogb.utils import smiles2graph
from ogb.utils.features import get_atom_feature_dims
from rdkit import Chem, rdBase
from rdkit.Chem.Scaffolds import MurckoScaffold
from torch.utils.data import Dataset
from tqdm import tqdm

from dglbs._checks import check_int, check_probability
from dglbs.data.paths import cache_dir, default_data_dir

NODE_FEATURE_MODES = ("ogb", "onehot")
CSV_COLUMNS = ("smiles", "HIV_active")
CACHE_FORMAT = 1
"""Version of the cache file layout; part of the cache key, bump it when the layout changes."""

_REPORTED_FAILURES = 5

logger = logging.getLogger(__name__)


def default_cache_dir() -> Path:
    """Folder of the converted-molecule caches: :func:`dglbs.data.paths.cache_dir`."""
    return cache_dir()


def _read_csv(path: Path, limit: int | None) -> tuple[list[str], torch.Tensor, str]:
    """SMILES, labels ``(n,) int64`` and cache key of the first ``limit`` rows of ``path``."""
    if not path.is_file():
        raise FileNotFoundError(
            f"HIV CSV {str(path)!r} not found; pass root= the data directory that holds "
            "molecules/HIV.csv (default: dglbs.data.paths.default_data_dir())"
        )
    content = path.read_bytes()
    stat = path.stat()
    key_text = "|".join(
        [
            f"format {CACHE_FORMAT}",
            f"size {stat.st_size}",
            f"mtime {stat.st_mtime_ns}",
            f"sha256 {hashlib.sha256(content).hexdigest()}",
            f"limit {limit}",
            f"ogb {ogb.__version__}",
            f"rdkit {rdkit.__version__}",
        ]
    )
    key = hashlib.sha256(key_text.encode()).hexdigest()[:24]

    # keep_default_na=False keeps an empty SMILES as "" (reported as unparsable) and
    # makes an empty label a string, which the integer check below rejects.
    try:
        table = pd.read_csv(
            io.BytesIO(content), nrows=limit, keep_default_na=False, dtype={"smiles": str}
        )
    except (pd.errors.EmptyDataError, pd.errors.ParserError) as err:
        raise ValueError(
            f"{path}: not a readable CSV ({err}); expected the MoleculeNet HIV CSV"
        ) from err
    missing = [column for column in CSV_COLUMNS if column not in table.columns]
    if missing:
        raise ValueError(
            f"{path}: missing column(s) {missing}; found {list(table.columns)}. The HIV CSV "
            "needs a header with 'smiles' and 'HIV_active' (MoleculeNet layout)"
        )
    if len(table) == 0:
        raise ValueError(f"{path}: holds no molecule rows below its header")
    # to_numeric turns anything that is not a number (e.g. an empty cell) into NaN.
    active = pd.to_numeric(table["HIV_active"], errors="coerce")
    invalid = ~active.isin([0, 1]).to_numpy()
    if invalid.any():
        row = int(np.flatnonzero(invalid)[0])
        raise ValueError(
            f"{path}: HIV_active must be 0 or 1 in every row, got "
            f"{table['HIV_active'].iloc[row]!r} in data row {row} (line {row + 2}); "
            "fix or drop that row"
        )
    return table["smiles"].tolist(), torch.tensor(active.to_numpy(np.int64)), key


def _convert(smiles: Sequence[str], source: Path) -> dict[str, torch.Tensor | list[str]]:
    """Convert SMILES to the compact concatenated storage that the cache file holds.

    Returns
    -------
    dict with
        ``rows`` ``(N,) int64``: index into ``smiles`` of each converted molecule;
        ``num_nodes``/``num_edges`` ``(N,) int64``; ``node_feat`` ``(sum nodes, 9) uint8``;
        ``edge_feat`` ``(sum edges, 3) uint8``; ``edge_index`` ``(2, sum edges) int32``
        with node ids local to each molecule; ``scaffolds`` list of N str (see
        :func:`murcko_scaffolds`; cached because they take about as long as the graphs).
        OGB feature values are below 119, so uint8 storage is lossless and eight
        times smaller than int64.
    """
    rows, graphs, scaffolds = [], [], []
    # RDKit logs every rejected molecule to stderr; the caller reports them in one warning.
    with rdBase.BlockLogs():
        # A progress bar on a terminal only: the first conversion takes about a minute.
        for row, text in enumerate(tqdm(smiles, desc="converting SMILES", unit="molecule", leave=False,
                                        disable=None)):
            # smiles2graph cannot signal a bad SMILES (it fails inside with an
            # AttributeError), so parse it once here first.
            mol = Chem.MolFromSmiles(text)
            if mol is None or mol.GetNumAtoms() == 0:
                continue
            rows.append(row)
            graphs.append(smiles2graph(text))
            scaffolds.append(_murcko_scaffold(mol))
    if not graphs:
        raise ValueError(
            f"{source}: RDKit {rdkit.__version__} cannot parse any of its {len(smiles)} SMILES "
            f"(first: {smiles[0]!r}); check the smiles column"
        )
    return {
        "rows": torch.tensor(rows, dtype=torch.int64),
        "scaffolds": scaffolds,
        "num_nodes": torch.tensor([g["num_nodes"] for g in graphs], dtype=torch.int64),
        "num_edges": torch.tensor([g["edge_index"].shape[1] for g in graphs], dtype=torch.int64),
        "node_feat": torch.from_numpy(
            np.concatenate([g["node_feat"] for g in graphs]).astype(np.uint8)
        ),
        "edge_feat": torch.from_numpy(
            np.concatenate([g["edge_feat"] for g in graphs]).astype(np.uint8)
        ),
        "edge_index": torch.from_numpy(
            np.concatenate([g["edge_index"] for g in graphs], axis=1).astype(np.int32)
        ),
    }


def _load_or_convert(
    cache_path: Path, smiles: Sequence[str], source: Path
) -> dict[str, torch.Tensor | list[str]]:
    if cache_path.is_file():
        try:
            store = torch.load(cache_path, weights_only=True)
        except Exception as err:  # torch.load raises many types for a damaged file
            raise RuntimeError(
                f"cache file {str(cache_path)!r} is unreadable ({err}); delete it to rebuild it"
            ) from err
        logger.debug("molhiv: %d graphs from the cache %s", len(store["rows"]), cache_path)
        return store
    logger.info("molhiv: converting %d SMILES of %s (cached in %s afterwards)", len(smiles), source, cache_path)
    store = _convert(smiles, source)
    cache_path.parent.mkdir(parents=True, exist_ok=True)
    # Write then rename so that a crash or a concurrent reader never sees half a file.
    partial = cache_path.with_name(f"{cache_path.name}.{os.getpid()}.partial")
    torch.save(store, partial)
    os.replace(partial, cache_path)
    return store


def _one_hot_atoms(atoms: torch.Tensor) -> torch.Tensor:
    """``(n, 9) int64`` OGB atom features to ``(n, sum(get_atom_feature_dims())) float32``."""
    dims = torch.tensor(get_atom_feature_dims())
    offsets = torch.cumsum(dims, 0) - dims
    out = torch.zeros(atoms.shape[0], int(dims.sum()), dtype=torch.float32)
    return out.scatter_(1, atoms + offsets, 1.0)


class MolHIVDataset(Dataset):
    """ogbg-molhiv: HIV-replication inhibition of 41k molecules (binary graph classification).

    ``dataset[i]`` is ``(graph, label)``: a :class:`dgl.DGLGraph` with one node per
    heavy atom and two directed edges per bond, and an int64 scalar label (1 = active).
    The pairs batch with :class:`dgl.dataloading.GraphDataLoader`'s default collate
    or :func:`dglbs.data.tu.collate`.

    Parameters
    ----------
    root : str or Path, optional
        Data directory holding ``molecules/HIV.csv``; default
        :func:`dglbs.data.paths.default_data_dir`.
    cache_dir : str or Path, optional
        Where the converted graphs are cached; default :func:`default_cache_dir`.
        A changed CSV gets a new cache file; stale ones are never read and may be deleted.
    limit : int, optional
        Use only the first ``limit`` CSV rows (for tests and examples).
    node_features : {"ogb", "onehot"}
        ``"ogb"``: ``ndata["feat"]`` is the ``(num_nodes, 9) int64`` OGB atom
        features, to embed with ``ogb.graphproppred.mol_encoder.AtomEncoder(emb_dim)``.
        ``"onehot"``: ``ndata["feat"]`` is the ``(num_nodes, 174) float32``
        concatenation of one one-hot block per OGB atom feature column (widths
        ``ogb.utils.features.get_atom_feature_dims()``), for encoders that take
        float features. Either way ``edata["feat"]`` is the ``(num_edges, 3) int64``
        OGB bond features (``BondEncoder``), and ``node_feature_dim`` gives the width.

    Attributes
    ----------
    smiles : list of str
        SMILES of each graph.
    labels : Tensor, ``(N,) int64``
        ``HIV_active`` of each graph.
    rows : Tensor, ``(N,) int64``
        0-based CSV data row of each graph (rows differ from graph ids after a skipped molecule).
    failed_rows : Tensor, ``(F,) int64``
        CSV data rows whose SMILES RDKit could not parse (skipped, with a warning).
    node_feature_dim : int
        Width of ``ndata["feat"]``: 9 for ``"ogb"``, 174 for ``"onehot"``.
    csv_path, cache_path : Path
        The CSV read and the cache file used.
    """

    def __init__(
        self,
        root: str | Path | None = None,
        *,
        cache_dir: str | Path | None = None,
        limit: int | None = None,
        node_features: str = "ogb",
    ) -> None:
        if limit is not None:
            limit = check_int("limit", limit, low=1)
        if node_features not in NODE_FEATURE_MODES:
            raise ValueError(
                f"node_features must be one of {NODE_FEATURE_MODES}, got {node_features!r}"
            )
        root = default_data_dir() if root is None else Path(root)
        cache_dir = default_cache_dir() if cache_dir is None else Path(cache_dir)
        self.node_features = node_features
        self.csv_path = root / "molecules" / "HIV.csv"
        smiles, labels, key = _read_csv(self.csv_path, limit)
        self.cache_path = cache_dir / f"molhiv-{key}.pt"
        store = _load_or_convert(self.cache_path, smiles, self.csv_path)

        self.rows = store["rows"]
        kept = torch.zeros(len(smiles), dtype=torch.bool)
        kept[self.rows] = True
        self.failed_rows = torch.nonzero(~kept).flatten()
        if self.failed_rows.numel():
            examples = ", ".join(
                f"row {row} {smiles[row]!r}"
                for row in self.failed_rows[:_REPORTED_FAILURES].tolist()
            )
            warnings.warn(
                f"{self.csv_path}: skipped {self.failed_rows.numel()} of {len(smiles)} molecules "
                f"that RDKit {rdkit.__version__} cannot parse (first: {examples})",
                stacklevel=2,
            )
        self.smiles = [smiles[row] for row in self.rows.tolist()]
        self.labels = labels[self.rows]
        self.node_feature_dim = 9 if node_features == "ogb" else sum(get_atom_feature_dims())

        self._node_feat = store["node_feat"]
        self._edge_feat = store["edge_feat"]
        self._edge_index = store["edge_index"]
        # Python lists: __getitem__ slices with plain ints, much faster than tensor indexing.
        self._node_ptr = [0, *torch.cumsum(store["num_nodes"], 0).tolist()]
        self._edge_ptr = [0, *torch.cumsum(store["num_edges"], 0).tolist()]
        self._scaffolds = store["scaffolds"]

    def __len__(self) -> int:
        return len(self.smiles)

    def __getitem__(self, index: int) -> tuple[dgl.DGLGraph, torch.Tensor]:
        """Graph ``index`` (built from the compact storage on each call), int64 scalar label."""
        index = operator.index(index)
        if not -len(self) <= index < len(self):
            raise IndexError(f"graph index {index} out of range for {len(self)} graphs")
        index %= len(self)
        n0, n1 = self._node_ptr[index], self._node_ptr[index + 1]
        e0, e1 = self._edge_ptr[index], self._edge_ptr[index + 1]
        edges = self._edge_index[:, e0:e1].long()
        graph = dgl.graph((edges[0], edges[1]), num_nodes=n1 - n0)
        atoms = self._node_feat[n0:n1].long()
        graph.ndata["feat"] = atoms if self.node_features == "ogb" else _one_hot_atoms(atoms)
        graph.edata["feat"] = self._edge_feat[e0:e1].long()
        return graph, self.labels[index]

    def get_idx_split(
        self, frac_train: float = 0.8, frac_valid: float = 0.1, frac_test: float = 0.1
    ) -> dict[str, torch.Tensor]:
        """Scaffold split of the graph ids, as :func:`scaffold_split`, from cached scaffolds."""
        return _split_scaffolds(self._scaffolds, frac_train, frac_valid, frac_test)

    def __repr__(self) -> str:
        return (
            f"MolHIVDataset(num_graphs={len(self)}, num_active={int(self.labels.sum())}, "
            f"node_features={self.node_features!r}, skipped={self.failed_rows.numel()})"
        )


def murcko_scaffolds(smiles: Sequence[str]) -> list[str]:
    """Bemis–Murcko scaffold SMILES (chirality kept) of each molecule; ``""`` for acyclic ones.

    Raises
    ------
    ValueError
        If RDKit cannot parse one of the SMILES.
    """
    scaffolds = []
    with rdBase.BlockLogs():
        for position, text in enumerate(smiles):
            mol = Chem.MolFromSmiles(text)
            if mol is None:
                raise ValueError(
                    f"smiles[{position}] = {text!r} cannot be parsed by RDKit; "
                    "drop it before splitting"
                )
            scaffolds.append(_murcko_scaffold(mol))
    return scaffolds


def _murcko_scaffold(mol: Chem.Mol) -> str:
    return MurckoScaffold.MurckoScaffoldSmiles(mol=mol, includeChirality=True)


def scaffold_split(
    smiles: Sequence[str], frac_train: float = 0.8, frac_valid: float = 0.1, frac_test: float = 0.1
) -> dict[str, torch.Tensor]:
    """Deterministic Bemis–Murcko scaffold split, the procedure behind OGB's molecule splits.

    Molecules are grouped by scaffold (:func:`murcko_scaffolds`); groups are taken
    largest first (equal sizes: the group whose first molecule comes later goes
    first, as in the reference MoleculeNet/OGB code) and each whole group goes to
    train while train stays within ``frac_train * n``, else to valid while train +
    valid stay within ``(frac_train + frac_valid) * n``, else to test. Big common
    scaffolds thus land in train and rare ones in valid/test.

    Parameters
    ----------
    smiles : sequence of str, length n
    frac_train, frac_valid, frac_test : float
        Fractions in ``[0, 1]`` summing to 1.

    Returns
    -------
    dict with keys ``"train"``, ``"valid"``, ``"test"``
        Sorted ``int64`` positions into ``smiles``; together a partition of ``range(n)``.
    """
    return _split_scaffolds(murcko_scaffolds(smiles), frac_train, frac_valid, frac_test)


def _split_scaffolds(
    scaffolds: list[str], frac_train: float, frac_valid: float, frac_test: float
) -> dict[str, torch.Tensor]:
    fractions = [
        check_probability("frac_train", frac_train),
        check_probability("frac_valid", frac_valid),
        check_probability("frac_test", frac_test),
    ]
    if abs(sum(fractions) - 1.0) > 1e-6:
        raise ValueError(
            f"frac_train + frac_valid + frac_test must be 1, got {frac_train} + {frac_valid} + "
            f"{frac_test} = {sum(fractions)}"
        )
    if not scaffolds:
        raise ValueError("cannot split an empty list of molecules")
    n = len(scaffolds)
    _, first, group = np.unique(np.asarray(scaffolds), return_index=True, return_inverse=True)
    size = np.bincount(group)
    # lexsort sorts by its last key first: ascending (size, first), reversed.
    order = np.lexsort((first, size))[::-1]
    train_cut, valid_cut = fractions[0] * n, (fractions[0] + fractions[1]) * n
    part_of_group = np.empty(len(size), dtype=np.int64)
    num_train = num_valid = 0
    # Greedy over groups, not molecules: each decision depends on the fills so far.
    for g in order.tolist():
        if num_train + size[g] <= train_cut:
            part_of_group[g] = 0
            num_train += size[g]
        elif num_train + num_valid + size[g] <= valid_cut:
            part_of_group[g] = 1
            num_valid += size[g]
        else:
            part_of_group[g] = 2
    part = torch.from_numpy(part_of_group[group])
    names = ("train", "valid", "test")
    return {name: torch.nonzero(part == k).flatten() for k, name in enumerate(names)}


def evaluate_rocauc(y_true: torch.Tensor | np.ndarray, y_score: torch.Tensor | np.ndarray) -> float:
    """ROC-AUC with OGB's ``Evaluator("ogbg-molhiv")`` (the leaderboard metric).

    The evaluator works offline: it reads ``master.csv`` shipped inside the ogb
    package and computes :func:`sklearn.metrics.roc_auc_score`.

    Parameters
    ----------
    y_true : Tensor or ndarray, ``(N,)`` or ``(N, 1)``
        Binary labels, 0 or 1, both present.
    y_score : Tensor or ndarray, same shape
        Scores, higher = more likely active (logits or probabilities).

    Returns
    -------
    float in ``[0, 1]``
    """
    truth, score = _as_column("y_true", y_true), _as_column("y_score", y_score)
    if truth.shape != score.shape:
        raise ValueError(
            f"y_true and y_score must hold one value per graph, got {truth.shape[0]} labels "
            f"and {score.shape[0]} scores"
        )
    if not bool(((truth == 0) | (truth == 1)).all()):
        raise ValueError(f"y_true must hold only 0 and 1, got values {truth.unique().tolist()}")
    if truth.unique().numel() < 2:
        raise ValueError(
            "y_true must contain both classes (0 and 1); ROC-AUC is undefined otherwise"
        )
    inputs = {"y_true": truth.numpy(), "y_pred": score.double().numpy()}
    return float(Evaluator("ogbg-molhiv").eval(inputs)["rocauc"])


def _as_column(name: str, values: torch.Tensor | np.ndarray) -> torch.Tensor:
    """``values`` of shape ``(N,)`` or ``(N, 1)`` as a CPU tensor of shape ``(N, 1)``."""
    tensor = torch.as_tensor(values).detach().cpu()
    if tensor.dim() not in (1, 2) or (tensor.dim() == 2 and tensor.shape[1] != 1):
        raise ValueError(f"{name} must have shape (N,) or (N, 1), got {tuple(tensor.shape)}")
    return tensor.reshape(-1, 1)
