from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from dglbs import UniformBatchSampler, WalkBatchSampler
from dglbs.data.images import ImageDataset, collate
from dglbs.losses import InfoNCELoss
from dglbs.trainer import Trainer
from dglbs_models.augment_image import simclr_augmentation
from dglbs_models.resnet import resnet18
from dglbs_models.simclr import SimCLR, projection_mlp

SIZE = 16


def tiny_simclr(channels: int = 1, seed: int = 0) -> SimCLR:
    torch.manual_seed(seed)
    return SimCLR(resnet18(image_size=SIZE, in_channels=channels, width=4),
                  augmentation=simclr_augmentation(SIZE, channels), mean=(0.5,) * channels,
                  std=(0.25,) * channels, proj_dim=8, seed=seed)


def tiny_dataset(count: int = 48, channels: int = 1) -> ImageDataset:
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (count, channels, SIZE, SIZE), dtype=torch.uint8, generator=generator)
    return ImageDataset(images, torch.arange(count) % 3)


def test_forward_embed_and_gradients() -> None:
    method = tiny_simclr(channels=3)
    images, labels = collate([tiny_dataset(channels=3)[i] for i in range(6)])
    z1, z2 = method((images, labels))
    assert z1.shape == z2.shape == (6, 8)
    assert not torch.allclose(z1, z2), "the two views must differ"
    InfoNCELoss(0.5)(z1, z2).backward()
    assert all(parameter.grad is not None for parameter in method.parameters())
    method.eval()
    with torch.no_grad():
        features = method.embed((images, labels))
        assert features.shape == (6, method.backbone.out_dim)
        # embed applies no augmentation: deterministic.
        assert torch.equal(features, method.embed((images, labels)))
        normalized = (images.float() / 255 - 0.5) / 0.25
        assert torch.allclose(features, method.backbone(normalized), atol=1e-6)


def test_seeded_views_and_generator_in_state_dict() -> None:
    batch = collate([tiny_dataset()[i] for i in range(4)])
    first, second = tiny_simclr(seed=3), tiny_simclr(seed=3)
    assert all(torch.equal(a, b) for a, b in zip(first(batch), second(batch)))
    state = first.state_dict()
    expected = first(batch)
    second.load_state_dict(state)
    assert all(torch.equal(a, b) for a, b in zip(expected, second(batch)))


def test_head_layout() -> None:
    head = projection_mlp(6, 5, 4, last_bn=False)
    assert [type(layer) for layer in head] == [nn.Linear, nn.BatchNorm1d, nn.ReLU, nn.Linear]
    assert head[0].bias is None and head[3].bias is not None
    assert tiny_simclr().head[0].in_features == tiny_simclr().backbone.out_dim


@pytest.mark.parametrize("sampler_name", ["uniform", "batchsampler"])
def test_trains_with_the_shared_trainer(sampler_name: str) -> None:
    dataset = tiny_dataset()
    if sampler_name == "uniform":
        sampler = UniformBatchSampler(len(dataset), 16, seed=0)
    else:
        sampler = WalkBatchSampler(len(dataset), 16, num_candidates=20, num_neighbors=5, refresh_every=2, seed=0)
    trainer = Trainer(tiny_simclr(), InfoNCELoss(0.5, intra_view=True), sampler, dataset, collate_fn=collate,
                      lr=1e-3, labels=dataset.labels, progress=False)
    before = [parameter.clone() for parameter in trainer.method.backbone.parameters()]
    [stats] = trainer.fit(1)
    assert stats["steps"] == 3 and math.isfinite(stats["loss"])
    assert any(not torch.equal(a, b) for a, b in zip(before, trainer.method.backbone.parameters()))
    assert trainer.encode().shape == (len(dataset), trainer.method.backbone.out_dim)
    if sampler_name == "batchsampler":
        assert stats["refreshes"] >= 1


def test_validation() -> None:
    with pytest.raises(TypeError, match="out_dim"):
        SimCLR(nn.Linear(3, 3), augmentation=simclr_augmentation(SIZE), mean=(0.5,) * 3, std=(0.5,) * 3)
    with pytest.raises(ValueError, match="1-channel"):
        SimCLR(resnet18(image_size=SIZE, width=2), augmentation=simclr_augmentation(SIZE, 1),
               mean=(0.5,) * 3, std=(0.5,) * 3)
    with pytest.raises(ValueError, match="one value per input channel"):
        SimCLR(resnet18(image_size=SIZE, width=2), augmentation=simclr_augmentation(SIZE), mean=(0.5,), std=(0.5,))
    with pytest.raises(TypeError, match="ImageAugmentation"):
        SimCLR(resnet18(image_size=SIZE, width=2), augmentation=None, mean=(0.5,) * 3, std=(0.5,) * 3)
    with pytest.raises(TypeError, match="images"):
        tiny_simclr()(("not", "images"))
