import torch

from sim2real.agents.augment import Augmentation, _photometric, augment_batch

OUTPUTS = ["user/angle", "user/throttle", "sim/cte"]


def test_augment_mirror_negates_signed_labels_only():
    images = torch.zeros(4, 3, 8, 16, dtype=torch.uint8)
    images[:, :, :, :4] = 255  # a bright band on the left
    targets = torch.tensor([[0.5, 0.3, 0.1]] * 4)
    only_flip = Augmentation(
        brightness=0,
        contrast=0,
        saturation=0,
        channel_gain=0,
        noise_std=0,
        blur_prob=0,
        shift_px=0,
        rotate_deg=0,
        flip_prob=1.0,
    )
    x, y = augment_batch(images, targets, OUTPUTS, torch.Generator().manual_seed(0), only_flip)
    assert x.dtype == torch.float32
    assert torch.equal(x[:, :, :, -4:], torch.ones(4, 3, 8, 4))  # band moved to the right
    assert torch.equal(y, torch.tensor([[-0.5, 0.3, -0.1]] * 4))
    assert torch.equal(targets, torch.tensor([[0.5, 0.3, 0.1]] * 4))  # inputs untouched


def test_augment_is_reproducible_from_the_generator():
    images = torch.randint(0, 255, (6, 3, 16, 32), dtype=torch.uint8)
    targets = torch.rand(6, 3)
    a = augment_batch(images, targets, OUTPUTS, torch.Generator().manual_seed(1))
    b = augment_batch(images, targets, OUTPUTS, torch.Generator().manual_seed(1))
    c = augment_batch(images, targets, OUTPUTS, torch.Generator().manual_seed(2))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])
    assert a[0].min() >= 0 and a[0].max() <= 1


def test_colour_map_equals_the_stepwise_definition():
    """Saturation, contrast (around the frame's mean), gain, brightness, one after another."""
    x = torch.rand(16, 3, 8, 16)
    cfg = Augmentation()
    out = _photometric(x, cfg, torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(0)
    n = 16

    def draw(k, half_width):
        return (torch.rand(k, generator=g) * 2 - 1) * half_width

    sat, con = 1 + draw(n, cfg.saturation), 1 + draw(n, cfg.contrast)
    gain, bright = 1 + draw(3 * n, cfg.channel_gain), draw(n, cfg.brightness)
    gray = 0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]
    y = gray + (x - gray) * sat.view(n, 1, 1, 1)
    mean = y.mean(dim=(1, 2, 3), keepdim=True)
    y = mean + (y - mean) * con.view(n, 1, 1, 1)
    y = y * gain.view(n, 3, 1, 1) + bright.view(n, 1, 1, 1)
    assert torch.allclose(out, y, atol=1e-5)
    assert not torch.allclose(out, x, atol=1e-2)
