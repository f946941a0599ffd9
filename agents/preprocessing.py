"""The one preprocessing path for sim and real images: crop rows, resize, (later) normalise.

A `Preprocessing` is stored in every dataset cache and every model card, so training and
inference cannot drift apart. Images stay uint8 until the network: the network itself
divides by 255 and normalises, with its card's mean and std or by each frame's own.
"""

from __future__ import annotations

from typing import Literal, get_args

import cv2
import numpy as np
from pydantic import Field, model_validator

from sim2real.common.config import StrictModel

Normalization = Literal["fixed", "per_image"]
NORMALIZATIONS: tuple[str, ...] = get_args(Normalization)
"""the input normalisation modes, see `Preprocessing.normalization`"""


class Preprocessing(StrictModel):
    """Crop then resize a camera frame; the result is the network's input size."""

    crop_top: int = Field(40, ge=0, description="rows removed from the top (px of the source)")
    crop_bottom: int = Field(0, ge=0, description="rows removed from the bottom (px)")
    height: int = Field(64, ge=8, le=1024, description="network input height (px)")
    width: int = Field(128, ge=8, le=1024, description="network input width (px)")
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    """per-channel mean of [0, 1] RGB, subtracted inside the network"""
    std: tuple[float, float, float] = (0.25, 0.25, 0.25)
    """per-channel std of [0, 1] RGB, divided inside the network"""
    normalization: Normalization = "fixed"
    """fixed: subtract `mean`, divide by `std` (the same for every frame); per_image: subtract
    each frame's own mean and divide by its own std (over all pixels and channels), so a dark,
    washed-out or low-contrast frame reaches the encoder at one brightness and contrast"""

    @model_validator(mode="after")
    def _positive_std(self) -> Preprocessing:
        if any(s <= 0 for s in self.std):
            raise ValueError(f"std must be positive, got {self.std}")
        return self

    def check_source(self, source_height: int) -> None:
        """Fail clearly when the crop leaves no rows of a `source_height`-row image."""
        if self.crop_top + self.crop_bottom >= source_height:
            raise ValueError(
                f"crop_top={self.crop_top} + crop_bottom={self.crop_bottom} removes every row "
                f"of a {source_height}-row image"
            )

    def apply(self, image: np.ndarray) -> np.ndarray:
        """(H, W, 3) uint8 RGB -> (height, width, 3) uint8 RGB: crop rows, area-resize."""
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(
                f"expected an (H, W, 3) uint8 RGB image, got shape {image.shape} {image.dtype}"
            )
        self.check_source(image.shape[0])
        cropped = image[self.crop_top : image.shape[0] - self.crop_bottom]
        if cropped.shape[:2] == (self.height, self.width):
            return np.ascontiguousarray(cropped)
        return cv2.resize(cropped, (self.width, self.height), interpolation=cv2.INTER_AREA)

    def with_crop_top(self, crop_top: int | None) -> Preprocessing:
        """This preprocessing with `crop_top` rows cut off the top instead of its own (None:
        as it is): `finetune --crop-top`, `adapt --crop-top`."""
        if crop_top is None:
            return self
        return Preprocessing.model_validate({**self.model_dump(), "crop_top": crop_top})

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """The network's input shape (3, height, width)."""
        return (3, self.height, self.width)
