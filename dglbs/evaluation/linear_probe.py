"""Linear probe: a multinomial logistic regression on frozen features.

The standard evaluation of self-supervised image encoders (SimCLR, MoCo v3, the
BatchSampler paper's Tables 1 and 8): features of the training and test images are
extracted once with the encoder frozen in eval mode (e.g. ``trainer.encode(dataset)``,
which runs ``method.embed`` under ``eval()`` and ``no_grad``), then a linear
classifier is fit on the training features. Its one hyper-parameter, the L2 weight
decay, is chosen on a stratified held-out part of the *training* set; the classifier
is then refit on the whole training set with that value and scored once on the test
set, which never influences any choice.

The classifier is fit full-batch with L-BFGS on standardised features (mean and
standard deviation of the fitting set), which needs no learning-rate tuning.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.model_selection import train_test_split

from .._checks import check_int

logger = logging.getLogger(__name__)

DEFAULT_WEIGHT_DECAYS = (0.0, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2)
"""Grid of L2 penalties (on the mean cross-entropy) searched by :func:`linear_probe`."""


@dataclass(frozen=True)
class ProbeResult:
    """Outcome of :func:`linear_probe`; accuracies are fractions in ``[0, 1]``."""

    test_accuracy: float
    val_accuracy: float
    """Held-out accuracy of the chosen weight decay."""
    weight_decay: float
    val_accuracies: dict[float, float] = field(repr=False)
    """Held-out accuracy of every weight decay tried."""


def _check_features(name: str, features: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if not isinstance(features, torch.Tensor) or features.dim() != 2 or not features.is_floating_point():
        kind = getattr(features, "dtype", type(features).__name__)
        raise ValueError(f"{name}_features must be a float tensor of shape (N, d), got {kind} "
                         f"{tuple(getattr(features, 'shape', ()))}")
    labels = torch.as_tensor(labels)
    if labels.shape != (len(features),) or labels.dtype != torch.int64:
        raise ValueError(f"{name}_labels must be int64 of shape ({len(features)},) to match {name}_features, got "
                         f"{labels.dtype} of shape {tuple(labels.shape)}")
    if len(labels) and int(labels.min()) < 0:
        raise ValueError(f"{name}_labels contain negative (unlabeled) entries; probe on a labelled split only")
    if not bool(torch.isfinite(features).all()):
        raise ValueError(f"{name}_features contain NaN or inf; check the encoder")
    return features.float(), labels.to(features.device)


def _standardize(reference: torch.Tensor, *features: torch.Tensor) -> list[torch.Tensor]:
    """Scale every tensor with the mean and std of ``reference`` (constant columns keep std 1)."""
    mean = reference.mean(0)
    std = reference.std(0, unbiased=False)
    std = torch.where(std > 1e-8, std, torch.ones_like(std))
    return [(x - mean) / std for x in (reference, *features)]


def fit_linear_classifier(
    features: torch.Tensor, labels: torch.Tensor, num_classes: int, *, weight_decay: float, max_iter: int = 100
) -> tuple[torch.Tensor, torch.Tensor]:
    """Multinomial logistic regression, ``mean CE + weight_decay / 2 * ||W||^2``, by L-BFGS.

    Parameters
    ----------
    features : Tensor of shape (N, d), float
    labels : Tensor of shape (N,), int64 in ``[0, num_classes)``
    num_classes : int
    weight_decay : float
        ``>= 0``; the bias is not penalised.
    max_iter : int
        L-BFGS iterations.

    Returns
    -------
    (weight, bias) : Tensors of shape (num_classes, d) and (num_classes,)
    """
    check_int("max_iter", max_iter, low=1)
    if isinstance(weight_decay, bool) or not isinstance(weight_decay, (int, float)) or weight_decay < 0:
        raise ValueError(f"weight_decay must be a float >= 0, got {weight_decay!r}")
    weight = torch.zeros(num_classes, features.shape[1], device=features.device, requires_grad=True)
    bias = torch.zeros(num_classes, device=features.device, requires_grad=True)
    optimizer = torch.optim.LBFGS([weight, bias], lr=1.0, max_iter=max_iter, history_size=20,
                                  line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(features @ weight.T + bias, labels) + 0.5 * weight_decay * weight.square().sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
    return weight.detach(), bias.detach()


def _accuracy(weight: torch.Tensor, bias: torch.Tensor, features: torch.Tensor, labels: torch.Tensor) -> float:
    return float(((features @ weight.T + bias).argmax(1) == labels).float().mean())


def linear_probe(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    test_features: torch.Tensor,
    test_labels: torch.Tensor,
    *,
    weight_decays: Sequence[float] = DEFAULT_WEIGHT_DECAYS,
    val_fraction: float = 0.2,
    max_iter: int = 100,
    seed: int = 0,
) -> ProbeResult:
    """Test accuracy of a linear classifier whose weight decay is chosen on training data only.

    Parameters
    ----------
    train_features : Tensor of shape (N, d), float
        Frozen features of the labelled training images.
    train_labels : Tensor of shape (N,), int64, non-negative
    test_features : Tensor of shape (M, d), float
    test_labels : Tensor of shape (M,), int64, non-negative
    weight_decays : sequence of float
        Candidates (``>= 0``); ties go to the first listed.
    val_fraction : float
        Share of the training set held out (stratified by class) to pick the weight decay.
    max_iter : int
        L-BFGS iterations per fit.
    seed : int
        Seed of the held-out split.

    Returns
    -------
    ProbeResult
    """
    train_features, train_labels = _check_features("train", train_features, train_labels)
    test_features, test_labels = _check_features("test", test_features, test_labels)
    if test_features.shape[1] != train_features.shape[1]:
        raise ValueError(f"train and test features differ in size: {train_features.shape[1]} vs "
                         f"{test_features.shape[1]}")
    test_features, test_labels = test_features.to(train_features.device), test_labels.to(train_features.device)
    weight_decays = [float(value) for value in weight_decays]
    if not weight_decays:
        raise ValueError("weight_decays must name at least one candidate")
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction!r}")
    num_classes = int(max(train_labels.max(), test_labels.max())) + 1
    try:
        fit_rows, val_rows = train_test_split(np.arange(len(train_labels)), test_size=val_fraction,
                                              stratify=train_labels.cpu().numpy(), random_state=seed)
    except ValueError as error:
        raise ValueError(f"cannot hold out a stratified {val_fraction:.0%} of the training set ({error}); "
                         "give every class at least 2 training samples or change val_fraction") from error
    fit_rows = torch.as_tensor(fit_rows, device=train_features.device)
    val_rows = torch.as_tensor(val_rows, device=train_features.device)
    fit_x, val_x = _standardize(train_features[fit_rows], train_features[val_rows])
    fit_y, val_y = train_labels[fit_rows], train_labels[val_rows]
    val_accuracies = {}
    for weight_decay in weight_decays:
        weight, bias = fit_linear_classifier(fit_x, fit_y, num_classes, weight_decay=weight_decay,
                                             max_iter=max_iter)
        val_accuracies[weight_decay] = _accuracy(weight, bias, val_x, val_y)
        logger.debug("linear probe: weight decay %g, validation accuracy %.4f", weight_decay,
                     val_accuracies[weight_decay])
    best = max(weight_decays, key=lambda value: val_accuracies[value])
    train_x, test_x = _standardize(train_features, test_features)
    weight, bias = fit_linear_classifier(train_x, train_labels, num_classes, weight_decay=best, max_iter=max_iter)
    return ProbeResult(_accuracy(weight, bias, test_x, test_labels), val_accuracies[best], best, val_accuracies)
