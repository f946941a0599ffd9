"""Unlabeled real frames: the CORAL loss, the mixed batch loss, reading frames, pretraining."""

import numpy as np
import pytest
import torch

from sim2real.agents.alignment import (
    AlignmentConfig,
    MixedBatchLoss,
    coral,
    coral_stages,
    forward_with_stages,
)
from sim2real.agents.checkpoint import load_checkpoint
from sim2real.agents.encoders import pool_stage
from sim2real.agents.freezing import freeze_stages
from sim2real.agents.model import DrivingNet, ModelSpec, seeded_model
from sim2real.agents.preprocessing import Preprocessing
from sim2real.agents.training import TrainConfig, fit
from sim2real.experiments.cli import main
from sim2real.transfer.alignment import open_unlabeled
from sim2real.transfer.datasets import DrivingDataset, open_records
from sim2real.transfer.sample_data import sample_path
from sim2real.transfer.tub import TubWriter

SIM_KEYS = ["cam/image_array", "user/angle", "user/throttle", "sim/cte", "sim/heading_error"]


def write_sim_tub(path, n=60, seed=0):
    """A small 'sim' tub: bright synthetic frames with every sim label."""
    rng = np.random.default_rng(seed)
    with TubWriter(path, SIM_KEYS, ["image_array", "float", "float", "float", "float"]) as w:
        for i in range(n):
            image = np.full((120, 160, 3), 200, np.uint8)
            x = 40 + (i * 7) % 80
            image[60:, x : x + 20] = rng.integers(0, 60, (60, 20, 3), dtype=np.uint8)
            angle = float(np.clip((x - 70) / 50, -1, 1))
            w.write(
                {
                    "user/angle": angle,
                    "user/throttle": 0.5,
                    "sim/cte": angle / 2,
                    "sim/heading_error": -angle / 3,
                },
                image,
            )
    return path


@pytest.fixture(scope="module")
def real_images(cache_dir):
    records = open_records(sample_path()).records[:96]
    return DrivingDataset(records, Preprocessing(), ["user/angle"], cache_dir, progress=False)


def test_coral_is_zero_for_a_mean_shift_and_scales_with_covariance():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(400, 6, generator=g) @ torch.randn(6, 6, generator=g)
    assert float(coral(x, x + 5.0)) == pytest.approx(0.0, abs=1e-5)
    c = np.cov(x.numpy().T)
    # cov(2x) = 4 cov(x): ||C - 4C||_F^2 / (4 d^2)
    expected = np.sum((3 * c) ** 2) / (4 * 36)
    assert float(coral(x, 2 * x)) == pytest.approx(expected, rel=1e-4)
    with pytest.raises(ValueError, match="CORAL needs"):
        coral(x, x[:, :3])


def test_forward_with_stages_gives_the_model_predictions():
    model = seeded_model(ModelSpec(hidden=8), 0).eval()
    x = torch.rand(4, 3, 64, 128, generator=torch.Generator().manual_seed(1))
    pred, stages = forward_with_stages(model, x)
    torch.testing.assert_close(pred, model(x))
    assert list(stages) == list(model.encoder.stage_names)
    assert pool_stage(stages["stage1"]).shape == (4, 24)


def test_mixed_loss_weighs_batch_and_extra_frames_by_the_share():
    from sim2real.agents.alignment import LabelledStream

    model = seeded_model(ModelSpec(hidden=8), 0).eval()
    g = torch.Generator().manual_seed(2)
    real = torch.randint(0, 255, (6, 3, 64, 128), generator=g, dtype=torch.uint8)
    sim = torch.randint(0, 255, (5, 3, 64, 128), generator=g, dtype=torch.uint8)
    y_real, y_sim = torch.randn(6, 2, generator=g), torch.randn(5, 2, generator=g)
    y_sim[0, 1] = float("nan")  # a missing label is masked
    loss = MixedBatchLoss(
        model.outputs,
        {},
        extra=LabelledStream(sim, y_sim),
        extra_per_batch=5,
        share=0.3,
        augment=TrainConfig().augment.model_copy(update={"enabled": False}),
    )
    with torch.no_grad():
        loss.gain.fill_(2.0)
        loss.offset.fill_(0.5)
        got = loss(model, real.float() / 255, y_real)
        p_real, p_sim = model(real.float() / 255), model(sim.float() / 255) * 2.0 + 0.5

    def mse(p, y):
        m = ~torch.isnan(y)
        return sum(((p[:, j] - y[:, j])[m[:, j]] ** 2).mean() for j in range(2))

    torch.testing.assert_close(got, 0.3 * mse(p_real, y_real) + 0.7 * mse(p_sim, y_sim))
    assert set(loss.last_terms) == {"batch", "extra"}


def test_coral_term_pulls_the_stage_statistics_together(real_images, tmp_path):
    """Training on real frames with a CORAL term toward darkened frames shrinks the gap of the
    trained stages far more than the same training without it."""
    images = real_images.images
    target = (images.float() * 0.3 + 40).to(torch.uint8).flip(3)
    targets = real_images.targets.repeat(1, 2)
    train = torch.utils.data.TensorDataset(images, targets)
    config = TrainConfig(epochs=3, batch_size=16, progress=False, tensorboard=False, patience=0)

    def gap_after(weight):
        model = seeded_model(ModelSpec(hidden=8), 0)
        freeze_stages(model, ["stage1", "stage2", "stage3", "stage4"])
        loss = MixedBatchLoss(
            model.outputs,
            {},
            target=target,
            target_per_batch=16,
            coral_weight=weight,
            coral_stages=["stage5"],
        )
        fit(model, train, None, config, tmp_path / f"w{weight}", batch_loss=loss)
        model.eval()
        with torch.no_grad():
            a = pool_stage(
                model.encoder.forward_stages(model.normalize(images.float() / 255))["stage5"]
            )
            b = pool_stage(
                model.encoder.forward_stages(model.normalize(target.float() / 255))["stage5"]
            )
        return float(coral(a, b))

    assert gap_after(1000.0) < 0.5 * gap_after(0.0)


def test_coral_stages_default_to_the_trainable_ones():
    model = DrivingNet(ModelSpec(hidden=8))
    freeze_stages(model, ["stage1", "stage2", "stage3"])
    config = AlignmentConfig(unlabeled=["x"])
    assert coral_stages(model, config) == ["stage4", "stage5"]
    named = config.model_copy(update={"coral_stages": ["stage2"]})
    assert coral_stages(model, named) == ["stage2"]
    with pytest.raises(ValueError, match=r"coral_stages \['stage9'\] unknown"):
        coral_stages(model, config.model_copy(update={"coral_stages": ["stage9"]}))
    with pytest.raises(ValueError, match="--real-unlabeled"):
        AlignmentConfig(unlabeled=[])


def test_open_unlabeled_ignores_labels_and_leaves_out_held_out_frames(tmp_path, cache_dir):
    sim = write_sim_tub(tmp_path / "sim", n=30)
    config = AlignmentConfig(unlabeled=[str(sim)], max_frames=None)
    frames = open_unlabeled(config, Preprocessing(), cache_dir=cache_dir, progress=False)
    assert frames.shape == (30, 3, 64, 128) and frames.dtype == torch.uint8
    records = open_records(sim).records
    exclude = [r.image_path for r in records[20:]]
    kept = open_unlabeled(
        config, Preprocessing(), exclude=exclude, cache_dir=cache_dir, progress=False
    )
    assert torch.equal(kept, frames[:20])
    capped = config.model_copy(update={"max_frames": 10})
    assert (
        open_unlabeled(capped, Preprocessing(), cache_dir=cache_dir, progress=False).shape[0] == 10
    )
    empty = tmp_path / "empty"
    with TubWriter(empty, ["cam/image_array", "user/angle"], ["image_array", "float"]):
        pass
    with pytest.raises(ValueError, match="no usable records"):
        open_unlabeled(AlignmentConfig(unlabeled=[str(empty)]), Preprocessing())
    with pytest.raises(FileNotFoundError, match="no such file"):
        open_unlabeled(AlignmentConfig(unlabeled=[str(tmp_path / "nope")]), Preprocessing())


def test_pretrain_with_unlabeled_real_frames(tmp_path, cache_dir, capsys):
    sim = write_sim_tub(tmp_path / "sim", n=60)
    args = ["pretrain", "--data", str(sim), "--epochs", "1", "--seed", "0"]
    config = tmp_path / "c.yaml"
    config.write_text(
        f"cache_dir: {cache_dir}\nmodel: {{hidden: 8}}\n"
        "train: {batch_size: 16, progress: false, tensorboard: false, num_threads: 1}\n"
    )
    plain, aligned = tmp_path / "plain", tmp_path / "aligned"
    assert main([*args, "--config", str(config), "--out", str(plain)]) == 0
    real = str(sample_path())
    cmd = [*args, "--config", str(config), "--out", str(aligned), "--real-unlabeled", real]
    assert main(cmd) == 0
    assert "re-estimated on" in capsys.readouterr().out
    model_a, card = load_checkpoint(aligned)
    model_p, _ = load_checkpoint(plain)
    assert card.metrics["adabn"]["layers"] == 5
    assert card.trained_on["unlabeled_real"]["frames"] > 0
    # real BatchNorm statistics: the sample's frames are darker than the sim frames
    assert float(model_a.encoder.stages.stage1[1].running_mean.mean()) != pytest.approx(
        float(model_p.encoder.stages.stage1[1].running_mean.mean()), abs=1e-3
    )
    bad = [*args, "--config", str(config), "--out", str(tmp_path / "b")]
    assert main([*bad, "--real-unlabeled", str(tmp_path / "none")]) == 2
    assert "no such file" in capsys.readouterr().err
