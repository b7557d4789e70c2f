import pytest
import torch

from posedraw.errors import CheckpointError
from posedraw.losses.perceptual import build_lpips
from posedraw.losses.vqgan import VQGANLoss, VQLossConfig, adaptive_weight, hinge_d_loss, vanilla_d_loss


def test_adaptive_weight_is_the_ratio_of_gradient_norms_at_the_last_layer():
    layer = torch.ones(3, requires_grad=True)
    rec, gen = (layer * 2).sum(), (layer * 8).sum()
    assert float(adaptive_weight(rec, gen, layer)) == pytest.approx(2 * 3**0.5 / (8 * 3**0.5 + 1e-4))


def test_discriminator_losses():
    confident = torch.full((4,), 2.0)
    assert float(hinge_d_loss(confident, -confident)) == 0.0
    assert float(hinge_d_loss(-confident, confident)) == pytest.approx(3.0)
    assert float(vanilla_d_loss(torch.zeros(4), torch.zeros(4))) == pytest.approx(float(torch.log(torch.tensor(2.0))))


def tiny_loss(disc_start: int = 0) -> VQGANLoss:
    torch.manual_seed(0)
    config = VQLossConfig(perceptual_weight=0.0, disc_start=disc_start, disc_layers=2, disc_channels=8)
    return VQGANLoss(config)


def test_reconstruction_is_zero_for_a_perfect_copy_and_grows_with_the_difference():
    images = torch.rand(2, 3, 16, 16) * 2 - 1
    noise = torch.randn_like(images)
    losses = [float(tiny_loss().reconstruction(images, images + scale * noise)) for scale in (0.0, 0.1, 0.5)]
    assert losses[0] == 0.0 and losses[0] < losses[1] < losses[2]
    assert losses[2] == pytest.approx(5 * losses[1], rel=1e-5)  # L1: linear in the error


def test_the_adversarial_term_starts_at_disc_start_and_reaches_the_decoder_not_the_codebook_loss():
    loss = tiny_loss(disc_start=5)
    images = torch.rand(2, 3, 16, 16) * 2 - 1
    last_layer = torch.ones(3, 1, 1, requires_grad=True)  # stands in for the decoder's last weight
    recon, codebook = images.flip(-1) * last_layer, torch.tensor([0.25])
    before, logs = loss.generator_loss(images, recon, codebook, step=4, last_layer=last_layer)
    assert "g_loss" not in logs and float(before.detach()) == pytest.approx(float(logs["rec_loss"]) + 0.25)
    after, logs = loss.generator_loss(images, recon, codebook, step=5, last_layer=last_layer)
    expected = logs["rec_loss"] + 0.25 + logs["d_weight"] * logs["g_loss"]
    assert float(after.detach()) == pytest.approx(float(expected)) and float(logs["d_weight"]) > 0
    (grad_before,) = torch.autograd.grad(before, last_layer, retain_graph=True)
    (grad_after,) = torch.autograd.grad(after, last_layer)
    assert not torch.allclose(grad_before, grad_after)  # the discriminator's opinion moves the decoder


def test_the_discriminator_loss_trains_only_the_discriminator_and_it_learns_real_from_fake():
    loss = tiny_loss()
    real = torch.rand(4, 3, 16, 16) * 2 - 1
    generator_output = torch.zeros(4, 3, 16, 16, requires_grad=True)
    fake = generator_output * 1.0
    d_loss, logs = loss.discriminator_loss(real, fake)
    d_loss.backward()
    assert generator_output.grad is None  # the generator is not pushed by the discriminator's step
    weights = [p for p in loss.discriminator.parameters() if p.ndim == 4]
    assert all(p.grad is not None for p in loss.discriminator.parameters())
    assert len(weights) == 4 and all(p.grad.abs().sum() > 0 for p in weights)
    optimizer = torch.optim.Adam(loss.discriminator.parameters(), lr=1e-3)
    first, gap = float(d_loss.detach()), float(logs["logits_real"] - logs["logits_fake"])
    for _ in range(5):
        optimizer.step()
        optimizer.zero_grad()
        d_loss, logs = loss.discriminator_loss(real, fake)
        d_loss.backward()
    assert float(d_loss.detach()) < 0.5 * first  # a few steps separate 4 fixed images
    assert float(logs["logits_real"] - logs["logits_fake"]) > gap + 1.0  # real and fake pushed apart


def test_lpips_backbone_missing_is_an_error_that_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(CheckpointError, match=r"vgg16-397923af\.pth.*IMAGENET1K_V1"):
        build_lpips("torchvision")
    with pytest.raises(CheckpointError, match=r"missing\.pth"):
        build_lpips(str(tmp_path / "missing.pth"))


@pytest.mark.slow
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
