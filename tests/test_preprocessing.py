import numpy as np
import pytest

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
