"""Batched image augmentations on the training device, one random draw per sample.

:class:`ImageAugmentation` turns a uint8 batch ``(B, C, H, W)`` into float views in
``[0, 1]`` with SimCLR's pipeline (random-resized crop, horizontal flip, colour
jitter, random grey-scale, Gaussian blur; optionally solarisation, for MoCo v3's
second view). All random parameters are drawn from a CPU ``torch.Generator`` as
``(B, ...)`` tensors and then moved to the images' device, so a seed gives the
same views on CPU and GPU, and the image work is whole-batch tensor code:

- crops and flips are one ``affine_grid`` / ``grid_sample`` call (bilinear, no
  anti-aliasing, unlike torchvision's resize);
- colour-jitter factors are per sample, applied in a per-sample random order as
  torchvision does;
- blur is a per-sample separable Gaussian as one grouped convolution.

Grey-scale inputs (``C = 1``) get brightness and contrast jitter only.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dglbs._checks import check_int, check_probability

GREY_WEIGHTS = (0.299, 0.587, 0.114)
"""ITU-R 601-2 luma weights, as PIL and torchvision."""

BLUR_MIN_SIZE = 33
"""Smallest output side that gets Gaussian blur by default (SimCLR skips it on CIFAR)."""


def to_unit_float(images: Tensor) -> Tensor:
    """uint8 images to float32 in ``[0, 1]``; float input is returned as float32 unchanged."""
    if images.dtype == torch.uint8:
        return images.float().div_(255.0)
    if not images.is_floating_point():
        raise TypeError(f"images must be uint8 or floating point, got {images.dtype}")
    return images.float()


def grey(images: Tensor) -> Tensor:
    """Luma of RGB images ``(B, 3, H, W)`` -> ``(B, 1, H, W)``; grey input is returned as is."""
    if images.shape[1] == 1:
        return images
    weights = images.new_tensor(GREY_WEIGHTS).view(1, 3, 1, 1)
    return (images * weights).sum(1, keepdim=True)


def _per_sample(values: Tensor) -> Tensor:
    return values.view(-1, 1, 1, 1)


def adjust_brightness(images: Tensor, factors: Tensor) -> Tensor:
    """Scale towards black: ``x * f``, clamped to ``[0, 1]``; ``factors`` of shape ``(B,)``."""
    return (images * _per_sample(factors)).clamp_(0.0, 1.0)


def adjust_contrast(images: Tensor, factors: Tensor) -> Tensor:
    """Blend with each image's mean luma: ``f * x + (1 - f) * mean``, clamped."""
    means = grey(images).mean(dim=(1, 2, 3), keepdim=True)
    factors = _per_sample(factors)
    return (factors * images + (1.0 - factors) * means).clamp_(0.0, 1.0)


def adjust_saturation(images: Tensor, factors: Tensor) -> Tensor:
    """Blend RGB images with their grey version: ``f * x + (1 - f) * grey(x)``, clamped."""
    factors = _per_sample(factors)
    return (factors * images + (1.0 - factors) * grey(images)).clamp_(0.0, 1.0)


def rgb_to_hsv(images: Tensor) -> Tensor:
    """RGB ``(B, 3, H, W)`` in ``[0, 1]`` to HSV, each channel in ``[0, 1]`` (hue as a turn fraction)."""
    value, argmax = images.max(dim=1)
    chroma = value - images.min(dim=1).values
    saturation = torch.where(value > 0, chroma / value.clamp_min(1e-12), torch.zeros_like(value))
    safe = chroma.clamp_min(1e-12)
    red, green, blue = images.unbind(1)
    # Hue sector by the largest channel, in sixths of a turn.
    hue = torch.stack([((green - blue) / safe) % 6.0, (blue - red) / safe + 2.0, (red - green) / safe + 4.0], dim=1)
    hue = hue.gather(1, argmax.unsqueeze(1)).squeeze(1)
    hue = torch.where(chroma > 0, hue / 6.0, torch.zeros_like(hue)) % 1.0
    return torch.stack([hue, saturation, value], dim=1)


def hsv_to_rgb(images: Tensor) -> Tensor:
    """Inverse of :func:`rgb_to_hsv`."""
    hue, saturation, value = images.unbind(1)
    sector_float = hue * 6.0
    sector = sector_float.floor()
    fraction = sector_float - sector
    sector = sector.long() % 6
    p = value * (1.0 - saturation)
    q = value * (1.0 - saturation * fraction)
    t = value * (1.0 - saturation * (1.0 - fraction))
    # Rows: for each of the 6 sectors, which of (v, q, p, t) is red, green, blue.
    candidates = torch.stack([value, q, p, t], dim=1)
    table = torch.tensor([[0, 3, 2], [1, 0, 2], [2, 0, 3], [2, 1, 0], [3, 2, 0], [0, 2, 1]], device=images.device)
    picks = table[sector].permute(0, 3, 1, 2)
    return candidates.gather(1, picks)


def adjust_hue(images: Tensor, shifts: Tensor) -> Tensor:
    """Rotate the hue of RGB images by ``shifts`` ``(B,)`` turns (in ``[-0.5, 0.5]``)."""
    hsv = rgb_to_hsv(images)
    hue = (hsv[:, 0] + shifts.view(-1, 1, 1)) % 1.0
    return hsv_to_rgb(torch.cat([hue.unsqueeze(1), hsv[:, 1:]], dim=1)).clamp_(0.0, 1.0)


def resized_crop(images: Tensor, boxes: Tensor, size: int, flips: Tensor | None = None) -> Tensor:
    """Crop a box from every image, resize it to ``size x size`` and optionally mirror it.

    Parameters
    ----------
    images : Tensor of shape (B, C, H, W), float
    boxes : Tensor of shape (B, 4), float
        ``(left, top, width, height)`` in pixels; fractional boxes are fine.
    size : int
        Output side.
    flips : Tensor of shape (B,), bool, optional
        Mirror these crops horizontally.

    Returns
    -------
    Tensor of shape (B, C, size, size), bilinear samples
    """
    batch, _, height, width = images.shape
    left, top, box_width, box_height = boxes.to(images).unbind(1)
    # With align_corners=False, normalised -1 and 1 are the outer pixel edges, so a
    # box maps to scale = box / side and centre = 2 * (offset + box / 2) / side - 1.
    scale_x = box_width / width
    if flips is not None:
        scale_x = torch.where(flips.to(images.device), -scale_x, scale_x)
    theta = torch.zeros(batch, 2, 3, dtype=images.dtype, device=images.device)
    theta[:, 0, 0] = scale_x
    theta[:, 0, 2] = (2.0 * left + box_width) / width - 1.0
    theta[:, 1, 1] = box_height / height
    theta[:, 1, 2] = (2.0 * top + box_height) / height - 1.0
    grid = F.affine_grid(theta, [batch, images.shape[1], size, size], align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


def gaussian_kernels(sigmas: Tensor, kernel_size: int) -> Tensor:
    """Normalised 1-D Gaussian kernels ``(B, kernel_size)``; ``sigma = 0`` gives the identity kernel."""
    offsets = torch.arange(kernel_size, dtype=sigmas.dtype, device=sigmas.device) - (kernel_size - 1) / 2
    exponents = -(offsets**2) / (2.0 * sigmas.clamp_min(1e-6).view(-1, 1) ** 2)
    return torch.softmax(exponents, dim=1)


def gaussian_blur(images: Tensor, sigmas: Tensor, kernel_size: int) -> Tensor:
    """Blur every image with its own Gaussian, separably, with reflected borders.

    Parameters
    ----------
    images : Tensor of shape (B, C, H, W), float
    sigmas : Tensor of shape (B,)
        Standard deviations in pixels; 0 leaves an image unchanged.
    kernel_size : int
        Odd, smaller than ``H`` and ``W``.
    """
    batch, channels, height, width = images.shape
    if kernel_size % 2 == 0 or kernel_size >= min(height, width):
        raise ValueError(f"kernel_size must be odd and below the image side {min(height, width)}, got {kernel_size}")
    kernels = gaussian_kernels(sigmas.to(images), kernel_size).repeat_interleave(channels, dim=0)
    radius = kernel_size // 2
    # Each (image, channel) plane is one group of a grouped convolution.
    planes = images.reshape(1, batch * channels, height, width)
    planes = F.conv2d(F.pad(planes, (radius, radius, 0, 0), mode="reflect"),
                      kernels.view(-1, 1, 1, kernel_size), groups=batch * channels)
    planes = F.conv2d(F.pad(planes, (0, 0, radius, radius), mode="reflect"),
                      kernels.view(-1, 1, kernel_size, 1), groups=batch * channels)
    return planes.view(batch, channels, height, width)


def solarize(images: Tensor, mask: Tensor, threshold: float = 0.5) -> Tensor:
    """Invert pixels at or above ``threshold`` in the images where ``mask`` ``(B,)`` is true."""
    inverted = torch.where(images >= threshold, 1.0 - images, images)
    return torch.where(_per_sample(mask.to(images.device)), inverted, images)


def _check_range(name: str, bounds: Sequence[float], low: float, high: float) -> tuple[float, float]:
    bounds = tuple(float(value) for value in bounds)
    if len(bounds) != 2 or not low <= bounds[0] <= bounds[1] <= high:
        raise ValueError(f"{name} must be (min, max) with {low} <= min <= max <= {high}, got {bounds!r}")
    return bounds


def _check_strength(name: str, value: float, high: float = math.inf) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= high:
        raise ValueError(f"{name} must be a float in [0, {high}], got {value!r}")
    return float(value)


def _uniform(generator: torch.Generator, shape: tuple[int, ...], low: float | Tensor,
             high: float | Tensor) -> Tensor:
    return low + (high - low) * torch.rand(shape, generator=generator)


class ImageAugmentation(nn.Module):
    """SimCLR-style random views of a uint8 batch, computed on the batch's device.

    Parameters
    ----------
    size : int
        Side of the output views.
    in_channels : int
        1 (grey-scale: brightness and contrast jitter only, no grey-scale step) or 3.
    crop_scale : (float, float)
        Range of the crop's area as a fraction of the image (SimCLR: 0.08-1).
    crop_ratio : (float, float)
        Range of the crop's width / height, sampled log-uniformly.
    flip_prob : float
        Probability of a horizontal mirror.
    jitter_prob : float
        Probability of colour jitter (SimCLR: 0.8).
    brightness, contrast, saturation : float
        Jitter factors are drawn from ``[max(0, 1 - s), 1 + s]`` (SimCLR with strength
        0.5: 0.4 each).
    hue : float
        Hue shift drawn from ``[-hue, hue]`` turns, ``hue <= 0.5`` (SimCLR: 0.1).
    grayscale_prob : float
        Probability of converting an RGB view to grey (kept with 3 channels).
    blur_prob : float, optional
        Probability of Gaussian blur; default 0.5 when ``size > 32`` and 0 otherwise
        (SimCLR blurs ImageNet views but not CIFAR ones).
    blur_sigma : (float, float)
        Range of the blur's standard deviation in pixels (SimCLR, MoCo v3: 0.1-2.0,
        whatever the image size).
    solarize_prob : float
        Probability of solarisation (MoCo v3 / BYOL's second view: 0.2).

    Notes
    -----
    The blur kernel spans 10% of ``size`` as in SimCLR: ``2 * (size // 10 // 2) + 1``
    taps (23 at 224 px, 9 at 96 px).
    """

    def __init__(
        self,
        size: int,
        *,
        in_channels: int = 3,
        crop_scale: Sequence[float] = (0.08, 1.0),
        crop_ratio: Sequence[float] = (3 / 4, 4 / 3),
        flip_prob: float = 0.5,
        jitter_prob: float = 0.8,
        brightness: float = 0.4,
        contrast: float = 0.4,
        saturation: float = 0.4,
        hue: float = 0.1,
        grayscale_prob: float = 0.2,
        blur_prob: float | None = None,
        blur_sigma: Sequence[float] = (0.1, 2.0),
        solarize_prob: float = 0.0,
    ) -> None:
        super().__init__()
        self.size = check_int("size", size, low=1)
        if in_channels not in (1, 3):
            raise ValueError(f"in_channels must be 1 (grey) or 3 (RGB), got {in_channels!r}")
        self.in_channels = in_channels
        self.crop_scale = _check_range("crop_scale", crop_scale, 1e-6, 1.0)
        self.crop_ratio = _check_range("crop_ratio", crop_ratio, 1e-6, math.inf)
        self.flip_prob = check_probability("flip_prob", flip_prob)
        self.jitter_prob = check_probability("jitter_prob", jitter_prob)
        self.brightness = _check_strength("brightness", brightness)
        self.contrast = _check_strength("contrast", contrast)
        self.saturation = _check_strength("saturation", saturation)
        self.hue = _check_strength("hue", hue, 0.5)
        self.grayscale_prob = check_probability("grayscale_prob", grayscale_prob)
        if blur_prob is None:
            blur_prob = 0.5 if self.size >= BLUR_MIN_SIZE else 0.0
        self.blur_prob = check_probability("blur_prob", blur_prob)
        self.blur_sigma = _check_range("blur_sigma", blur_sigma, 0.0, math.inf)
        self.blur_kernel_size = 2 * (self.size // 10 // 2) + 1
        if self.blur_prob > 0 and self.blur_kernel_size < 3:
            raise ValueError(f"blur needs views of at least 20 px (its kernel spans 10% of the side); size is "
                             f"{size}, set blur_prob=0")
        self.solarize_prob = check_probability("solarize_prob", solarize_prob)
        self.jitters = ("brightness", "contrast") if in_channels == 1 else ("brightness", "contrast", "saturation",
                                                                             "hue")

    def extra_repr(self) -> str:
        return (f"size={self.size}, in_channels={self.in_channels}, crop_scale={self.crop_scale}, "
                f"jitter_prob={self.jitter_prob}, grayscale_prob={self.grayscale_prob}, "
                f"blur_prob={self.blur_prob}, solarize_prob={self.solarize_prob}")

    def sample_parameters(self, batch_size: int, image_size: tuple[int, int],
                          generator: torch.Generator) -> dict[str, Tensor]:
        """Random parameters of ``batch_size`` views, drawn on the CPU from ``generator``.

        Returns
        -------
        dict of CPU tensors
            ``boxes`` (B, 4) float, ``flips`` (B,) bool, ``jitter_factors`` (B, J) float
            (one column per entry of :attr:`jitters`; identity values where a sample is
            not jittered), ``jitter_order`` (B, J) int64 permutations, ``grayscale``,
            ``blur`` and ``solarize`` (B,) bool, ``sigmas`` (B,) float (0 where not blurred).
        """
        height, width = image_size
        boxes = self._sample_boxes(batch_size, height, width, generator)
        flips = torch.rand(batch_size, generator=generator) < self.flip_prob
        jittered = torch.rand(batch_size, generator=generator) < self.jitter_prob
        columns = []
        for name in self.jitters:
            strength = getattr(self, name)
            if name == "hue":
                values, identity = _uniform(generator, (batch_size,), -strength, strength), 0.0
            else:
                values, identity = _uniform(generator, (batch_size,), max(0.0, 1.0 - strength), 1.0 + strength), 1.0
            columns.append(torch.where(jittered, values, torch.full_like(values, identity)))
        order = torch.rand(batch_size, len(self.jitters), generator=generator).argsort(dim=1)
        grayscale = torch.rand(batch_size, generator=generator) < self.grayscale_prob
        blur = torch.rand(batch_size, generator=generator) < self.blur_prob
        sigmas = _uniform(generator, (batch_size,), *self.blur_sigma)
        solarized = torch.rand(batch_size, generator=generator) < self.solarize_prob
        return {
            "boxes": boxes, "flips": flips, "jitter_factors": torch.stack(columns, dim=1), "jitter_order": order,
            "grayscale": grayscale, "blur": blur, "sigmas": torch.where(blur, sigmas, torch.zeros_like(sigmas)),
            "solarize": solarized,
        }

    def _sample_boxes(self, batch_size: int, height: int, width: int, generator: torch.Generator) -> Tensor:
        """torchvision's RandomResizedCrop: up to 10 tries of area and aspect ratio
        per sample, the first that fits wins; else a central crop of clamped ratio."""
        tries = 10
        area = _uniform(generator, (batch_size, tries), *self.crop_scale) * height * width
        log_low, log_high = math.log(self.crop_ratio[0]), math.log(self.crop_ratio[1])
        ratio = torch.exp(_uniform(generator, (batch_size, tries), log_low, log_high))
        box_width, box_height = torch.sqrt(area * ratio), torch.sqrt(area / ratio)
        fits = (box_width <= width) & (box_height <= height)
        first = fits.float().argmax(dim=1, keepdim=True)
        box_width, box_height = box_width.gather(1, first).squeeze(1), box_height.gather(1, first).squeeze(1)
        found = fits.any(dim=1)
        fallback_width, fallback_height = self._central_box(height, width)
        box_width = torch.where(found, box_width, torch.full_like(box_width, fallback_width))
        box_height = torch.where(found, box_height, torch.full_like(box_height, fallback_height))
        offsets = torch.rand(batch_size, 2, generator=generator)
        # Fallback crops are centred; the others placed uniformly inside the image.
        offsets = torch.where(found.unsqueeze(1), offsets, torch.full_like(offsets, 0.5))
        left = offsets[:, 0] * (width - box_width)
        top = offsets[:, 1] * (height - box_height)
        return torch.stack([left, top, box_width, box_height], dim=1)

    def _central_box(self, height: int, width: int) -> tuple[float, float]:
        """The whole image, cut to the nearest allowed aspect ratio."""
        low, high = self.crop_ratio
        if width / height < low:
            return float(width), width / low
        if width / height > high:
            return height * high, float(height)
        return float(width), float(height)

    @torch.no_grad()
    def forward(self, images: Tensor, generator: torch.Generator) -> Tensor:
        """Augmented views.

        Parameters
        ----------
        images : Tensor of shape (B, C, H, W), uint8 (or float in [0, 1])
            On any device; the work happens there.
        generator : torch.Generator
            CPU generator drawing all random parameters.

        Returns
        -------
        Tensor of shape (B, C, size, size), float32 in [0, 1]
        """
        if images.dim() != 4 or images.shape[1] != self.in_channels:
            raise ValueError(f"images must be (B, {self.in_channels}, H, W), got shape {tuple(images.shape)}")
        parameters = self.sample_parameters(len(images), (images.shape[2], images.shape[3]), generator)
        return self.apply(images, parameters)

    def apply(self, images: Tensor, parameters: dict[str, Tensor]) -> Tensor:
        """The views for given parameters (from :meth:`sample_parameters`)."""
        device = images.device
        p = {name: value.to(device) for name, value in parameters.items()}
        views = resized_crop(to_unit_float(images), p["boxes"], self.size, p["flips"])
        views = self._jitter(views, p["jitter_factors"], p["jitter_order"])
        if self.in_channels == 3:
            views = torch.where(_per_sample(p["grayscale"]), grey(views).expand_as(views), views)
        if self.blur_prob > 0:
            # Kernels sum to one only up to rounding.
            views = gaussian_blur(views, p["sigmas"], self.blur_kernel_size).clamp_(0.0, 1.0)
        if self.solarize_prob > 0:
            views = solarize(views, p["solarize"])
        return views

    def _jitter(self, views: Tensor, factors: Tensor, order: Tensor) -> Tensor:
        operations = {"brightness": adjust_brightness, "contrast": adjust_contrast,
                      "saturation": adjust_saturation, "hue": adjust_hue}
        # At each position of the per-sample order, every operation transforms the
        # rows that have it there: J * J masked calls, J whole-batch passes of work.
        for position in range(len(self.jitters)):
            for column, name in enumerate(self.jitters):
                rows = torch.nonzero(order[:, position] == column).squeeze(1)
                if rows.numel():
                    views[rows] = operations[name](views[rows], factors[rows, column])
        return views


class ImageNormalize(nn.Module):
    """``(x - mean) / std`` per channel, for float images in ``[0, 1]``.

    Parameters
    ----------
    mean, std : sequence of C floats
        Per-channel statistics (e.g. from :func:`dglbs.data.images.channel_stats`);
        ``std`` positive.
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        mean, std = torch.as_tensor(mean, dtype=torch.float32), torch.as_tensor(std, dtype=torch.float32)
        if mean.dim() != 1 or mean.shape != std.shape or not bool((std > 0).all()):
            raise ValueError(f"mean and std must be two equally long sequences with std > 0, got {mean.tolist()} "
                             f"and {std.tolist()}")
        self.register_buffer("mean", mean.view(1, -1, 1, 1))
        self.register_buffer("std", std.view(1, -1, 1, 1))

    def forward(self, images: Tensor) -> Tensor:
        """Float images ``(B, C, H, W)`` in ``[0, 1]`` (uint8 is scaled first) -> normalised float32."""
        if images.dim() != 4 or images.shape[1] != self.mean.shape[1]:
            raise ValueError(f"images must be (B, {self.mean.shape[1]}, H, W), got shape {tuple(images.shape)}")
        return (to_unit_float(images) - self.mean) / self.std


def simclr_augmentation(size: int, in_channels: int = 3, *, strength: float = 0.5,
                        crop_scale: Sequence[float] = (0.08, 1.0)) -> ImageAugmentation:
    """SimCLR's views: jitter ``(0.8, 0.8, 0.8, 0.2) * strength`` with p = 0.8, grey-scale
    p = 0.2, blur p = 0.5 above 32 px (SimCLR uses strength 1 on ImageNet, 0.5 on CIFAR)."""
    _check_strength("strength", strength)
    return ImageAugmentation(size, in_channels=in_channels, crop_scale=crop_scale,
                             brightness=0.8 * strength, contrast=0.8 * strength, saturation=0.8 * strength,
                             hue=min(0.5, 0.2 * strength))


def mocov3_augmentations(size: int, in_channels: int = 3, *,
                         crop_scale: Sequence[float] = (0.08, 1.0)) -> tuple[ImageAugmentation, ImageAugmentation]:
    """MoCo v3's asymmetric pair (BYOL's): jitter (0.4, 0.4, 0.2, 0.1) with p = 0.8,
    grey-scale p = 0.2; blur p = 1.0 / 0.1 and solarisation p = 0 / 0.2 for views 1 / 2.
    Blur is dropped at 32 px and below."""
    blur = size >= BLUR_MIN_SIZE
    common = {"in_channels": in_channels, "crop_scale": crop_scale, "brightness": 0.4, "contrast": 0.4,
              "saturation": 0.2, "hue": 0.1}
    return (ImageAugmentation(size, blur_prob=1.0 if blur else 0.0, solarize_prob=0.0, **common),
            ImageAugmentation(size, blur_prob=0.1 if blur else 0.0, solarize_prob=0.2, **common))
