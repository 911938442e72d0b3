from __future__ import annotations

import pytest
import torch
from sklearn.linear_model import LogisticRegression

from dglbs.evaluation.linear_probe import ProbeResult, fit_linear_classifier, linear_probe


def blobs(count: int, *, seed: int, spread: float = 1.0, dim: int = 6, classes: int = 3):
    """Gaussian clusters around fixed class centres (same centres for every seed)."""
    centres = torch.randn(classes, dim, generator=torch.Generator().manual_seed(100)) * 3
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(count) % classes
    return centres[labels] + spread * torch.randn(count, dim, generator=generator), labels


def test_separable_classes_are_probed_accurately() -> None:
    train_x, train_y = blobs(300, seed=0)
    test_x, test_y = blobs(150, seed=1)
    result = linear_probe(train_x, train_y, test_x, test_y)
    assert isinstance(result, ProbeResult)
    assert result.test_accuracy > 0.95 and result.val_accuracy > 0.9
    assert set(result.val_accuracies) == {0.0, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2}
    assert result.val_accuracies[result.weight_decay] == max(result.val_accuracies.values())


def test_choice_never_depends_on_the_test_set() -> None:
    train_x, train_y = blobs(200, seed=0, spread=3.0)
    test_x, test_y = blobs(100, seed=1, spread=3.0)
    grid = (0.0, 1e-2, 1.0, 100.0)
    honest = linear_probe(train_x, train_y, test_x, test_y, weight_decays=grid)
    scrambled = linear_probe(train_x, train_y, test_x, test_y.roll(1), weight_decays=grid)
    assert honest.weight_decay == scrambled.weight_decay
    assert honest.val_accuracies == scrambled.val_accuracies
    assert honest.test_accuracy != scrambled.test_accuracy
    # A penalty that crushes the weights loses on the held-out training part.
    assert honest.weight_decay != 100.0 and honest.val_accuracies[100.0] < honest.val_accuracy


def test_fit_matches_sklearn_logistic_regression() -> None:
    x, y = blobs(120, seed=2, spread=2.5)
    weight_decay = 0.05
    weight, bias = fit_linear_classifier(x, y, 3, weight_decay=weight_decay, max_iter=300)
    # sklearn minimises 0.5 ||W||^2 + C * sum CE, i.e. our objective with C = 1 / (N * weight_decay).
    reference = LogisticRegression(C=1 / (len(x) * weight_decay), tol=1e-10, max_iter=2000).fit(x.numpy(), y.numpy())
    ours = torch.softmax(x @ weight.T + bias, dim=1)
    theirs = torch.from_numpy(reference.predict_proba(x.numpy())).float()
    assert torch.allclose(ours, theirs, atol=1e-3)


def test_validation() -> None:
    x, y = blobs(30, seed=0)
    with pytest.raises(ValueError, match="negative"):
        linear_probe(x, torch.full((30,), -1), x, y)
    with pytest.raises(ValueError, match=r"shape \(30,\)"):
        linear_probe(x, y[:10], x, y)
    with pytest.raises(ValueError, match="differ in size"):
        linear_probe(x, y, x[:, :2], y)
    with pytest.raises(ValueError, match="stratified"):
        linear_probe(x[:4], torch.tensor([0, 1, 2, 2]), x, y)
    with pytest.raises(ValueError, match="val_fraction"):
        linear_probe(x, y, x, y, val_fraction=1.0)
    with pytest.raises(ValueError, match="NaN"):
        linear_probe(x, y, torch.full_like(x, float("nan")), y)
    with pytest.raises(ValueError, match="weight_decay"):
        fit_linear_classifier(x, y, 3, weight_decay=-1.0)
