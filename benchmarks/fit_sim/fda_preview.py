"""A picture of Fourier domain adaptation on the network's input (docs/fit-sim.md): columns of
sim frames, each paired with a real training frame (first 65%) of usi-track-a or carpet-walls;
rows: the sim frame, the real frame, the sim frame restyled at each beta.

usage: python benchmarks/fit_sim/fda_preview.py OUT.png SIM_TUB REAL_DIR [BETA...]
"""

import sys
from pathlib import Path

import cv2
import numpy as np
import torch

from sim2real.agents.checkpoint import read_card
from sim2real.agents.fourier_style import restyle
from sim2real.transfer.datasets import DrivingDataset, open_records
from sim2real.transfer.real_frames import span_records

TUBS = ("usi-track-a", "carpet-walls")
PER_TUB = 3


def frames(records, preprocessing) -> torch.Tensor:
    """(N, 3, H, W) float in [0, 1]: the network's input, as training reads it."""
    data = DrivingDataset(records, preprocessing, ["user/angle"], None, progress=False)
    return data.images.float() / 255.0


def main(out: str, sim: str, real: str, betas: list[float]) -> None:
    pre = read_card("pilotnet-recipe").spec.preprocessing
    n = PER_TUB * len(TUBS)
    sim_records = open_records([sim]).records
    picks = np.linspace(0, len(sim_records) - 1, n + 2).round().astype(int)[1:-1]
    source = frames([sim_records[i] for i in picks], pre)
    real_records = [
        span_records(open_records([str(Path(real) / t)]).records, (0.0, 0.65), PER_TUB + 2)[1:-1]
        for t in TUBS
    ]
    target = torch.cat([frames(records, pre) for records in real_records])
    rows = [source, target] + [restyle(source, target, b).clamp(0, 1) for b in betas]
    grid = torch.cat([torch.cat(list(r), dim=2) for r in rows], dim=1)  # (3, rows*H, n*W)
    image = np.ascontiguousarray((grid.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))
    h = source.shape[2]
    labels = ["sim", "real (train 65%)"] + [f"restyled, beta {b}" for b in betas]
    for i, text in enumerate(labels):
        cv2.putText(image, text, (2, i * h + 9), cv2.FONT_HERSHEY_SIMPLEX, 0.3, (255, 255, 0), 1)
    ok, png = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    if not ok:
        raise RuntimeError("PNG encoding failed")
    tmp = Path(out).with_suffix(".tmp.png")
    tmp.write_bytes(png.tobytes())
    tmp.replace(out)
    print("wrote", out, image.shape)


if __name__ == "__main__":
    betas = [float(b) for b in sys.argv[4:]] or [0.02, 0.05, 0.09]
    main(sys.argv[1], sys.argv[2], sys.argv[3], betas)
