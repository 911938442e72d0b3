"""MoCo v3 (Chen, Xie and He, ICCV 2021) with a ResNet backbone, for the shared trainer.

The query encoder is backbone + projector + predictor; the key (momentum) encoder is
an exponential moving average of backbone + projector, with momentum following a
cosine schedule from ``base_momentum`` (0.99) to 1 over training
(:meth:`MoCoV3.on_step_end`). MoCo v3's loss for views ``x1, x2`` is

    2 tau * (ctr(q1, k2) + ctr(q2, k1)),   ctr(q, k) = CE(q k^T / tau, diagonal),

i.e. two one-directional InfoNCE terms, each with the query as anchor and the other
view's keys of the batch as candidates. The shared loss cannot express this from a
single ``(B, p)`` pair: with ``symmetric=True`` it would also anchor on the keys (a
second, key-to-query direction whose gradient reaches the queries), and stacking the
two pairs along rows would make ``k1[i]`` a negative of ``q1[i]``. So
:meth:`MoCoV3.forward` returns the two pairs side by side, ``z1 = [q1 | q2]`` and
``z2 = [k2 | k1]`` (both ``(B, 2p)``, still one row per instance, as the trainer's
embedding bank and diagnostics need), and :class:`MoCoV3Loss` splits them and sums
the shared loss, built with ``intra_view=False, symmetric=False``, on both halves.
"""
from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from dglbs._checks import check_probability
from dglbs.losses import ContrastiveLoss
from dglbs_models.augment_image import ImageAugmentation
from dglbs_models.simclr import ImageMethod, check_augmentation, projection_mlp


def momentum_at(progress: float, base_momentum: float) -> float:
    """MoCo v3's cosine momentum schedule: ``base`` at progress 0, rising to 1 at progress 1."""
    return 1.0 - (1.0 - base_momentum) * (math.cos(math.pi * progress) + 1.0) / 2.0


class MoCoV3(ImageMethod):
    """MoCo v3: query encoder with predictor, momentum key encoder, asymmetric views.

    Parameters
    ----------
    backbone : nn.Module
        See :class:`dglbs_models.simclr.ImageMethod`; copied for the key encoder.
    augmentations : pair of ImageAugmentation
        The view-1 and view-2 pipelines, e.g.
        :func:`dglbs_models.augment_image.mocov3_augmentations`.
    mean, std : sequence of float
        Per-channel statistics for normalisation.
    hidden_dim : int
        Hidden width of projector and predictor (MoCo v3: 4096).
    proj_dim : int
        Output size of projector and predictor (MoCo v3: 256).
    base_momentum : float
        Momentum at the start of training (MoCo v3: 0.99), in ``[0, 1]``.
    seed : int
        Augmentation seed.

    Attributes
    ----------
    momentum : float
        Momentum of the latest key-encoder update.
    """

    def __init__(
        self,
        backbone: nn.Module,
        *,
        augmentations: Sequence[ImageAugmentation],
        mean: Sequence[float],
        std: Sequence[float],
        hidden_dim: int = 4096,
        proj_dim: int = 256,
        base_momentum: float = 0.99,
        seed: int = 0,
    ) -> None:
        super().__init__(backbone, mean=mean, std=std, seed=seed)
        if len(augmentations) != 2:
            raise ValueError(f"augmentations must be a pair (view 1, view 2), got {len(augmentations)} items")
        self.augmentations = nn.ModuleList(
            check_augmentation(f"augmentations[{i}]", augmentation, self.in_channels)
            for i, augmentation in enumerate(augmentations)
        )
        self.base_momentum = check_probability("base_momentum", base_momentum)
        self.momentum = self.base_momentum
        self.projector = projection_mlp(backbone.out_dim, hidden_dim, proj_dim, last_bn=True)
        self.predictor = projection_mlp(proj_dim, hidden_dim, proj_dim, last_bn=False)
        self.momentum_backbone = copy.deepcopy(backbone)
        self.momentum_projector = copy.deepcopy(self.projector)
        for parameter in self._key_parameters():
            parameter.requires_grad_(False)

    def _query_parameters(self) -> list[nn.Parameter]:
        return [*self.backbone.parameters(), *self.projector.parameters()]

    def _key_parameters(self) -> list[nn.Parameter]:
        return [*self.momentum_backbone.parameters(), *self.momentum_projector.parameters()]

    def forward(self, batch: tuple[Tensor, Tensor] | Tensor) -> tuple[Tensor, Tensor]:
        """Queries and keys of the two views, for :class:`MoCoV3Loss`.

        Each view goes through the encoders on its own, so batch norm statistics are
        per view, as in MoCo v3.

        Parameters
        ----------
        batch : (Tensor (B, C, H, W) uint8, Tensor (B,) int64)
            On the training device; labels are ignored.

        Returns
        -------
        (z1, z2) : pair of float tensors of shape ``(B, 2 * proj_dim)``
            ``z1 = [q1 | q2]`` (with gradient) and ``z2 = [k2 | k1]`` (without).
        """
        images = self.images(batch)
        views = [self.normalize(augmentation(images, self.generator)) for augmentation in self.augmentations]
        queries = [self.predictor(self.projector(self.backbone(view))) for view in views]
        with torch.no_grad():
            keys = [self.momentum_projector(self.momentum_backbone(view)) for view in views]
        return torch.cat(queries, dim=1), torch.cat(keys[::-1], dim=1)

    @torch.no_grad()
    def on_step_end(self, progress: float) -> None:
        """Move the key encoder towards the query encoder:
        ``key = m * key + (1 - m) * query``, ``m`` = :func:`momentum_at` ``(progress)``.
        Batch-norm running statistics are not averaged: the key encoder keeps its own."""
        self.momentum = momentum_at(progress, self.base_momentum)
        torch._foreach_lerp_(self._key_parameters(), self._query_parameters(), 1.0 - self.momentum)


class MoCoV3Loss(nn.Module):
    """MoCo v3's loss from :meth:`MoCoV3.forward`'s side-by-side pairs and a shared loss.

    ``loss([q1 | q2], [k2 | k1]) = 2 tau * (base(q1, k2) + base(q2, k1))``; with
    ``base = InfoNCELoss(0.2, intra_view=False, symmetric=False)`` this is exactly
    MoCo v3's loss (the ``2 tau`` factor is theirs: it makes the gradient scale
    independent of ``tau``). DCL and HCL bases work the same way.

    Parameters
    ----------
    base : ContrastiveLoss
        With ``intra_view=False`` and ``symmetric=False``.
    scale_by_temperature : bool
        Multiply by ``2 * base.temperature`` as MoCo v3 does.
    """

    def __init__(self, base: ContrastiveLoss, *, scale_by_temperature: bool = True) -> None:
        super().__init__()
        if not isinstance(base, ContrastiveLoss):
            raise TypeError(f"base must be a dglbs.losses.ContrastiveLoss, got {type(base).__name__}")
        if base.intra_view or base.symmetric:
            raise ValueError("base must be built with intra_view=False and symmetric=False: MoCo v3 anchors on "
                             f"queries only and contrasts them with keys only; got {base.extra_repr()}")
        self.base = base
        self.scale = 2.0 * base.temperature if scale_by_temperature else 1.0

    def forward(self, z1: Tensor, z2: Tensor) -> Tensor:
        """Scalar loss from ``z1 = [q1 | q2]`` and ``z2 = [k2 | k1]``, both ``(B, 2p)``."""
        if z1.dim() != 2 or z1.shape != z2.shape or z1.shape[1] % 2:
            raise ValueError(f"z1 and z2 must both be (B, 2p) as MoCoV3.forward returns, got {tuple(z1.shape)} "
                             f"and {tuple(z2.shape)}")
        q1, q2 = z1.chunk(2, dim=1)
        k2, k1 = z2.chunk(2, dim=1)
        return self.scale * (self.base(q1, k2) + self.base(q2, k1))
