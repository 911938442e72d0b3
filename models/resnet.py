"""ResNet-18 and ResNet-50 (He et al., CVPR 2016) as feature extractors.

Written here because torchvision is unusable on this machine. Two stems:

- standard (ImageNet): 7x7 convolution with stride 2, then 3x3 max-pool;
- small-image (CIFAR-style, as SimCLR's CIFAR experiments): one 3x3 convolution
  with stride 1 and no max-pool, so 32 x 32 inputs are not shrunk to 8 x 8 before
  the first residual stage. :func:`resnet18` / :func:`resnet50` pick it for
  ``image_size <= 32``.

The network ends with global average pooling and no classifier: ``forward`` returns
features of size :attr:`ResNet.out_dim`.
"""
from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from dglbs._checks import check_int

SMALL_IMAGE_MAX = 32
"""Largest input side that gets the small-image stem."""


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with an identity (or 1x1 projection) shortcut; ResNet-18/34."""

    expansion = 1

    def __init__(self, in_channels: int, channels: int, stride: int = 1) -> None:
        super().__init__()
        out_channels = channels * self.expansion
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = _shortcut(in_channels, out_channels, stride)

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (carrying the stride, as torchvision's "ResNet v1.5"), 1x1 expand; ResNet-50."""

    expansion = 4

    def __init__(self, in_channels: int, channels: int, stride: int = 1) -> None:
        super().__init__()
        out_channels = channels * self.expansion
        self.conv1 = nn.Conv2d(in_channels, channels, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.conv3 = nn.Conv2d(channels, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = _shortcut(in_channels, out_channels, stride)

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + self.shortcut(x))


def _shortcut(in_channels: int, out_channels: int, stride: int) -> nn.Module:
    if stride == 1 and in_channels == out_channels:
        return nn.Identity()
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride, bias=False), nn.BatchNorm2d(out_channels))


class ResNet(nn.Module):
    """A ResNet trunk: stem, four residual stages, global average pooling.

    Parameters
    ----------
    block : type[BasicBlock] or type[Bottleneck]
    layers : sequence of 4 int
        Blocks per stage, e.g. ``(2, 2, 2, 2)`` for ResNet-18.
    in_channels : int
        1 for grey-scale, 3 for RGB.
    width : int
        Channels of the stem and the first stage (64 in the original); stages
        double it. Smaller values make CPU training affordable.
    small_images : bool
        Use the 3x3 stride-1 stem without max-pool (inputs of 32 px or less).

    Attributes
    ----------
    out_dim : int
        Feature size, ``8 * width * block.expansion`` (512 for ResNet-18, 2048 for ResNet-50).
    """

    def __init__(
        self,
        block: type[BasicBlock] | type[Bottleneck],
        layers: Sequence[int],
        *,
        in_channels: int = 3,
        width: int = 64,
        small_images: bool = False,
    ) -> None:
        super().__init__()
        if block not in (BasicBlock, Bottleneck):
            raise TypeError(f"block must be BasicBlock or Bottleneck, got {block!r}")
        layers = tuple(layers)
        if len(layers) != 4:
            raise ValueError(f"layers must give the blocks of 4 stages, got {layers!r}")
        for count in layers:
            check_int("blocks per stage", count, low=1)
        check_int("in_channels", in_channels, low=1)
        check_int("width", width, low=1)
        self.small_images = bool(small_images)
        if self.small_images:
            self.stem = nn.Sequential(
                nn.Conv2d(in_channels, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
            )
        else:
            self.stem = nn.Sequential(
                nn.Conv2d(in_channels, width, 7, 2, 3, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
                nn.MaxPool2d(3, 2, 1),
            )
        stages, channels = [], width
        for index, count in enumerate(layers):
            stride = 1 if index == 0 else 2
            stage_width = width * 2**index
            blocks = []
            for position in range(count):
                blocks.append(block(channels, stage_width, stride if position == 0 else 1))
                channels = stage_width * block.expansion
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.in_channels = in_channels
        self.out_dim = channels
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, images: Tensor) -> Tensor:
        """Pooled features.

        Parameters
        ----------
        images : Tensor of shape (B, in_channels, H, W), float

        Returns
        -------
        Tensor of shape (B, out_dim), float
        """
        if images.dim() != 4 or images.shape[1] != self.in_channels:
            raise ValueError(
                f"images must be (B, {self.in_channels}, H, W), got shape {tuple(images.shape)}"
            )
        return self.pool(self.stages(self.stem(images))).flatten(1)


def resnet18(*, image_size: int, in_channels: int = 3, width: int = 64) -> ResNet:
    """ResNet-18; the small-image stem when ``image_size <= 32``.

    Parameters
    ----------
    image_size : int
        Side of the (square) training inputs, which picks the stem.
    in_channels : int
        1 for grey-scale, 3 for RGB.
    width : int
        Base width (64 in the original; e.g. 16 for CPU budgets). ``out_dim = 8 * width``.
    """
    check_int("image_size", image_size, low=1)
    return ResNet(BasicBlock, (2, 2, 2, 2), in_channels=in_channels, width=width,
                  small_images=image_size <= SMALL_IMAGE_MAX)


def resnet50(*, image_size: int, in_channels: int = 3, width: int = 64) -> ResNet:
    """ResNet-50; the small-image stem when ``image_size <= 32``. ``out_dim = 32 * width``."""
    check_int("image_size", image_size, low=1)
    return ResNet(Bottleneck, (3, 4, 6, 3), in_channels=in_channels, width=width,
                  small_images=image_size <= SMALL_IMAGE_MAX)


ARCHITECTURES = {"resnet18": resnet18, "resnet50": resnet50}


def make_resnet(name: str, *, image_size: int, in_channels: int = 3, width: int = 64) -> ResNet:
    """Build ``"resnet18"`` or ``"resnet50"`` by name."""
    if name not in ARCHITECTURES:
        raise ValueError(f"architecture must be one of {sorted(ARCHITECTURES)}, got {name!r}")
    return ARCHITECTURES[name](image_size=image_size, in_channels=in_channels, width=width)
