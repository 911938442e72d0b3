"""SimCLR (Chen et al., ICML 2020) for the shared trainer, and what image methods share.

The trainer hands the method uint8 image batches already on the training device;
the method augments them there (:mod:`dglbs_models.augment_image`), normalises, encodes
and projects. The loss is the trainer's: SimCLR's NT-Xent is
``InfoNCELoss(0.5, intra_view=True, symmetric=True)`` — every one of the ``2B``
views is an anchor, its negatives the other ``2B - 2`` views.
"""
from __future__ import annotations

from collections.abc import Sequence
import torch
from torch import Tensor, nn

from dglbs._checks import check_int
from dglbs.method import ContrastiveMethod
from dglbs_models.augment_image import ImageAugmentation, ImageNormalize


def projection_mlp(in_dim: int, hidden_dim: int, out_dim: int, *, last_bn: bool) -> nn.Sequential:
    """Two linear layers with batch norm and ReLU between them, as SimCLR's and
    MoCo v3's heads; ``last_bn`` adds MoCo v3's affine-free batch norm on the output.

    Returns
    -------
    nn.Sequential mapping ``(B, in_dim)`` to ``(B, out_dim)``
    """
    for name, value in (("in_dim", in_dim), ("hidden_dim", hidden_dim), ("out_dim", out_dim)):
        check_int(name, value, low=1)
    layers: list[nn.Module] = [
        nn.Linear(in_dim, hidden_dim, bias=False), nn.BatchNorm1d(hidden_dim), nn.ReLU(inplace=True),
        nn.Linear(hidden_dim, out_dim, bias=not last_bn),
    ]
    if last_bn:
        layers.append(nn.BatchNorm1d(out_dim, affine=False))
    return nn.Sequential(*layers)


def check_augmentation(name: str, augmentation: object, channels: int) -> ImageAugmentation:
    if not isinstance(augmentation, ImageAugmentation):
        raise TypeError(f"{name} must be a dglbs_models.augment_image.ImageAugmentation (e.g. from "
                        f"simclr_augmentation(size, channels)), got {type(augmentation).__name__}")
    if augmentation.in_channels != channels:
        raise ValueError(f"{name} is for {augmentation.in_channels}-channel images but the backbone takes "
                         f"{channels}; build both with the same in_channels")
    return augmentation


class ImageMethod(ContrastiveMethod):
    """Backbone, input normalisation and the augmentation generator of an image method.

    Parameters
    ----------
    backbone : nn.Module
        Maps normalised float images ``(B, C, H, W)`` to ``(B, backbone.out_dim)``
        and has an ``in_channels`` attribute, e.g. :func:`dglbs_models.resnet.resnet18`.
    mean, std : sequence of C floats
        Per-channel pixel statistics on the ``[0, 1]`` scale.
    seed : int
        Seed of :attr:`generator`, the only source of augmentation randomness.

    Attributes
    ----------
    generator : torch.Generator
        CPU generator of the augmentation parameters; saved in ``state_dict()`` (as
        extra state) so a resumed run continues the same stream of views.
    """

    def __init__(self, backbone: nn.Module, *, mean: Sequence[float], std: Sequence[float], seed: int = 0) -> None:
        super().__init__()
        out_dim = getattr(backbone, "out_dim", None)
        channels = getattr(backbone, "in_channels", None)
        if not isinstance(backbone, nn.Module) or not all(
            isinstance(value, int) and not isinstance(value, bool) for value in (out_dim, channels)
        ):
            raise TypeError("backbone must be an nn.Module with int out_dim and in_channels attributes (e.g. "
                            f"dglbs_models.resnet.resnet18), got {type(backbone).__name__}")
        if len(mean) != channels:
            raise ValueError(f"mean and std need one value per input channel ({channels}), got {len(mean)}")
        check_int("seed", seed, low=0)
        self.backbone = backbone
        self.in_channels = channels
        self.normalize = ImageNormalize(mean, std)
        self.generator = torch.Generator().manual_seed(seed)

    @staticmethod
    def images(batch: tuple[Tensor, Tensor] | Tensor) -> Tensor:
        """The images of a collated ``(images, labels)`` batch (or a bare image tensor)."""
        images = batch[0] if isinstance(batch, (tuple, list)) else batch
        if not isinstance(images, Tensor) or images.dim() != 4:
            raise TypeError("batch must be (images, labels) with images a (B, C, H, W) tensor, as "
                            "dglbs.data.images.collate returns")
        return images

    def embed(self, batch: tuple[Tensor, Tensor] | Tensor) -> Tensor:
        """Backbone features of the unaugmented images (no projection head).

        Parameters
        ----------
        batch : (Tensor (B, C, H, W) uint8, Tensor (B,) int64)
            As :func:`dglbs.data.images.collate` returns; labels are ignored.

        Returns
        -------
        Tensor of shape (B, backbone.out_dim), float32
        """
        return self.backbone(self.normalize(self.images(batch)))

    def get_extra_state(self) -> Tensor:
        return self.generator.get_state()

    def set_extra_state(self, state: Tensor) -> None:
        self.generator.set_state(state.cpu())


class SimCLR(ImageMethod):
    """SimCLR: two augmented views through one encoder and a 2-layer projection head.

    Both views of the batch go through the backbone together, as one batch of
    ``2B`` (as SimCLR's own code), so batch norm sees both.

    Parameters
    ----------
    backbone : nn.Module
        See :class:`ImageMethod`.
    augmentation : ImageAugmentation
        Draws both views, e.g. :func:`dglbs_models.augment_image.simclr_augmentation`.
    mean, std : sequence of float
        Per-channel statistics for normalisation.
    hidden_dim : int, optional
        Hidden width of the head (default: ``backbone.out_dim``, as SimCLR).
    proj_dim : int
        Output size of the head (SimCLR: 128).
    seed : int
        Augmentation seed.
    """

    def __init__(
        self,
        backbone: nn.Module,
        *,
        augmentation: ImageAugmentation,
        mean: Sequence[float],
        std: Sequence[float],
        hidden_dim: int | None = None,
        proj_dim: int = 128,
        seed: int = 0,
    ) -> None:
        super().__init__(backbone, mean=mean, std=std, seed=seed)
        self.augmentation = check_augmentation("augmentation", augmentation, self.in_channels)
        hidden_dim = backbone.out_dim if hidden_dim is None else hidden_dim
        self.head = projection_mlp(backbone.out_dim, hidden_dim, proj_dim, last_bn=False)

    def forward(self, batch: tuple[Tensor, Tensor] | Tensor) -> tuple[Tensor, Tensor]:
        """Projections of two augmented views.

        Parameters
        ----------
        batch : (Tensor (B, C, H, W) uint8, Tensor (B,) int64)
            On the training device; labels are ignored.

        Returns
        -------
        (z1, z2) : pair of float tensors of shape ``(B, proj_dim)``
        """
        images = self.images(batch)
        views = torch.cat([self.augmentation(images, self.generator), self.augmentation(images, self.generator)])
        return self.head(self.backbone(self.normalize(views))).chunk(2)

