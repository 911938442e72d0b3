"""GraphCL's SVM protocol for graph-level embeddings, and mean ± std over runs.

GraphCL (You et al., 2020; ``unsupervised_TU/evaluate_embedding.py``) and the
BatchSampler paper (Table 3, "LIBSVM classifier") score frozen graph embeddings by
10-fold stratified cross-validation of an SVM whose ``C`` is chosen on each training
split by an inner 5-fold grid search. GraphCL uses ``sklearn.svm.SVC()`` (RBF kernel)
on the raw embeddings, so :func:`svm_cross_val` does the same by default: no
standardisation, ``kernel`` selectable (MVGRL's own script uses a linear SVM).

:func:`svm_cross_val` gives the results of ``GridSearchCV(SVC(kernel=kernel), {"C": Cs})``
on every outer split (tested to the last bit on small data), faster:

- The pairwise quantity every kernel is built from, squared distances (RBF) or dot
  products (the others), is computed once for all N embeddings with one matrix
  product, and every fit gets its kernel matrix cut out of it
  (``SVC(kernel="precomputed")``), with the ``gamma`` that ``gamma="scale"`` would
  compute on that fit's training rows. libsvm then no longer evaluates kernels in
  O(d) each, and one kernel matrix serves all ``C`` of a split. Above
  :data:`PRECOMPUTED_MAX_SAMPLES` embeddings libsvm computes the kernels, as before.
- The (outer fold, inner fold) cells of the grid and the refits run in parallel
  threads (libsvm releases the GIL).
- Progress: a tqdm bar over the fits (on a terminal by default) and a log line per
  outer fold on ``logging.getLogger("dglbs.evaluation.svm")``.
"""
from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence

import numpy as np
import torch
from joblib import Parallel, delayed
from sklearn.model_selection import StratifiedKFold
from sklearn.svm import SVC
from tqdm.auto import tqdm

logger = logging.getLogger(__name__)

DEFAULT_CS = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0, 1000.0)
"""GraphCL's grid of SVM regularisation constants."""

KERNELS = ("rbf", "linear", "poly", "sigmoid")
"""``SVC`` kernels :func:`svm_cross_val` supports, with SVC's defaults
(``gamma="scale"``, ``degree=3``, ``coef0=0``)."""

PRECOMPUTED_MAX_SAMPLES = 10_000
"""Largest N whose kernels are precomputed: the ``(N, N)`` float64 pairwise matrix then
takes at most 800 MB and each thread's kernel matrix about half of that. Above it,
libsvm evaluates the kernels itself (same results, slower, no N^2 memory)."""


def _as_numpy(values: np.ndarray | torch.Tensor | Sequence) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        return values.detach().cpu().numpy()
    return np.asarray(values)


def _check_int(name: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")


def _pairwise(x: np.ndarray, kernel: str) -> np.ndarray:
    """``(N, N)`` float64 squared Euclidean distances for ``"rbf"``, else dot products ``x @ x.T``."""
    products = x @ x.T
    if kernel != "rbf":
        return products
    norms = products.diagonal().copy()  # so that every point is at distance 0 from itself
    products *= -2.0
    products += norms[:, None]
    products += norms[None, :]
    return np.maximum(products, 0.0, out=products)  # rounding can leave tiny negatives


def _kernel(pairwise: np.ndarray, rows: np.ndarray, columns: np.ndarray, kernel: str, gamma: float) -> np.ndarray:
    """``(len(rows), len(columns))`` float64 SVC kernel matrix, as libsvm defines it."""
    block = pairwise[np.ix_(rows, columns)]  # a copy, transformed in place
    if kernel == "rbf":
        block *= -gamma
        np.exp(block, out=block)
    elif kernel == "poly":
        block *= gamma
        np.power(block, 3, out=block)
    elif kernel == "sigmoid":
        block *= gamma
        np.tanh(block, out=block)
    return block


def _accuracies(
    pairwise: np.ndarray | None, x: np.ndarray, y: np.ndarray, train: np.ndarray, test: np.ndarray,
    kernel: str, Cs: Sequence[float],
) -> list[float]:
    """Accuracy on rows ``test`` of ``SVC(kernel, C)`` fitted on rows ``train``, for every ``C``
    (on kernels cut out of ``pairwise``, or computed by libsvm if it is ``None``)."""
    if pairwise is None:
        train_input, test_input, svc_kernel = x[train], x[test], kernel
    else:
        # SVC(gamma="scale") on the training rows: 1 / (d * variance of all their values).
        variance = x[train].var()
        gamma = 1.0 / (x.shape[1] * variance) if variance != 0 else 1.0
        train_input = _kernel(pairwise, train, train, kernel, gamma)
        test_input = _kernel(pairwise, test, train, kernel, gamma)
        svc_kernel = "precomputed"
    accuracies = []
    for C in Cs:
        model = SVC(kernel=svc_kernel, C=C).fit(train_input, y[train])
        accuracies.append(float(np.mean(model.predict(test_input) == y[test])))
    return accuracies


def svm_cross_val(
    embeddings: np.ndarray | torch.Tensor,
    labels: np.ndarray | torch.Tensor | Sequence,
    *,
    folds: int = 10,
    Cs: Sequence[float] = DEFAULT_CS,
    seed: int = 0,
    inner_folds: int = 5,
    n_jobs: int | None = -1,
    kernel: str = "rbf",
    progress: bool | None = None,
) -> dict[str, float | list[float]]:
    """Stratified ``folds``-fold accuracy of an SVM with ``C`` tuned by inner grid search.

    For every outer split, the ``C`` with the best mean accuracy over ``inner_folds``
    stratified, unshuffled splits of the training part (the first on ties) is refitted
    on all of it and scored on the held-out part: the results of
    ``GridSearchCV(SVC(kernel=kernel), {"C": Cs}, cv=inner_folds)``, as GraphCL, computed
    faster (see the module docstring).

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
        Threads fitting SVMs in parallel: ``-1`` (default) one per available core,
        ``None`` or 1 none, as in joblib.
    kernel : {"rbf", "linear", "poly", "sigmoid"}
        ``SVC`` kernel; GraphCL uses the default ``"rbf"``.
    progress : bool or None
        Show a progress bar over the fits; ``None`` shows it on a terminal only.

    Returns
    -------
    dict
        ``mean`` and ``std`` (population std, as GraphCL) of the ``fold_accuracies``
        (list of ``folds`` floats in ``[0, 1]``), ``best_C``, the chosen ``C`` per fold,
        and ``validation``: the inner cross-validation accuracy of the chosen ``C``,
        averaged over the outer folds. It is computed from the outer training folds
        only, so settings chosen by it never look at the reported test folds.

    Raises
    ------
    ValueError
        On mismatched lengths, non-finite or non-2-D embeddings, fewer than two classes,
        a class too small to appear in every outer fold and every inner training fold,
        or an unsupported kernel.
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
    if kernel not in KERNELS:
        raise ValueError(f"kernel must be one of {KERNELS}, got {kernel!r}")
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

    start = time.perf_counter()
    x = x.astype(np.float64)  # what SVC fits on
    pairwise = _pairwise(x, kernel) if len(x) <= PRECOMPUTED_MAX_SAMPLES else None
    outer = list(StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed).split(x, y))
    inner = StratifiedKFold(n_splits=inner_folds)
    cells = [
        (train[inner_train], train[inner_test])
        for train, _ in outer
        for inner_train, inner_test in inner.split(train, y[train])
    ]
    with (
        tqdm(total=len(cells) * len(Cs) + folds, desc="SVM fits", unit="fit",
             disable=None if progress is None else not progress, leave=False) as bar,
        Parallel(n_jobs=n_jobs, backend="threading", return_as="generator") as parallel,
    ):
        # Validation accuracies of every cell, (folds, inner_folds, len(Cs)); cells come
        # back in order, so an outer fold's choice of C is logged as soon as it is made.
        grid = np.empty((folds, inner_folds, len(Cs)))
        cell_results = parallel(delayed(_accuracies)(pairwise, x, y, train, test, kernel, Cs) for train, test in cells)
        best, validation = [], []
        for cell, cell_accuracies in enumerate(cell_results):
            fold, inner_fold = divmod(cell, inner_folds)
            grid[fold, inner_fold] = cell_accuracies
            bar.update(len(Cs))
            if inner_fold == inner_folds - 1:
                # As GridSearchCV: the mean over inner folds of a (Cs, inner_folds) array; first best.
                means = np.average(np.ascontiguousarray(grid[fold].T), axis=1)
                best.append(int(np.argmax(means)))
                validation.append(float(means[best[-1]]))
                logger.info(
                    "SVM fold %d/%d: C=%g chosen (inner accuracy %.4f), %.1f s so far",
                    fold + 1, folds, Cs[best[-1]], means[best[-1]], time.perf_counter() - start,
                )
        accuracies = []
        for [accuracy] in parallel(
            delayed(_accuracies)(pairwise, x, y, train, test, kernel, [Cs[b]]) for (train, test), b in zip(outer, best)
        ):
            accuracies.append(accuracy)
            bar.update(1)
    mean, std = summarize(accuracies)
    logger.info(
        "SVM %d-fold accuracy %.4f ± %.4f (folds: %s) in %.1f s",
        folds, mean, std, " ".join(f"{a:.4f}" for a in accuracies), time.perf_counter() - start,
    )
    return {"mean": mean, "std": std, "fold_accuracies": accuracies, "best_C": [float(Cs[b]) for b in best],
            "validation": sum(validation) / folds}


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
