from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.svm import SVC

from dglbs.evaluation import svm
from dglbs.evaluation.svm import KERNELS, svm_cross_val, summarize

FAST = {"Cs": (0.1, 10.0)}


def blobs(n_per_class: int, classes: int, dim: int, gap: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(classes), n_per_class)
    centres = rng.normal(size=(classes, dim)) * gap
    return centres[labels] + rng.normal(size=(len(labels), dim)), labels


def test_separable_classes_are_classified_perfectly():
    x, y = blobs(30, 3, 8, gap=10.0)
    result = svm_cross_val(torch.from_numpy(x).float(), torch.from_numpy(y), **FAST)
    assert result["mean"] == 1.0 and result["std"] == 0.0
    assert len(result["fold_accuracies"]) == 10 and len(result["best_C"]) == 10


def test_random_labels_score_near_chance():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 8))
    y = rng.permutation(np.repeat([0, 1], 150))
    result = svm_cross_val(x, y, **FAST)
    assert abs(result["mean"] - 0.5) < 0.1
    assert all(0.0 <= a <= 1.0 for a in result["fold_accuracies"])


def test_string_labels_and_linear_kernel():
    x, y = blobs(20, 2, 4, gap=10.0, seed=2)
    names = np.array(["active", "inactive"])[y]
    assert svm_cross_val(x, names, kernel="linear", folds=5, **FAST)["mean"] == 1.0


def test_reproducible_with_seed_and_seed_changes_the_folds():
    x, y = blobs(25, 2, 6, gap=0.7, seed=3)
    first = svm_cross_val(x, y, seed=7, **FAST)
    assert svm_cross_val(x, y, seed=7, **FAST) == first
    assert svm_cross_val(x, y, seed=8, **FAST)["fold_accuracies"] != first["fold_accuracies"]
    assert first["mean"] == pytest.approx(np.mean(first["fold_accuracies"]))
    assert first["std"] == pytest.approx(np.std(first["fold_accuracies"]))


def test_mismatched_lengths():
    with pytest.raises(ValueError, match=r"\(20,\)"):
        svm_cross_val(np.zeros((20, 3)), np.zeros(19))


def test_too_few_samples_per_class_names_the_counts():
    x = np.random.default_rng(0).normal(size=(40, 3))
    y = np.array([0] * 33 + [1] * 7)
    with pytest.raises(ValueError, match=r"at least 10 samples.*\{1: 7\}"):
        svm_cross_val(x, y)
    # With 2 outer folds each training half must still fill 5 inner folds.
    with pytest.raises(ValueError, match=r"at least 10 samples for folds=2"):
        svm_cross_val(x, y, folds=2)
    assert 0.0 <= svm_cross_val(x, y, folds=5, inner_folds=3, **FAST)["mean"] <= 1.0


@pytest.mark.parametrize(
    "x, y, kwargs, match",
    [
        (np.zeros((20, 3)), np.zeros(20), {}, "at least 2 classes"),
        (np.zeros(20), np.arange(20) % 2, {}, r"\(N, d\)"),
        (np.full((20, 3), np.nan), np.arange(20) % 2, {}, "NaN"),
        (np.zeros((20, 3)), np.arange(20) % 2, {"folds": 1}, "folds"),
        (np.zeros((20, 3)), np.arange(20) % 2, {"inner_folds": 1}, "inner_folds"),
        (np.zeros((20, 3)), np.arange(20) % 2, {"Cs": ()}, "Cs"),
        (np.zeros((20, 3)), np.arange(20) % 2, {"Cs": (1.0, -1.0)}, "Cs"),
    ],
)
def test_invalid_inputs(x, y, kwargs, match):
    with pytest.raises(ValueError, match=match):
        svm_cross_val(x, y, **kwargs)


def test_summarize():
    mean, std = summarize([0.7, 0.8, 0.9])
    assert mean == pytest.approx(0.8) and std == pytest.approx(np.std([0.7, 0.8, 0.9]))
    assert summarize(torch.tensor([0.5])) == (0.5, 0.0)
    for bad in ([], [1.0, float("nan")], [[0.1, 0.2]]):
        with pytest.raises(ValueError, match="finite"):
            summarize(bad)


def grid_search_cv(x, y, *, folds, Cs, seed, inner_folds, kernel):
    """GraphCL's protocol with plain scikit-learn: GridSearchCV(SVC) on every outer split."""
    y = np.unique(y, return_inverse=True)[1]
    accuracies, best_cs, validation = [], [], []
    for train, test in StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed).split(x, y):
        search = GridSearchCV(SVC(kernel=kernel), {"C": list(Cs)}, cv=inner_folds, scoring="accuracy")
        search.fit(x[train], y[train])
        accuracies.append(float(search.score(x[test], y[test])))
        best_cs.append(float(search.best_params_["C"]))
        validation.append(float(search.best_score_))
    return accuracies, best_cs, float(np.mean(validation))


@pytest.mark.parametrize("kernel", KERNELS)
def test_same_results_as_grid_search_cv(kernel, monkeypatch):
    # Overlapping classes, so that accuracies differ between folds and C values,
    # float32 input as an encoder gives, and the full grid of C.
    x, y = blobs(40, 3, 6, gap=0.8, seed=4)
    x = (x * 3.0).astype(np.float32)
    settings = {"folds": 5, "Cs": (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0, 1000.0), "seed": 3, "inner_folds": 3}
    accuracies, best_cs, validation = grid_search_cv(x, y, kernel=kernel, **settings)
    assert len(set(accuracies)) > 1  # a test that can tell (rbf, linear and sigmoid also vary in C)
    for n_jobs in (1, 2):
        result = svm_cross_val(x, y, kernel=kernel, n_jobs=n_jobs, **settings)
        assert result["fold_accuracies"] == accuracies
        assert result["best_C"] == best_cs
        assert result["validation"] == pytest.approx(validation), "the inner CV score of the chosen C"
    # Too many samples to precompute the kernels: libsvm computes them, same results.
    monkeypatch.setattr(svm, "PRECOMPUTED_MAX_SAMPLES", len(x) - 1)
    result = svm_cross_val(x, y, kernel=kernel, **settings)
    assert (result["fold_accuracies"], result["best_C"]) == (accuracies, best_cs)


def test_logs_one_line_per_outer_fold(caplog):
    x, y = blobs(20, 2, 4, gap=1.0, seed=5)
    with caplog.at_level(logging.INFO, logger="dglbs.evaluation.svm"):
        result = svm_cross_val(x, y, folds=4, progress=False, **FAST)
    fold_lines = [m for m in caplog.messages if m.startswith("SVM fold ")]
    assert [m.split(":")[0] for m in fold_lines] == [f"SVM fold {k}/4" for k in range(1, 5)]
    assert all(f"C={c:g} chosen" in m for m, c in zip(fold_lines, result["best_C"]))
    assert caplog.messages[-1].startswith(f"SVM 4-fold accuracy {result['mean']:.4f}")


def test_unsupported_kernel_is_named():
    x, y = blobs(20, 2, 4, gap=1.0)
    with pytest.raises(ValueError, match=r"kernel must be one of .*got 'precomputed'"):
        svm_cross_val(x, y, kernel="precomputed")
