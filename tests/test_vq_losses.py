import pytest
import torch

from posedraw.errors import CheckpointError
from posedraw.losses.discriminator import PatchDiscriminator
from posedraw.losses.perceptual import build_lpips
from posedraw.losses.vqgan import adaptive_weight, hinge_d_loss, vanilla_d_loss


def test_adaptive_weight_is_the_ratio_of_gradient_norms_at_the_last_layer():
    layer = torch.ones(3, requires_grad=True)
    rec, gen = (layer * 2).sum(), (layer * 8).sum()
    assert float(adaptive_weight(rec, gen, layer)) == pytest.approx(2 * 3**0.5 / (8 * 3**0.5 + 1e-4))


def test_discriminator_losses():
    confident = torch.full((4,), 2.0)
    assert float(hinge_d_loss(confident, -confident)) == 0.0
    assert float(hinge_d_loss(-confident, confident)) == pytest.approx(3.0)
    assert float(vanilla_d_loss(torch.zeros(4), torch.zeros(4))) == pytest.approx(float(torch.log(torch.tensor(2.0))))


def test_patch_discriminator_scores_patches():
    logits = PatchDiscriminator(3, 16, layers=2)(torch.zeros(2, 3, 64, 64))
    assert logits.shape == (2, 1, 14, 14)


def test_lpips_backbone_missing_is_an_error_that_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(CheckpointError, match=r"vgg16-397923af\.pth.*IMAGENET1K_V1"):
        build_lpips("torchvision")
    with pytest.raises(CheckpointError, match=r"missing\.pth"):
        build_lpips(str(tmp_path / "missing.pth"))


def test_lpips_loads_vgg16_weights_from_a_file(tmp_path):
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    vgg = torchvision.models.vgg16()
    path = tmp_path / "vgg16.pth"
    torch.save(vgg.state_dict(), path)
    metric = build_lpips(str(path))
    assert torch.equal(getattr(metric.net.slice3, "10").weight, vgg.features[10].weight)
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    assert float(metric(x, x)) == pytest.approx(0.0, abs=1e-6)
    assert float(metric(x, -x)) > 0.0
