"""GraphCL's SVM protocol for graph-level embeddings, and mean ± std over runs.

GraphCL (You et al., 2020; ``unsupervised_TU/evaluate_embedding.py``) and the
BatchSampler paper (Table 3, "LIBSVM classifier") score frozen graph embeddings by
10-fold stratified cross-validation of an SVM whose ``C`` is chosen on each training
split by an inner 5-fold grid search. GraphCL uses ``sklearn.svm.SVC()`` (RBF kernel)
on the raw embeddings, so :func:`svm_cross_val` does the same by default: no
standardisation, ``kernel`` selectable (MVGRL's own script uses a linear SVM).
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.svm import SVC

DEFAULT_CS = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0, 1000.0)
"""GraphCL's grid of SVM regularisation constants."""


def _as_numpy(values: np.ndarray | torch.Tensor | Sequence) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        return values.detach().cpu().numpy()
    return np.asarray(values)


def _check_int(name: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")


def svm_cross_val(
    embeddings: np.ndarray | torch.Tensor,
    labels: np.ndarray | torch.Tensor | Sequence,
    *,
    folds: int = 10,
    Cs: Sequence[float] = DEFAULT_CS,
    seed: int = 0,
    inner_folds: int = 5,
    n_jobs: int | None = 1,
    kernel: str = "rbf",
) -> dict[str, float | list[float]]:
    """Stratified ``folds``-fold accuracy of an SVM with ``C`` tuned by inner grid search.

    For every outer split, ``GridSearchCV(SVC(kernel=kernel), {"C": Cs}, cv=inner_folds)``
    (inner splits stratified, unshuffled, as GraphCL) picks ``C`` on the training part,
    refits on all of it and is scored on the held-out part.

    Parameters
    ----------
    embeddings : ndarray or Tensor, shape ``(N, d)``
        Finite float features, used as they are (no scaling).
    labels : ndarray, Tensor or sequence, shape ``(N,)``
        Class of every row, any hashable values (encoded like ``LabelEncoder``).
    folds : int
        Outer stratified folds, shuffled with ``seed`` (at least 2).
    Cs : sequence of float
        Positive values of ``C`` to search.
    seed : int
        Seed of the outer shuffle; the SVMs themselves are deterministic.
    inner_folds : int
        Folds of the inner grid search (at least 2).
    n_jobs : int or None
        Parallel jobs of the grid search (``None`` = 1, ``-1`` = all cores).
    kernel : str
        ``SVC`` kernel; GraphCL uses the default ``"rbf"``.

    Returns
    -------
    dict
        ``mean`` and ``std`` (population std, as GraphCL) of the ``fold_accuracies``
        (list of ``folds`` floats in ``[0, 1]``), and ``best_C``, the chosen ``C`` per fold.

    Raises
    ------
    ValueError
        On mismatched lengths, non-finite or non-2-D embeddings, fewer than two classes,
        or a class too small to appear in every outer fold and every inner training fold.
    """
    x = _as_numpy(embeddings)
    y = _as_numpy(labels)
    if x.ndim != 2 or not np.issubdtype(x.dtype, np.number):
        raise ValueError(f"embeddings must be a numeric (N, d) array, got dtype {x.dtype} and shape {x.shape}")
    if y.ndim != 1 or len(y) != len(x):
        raise ValueError(
            f"labels must have shape (N,) = ({len(x)},) to match embeddings {x.shape}, got shape {y.shape}"
        )
    if not np.isfinite(x).all():
        raise ValueError("embeddings contain NaN or infinite values; check the encoder output")
    _check_int("folds", folds, 2)
    _check_int("inner_folds", inner_folds, 2)
    Cs = list(Cs)
    if not Cs or not all(isinstance(c, (int, float)) and not isinstance(c, bool) and c > 0 for c in Cs):
        raise ValueError(f"Cs must be a non-empty sequence of positive numbers, got {Cs!r}")
    classes, y = np.unique(y, return_inverse=True)
    counts = np.bincount(y)
    if len(classes) < 2:
        raise ValueError(f"labels need at least 2 classes for classification, got only {classes.tolist()}")
    # A class of n samples is in every outer test fold iff n >= folds, and keeps
    # n - ceil(n / folds) >= inner_folds training samples iff n >= inner_folds * folds / (folds - 1).
    needed = max(folds, math.ceil(inner_folds * folds / (folds - 1)))
    if counts.min() < needed:
        small = {classes[i].item(): int(counts[i]) for i in np.flatnonzero(counts < needed)}
        raise ValueError(
            f"every class needs at least {needed} samples for folds={folds} and inner_folds={inner_folds}, "
            f"but these classes have fewer (class: count): {small}; lower folds / inner_folds or add samples"
        )

    outer = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    accuracies, best_cs = [], []
    for train, test in outer.split(x, y):
        search = GridSearchCV(SVC(kernel=kernel), {"C": Cs}, cv=inner_folds, scoring="accuracy", n_jobs=n_jobs)
        search.fit(x[train], y[train])
        accuracies.append(float(search.score(x[test], y[test])))
        best_cs.append(float(search.best_params_["C"]))
    mean, std = summarize(accuracies)
    return {"mean": mean, "std": std, "fold_accuracies": accuracies, "best_C": best_cs}


def summarize(values: Sequence[float] | np.ndarray | torch.Tensor) -> tuple[float, float]:
    """Mean and population standard deviation, e.g. of accuracies over seeds.

    Parameters
    ----------
    values : sequence, ndarray or Tensor of shape ``(R,)``
        At least one finite number.

    Returns
    -------
    (mean, std) : pair of float
        ``std`` uses ``ddof=0`` (``np.std``), as GraphCL reports.
    """
    array = _as_numpy(values).astype(float)
    if array.ndim != 1 or len(array) == 0 or not np.isfinite(array).all():
        raise ValueError(f"values must be a non-empty 1-D sequence of finite numbers, got {values!r}")
    return float(array.mean()), float(array.std())
