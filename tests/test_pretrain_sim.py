"""End to end on real simulator recordings: slow (PyBullet rendering plus training)."""

import numpy as np
import pytest
import torch

from sim2real.agents.checkpoint import load_checkpoint
from sim2real.experiments.cli import main


@pytest.mark.slow
def test_pretrain_on_a_sim_recording_learns_the_expert(tmp_path, monkeypatch):
    from sim2real.transfer.datasets import DrivingDataset, open_records
    from sim2real.transfer.splits import time_block_split

    monkeypatch.setenv("SIM2REAL_CACHE", str(tmp_path / "cache"))
    tub = tmp_path / "sim"
    sim_args = ["simulate", "--out", str(tub), "--frames", "1200", "--seed", "5", "--no-progress"]
    assert main(sim_args) == 0
    out = tmp_path / "pre"
    config = tmp_path / "pretrain.yaml"
    config.write_text("train: {epochs: 6, batch_size: 32, device: cpu}\n")
    args = ["pretrain", "--data", str(tub), "--out", str(out), "--config", str(config)]
    assert main(args) == 0
    model, card = load_checkpoint(out)
    assert card.randomization is not None

    # The held-out (later) block of each stream: steering is predicted better than by a
    # constant, and it tracks the expert (Pearson r, scale-free).
    held_out = time_block_split(open_records([tub]).records, 0.15, gap=20).val
    val = DrivingDataset(held_out, card.spec.preprocessing, card.spec.outputs, progress=False)
    with torch.no_grad():
        pred = model(val.images.float() / 255.0).numpy()
    column = card.spec.outputs.index("user/angle")
    truth = val.targets.numpy()[:, column]
    rmse = float(np.sqrt(np.mean((pred[:, column] - truth) ** 2)))
    assert rmse == pytest.approx(card.metrics["val"]["user/angle"]["rmse"], rel=1e-4)
    assert rmse < truth.std()
    assert np.corrcoef(pred[:, column], truth)[0, 1] > 0.5
