from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from dglbs import KNNBatchSampler
from dglbs.data.images import ImageDataset, collate
from dglbs.losses import DCLLoss, InfoNCELoss
from dglbs.trainer import Trainer
from dglbs_models.augment_image import mocov3_augmentations
from dglbs_models.mocov3 import MoCoV3, MoCoV3Loss, momentum_at
from dglbs_models.resnet import resnet18

SIZE = 16


def tiny_mocov3(base_momentum: float = 0.99) -> MoCoV3:
    torch.manual_seed(0)
    return MoCoV3(resnet18(image_size=SIZE, in_channels=1, width=4), augmentations=mocov3_augmentations(SIZE, 1),
                  mean=(0.5,), std=(0.25,), hidden_dim=16, proj_dim=8, base_momentum=base_momentum, seed=0)


def tiny_batch(count: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (count, 1, SIZE, SIZE), dtype=torch.uint8, generator=generator)
    return images, torch.zeros(count, dtype=torch.int64)


def reference_mocov3_loss(q1, q2, k1, k2, temperature: float) -> torch.Tensor:
    """MoCo v3's contrastive_loss(q1, k2) + contrastive_loss(q2, k1), written out."""
    def contrastive(q, k):
        logits = F.normalize(q, dim=1) @ F.normalize(k, dim=1).T / temperature
        return F.cross_entropy(logits, torch.arange(len(q))) * 2 * temperature
    return contrastive(q1, k2) + contrastive(q2, k1)


def test_loss_is_mocov3s_symmetrised_loss() -> None:
    generator = torch.Generator().manual_seed(0)
    q1, q2, k1, k2 = (torch.randn(7, 5, generator=generator) for _ in range(4))
    loss = MoCoV3Loss(InfoNCELoss(0.2, intra_view=False, symmetric=False))
    value = loss(torch.cat([q1, q2], 1), torch.cat([k2, k1], 1))
    assert torch.allclose(value, reference_mocov3_loss(q1, q2, k1, k2, 0.2), atol=1e-5)
    unscaled = MoCoV3Loss(DCLLoss(0.2, tau_plus=0.0, intra_view=False, symmetric=False), scale_by_temperature=False)
    assert torch.allclose(unscaled(torch.cat([q1, q2], 1), torch.cat([k2, k1], 1)) * 0.4, value, atol=1e-5)


def test_loss_validation() -> None:
    with pytest.raises(ValueError, match="symmetric=False"):
        MoCoV3Loss(InfoNCELoss(0.2, intra_view=False))
    with pytest.raises(ValueError, match="intra_view=False"):
        MoCoV3Loss(InfoNCELoss(0.2, symmetric=False))
    with pytest.raises(TypeError, match="ContrastiveLoss"):
        MoCoV3Loss(torch.nn.MSELoss())
    with pytest.raises(ValueError, match=r"\(B, 2p\)"):
        MoCoV3Loss(InfoNCELoss(0.2, intra_view=False, symmetric=False))(torch.zeros(3, 5), torch.zeros(3, 5))


def test_forward_queries_have_gradients_keys_do_not() -> None:
    method = tiny_mocov3()
    z1, z2 = method(tiny_batch())
    assert z1.shape == z2.shape == (6, 16)
    assert z1.requires_grad and not z2.requires_grad
    MoCoV3Loss(InfoNCELoss(0.2, intra_view=False, symmetric=False))(z1, z2).backward()
    assert all(p.grad is not None for p in [*method.backbone.parameters(), *method.predictor.parameters()])
    assert all(p.grad is None and not p.requires_grad for p in method.momentum_backbone.parameters())
    assert method.embed(tiny_batch()).shape == (6, method.backbone.out_dim)


def test_momentum_schedule_and_update() -> None:
    assert momentum_at(0.0, 0.99) == pytest.approx(0.99)
    assert momentum_at(0.5, 0.99) == pytest.approx(0.995)
    assert momentum_at(1.0, 0.99) == pytest.approx(1.0)
    method = tiny_mocov3()
    for key, query in zip(method.momentum_backbone.parameters(), method.backbone.parameters()):
        assert torch.equal(key, query)
    with torch.no_grad():
        for parameter in [*method.backbone.parameters(), *method.projector.parameters()]:
            parameter.add_(1.0)
    keys_before = [p.clone() for p in method.momentum_projector.parameters()]
    method.on_step_end(0.5)
    assert method.momentum == pytest.approx(0.995)
    for key, before, query in zip(method.momentum_projector.parameters(), keys_before,
                                  method.projector.parameters()):
        assert torch.allclose(key, 0.995 * before + 0.005 * query, atol=1e-6)
    frozen = [p.clone() for p in method.momentum_backbone.parameters()]
    method.on_step_end(1.0)
    assert all(torch.equal(a, b) for a, b in zip(frozen, method.momentum_backbone.parameters()))


def test_trains_with_the_shared_trainer_and_embedding_bank() -> None:
    images, _ = tiny_batch(40)
    dataset = ImageDataset(images, torch.arange(40) % 4)
    method = tiny_mocov3()
    trainable = [p for p in method.parameters() if p.requires_grad]
    sampler = KNNBatchSampler(len(dataset), 10, refresh_every=2, seed=0)
    trainer = Trainer(method, MoCoV3Loss(InfoNCELoss(0.2, intra_view=False, symmetric=False)), sampler, dataset,
                      collate_fn=collate, optimizer=torch.optim.AdamW(trainable, lr=1e-3), refresh="bank",
                      progress=False)
    key_before = [p.clone() for p in method.momentum_backbone.parameters()]
    [stats] = trainer.fit(1)
    assert stats["steps"] == 4 and math.isfinite(stats["loss"])
    assert trainer.bank.embeddings.shape == (40, 16)
    assert any(not torch.equal(a, b) for a, b in zip(key_before, method.momentum_backbone.parameters()))
    # Progress reached 1 on the last step: momentum 1.
    assert method.momentum == pytest.approx(1.0)


def test_validation() -> None:
    with pytest.raises(ValueError, match="pair"):
        MoCoV3(resnet18(image_size=SIZE, in_channels=1, width=2), augmentations=mocov3_augmentations(SIZE, 1)[:1],
               mean=(0.5,), std=(0.5,))
    with pytest.raises(ValueError, match="base_momentum"):
        tiny_mocov3(base_momentum=1.5)
