from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from dglbs_models.augment_image import (
    ImageAugmentation,
    ImageNormalize,
    adjust_brightness,
    adjust_contrast,
    adjust_hue,
    adjust_saturation,
    gaussian_blur,
    gaussian_kernels,
    grey,
    hsv_to_rgb,
    mocov3_augmentations,
    resized_crop,
    rgb_to_hsv,
    simclr_augmentation,
    solarize,
    to_unit_float,
)


def uint8_images(batch: int, channels: int, size: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (batch, channels, size, size), dtype=torch.uint8, generator=generator)


def test_resized_crop_identity_flip_and_pixel_aligned_box() -> None:
    images = torch.rand(3, 3, 12, 12)
    whole = torch.tensor([[0.0, 0.0, 12.0, 12.0]]).repeat(3, 1)
    assert torch.allclose(resized_crop(images, whole, 12), images, atol=1e-5)
    flips = torch.tensor([True, False, True])
    mirrored = resized_crop(images, whole, 12, flips)
    assert torch.allclose(mirrored[0], images[0].flip(-1), atol=1e-5)
    assert torch.allclose(mirrored[1], images[1], atol=1e-5)
    box = torch.tensor([[4.0, 2.0, 6.0, 6.0]]).repeat(3, 1)
    assert torch.allclose(resized_crop(images, box, 6), images[:, :, 2:8, 4:10], atol=1e-5)
    # Halving resolution of a 2x2-block image gives the blocks' values.
    blocks = torch.arange(9.0).view(1, 1, 3, 3).repeat_interleave(2, 2).repeat_interleave(2, 3)
    assert torch.allclose(resized_crop(blocks, torch.tensor([[0.0, 0.0, 6.0, 6.0]]), 3), blocks[:, :, ::2, ::2])


def test_crop_boxes_follow_scale_and_ratio() -> None:
    augmentation = ImageAugmentation(20, in_channels=1, crop_scale=(0.2, 0.5), crop_ratio=(0.5, 2.0))
    boxes = augmentation._sample_boxes(4000, 20, 30, torch.Generator().manual_seed(0))
    left, top, width, height = boxes.unbind(1)
    assert bool((left >= 0).all() and (top >= 0).all() and (left + width <= 30 + 1e-4).all()
                and (top + height <= 20 + 1e-4).all())
    area = width * height / 600
    assert area.min() >= 0.2 - 1e-5 and area.max() <= 0.5 + 1e-5
    ratio = width / height
    assert ratio.min() >= 0.5 - 1e-5 and ratio.max() <= 2.0 + 1e-5
    assert 0.9 < ratio.log().mean().exp() < 1.1
    # No area-and-ratio draw fits: the central box at the nearest allowed ratio.
    wide = ImageAugmentation(8, in_channels=1, crop_scale=(0.9, 1.0), crop_ratio=(4.0, 5.0))
    fallback = wide._sample_boxes(5, 8, 8, torch.Generator().manual_seed(0))
    assert torch.allclose(fallback, torch.tensor([[0.0, 3.0, 8.0, 2.0]]).repeat(5, 1))


def test_colour_operations() -> None:
    images = torch.rand(4, 3, 5, 5)
    assert torch.allclose(hsv_to_rgb(rgb_to_hsv(images)), images, atol=1e-5)
    # A third of a turn maps red to green, green to blue, blue to red.
    assert torch.allclose(adjust_hue(images, torch.full((4,), 1 / 3)), images[:, [2, 0, 1]], atol=1e-5)
    assert torch.allclose(adjust_hue(images, torch.zeros(4)), images, atol=1e-5)
    assert torch.equal(adjust_brightness(images, torch.zeros(4)), torch.zeros_like(images))
    flat = adjust_contrast(images, torch.zeros(4))
    assert torch.allclose(flat, grey(images).mean(dim=(1, 2, 3), keepdim=True).expand_as(images))
    assert torch.allclose(adjust_saturation(images, torch.zeros(4)), grey(images).expand_as(images))
    assert adjust_brightness(images, torch.full((4,), 3.0)).max() <= 1.0
    weights = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    assert torch.allclose(grey(images), (images * weights).sum(1, keepdim=True))
    mask = torch.tensor([True, False, True, False])
    solarized = solarize(images, mask)
    assert torch.equal(solarized[1], images[1])
    assert torch.allclose(solarized[0], torch.where(images[0] >= 0.5, 1 - images[0], images[0]))


def test_gaussian_blur_matches_a_dense_convolution_per_sample() -> None:
    kernels = gaussian_kernels(torch.tensor([0.0, 1.0, 2.0]), 7)
    assert torch.allclose(kernels.sum(1), torch.ones(3))
    assert torch.equal(kernels[0], F.one_hot(torch.tensor(3), 7).float())
    images = torch.rand(3, 2, 16, 16)
    blurred = gaussian_blur(images, torch.tensor([0.0, 1.0, 2.0]), 7)
    assert torch.allclose(blurred[0], images[0], atol=1e-6)
    for index in (1, 2):
        dense = torch.outer(kernels[index], kernels[index]).expand(2, 1, 7, 7)
        reference = F.conv2d(F.pad(images[index : index + 1], (3, 3, 3, 3), mode="reflect"), dense, groups=2)
        assert torch.allclose(blurred[index], reference[0], atol=1e-5)
    assert blurred[2].var() < blurred[1].var() < images[1].var()
    with pytest.raises(ValueError, match="odd"):
        gaussian_blur(images, torch.ones(3), 6)


def test_identity_pipeline_returns_the_input() -> None:
    augmentation = ImageAugmentation(10, crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), flip_prob=0.0,
                                     jitter_prob=0.0, grayscale_prob=0.0, blur_prob=0.0)
    images = uint8_images(4, 3, 10)
    views = augmentation(images, torch.Generator().manual_seed(0))
    assert views.dtype == torch.float32
    assert torch.allclose(views, to_unit_float(images), atol=1e-5)


def test_views_are_per_sample_reproducible_and_bounded() -> None:
    augmentation = simclr_augmentation(16, 3)
    same = uint8_images(1, 3, 16).repeat(8, 1, 1, 1)
    views = augmentation(same, torch.Generator().manual_seed(1))
    assert views.shape == (8, 3, 16, 16) and 0.0 <= views.min() and views.max() <= 1.0
    # Identical inputs get different views: parameters are drawn per sample.
    assert len({tuple(view.flatten()[:20].tolist()) for view in views}) == 8
    again = augmentation(same, torch.Generator().manual_seed(1))
    other = augmentation(same, torch.Generator().manual_seed(2))
    assert torch.equal(views, again) and not torch.equal(views, other)


def test_grey_scale_inputs_and_always_grey() -> None:
    grey_augmentation = ImageAugmentation(12, in_channels=1)
    assert grey_augmentation.jitters == ("brightness", "contrast")
    views = grey_augmentation(uint8_images(5, 1, 12), torch.Generator().manual_seed(0))
    assert views.shape == (5, 1, 12, 12)
    always = ImageAugmentation(12, grayscale_prob=1.0)
    views = always(uint8_images(5, 3, 12), torch.Generator().manual_seed(0))
    assert torch.allclose(views[:, 0], views[:, 1]) and torch.allclose(views[:, 1], views[:, 2])


def test_jitter_uses_each_samples_own_order() -> None:
    augmentation = ImageAugmentation(6, in_channels=1, crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0),
                                     flip_prob=0.0, grayscale_prob=0.0)
    images = uint8_images(2, 1, 6, seed=3)
    parameters = augmentation.sample_parameters(2, (6, 6), torch.Generator().manual_seed(0))
    factors = torch.tensor([[1.9, 0.2], [1.9, 0.2]])
    parameters |= {"jitter_factors": factors, "jitter_order": torch.tensor([[0, 1], [1, 0]])}
    views = augmentation.apply(images, parameters)
    unit = to_unit_float(images)
    brightness_first = adjust_contrast(adjust_brightness(unit, factors[:, 0]), factors[:, 1])
    contrast_first = adjust_brightness(adjust_contrast(unit, factors[:, 1]), factors[:, 0])
    assert torch.allclose(views[0], brightness_first[0], atol=1e-5)
    assert torch.allclose(views[1], contrast_first[1], atol=1e-5)
    assert not torch.allclose(brightness_first[1], contrast_first[1], atol=1e-3)


def test_presets_blur_only_above_32_pixels() -> None:
    assert simclr_augmentation(32).blur_prob == 0.0
    assert simclr_augmentation(96).blur_prob == 0.5 and simclr_augmentation(96).blur_kernel_size == 9
    assert simclr_augmentation(224).blur_kernel_size == 23
    first, second = mocov3_augmentations(96)
    assert (first.blur_prob, second.blur_prob, first.solarize_prob, second.solarize_prob) == (1.0, 0.1, 0.0, 0.2)
    assert mocov3_augmentations(28, 1)[0].blur_prob == 0.0
    views = first(uint8_images(2, 3, 40), torch.Generator().manual_seed(0))
    assert views.shape == (2, 3, 96, 96) and views.max() <= 1.0


def test_normalize_and_validation() -> None:
    normalize = ImageNormalize((0.5, 0.25, 0.0), (0.5, 0.25, 1.0))
    out = normalize(torch.full((1, 3, 2, 2), 255, dtype=torch.uint8))
    assert torch.allclose(out[0, :, 0, 0], torch.tensor([1.0, 3.0, 1.0]))
    with pytest.raises(ValueError, match="std > 0"):
        ImageNormalize((0.5,), (0.0,))
    with pytest.raises(ValueError, match="crop_scale"):
        ImageAugmentation(8, crop_scale=(0.5, 0.2))
    with pytest.raises(ValueError, match="hue"):
        ImageAugmentation(8, hue=0.7)
    with pytest.raises(ValueError, match="in_channels"):
        ImageAugmentation(8, in_channels=2)
    with pytest.raises(ValueError, match="blur"):
        ImageAugmentation(8, blur_prob=0.5)
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        ImageAugmentation(8)(uint8_images(2, 1, 8), torch.Generator())
    with pytest.raises(TypeError, match="uint8"):
        to_unit_float(torch.zeros(1, dtype=torch.int32))
    assert math.isclose(float(to_unit_float(torch.tensor([255], dtype=torch.uint8))), 1.0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_same_views_on_gpu() -> None:
    augmentation = simclr_augmentation(64, 3)
    images = uint8_images(4, 3, 64)
    cpu = augmentation(images, torch.Generator().manual_seed(0))
    gpu = augmentation(images.cuda(), torch.Generator().manual_seed(0))
    assert torch.allclose(cpu, gpu.cpu(), atol=1e-4)
