"""Fourier domain adaptation (FDA; Yang and Soatto, CVPR 2020): sim frames given the
low-frequency amplitude spectrum of real frames, their own phase kept.

Each channel's 2-D DFT is split into amplitude and phase. The amplitudes at the spatial
frequencies |k_y| < b and |k_x| < b cycles per image (b = floor(beta * min(H, W)); negative
frequencies wrap, so the window is the (2b - 1) x (2b - 1) block around the DC term) are replaced
by the target frame's, and the inverse DFT is taken with the source's phase. The low
frequencies hold a frame's colour, illumination and large-scale shading; the phase holds where
its edges are (the lines, boards and horizon the steering label depends on), so labels stay
valid. beta 0 changes nothing; b = 1 (beta < 2 / min(H, W)) swaps each channel's mean only.
No training, no labels: the real frames may be any unlabeled frames of the user's track.
"""

from __future__ import annotations

import math

import torch

MAX_BETA = 0.5
"""beta at which the window covers every frequency along the shorter side"""


def window_half_width(height: int, width: int, beta: float) -> int:
    """b = floor(beta * min(height, width)): the window keeps |k| < b cycles per image.
    ValueError for beta outside [0, MAX_BETA]."""
    if not (isinstance(beta, int | float) and 0.0 <= beta <= MAX_BETA):
        raise ValueError(
            f"fda beta must be in [0, {MAX_BETA}] (a share of the image's shorter side), "
            f"got {beta!r}"
        )
    return math.floor(beta * min(height, width))


def low_frequency_mask(height: int, width: int, beta: float) -> torch.Tensor:
    """(height, width) bool, True at the DFT bins (in `torch.fft.fft2`'s order) whose
    amplitude FDA takes from the target: |k_y| < b and |k_x| < b, b = `window_half_width`."""
    b = window_half_width(height, width, beta)
    ky = torch.fft.fftfreq(height) * height  # integer cycles per image, negative ones wrapped
    kx = torch.fft.fftfreq(width) * width
    return (ky.abs() < b).view(-1, 1) & (kx.abs() < b).view(1, -1)


def restyle(source: torch.Tensor, target: torch.Tensor, beta: float) -> torch.Tensor:
    """`source` frames with the low-frequency amplitude of `target`'s (row i from row i).

    source, target: (N, C, H, W) float (e.g. [0, 1] intensities); returns (N, C, H, W) float32,
    not clipped (the swap can leave [0, 1] by a little: clamp before use as an image). beta in
    [0, MAX_BETA] (`window_half_width`); the paper uses 0.01-0.09.
    """
    if source.dim() != 4 or source.shape != target.shape:
        raise ValueError(
            f"restyle needs two (N, C, H, W) batches of one shape, got {tuple(source.shape)} "
            f"and {tuple(target.shape)}"
        )
    height, width = source.shape[-2:]
    mask = low_frequency_mask(height, width, beta).to(source.device)
    if not mask.any():
        return source.float().clone()
    spectrum = torch.fft.fft2(source.float())
    amplitude = torch.where(mask, torch.fft.fft2(target.float()).abs(), spectrum.abs())
    mixed = torch.polar(amplitude, spectrum.angle())
    # The mask is symmetric under k -> -k, so the spectrum stays Hermitian: the image is real.
    return torch.fft.ifft2(mixed).real
