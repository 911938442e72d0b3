import math

import pytest
import torch
import torch.nn.functional as F

from dglbs.losses import DCLLoss, HCLLoss, InfoNCELoss, make_loss


def views(b=6, p=5, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(b, p, generator=generator), torch.randn(b, p, generator=generator)


def reference_nt_xent(z1, z2, temperature):
    """SimCLR's NT-Xent written the textbook way: 2B anchors, cross-entropy."""
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    b = len(z1)
    logits = z @ z.T / temperature
    logits.fill_diagonal_(-math.inf)
    targets = torch.cat([torch.arange(b, 2 * b), torch.arange(b)])
    return F.cross_entropy(logits, targets)


def reference_debiased(z1, z2, temperature, tau_plus, beta):
    """Chuang et al. / Robinson et al. estimators with explicit loops."""
    z = F.normalize(torch.cat([z1, z2]), dim=1).double()
    b = len(z1)
    losses = []
    for i in range(2 * b):
        j = (i + b) % (2 * b)
        pos = math.exp(float(z[i] @ z[j]) / temperature)
        negs = [math.exp(float(z[i] @ z[k]) / temperature) for k in range(2 * b) if k not in (i, j)]
        n = len(negs)
        weights = [neg**beta for neg in negs]
        mean = sum(w * neg for w, neg in zip(weights, negs)) / sum(weights)
        ng = max((n * mean - tau_plus * n * pos) / (1 - tau_plus), n * math.exp(-1 / temperature))
        losses.append(-math.log(pos / (pos + ng)))
    return sum(losses) / len(losses)


def test_infonce_matches_nt_xent():
    z1, z2 = views()
    assert torch.allclose(InfoNCELoss(0.5)(z1, z2), reference_nt_xent(z1, z2, 0.5), atol=1e-6)


@pytest.mark.parametrize("temperature", [0.5, 0.1])
def test_dcl_and_hcl_match_the_papers_estimators(temperature):
    z1, z2 = views()
    dcl = DCLLoss(temperature, tau_plus=0.1)(z1, z2)
    hcl = HCLLoss(temperature, tau_plus=0.1, beta=1.0)(z1, z2)
    assert dcl.item() == pytest.approx(reference_debiased(z1, z2, temperature, 0.1, 0.0), rel=1e-5)
    assert hcl.item() == pytest.approx(reference_debiased(z1, z2, temperature, 0.1, 1.0), rel=1e-5)


def test_debiased_losses_reduce_to_infonce():
    z1, z2 = views()
    infonce = InfoNCELoss(0.5)(z1, z2)
    # The clamp only bites when the debiased estimate is tiny; not with tau_plus = 0.
    assert torch.allclose(DCLLoss(0.5, tau_plus=0.0)(z1, z2), infonce, atol=1e-5)
    assert torch.allclose(HCLLoss(0.5, tau_plus=0.0, beta=0.0)(z1, z2), infonce, atol=1e-5)


def test_small_temperature_stays_finite_and_differentiable():
    z1, z2 = views(b=32)
    z1.requires_grad_(True)
    for loss in (InfoNCELoss(0.01), DCLLoss(0.01), HCLLoss(0.01)):
        value = loss(z1, z2)
        value.backward()
        assert torch.isfinite(value) and torch.isfinite(z1.grad).all()
        z1.grad = None


def test_cross_view_only_and_one_directional_variant():
    z1, z2 = views()
    loss = InfoNCELoss(0.05, intra_view=False, symmetric=False)(z1, z2)
    logits = F.normalize(z1, dim=1) @ F.normalize(z2, dim=1).T / 0.05
    assert torch.allclose(loss, F.cross_entropy(logits, torch.arange(6)), atol=1e-5)


def test_aligned_views_have_lower_loss_than_random_ones():
    z1, z2 = views()
    for name in ("infonce", "dcl", "hcl"):
        loss = make_loss(name, temperature=0.2)
        assert loss(z1, z1 + 0.01 * z2) < loss(z1, z2)


@pytest.mark.parametrize(
    "build,match",
    [
        (lambda: InfoNCELoss(0.0), "temperature must be a positive float, got 0.0"),
        (lambda: DCLLoss(tau_plus=1.0), "tau_plus must be below 1, got 1.0"),
        (lambda: DCLLoss(tau_plus=-0.1), r"tau_plus must be in \[0, 1\]"),
        (lambda: HCLLoss(beta=-1.0), "beta must be a float >= 0, got -1.0"),
        (lambda: make_loss("triplet"), "loss must be one of"),
    ],
)
def test_bad_arguments(build, match):
    with pytest.raises(ValueError, match=match):
        build()


def test_bad_shapes():
    with pytest.raises(ValueError, match=r"\(4, 3\) and \(4, 2\)"):
        InfoNCELoss()(torch.zeros(4, 3), torch.zeros(4, 2))
    with pytest.raises(ValueError, match="at least 2, got 1"):
        InfoNCELoss()(torch.zeros(1, 3), torch.zeros(1, 3))


@pytest.mark.parametrize("loss", [InfoNCELoss(0.5), DCLLoss(0.5), HCLLoss(0.5, beta=1.0),
                                  InfoNCELoss(0.5, intra_view=False, symmetric=False)], ids=repr)
@pytest.mark.parametrize("rows", [1, 2, 4])
def test_anchor_slices_split_the_batch_loss_and_its_gradient(loss, rows):
    """What each of several processes computes with gathered negatives: the mean over
    equal slices of anchors is the whole batch's loss, with the same gradient."""
    z1, z2 = (view.requires_grad_() for view in views(b=8))
    whole = loss(z1, z2)
    whole_gradients = torch.autograd.grad(whole, (z1, z2))
    split = torch.stack([loss(z1, z2, anchors=slice(start, start + rows)) for start in range(0, 8, rows)]).mean()
    assert split.item() == pytest.approx(whole.item(), rel=1e-6)
    for gradient, expected in zip(torch.autograd.grad(split, (z1, z2)), whole_gradients):
        assert torch.allclose(gradient, expected, atol=1e-6)
    assert loss(z1, z2, anchors=slice(None)).item() == whole.item()


def test_bad_anchor_slices_are_named():
    z1, z2 = views()
    with pytest.raises(ValueError, match=r"0 <= start < stop <= 6 \(the batch\), got slice\(4, 2, None\)"):
        InfoNCELoss()(z1, z2, anchors=slice(4, 2))
    with pytest.raises(ValueError, match=r"got slice\(0, 7, None\)"):
        InfoNCELoss()(z1, z2, anchors=slice(0, 7))
    with pytest.raises(TypeError, match=r"anchors must be a slice\(start, stop\) of rows, got \[0, 1\]"):
        InfoNCELoss()(z1, z2, anchors=[0, 1])
    with pytest.raises(TypeError, match="got slice"):
        InfoNCELoss()(z1, z2, anchors=slice(0, 6, 2))
