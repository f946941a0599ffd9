"""Sim-and-real co-training and aligned fine-tuning, end to end on real sample frames."""

import pytest
import torch
from model_helpers import finetune_config, save_parent
from test_alignment import write_sim_tub

from sim2real.agents.alignment import AlignmentConfig, LabelledStream, MixedBatchLoss
from sim2real.agents.checkpoint import load_checkpoint, read_weights
from sim2real.agents.model import DrivingNet, ModelSpec, predict
from sim2real.agents.training import TrainConfig
from sim2real.experiments.cli import main
from sim2real.transfer.cotrain import CotrainConfig
from sim2real.transfer.finetune import finetune
from sim2real.transfer.sample_data import sample_path


@pytest.fixture(scope="module")
def sim_tub(tmp_path_factory):
    return write_sim_tub(tmp_path_factory.mktemp("sim") / "tub", n=80)


@pytest.fixture(scope="module")
def parent(tmp_path_factory, sim_tub):
    """A 'pretrained' checkpoint whose card names the sim tub it was trained on."""
    return save_parent(tmp_path_factory.mktemp("parent"), {"paths": [str(sim_tub)]})


def config(parent, cache_dir, **changes):
    return finetune_config(parent, cache_dir, 48, **changes)


def test_cotrain_trains_unfrozen_stages_on_sim_and_real(parent, sim_tub, cache_dir, tmp_path):
    cfg = config(parent, cache_dir, cotrain=CotrainConfig(ratio=0.5, freeze=2, max_sim_frames=40))
    result = finetune(cfg, tmp_path / "out")
    before, after = read_weights(parent), read_weights(tmp_path / "out")
    for key in ("encoder.stages.stage1.0.weight", "encoder.stages.stage2.1.running_mean"):
        assert torch.equal(before[key], after[key]), key
    for key in ("encoder.stages.stage3.0.weight", "encoder.stages.stage5.0.weight"):
        assert not torch.equal(before[key], after[key]), key
    _, card = load_checkpoint(tmp_path / "out")
    step = card.history[-1]
    assert step["step"] == "finetune_cotrain" and result.frozen == ["stage1", "stage2"]
    assert step["cotrain"]["sim_paths"] == [str(sim_tub.resolve())]  # the parent's data
    assert step["cotrain"]["sim_frames"] == 40
    gains = step["domain_affine"]["user/angle"]
    assert gains["gain"] != 1.0 and gains["offset"] != 0.0  # the sim affine trained
    assert card.spec.outputs == ["user/angle", "user/throttle"]
    assert card.metrics["val"]["user/angle"]["n"] > 0


def test_domain_affine_learns_the_sim_scale():
    """With the network fixed, the per-domain gain and offset fit sim labels that are an
    affine map (2 p + 0.3) of the network's own output p."""
    model = DrivingNet(ModelSpec(hidden=0)).eval()
    with torch.no_grad():
        model.head[-1].weight.mul_(30.0)  # outputs that vary from frame to frame
    for p in model.parameters():
        p.requires_grad_(False)
    g = torch.Generator().manual_seed(0)
    sim = torch.randint(0, 255, (8, 3, 64, 128), generator=g, dtype=torch.uint8)
    p = torch.from_numpy(predict(model, sim)).float()
    assert float(p.std(0).min()) > 0.05
    off = TrainConfig().augment.model_copy(update={"enabled": False})
    loss = MixedBatchLoss(
        model.outputs,
        {},
        extra=LabelledStream(sim, 2 * p + 0.3),
        extra_per_batch=8,
        share=0.5,
        augment=off,
    )
    optimizer = torch.optim.Adam([loss.gain, loss.offset], lr=0.05)
    x, y = sim[:2].float() / 255, p[:2]
    for _ in range(300):
        value = loss(model, x, y)
        optimizer.zero_grad()
        value.backward()
        optimizer.step()
    torch.testing.assert_close(loss.gain.detach(), torch.full((2,), 2.0), atol=0.05, rtol=0)
    torch.testing.assert_close(loss.offset.detach(), torch.full((2,), 0.3), atol=0.05, rtol=0)


def test_aligned_finetune_uses_unlabeled_frames_for_adabn_and_coral(parent, cache_dir, tmp_path):
    sample = str(sample_path())
    align = AlignmentConfig(unlabeled=[sample], coral_weight=10.0, max_frames=None)
    cfg = config(parent, cache_dir, align=align)
    cfg.adapter.freeze = 3
    finetune(cfg, tmp_path / "out")
    _, card = load_checkpoint(tmp_path / "out")
    step = card.history[-1]
    assert step["step"] == "finetune_aligned" and step["frozen_stages"] == [
        "stage1",
        "stage2",
        "stage3",
    ]
    # the same tub as --data: only its training part serves as unlabeled frames
    frames = card.trained_on["frames"]
    held_out = frames["val"] + frames["test"]
    assert step["align"]["unlabeled_frames"] <= 1080 - held_out
    before, after = read_weights(parent), read_weights(tmp_path / "out")
    key = "encoder.stages.stage1.1.running_mean"  # AdaBN on a frozen stage
    assert not torch.equal(before[key], after[key])
    assert torch.equal(
        before["encoder.stages.stage1.0.weight"], after["encoder.stages.stage1.0.weight"]
    )


def test_cli_flags_and_errors(parent, sim_tub, cache_dir, tmp_path, capsys):
    yaml_cfg = tmp_path / "c.yaml"
    yaml_cfg.write_text(
        f"cache_dir: {cache_dir}\nframes: 48\n"
        "train: {epochs: 1, batch_size: 16, progress: false, tensorboard: false}\n"
    )
    base = ["finetune", "--checkpoint", str(parent), "--data", str(sample_path())]
    base += ["--config", str(yaml_cfg)]
    out = tmp_path / "cli"
    cmd = [*base, "--out", str(out), "--cotrain-sim", str(sim_tub), "--cotrain-ratio", "0.25"]
    assert main([*cmd, "--real-unlabeled", str(sample_path())]) == 0
    printed = capsys.readouterr().out
    assert "parent -> fine-tuned" in printed and "stage5" in printed
    assert (out / "alignment_gap.json").is_file()
    _, card = load_checkpoint(out)
    assert card.history[-1]["cotrain"]["ratio"] == 0.25
    # no sim data: the parent's card records none
    bare = save_parent(tmp_path / "bare", {"sim": True})
    bad = ["finetune", "--checkpoint", str(bare), "--data", str(sample_path())]
    assert (
        main([*bad, "--config", str(yaml_cfg), "--out", str(tmp_path / "o2"), "--cotrain-sim"]) == 2
    )
    err = capsys.readouterr().err
    assert "error: co-training needs sim frames" in err and "--cotrain-sim PATH" in err
    assert main([*cmd[:-4], "--out", str(tmp_path / "o3"), "--cotrain-ratio", "1.5"]) == 2
    assert "ratio" in capsys.readouterr().err


def test_final_adabn_leaves_real_only_statistics(parent, cache_dir, tmp_path):
    """After co-training, BatchNorm statistics are those of the real training frames alone:
    re-estimating them on those frames from the saved weights changes nothing."""
    from sim2real.transfer.adapter import adabn
    from sim2real.transfer.finetune import open_finetune_data

    cot = CotrainConfig(max_sim_frames=40, final_adabn=True)
    cfg = config(parent, cache_dir, cotrain=cot)
    finetune(cfg, tmp_path / "out")
    model, card = load_checkpoint(tmp_path / "out")
    assert card.history[-1]["final_adabn_frames"] == 48
    data = open_finetune_data(cfg, model.spec.preprocessing, progress=False)
    saved = model.encoder.stages.stage3[1].running_var.clone()
    adabn(model, data.train.images)
    torch.testing.assert_close(model.encoder.stages.stage3[1].running_var, saved)
    mixed, _ = load_checkpoint(make_run(parent, cache_dir, tmp_path / "mixed"))
    assert not torch.allclose(mixed.encoder.stages.stage3[1].running_var, saved)


def make_run(parent, cache_dir, out):
    finetune(config(parent, cache_dir, cotrain=CotrainConfig(max_sim_frames=40)), out)
    return out


def test_refit_head_keeps_cotrained_features_and_refits_the_head(parent, cache_dir, tmp_path):
    cot = CotrainConfig(max_sim_frames=40, refit_head=True)
    result = finetune(config(parent, cache_dir, cotrain=cot), tmp_path / "out")
    _, card = load_checkpoint(tmp_path / "out")
    step = card.history[-1]
    assert result.frozen == ["stage1", "stage2", "stage3", "stage4", "stage5"]
    assert step["cached_features"] and step["co_training_fit"]["epochs_run"] == 2
    before, after = read_weights(parent), read_weights(tmp_path / "out")
    key = "encoder.stages.stage5.0.weight"  # co-training moved the features
    assert not torch.equal(before[key], after[key])
