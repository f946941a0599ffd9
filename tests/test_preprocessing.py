import numpy as np
import pytest
import torch

from sim2real.agents.model import PER_IMAGE_MIN_STD, InputNormalization
from sim2real.agents.preprocessing import Preprocessing


def test_apply_crops_then_resizes():
    image = np.zeros((120, 160, 3), np.uint8)
    image[:40] = 255  # everything above the crop is white
    out = Preprocessing(crop_top=40, height=40, width=80).apply(image)
    assert out.shape == (40, 80, 3)
    assert out.dtype == np.uint8
    assert out.max() == 0  # the white rows were cropped away


def test_crop_that_removes_everything_is_an_error():
    with pytest.raises(ValueError, match="removes every row"):
        Preprocessing(crop_top=100, crop_bottom=20).apply(np.zeros((120, 160, 3), np.uint8))


def test_bad_values_fail_on_validation():
    with pytest.raises(ValueError, match="std"):
        Preprocessing(std=(0.1, 0.0, 0.1))
    with pytest.raises(ValueError):
        Preprocessing(crop_top=-1)


def test_per_image_normalization_removes_each_frames_brightness_and_contrast():
    norm = InputNormalization((0.5,) * 3, (0.25,) * 3, "per_image")
    images = torch.rand(4, 3, 8, 8, generator=torch.Generator().manual_seed(0)) * 0.5 + 0.2
    out = norm(images)
    torch.testing.assert_close(out.mean(dim=(1, 2, 3)), torch.zeros(4), atol=1e-6, rtol=0)
    torch.testing.assert_close(out.std(dim=(1, 2, 3), correction=0), torch.ones(4))
    # each frame at its own exposure and contrast: the encoder sees the same input
    gain, offset = torch.tensor([0.5, 1.0, 1.5, 0.3]), torch.tensor([0.1, 0.0, -0.2, 0.4])
    changed = images * gain.view(4, 1, 1, 1) + offset.view(4, 1, 1, 1)
    torch.testing.assert_close(norm(changed), out, atol=1e-5, rtol=0)
    # the fixed normalisation keeps them apart
    fixed = InputNormalization((0.5,) * 3, (0.25,) * 3, "fixed")
    assert (fixed(changed) - fixed(images)).abs().max() > 0.5


def test_per_image_normalization_of_a_uniform_frame_stays_finite():
    norm = InputNormalization((0.5,) * 3, (0.25,) * 3, "per_image")
    flat = torch.full((1, 3, 4, 4), 0.7)
    flat[0, 0, 0, 0] += 0.01  # one grey level of difference is not amplified into +-1
    out = norm(flat)
    assert torch.isfinite(out).all()
    assert out.abs().max() <= 0.01 / PER_IMAGE_MIN_STD + 1e-6


def test_unknown_normalization_is_a_clear_error():
    with pytest.raises(ValueError, match="'per_frame'"):
        InputNormalization((0.5,) * 3, (0.25,) * 3, "per_frame")
    with pytest.raises(ValueError, match="normalization"):
        Preprocessing(normalization="per_frame")
