"""The fit-sim report: a picture of real frames beside sim frames of the fitted spec at
strength 0 and at strength 0.5, with the fitted values that matter most."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sim2real.common.io import agg_pyplot, atomic_save_figure
from sim2real.experiments.fit_lens import render
from sim2real.experiments.fit_sim import FitResult

COLUMNS = 6


def write_fit_report(out: str | Path, frames: np.ndarray, result: FitResult, seed: int = 0) -> Path:
    """PNG at `out`: a row of real frames (evenly spread), a row of sim frames at strength 0
    and a row at strength 0.5, titled with the fitted style, camera and clipping notes."""
    plt = agg_pyplot()
    out = Path(out)
    h, w = frames.shape[1:3]
    real = frames[np.linspace(0, len(frames) - 1, COLUMNS).round().astype(int)]
    rows = [
        ("real", real),
        ("sim, strength 0 (fitted world)", render(result.spec, 0.0, COLUMNS, seed, (h, w))),
        ("sim, strength 0.5", render(result.spec, 0.5, COLUMNS, seed + 100, (h, w))),
    ]
    fig, axes = plt.subplots(3, COLUMNS, figsize=(2.4 * COLUMNS, 6.9), dpi=110, squeeze=False)
    for r, (label, images) in enumerate(rows):
        for c in range(COLUMNS):
            ax = axes[r, c]
            ax.imshow(images[c])
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(label, fontsize=8)
    f = result.fitted
    cam = result.spec["camera"]
    title = (
        f"fit-sim on {result.frames} frames: style {result.spec['visual']['style']['nominal']} "
        f"(fitted {f['visual.style'].value}, {max(result.style_scores.values()):.2f}); "
        f"camera pitch {cam['pitch']['nominal']:.1f} deg, "
        f"height {cam['height']['nominal']:.3f} m, road width "
        f"{result.spec['track']['road_width']['nominal']:.2f} m"
    )
    if result.sharpness is not None:
        sh = result.sharpness
        title += (f"\nsharpness: real {sh.target:.2f}, sim {sh.tried[0.0]:.2f} plain, "
                  f"{sh.achieved:.2f} "
                  f"at blur {sh.blur:.2f} px / sharpen {sh.sharpen:.2f}")  # fmt: skip
    if result.clipped:
        title += "\nclipped: " + "; ".join(result.clipped)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return atomic_save_figure(fig, out)
