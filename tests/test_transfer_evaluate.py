"""Offline evaluation on the shipped real sample: the right frames, the right numbers."""

import json

import numpy as np
import pytest
import torch

from sim2real.agents.checkpoint import ModelCard, save_checkpoint
from sim2real.agents.model import DrivingNet, ModelSpec
from sim2real.experiments.cli import main
from sim2real.transfer.datasets import open_records
from sim2real.transfer.evaluate import evaluate_offline, format_table
from sim2real.transfer.export import load_frames
from sim2real.transfer.sample_data import sample_path
from sim2real.transfer.splits import time_block_split


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ckpt")
    spec = ModelSpec(outputs=["user/throttle", "user/angle"], hidden=8)
    torch.manual_seed(3)
    save_checkpoint(folder, DrivingNet(spec), ModelCard(spec=spec))
    return folder


@pytest.fixture(autouse=True, scope="module")
def cache(tmp_path_factory):
    """One frame cache for the module: frames are decoded once, not once per test."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SIM2REAL_CACHE", str(tmp_path_factory.mktemp("cache")))
        yield


def mae_by_hand(checkpoint, records) -> float:
    """Steering MAE of `checkpoint` over `records`: cv2 preprocessing, the network, labels."""
    from sim2real.agents.checkpoint import load_checkpoint

    model, _ = load_checkpoint(checkpoint)
    frames = load_frames([r.image_path for r in records])
    x = np.stack([model.spec.preprocessing.apply(f).transpose(2, 0, 1) for f in frames])
    with torch.no_grad():
        pred = model(torch.from_numpy(x).float() / 255.0)[:, 1].double().numpy()
    truth = np.array([r.labels["user/angle"] for r in records])
    return float(np.abs(pred - truth).mean())


def test_test_split_scores_the_last_block_with_hand_checked_metrics(checkpoint):
    ev = evaluate_offline(checkpoint, [sample_path()], n_boot=100, progress=False)
    records = open_records([sample_path()]).records
    parts = time_block_split(records, 0.15, test_fraction=0.2, gap=20)
    test = parts.test
    assert ev.n_frames == len(test) == 200
    # recompute steering MAE by hand: cv2 preprocessing, the network, the labels
    assert ev.metrics["steering_mae"].value == pytest.approx(
        mae_by_hand(checkpoint, test), abs=1e-6
    )
    for key, interval in ev.metrics.items():
        assert interval.low <= interval.value <= interval.high, key
    assert "throttle_mae" in ev.metrics
    # an affine calibration keeps |Pearson r| and, fitted elsewhere, need not reach R^2 >= 0
    raw_r, cal_r = ev.metrics["steering_pearson_r"].value, ev.calibrated["steering_pearson_r"].value
    assert abs(cal_r) == pytest.approx(abs(raw_r), abs=1e-9)
    assert ev.n_calibration_frames == len(parts.val)
    table = format_table(ev)
    assert "steering_mae" in table and "scale-calibrated" in table


def test_split_all_cross_fits_the_calibration(checkpoint):
    ev = evaluate_offline(checkpoint, [sample_path()], split="all", n_boot=0, progress=False)
    assert ev.n_frames == 1000
    assert ev.info["calibrated_on"].startswith("the other half")
    assert np.isnan(ev.metrics["steering_mae"].low)  # n_boot=0: no interval


def test_val_split_scores_the_validation_block_only(checkpoint, tmp_path):
    records = open_records([sample_path()]).records
    val = time_block_split(records, 0.15, test_fraction=0.2, gap=20).val
    out = tmp_path / "val.json"
    args = ["evaluate", "--checkpoint", str(checkpoint), "--data", str(sample_path())]
    assert main([*args, "--split", "val", "--n-boot", "0", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["split"] == "val" and report["n_frames"] == len(val) > 0
    test = evaluate_offline(checkpoint, [sample_path()], n_boot=0, progress=False)
    ev = evaluate_offline(checkpoint, [sample_path()], split="val", n_boot=0, progress=False)
    assert ev.metrics["steering_mae"].value != pytest.approx(test.metrics["steering_mae"].value)
    # the validation block's own figures: MAE by hand over exactly its frames
    assert ev.metrics["steering_mae"].value == pytest.approx(mae_by_hand(checkpoint, val), abs=1e-6)
    assert ev.info["calibrated_on"].startswith("the other half of the validation block")


def test_evaluate_command_writes_json_and_prints_a_table(checkpoint, tmp_path, capsys):
    out = tmp_path / "eval.json"
    args = ["evaluate", "--checkpoint", str(checkpoint), "--data", str(sample_path())]
    assert main([*args, "--json", str(out), "--n-boot", "50"]) == 0
    report = json.loads(out.read_text())
    assert report["n_frames"] == 200 and report["split"] == "test"
    assert set(report["metrics"]["steering_r2"]) == {"value", "low", "high"}
    assert "steering_sign_agreement" in capsys.readouterr().out


def test_clear_errors(tmp_path, checkpoint, capsys):
    spec = ModelSpec(outputs=["sim/cte"], hidden=8)
    save_checkpoint(tmp_path / "cte", DrivingNet(spec), ModelCard(spec=spec))
    with pytest.raises(ValueError, match="not steering"):
        evaluate_offline(tmp_path / "cte", [sample_path()], progress=False)
    with pytest.raises(FileNotFoundError):
        evaluate_offline(tmp_path / "missing", [sample_path()])
    assert main(["evaluate", "--checkpoint", str(checkpoint)]) == 2
    assert "--data" in capsys.readouterr().err


def test_a_network_fine_tuned_with_pilot_frames_is_scored_on_its_own_blocks(tmp_path):
    # --include-pilot cut the fine-tuning split from every frame, the pilot's too: the test
    # block evaluate cuts must be that one, or frames the network trained on are scored
    from test_data_tub import INPUTS, TYPES

    from sim2real.transfer.splits import REAL_SPLIT, split_records
    from sim2real.transfer.tub import TubWriter

    tub = tmp_path / "tub"
    rng = np.random.default_rng(0)
    with TubWriter(tub, INPUTS, TYPES) as writer:
        for i in range(400):  # the person drives the second half only
            mode = "user" if i >= 200 else "local"
            labels = {"user/angle": float(rng.uniform(-1, 1)), "user/throttle": 0.3}
            image = rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)
            writer.write({**labels, "user/mode": mode, "sim/cte": 0.0}, image)
    spec = ModelSpec(outputs=["user/throttle", "user/angle"], hidden=8)
    card = ModelCard(
        spec=spec,
        split=REAL_SPLIT,
        history=[{"step": "finetune"}],
        trained_on={"paths": [str(tub.resolve())], "include_pilot": True},
    )
    torch.manual_seed(0)
    save_checkpoint(tmp_path / "ft", DrivingNet(spec), card)
    every = open_records([tub], include_pilot=True).records
    parts = split_records(every, REAL_SPLIT, seed=0)
    for split, block in (("test", parts.test), ("val", parts.val)):
        ev = evaluate_offline(tmp_path / "ft", [tub], split=split, n_boot=0, progress=False)
        assert ev.n_frames == len(block) and ev.info["include_pilot"]
