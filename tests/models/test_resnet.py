from __future__ import annotations

import pytest
import torch
from torch import nn

from dglbs_models.resnet import BasicBlock, Bottleneck, ResNet, make_resnet, resnet18, resnet50


def count_parameters(model: nn.Module) -> int:
    return sum(parameter.numel() for parameter in model.parameters())


def test_full_width_models_match_the_reference_architectures() -> None:
    # torchvision's resnet18 / resnet50 parameter counts minus their 1000-way classifier.
    assert count_parameters(resnet18(image_size=224)) == 11_689_512 - (512 * 1000 + 1000)
    assert count_parameters(resnet50(image_size=224)) == 25_557_032 - (2048 * 1000 + 1000)
    assert resnet18(image_size=224).out_dim == 512
    assert resnet50(image_size=224).out_dim == 2048


def test_stem_follows_image_size() -> None:
    small, large = resnet18(image_size=32, width=4), resnet18(image_size=33, width=4)
    assert small.small_images and not large.small_images
    stem_kernels = [module.kernel_size for module in small.stem if isinstance(module, nn.Conv2d)]
    assert stem_kernels == [(3, 3)] and not any(isinstance(m, nn.MaxPool2d) for m in small.stem)
    assert any(isinstance(m, nn.MaxPool2d) for m in large.stem)
    # Small stem: 32 px keeps full resolution into stage 1 and ends at 4 x 4;
    # the standard stem divides by 4 first, so 64 px also ends at 2 x 2.
    with torch.no_grad():
        assert small.stages(small.stem(torch.zeros(1, 3, 32, 32))).shape[-2:] == (4, 4)
        assert large.stages(large.stem(torch.zeros(1, 3, 64, 64))).shape[-2:] == (2, 2)


@pytest.mark.parametrize("factory, width, expected", [(resnet18, 4, 32), (resnet50, 2, 64)])
def test_grey_inputs_narrow_width_and_gradients(factory, width: int, expected: int) -> None:
    model = factory(image_size=28, in_channels=1, width=width)
    assert model.out_dim == expected
    images = torch.randn(3, 1, 28, 28)
    features = model(images)
    assert features.shape == (3, expected)
    features.square().mean().backward()
    assert all(parameter.grad is not None for parameter in model.parameters())
    model.eval()
    with torch.no_grad():
        # Eval mode: per-sample results do not depend on the rest of the batch.
        assert torch.allclose(model(images[:1]), model(images)[:1], atol=1e-5)


def test_validation() -> None:
    model = resnet18(image_size=32, in_channels=1, width=4)
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\)"):
        model(torch.zeros(2, 3, 32, 32))
    with pytest.raises(ValueError, match="width"):
        resnet18(image_size=32, width=0)
    with pytest.raises(ValueError, match="4 stages"):
        ResNet(BasicBlock, (2, 2, 2))
    with pytest.raises(TypeError, match="block"):
        ResNet(nn.Linear, (1, 1, 1, 1))
    with pytest.raises(ValueError, match="architecture"):
        make_resnet("resnet34", image_size=32)
    assert isinstance(make_resnet("resnet50", image_size=96, width=2).stages[0][0], Bottleneck)
