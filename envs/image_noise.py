"""Sensor and image randomization with OpenCV: blur, motion blur, the camera's sharpening
(unsharp mask), vignetting, hue/saturation and haze (one colour matrix), brightness/contrast/gamma
(one lookup table), noise, JPEG.

Everything that can be is computed once per episode, so a frame costs a handful of cv2 calls.
"""

from __future__ import annotations

import cv2
import numpy as np

from sim2real.envs.textures import hsv_to_rgb

NOISE_MARGIN = 8  # px of slack in the noise bank, so each frame takes a shifted window
SHARPEN_SIGMA = 1.0  # px: radius (Gaussian sigma) of the unsharp mask, as small camera ISPs use


class ImagePipeline:
    """Applies one episode's image parameters (the `image` group of a sample) to frames."""

    def __init__(
        self, params: dict, height: int, width: int, rng: np.random.Generator, enabled: bool = True
    ) -> None:
        self.enabled = enabled
        self.rng = rng
        if not enabled:
            return
        self.quality = int(round(params["jpeg_quality"]))
        self.lut = self._lut(params["brightness"], params["contrast"], params["gamma"])
        self.color = self._color_matrix(
            params["hue"], params["saturation"], params["haze"], params["haze_color"]
        )
        self.blur = float(params["blur"])  # Gaussian sigma, px
        self.motion = int(round(params["motion_blur"]))  # horizontal streak length, px
        # unsharp-mask amount: x + a (x - blur(x)); the camera's own sharpening (ISP). The
        # renderer magnifies 2 cm floor texels over several px near the car, so without it
        # the sim is softer than any real frame (docs/fit-sim.md, "Sharpness")
        self.sharpen = float(params.get("sharpen", 0.0))
        self.vignette = self._vignette(params["vignetting"], height, width)
        sigma = float(params["noise"])
        self.noise_pos = self.noise_neg = None
        if sigma > 0.25:
            bank = rng.normal(0.0, sigma, (height + NOISE_MARGIN, width + NOISE_MARGIN, 3))
            self.noise_pos = np.clip(bank, 0, 255).astype(np.uint8)
            self.noise_neg = np.clip(-bank, 0, 255).astype(np.uint8)

    @staticmethod
    def _lut(brightness: float, contrast: float, gamma: float) -> np.ndarray:
        x = np.arange(256, dtype=np.float64) / 255.0
        y = (x - 0.5) * contrast + 0.5
        y = np.clip(y * brightness, 0, 1) ** gamma
        return np.clip(y * 255.0 + 0.5, 0, 255).astype(np.uint8)

    @staticmethod
    def _color_matrix(hue_deg: float, saturation: float, haze: float, haze_hsv) -> np.ndarray:
        """3x4 affine RGB transform: hue rotation about the grey axis, saturation, haze blend."""
        a = np.radians(hue_deg)
        cos_a, sin_a = np.cos(a), np.sin(a)
        k = np.ones(3) / np.sqrt(3)
        kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
        rot = cos_a * np.eye(3) + sin_a * kx + (1 - cos_a) * np.outer(k, k)
        grey = np.array([[0.299, 0.587, 0.114]] * 3)
        sat = saturation * np.eye(3) + (1 - saturation) * grey
        m = (1 - haze) * (sat @ rot)
        offset = haze * hsv_to_rgb(haze_hsv)
        return np.hstack([m, offset[:, None]]).astype(np.float32)

    @staticmethod
    def _vignette(strength: float, height: int, width: int) -> np.ndarray | None:
        if strength < 0.02:
            return None
        y, x = np.mgrid[0:height, 0:width].astype(np.float32)
        r2 = ((x - width / 2) / (width / 2)) ** 2 + ((y - height / 2) / (height / 2)) ** 2
        gain = 1.0 - strength * np.clip(r2 / 2.0, 0, 1) ** 1.5
        return np.repeat((gain * 255).astype(np.uint8)[:, :, None], 3, axis=2)

    def apply(self, image: np.ndarray) -> np.ndarray:
        """(H, W, 3) uint8 RGB -> the same shape, as the randomized sensor would see it."""
        if not self.enabled:
            return image
        if self.blur > 0.2:
            image = cv2.GaussianBlur(image, (0, 0), self.blur)
        if self.motion >= 2:  # horizontal: the camera mostly yaws (turns), it rarely pitches
            image = cv2.blur(image, (self.motion, 1))
        if self.sharpen > 0.01:  # the ISP sharpens what the lens and the motion gave it
            soft = cv2.GaussianBlur(image, (0, 0), SHARPEN_SIGMA)
            image = cv2.addWeighted(image, 1.0 + self.sharpen, soft, -self.sharpen, 0.0)
        if self.vignette is not None:
            image = cv2.multiply(image, self.vignette, scale=1.0 / 255.0)
        image = cv2.transform(image, self.color)
        image = cv2.LUT(image, self.lut)
        if self.noise_pos is not None:
            h, w = image.shape[:2]
            oy, ox = (int(v) for v in self.rng.integers(0, NOISE_MARGIN + 1, 2))
            image = cv2.add(image, self.noise_pos[oy : oy + h, ox : ox + w])
            image = cv2.subtract(image, self.noise_neg[oy : oy + h, ox : ox + w])
        if self.quality < 100:
            bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
            ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, self.quality])
            image = cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        return image
