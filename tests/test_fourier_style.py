"""Fourier domain adaptation: the amplitude swap, its config, its use in pretraining."""

import pytest
import torch
from pydantic import ValidationError
from test_alignment import write_sim_tub

from sim2real.agents.alignment import AlignmentConfig, MixedBatchLoss
from sim2real.agents.augment import Augmentation
from sim2real.agents.fourier_style import low_frequency_mask, restyle, window_half_width
from sim2real.agents.model import ModelSpec, seeded_model
from sim2real.agents.preprocessing import Preprocessing
from sim2real.transfer.alignment import open_unlabeled
from sim2real.transfer.finetune import FinetuneConfig


def frames(seed: int, n: int = 3, h: int = 40, w: int = 60) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, h, w, generator=g, dtype=torch.float64)


def test_restyled_frame_has_the_targets_low_amplitude_and_the_sources_phase():
    source, target = frames(0), frames(1) * 0.5 + 0.3
    beta = 0.1  # b = 4 on a 40-row frame: |k| < 4, a 7 x 7 window
    out = restyle(source, target, beta)
    mask = low_frequency_mask(40, 60, beta)
    assert int(mask.sum()) == 7 * 7
    f_out, f_src, f_trg = (torch.fft.fft2(x.double()) for x in (out, source, target))
    assert torch.allclose(f_out.abs()[..., mask], f_trg.abs()[..., mask], atol=1e-3)
    assert not torch.allclose(f_src.abs()[..., mask], f_trg.abs()[..., mask], atol=1e-1)
    # the phase is the source's everywhere, the amplitude the source's outside the window
    rotation = f_out * f_src.conj() / (f_out.abs() * f_src.abs())
    assert torch.allclose(rotation.real, torch.ones_like(rotation.real), atol=1e-3)
    assert torch.allclose(f_out.abs()[..., ~mask], f_src.abs()[..., ~mask], atol=1e-3)
    # the DC term is the target's: each channel's mean moves to the target's
    assert torch.allclose(out.mean(dim=(2, 3)), target.mean(dim=(2, 3)).float(), atol=1e-4)


def test_beta_zero_changes_nothing_and_the_smallest_window_is_the_mean():
    source, target = frames(2), frames(3)
    assert torch.equal(restyle(source, target, 0.0), source.float())
    assert window_half_width(40, 60, 0.01) == 0  # floor(0.4): still no window
    out = restyle(source, target, 0.025)  # b = 1: the DC term only
    shift = (target.mean(dim=(2, 3)) - source.mean(dim=(2, 3))).float()
    assert torch.allclose(out, source.float() + shift[..., None, None], atol=1e-5)


def test_bad_beta_and_shapes_are_refused_in_one_line():
    with pytest.raises(ValueError, match=r"fda beta must be in \[0, 0.5\].*got 0.7"):
        restyle(frames(0), frames(1), 0.7)
    with pytest.raises(ValueError, match="one shape"):
        restyle(frames(0), frames(1, n=2), 0.05)
    with pytest.raises(ValidationError, match="fda_beta"):
        AlignmentConfig(unlabeled=["x"], fda_beta=-0.01)
    with pytest.raises(ValidationError, match="--real-unlabeled"):
        AlignmentConfig(fda_beta=0.05)  # no unlabeled frames to take the style from
    with pytest.raises(ValidationError, match=r"span must be 0 <= start < end <= 1"):
        AlignmentConfig(unlabeled=["x"], span=(0.7, 0.2))
    with pytest.raises(ValidationError, match="finetune does not use it"):
        FinetuneConfig(checkpoint="c", align=AlignmentConfig(unlabeled=["x"], fda_beta=0.05))


def test_mixed_batch_loss_restyles_a_share_of_the_batch_toward_the_style_frames():
    model = seeded_model(ModelSpec(hidden=8, outputs=["user/angle"]), 0)
    style = torch.full((5, 3, *model.spec.input_shape[1:]), 20, dtype=torch.uint8)  # dark
    x = torch.full((64, *model.spec.input_shape), 0.8)
    off = Augmentation(enabled=False)
    loss = MixedBatchLoss(["user/angle"], {}, style=style, style_beta=0.05, style_share=0.5,
                          augment=off)  # fmt: skip
    out = loss.restyle(x)
    dark = out.mean(dim=(1, 2, 3)) < 0.5
    assert 16 < int(dark.sum()) < 48  # about half, drawn per frame
    assert torch.allclose(out[dark], torch.full_like(out[dark], 20 / 255), atol=1e-3)
    assert torch.equal(out[~dark], x[~dark])
    all_rows = MixedBatchLoss(["user/angle"], {}, style=style, style_beta=0.05, style_share=1.0,
                              augment=off)  # fmt: skip
    assert bool((all_rows.restyle(x).mean(dim=(1, 2, 3)) < 0.5).all())
    with pytest.raises(ValueError, match="style_share"):
        MixedBatchLoss(["user/angle"], {}, style=style, style_beta=0.05, style_share=0.0)


def test_open_unlabeled_reads_only_the_span(tmp_path, cache_dir):
    sim = write_sim_tub(tmp_path / "sim", n=40)
    config = AlignmentConfig(unlabeled=[str(sim)], max_frames=None)
    every = open_unlabeled(config, Preprocessing(), cache_dir=cache_dir, progress=False)
    first = config.model_copy(update={"span": (0.0, 0.65)})
    kept = open_unlabeled(first, Preprocessing(), cache_dir=cache_dir, progress=False)
    assert torch.equal(kept, every[:26])


def test_pretrain_with_fda_alone_trains_on_restyled_frames(tmp_path, cache_dir, capsys):
    import yaml

    from sim2real.agents.checkpoint import load_checkpoint
    from sim2real.experiments.cli import main
    from sim2real.transfer.sample_data import sample_path

    sim = write_sim_tub(tmp_path / "sim", n=40)
    config = tmp_path / "c.yaml"
    config.write_text(
        f"cache_dir: {cache_dir}\nmodel: {{hidden: 8}}\n"
        "train: {batch_size: 16, progress: false, tensorboard: false, num_threads: 1}\n"
    )
    args = ["pretrain", "--data", str(sim), "--epochs", "1", "--config", str(config)]
    real = ["--real-unlabeled", str(sample_path()), "--set", "align.coral_weight=0"]
    real += ["--set", "align.adabn=false", "--set", "align.span=[0,0.65]"]
    off, on = tmp_path / "off", tmp_path / "on"
    assert main([*args, "--out", str(off), *real]) == 0
    assert main([*args, "--out", str(on), *real, "--fda-beta", "0.05"]) == 0
    saved = yaml.safe_load((on / "config.yaml").read_text())["align"]
    assert saved["fda_beta"] == 0.05 and saved["span"] == [0.0, 0.65]
    (model_off, _), (model_on, _) = load_checkpoint(off), load_checkpoint(on)
    weights_off, weights_on = model_off.state_dict(), model_on.state_dict()
    assert weights_off.keys() == weights_on.keys()
    assert any(not torch.equal(weights_off[k], weights_on[k]) for k in weights_off)
    assert main([*args, "--out", str(tmp_path / "bad"), *real, "--fda-beta", "0.9"]) == 2
    # --fda-beta without --real-unlabeled: refused in one line naming the missing option
    capsys.readouterr()
    assert main([*args, "--out", str(tmp_path / "alone"), "--fda-beta", "0.05"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--real-unlabeled" in err and "align.unlabeled" in err and "\n" not in err
    assert not (tmp_path / "alone").exists()
    assert main([*args, "--out", str(tmp_path / "none"), *real, "--fda-beta", "0.01"]) == 2
    assert "no frequency window on a 64x128 input" in capsys.readouterr().err


def test_an_interrupted_fda_run_resumes_with_the_draws_it_would_have_made(tmp_path):
    # the style frames and restyled rows are drawn from the loss's own generators: a resumed
    # run must go on from where they were, not from their seeds, to equal an unbroken run
    from torch.utils.data import TensorDataset

    from sim2real.agents.training import TrainConfig, fit

    spec = ModelSpec(hidden=8, outputs=["user/angle"])
    shape = spec.input_shape
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 255, (48, *shape), generator=g, dtype=torch.uint8)
    train = TensorDataset(images, torch.rand(48, 1, generator=g) * 2 - 1)
    style = torch.randint(0, 255, (7, *shape), generator=g, dtype=torch.uint8)
    config = TrainConfig(epochs=3, batch_size=16, patience=0, seed=3, num_threads=1,
                         progress=False, tensorboard=False)  # fmt: skip

    def run(out, **kw):
        loss = MixedBatchLoss(["user/angle"], {}, style=style, style_beta=0.05, style_share=0.5)
        model = seeded_model(spec, 0)
        fit(model, train, None, config, out, batch_loss=loss, **kw)
        return model

    whole = run(tmp_path / "whole")

    def interrupt(epoch, model):
        if epoch == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "broken", on_epoch_start=interrupt)
    resumed = run(tmp_path / "broken", resume=True)
    for key, value in whole.state_dict().items():
        assert torch.equal(resumed.state_dict()[key], value), key
