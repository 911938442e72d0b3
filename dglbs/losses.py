"""In-batch contrastive losses: InfoNCE (NT-Xent), DCL and HCL.

All three take two row-aligned views ``(z1, z2)`` of shape ``(B, p)``; ``z1[i]`` and
``z2[i]`` are a positive pair, every other row of the batch is a negative. Vectors
are L2-normalised, so similarities are cosines scaled by ``1 / temperature``.

- ``intra_view=True`` (SimCLR, GraphCL): an anchor's negatives are the other
  ``2B - 2`` vectors of both views. ``False`` (SimCSE, MoCo v3): the ``B - 1`` other
  rows of the other view.
- ``symmetric=True``: anchors from both views, averaged; ``False``: anchors from
  ``z1`` only (SimCSE).
- ``anchors=slice(start, stop)``: only rows ``start:stop`` are anchors, every row is
  still a negative. Under several processes, each process passes the views of the
  whole global batch (all-gathered with gradients) and its own rows as anchors: the
  mean over processes of these losses, and of their gradients, is the loss of the
  whole batch in one process (SimCLR, MoCo v3 and SimCSE gather negatives so).

DCL (Chuang et al., NeurIPS 2020) debiases the negative term for a class prior
``tau_plus``; HCL (Robinson et al., ICLR 2021) additionally reweights negatives by
their hardness ``exp(beta * sim / temperature)``. Both reduce to InfoNCE at
``tau_plus = 0`` (and ``beta = 0``).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ._checks import check_probability


class ContrastiveLoss(nn.Module):
    """Shared logits layout; subclasses turn (positive, negatives) into a loss."""

    def __init__(self, temperature: float = 0.5, *, intra_view: bool = True, symmetric: bool = True) -> None:
        super().__init__()
        if not isinstance(temperature, (int, float)) or isinstance(temperature, bool) or temperature <= 0:
            raise ValueError(f"temperature must be a positive float, got {temperature!r}")
        self.temperature = float(temperature)
        self.intra_view = intra_view
        self.symmetric = symmetric

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}, intra_view={self.intra_view}, symmetric={self.symmetric}"

    def forward(self, z1: torch.Tensor, z2: torch.Tensor, *, anchors: slice | None = None) -> torch.Tensor:
        """Mean loss over anchors, a scalar tensor.

        Parameters
        ----------
        z1, z2 : Tensor of shape (B, p)
            Row-aligned views.
        anchors : slice, optional
            ``slice(start, stop)`` with ``0 <= start < stop <= B``: only these rows
            are anchors (default: all rows).
        """
        if z1.dim() != 2 or z1.shape != z2.shape:
            raise ValueError(
                f"z1 and z2 must both be (B, p), got {tuple(z1.shape)} and {tuple(z2.shape)}"
            )
        if z1.shape[0] < 2:
            raise ValueError(f"in-batch contrast needs a batch of at least 2, got {z1.shape[0]}")
        rows = range(z1.shape[0]) if anchors is None else _anchor_rows(anchors, z1.shape[0])
        z1, z2 = F.normalize(z1, dim=1), F.normalize(z2, dim=1)
        losses = [self._anchored(z1, z2, rows)]
        if self.symmetric:
            losses.append(self._anchored(z2, z1, rows))
        return torch.stack(losses).mean()

    def _anchored(self, views: torch.Tensor, others: torch.Tensor, rows: range) -> torch.Tensor:
        """Loss of anchors ``views[rows]`` against the rows of ``others`` (and, with
        ``intra_view``, the other rows of ``views``)."""
        # All rows: `views` itself, since a full slice of it would accumulate the gradient
        # in another order (different last bits from the one-process loss).
        anchors = views if len(rows) == len(views) else views[rows.start : rows.stop]
        cross = anchors @ others.T / self.temperature
        # Anchor i's own row: its positive in `others`, itself in `views`.
        own = torch.zeros(cross.shape, dtype=torch.bool, device=cross.device)
        own[:, rows.start : rows.stop].fill_diagonal_(True)
        positive = cross[:, rows.start : rows.stop].diagonal()
        negatives = cross.masked_fill(own, -math.inf)
        if self.intra_view:
            same = (anchors @ views.T / self.temperature).masked_fill(own, -math.inf)
            negatives = torch.cat([negatives, same], dim=1)
        return self._loss(positive, negatives).mean()

    def _loss(self, positive: torch.Tensor, negatives: torch.Tensor) -> torch.Tensor:
        """Per-anchor loss from logits: positive (B,), negatives (B, n) with -inf for
        excluded entries."""
        raise NotImplementedError


class InfoNCELoss(ContrastiveLoss):
    """InfoNCE / NT-Xent: cross-entropy of the positive against the negatives."""

    def _loss(self, positive: torch.Tensor, negatives: torch.Tensor) -> torch.Tensor:
        logits = torch.cat([positive.unsqueeze(1), negatives], dim=1)
        return torch.logsumexp(logits, dim=1) - positive


class DCLLoss(ContrastiveLoss):
    """Debiased contrastive loss with class prior ``tau_plus``.

    Parameters
    ----------
    tau_plus : float
        Probability that a random negative shares the anchor's class, in ``[0, 1)``.
    """

    def __init__(self, temperature: float = 0.5, *, tau_plus: float = 0.1, **kwargs) -> None:
        super().__init__(temperature, **kwargs)
        self.tau_plus = check_probability("tau_plus", tau_plus)
        if self.tau_plus >= 1.0:
            raise ValueError(f"tau_plus must be below 1, got {tau_plus}")

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, tau_plus={self.tau_plus}"

    beta = 0.0
    """Hardness concentration: 0 weighs all negatives alike (HCL sets it)."""

    def _negative_weights(self, negatives: torch.Tensor) -> torch.Tensor:
        """Per-anchor weights over the negatives, proportional to
        ``exp(beta * logit)``, zero for excluded entries; rows sum to one."""
        excluded = negatives == -math.inf
        return torch.softmax((self.beta * negatives).masked_fill(excluded, -math.inf), dim=1)

    def _loss(self, positive: torch.Tensor, negatives: torch.Tensor) -> torch.Tensor:
        # Float64 and a shift by the largest possible logit keep exp() finite for
        # small temperatures; the estimator is homogeneous in the shifted terms.
        positive, negatives = positive.double(), negatives.double()
        shift = 1.0 / self.temperature
        count = (negatives > -math.inf).sum(1).double()
        mean_negative = (self._negative_weights(negatives) * torch.exp(negatives - shift)).sum(1)
        exp_positive = torch.exp(positive - shift)
        estimate = (count * mean_negative - self.tau_plus * count * exp_positive) / (1.0 - self.tau_plus)
        estimate = torch.maximum(estimate, count * math.exp(-1.0 / self.temperature - shift))
        return (torch.log(exp_positive + estimate) - (positive - shift)).float()


class HCLLoss(DCLLoss):
    """Hard-negative contrastive loss: DCL with negatives reweighted by hardness.

    Parameters
    ----------
    beta : float
        Concentration on hard negatives, ``>= 0`` (0 gives DCL).
    """

    def __init__(self, temperature: float = 0.5, *, tau_plus: float = 0.1, beta: float = 1.0, **kwargs) -> None:
        super().__init__(temperature, tau_plus=tau_plus, **kwargs)
        if not isinstance(beta, (int, float)) or isinstance(beta, bool) or beta < 0:
            raise ValueError(f"beta must be a float >= 0, got {beta!r}")
        self.beta = float(beta)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, beta={self.beta}"


def _anchor_rows(anchors: object, num_rows: int) -> range:
    """The rows of a batch of ``num_rows`` that ``anchors`` (a slice) selects, checked."""
    if not isinstance(anchors, slice) or anchors.step not in (None, 1):
        raise TypeError(f"anchors must be a slice(start, stop) of rows, got {anchors!r}")
    start = 0 if anchors.start is None else anchors.start
    stop = num_rows if anchors.stop is None else anchors.stop
    if not (isinstance(start, int) and isinstance(stop, int) and 0 <= start < stop <= num_rows):
        raise ValueError(
            f"anchors must select rows start:stop with 0 <= start < stop <= {num_rows} (the batch), got {anchors!r}"
        )
    return range(start, stop)


LOSSES = {"infonce": InfoNCELoss, "dcl": DCLLoss, "hcl": HCLLoss}


def make_loss(name: str, **kwargs) -> ContrastiveLoss:
    """Build a loss by name: ``"infonce"``, ``"dcl"`` or ``"hcl"``."""
    if name not in LOSSES:
        raise ValueError(f"loss must be one of {sorted(LOSSES)}, got {name!r}")
    return LOSSES[name](**kwargs)
