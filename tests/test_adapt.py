"""`sim2real adapt`: zero-label adaptation with a motion teacher (transfer/adapt.py).

The recordings here are tiny synthetic tubs whose frames are windows sliding sideways over a
random texture by a known amount each step: the "car" yaws by the steering of two frames
before, as a real car does a few frames after the command."""

import json
from pathlib import Path

import numpy as np
import pytest
from model_helpers import save_parent
from panning import frames_panning

from sim2real.agents.checkpoint import read_card
from sim2real.agents.training import TrainConfig
from sim2real.transfer.adapt import (
    MIN_FRAMES,
    AdaptConfig,
    adapt,
    allowed_records,
    principal_scores,
    steering_labels,
)
from sim2real.transfer.motion import MotionConfig, motion_span
from sim2real.transfer.records import run_ids
from sim2real.transfer.tub import TubWriter

H, W = 60, 80
KEYS = ["cam/image_array", "user/angle", "user/throttle"]
TYPES = ["image_array", "float", "float"]


def steering(n: int, seed: int = 0) -> np.ndarray:
    """A smooth steering signal in about [-0.8, 0.8]."""
    t = np.arange(n)
    rng = np.random.default_rng(seed)
    phases = rng.uniform(0, 2 * np.pi, 3)
    return (
        0.4 * np.sin(t / 9 + phases[0])
        + 0.3 * np.sin(t / 4.3 + phases[1])
        + 0.1 * np.sin(t / 2.1 + phases[2])
    )


def write_tub(path: Path, truth: np.ndarray, *, px_per_unit: float = 4.0, labels=None,
              shift_after: tuple[int, float] | None = None) -> Path:  # fmt: skip
    """A tub of len(truth) frames; the view moves right by px_per_unit * truth[t - 2] pixels
    from frame t to t + 1. `labels`: the recorded user/angle (default: `truth`).
    `shift_after` (k, px): from frame k on, the view jumps by px more each step."""
    n = len(truth)
    view = px_per_unit * truth[np.maximum(np.arange(n - 1) - 2, 0)]
    if shift_after is not None:
        view[shift_after[0] :] += shift_after[1]
    labels = truth if labels is None else labels
    with TubWriter(path, KEYS, TYPES) as writer:
        pan = frames_panning(H, W, -view, travel=3000)  # the view right: content left
        for t, frame in enumerate(pan):
            fields = {"user/angle": float(labels[t]), "user/throttle": 0.3}
            writer.write({**fields, "_timestamp_ms": 1000 + 50 * t}, frame)
    return path


def panning_flow(folder: Path, n: int) -> tuple[np.ndarray, list, np.ndarray]:
    """(the steering, the records, their lagged flow features (n, D)) of a panning tub of
    `n` frames written in `folder`, every frame allowed."""
    truth = steering(n)
    config = AdaptConfig(real=[str(write_tub(folder / "tub", truth))], span=(0.0, 1.0))
    records = allowed_records(config)
    return truth, records, motion_span(records, config.motion).of(records)


def test_motion_teacher_beats_a_noisy_network_without_labels(tmp_path):
    n = 300
    truth, records, x = panning_flow(tmp_path, n)
    network = truth + np.random.default_rng(1).normal(0, 0.35, n)  # a noisy, biased-free guess
    labels, motion_fit, ridge, _ = steering_labels(network, x, run_ids(records), 0.7)
    r_network = np.corrcoef(network, truth)[0, 1]
    r_labels = np.corrcoef(labels, truth)[0, 1]
    r_motion = np.corrcoef(motion_fit, truth)[0, 1]
    assert r_motion > 0.9 > r_network  # the flow, given the network's scale, recovers steering
    assert r_labels > r_network + 0.1
    assert ridge.cv_r2 > 0.3  # the fit of the network on the motion is a real one
    # the motion fit takes the network's scale and sign: about 1 unit of steering per unit
    assert np.polyfit(truth, motion_fit, 1)[0] == pytest.approx(1.0, abs=0.2)


def test_principal_components_keep_the_networks_flow_correlated_errors_out(tmp_path):
    # the panning tub's flow features, plus statistics of something else in view (another
    # car, a flickering light) that the network's errors follow: a ridge on every feature
    # learns that error back; the top principal components (the car's yaw dominates) do not
    n = 400
    truth, records, yaw = panning_flow(tmp_path, n)
    rng = np.random.default_rng(3)
    other = np.convolve(rng.normal(size=n + 20), np.ones(21) / 21, "valid")[:n]
    other = (other - other.mean()) / other.std()
    x = np.column_stack([yaw, other[:, None] + rng.normal(0, 0.1, (n, 3))])
    network = truth + 0.5 * other + rng.normal(0, 0.2, n)
    runs = run_ids(records)
    every = steering_labels(network, x, runs, 1.0)[1]
    scores, explained = principal_scores(x, 2)
    principal = steering_labels(network, scores, runs, 1.0)[1]
    assert scores.shape == (n, 2) and 0 < explained < 1
    assert principal_scores(x[:3], 5)[0].shape == (3, 3)  # no more components than frames
    r_every = np.corrcoef(every, truth)[0, 1]
    r_principal = np.corrcoef(principal, truth)[0, 1]
    assert r_principal > 0.9 and r_principal > r_every + 0.05
    # the fit takes the network's sign: a network that steers the other way flips it
    flipped = steering_labels(-network, scores, runs, 1.0)[1]
    np.testing.assert_allclose(flipped, -principal, atol=1e-9)
    # the fit on two components is shrunk (it explains part of the network's spread);
    # match_spread stretches it back to the network's spread without changing its ordering
    stretched = steering_labels(network, scores, runs, 1.0, match_spread=True)[1]
    assert np.std(principal) < 0.9 * np.std(network)
    assert np.std(stretched) == pytest.approx(np.std(network))
    assert np.mean(stretched) == pytest.approx(np.mean(principal))
    assert np.corrcoef(stretched, principal)[0, 1] == pytest.approx(1.0)
    assert abs(np.polyfit(stretched, truth, 1)[0] - 1) < abs(np.polyfit(principal, truth, 1)[0] - 1)


def test_span_keeps_later_frames_out(tmp_path):
    n = 400
    truth = steering(n)
    noise = np.random.default_rng(2).normal(0, 0.3, n)
    a = write_tub(tmp_path / "a", truth)
    b = write_tub(tmp_path / "b", truth, shift_after=(240, 6.0))  # differs from frame 241 on

    def labels(tub: Path, span) -> np.ndarray:
        config = AdaptConfig(real=[str(tub)], span=span)
        records = allowed_records(config)
        x = motion_span(records, config.motion).of(records)
        network = truth[: len(records)] + noise[: len(records)]
        return steering_labels(network, x, run_ids(records), 0.7)[0]

    inside_a, inside_b = labels(a, (0.0, 0.6)), labels(b, (0.0, 0.6))
    assert len(inside_a) == 240
    np.testing.assert_array_equal(inside_a, inside_b)
    # read the whole recording and the changed frames do change the first 240 pseudo-labels
    whole_a, whole_b = labels(a, (0.0, 1.0)), labels(b, (0.0, 1.0))
    assert not np.allclose(whole_a[:240], whole_b[:240])


def test_default_span_is_finetunes_training_part(tmp_path):
    from sim2real.transfer.datasets import open_records
    from sim2real.transfer.splits import REAL_SPLIT, split_records

    tub = write_tub(tmp_path / "tub", steering(600))
    kept = allowed_records(AdaptConfig(real=[str(tub)]))
    parts = split_records(open_records([str(tub)]).records, REAL_SPLIT, seed=0)
    assert [r.image_path for r in kept] == [r.image_path for r in parts.train]
    held_out = {r.image_path for r in parts.val + parts.test}
    assert held_out and not held_out & {r.image_path for r in kept}
    # a recording named twice (or a folder and a tub in it) is read once: no frame counts double
    twice = allowed_records(AdaptConfig(real=[str(tub), str(tub)]))
    assert [r.image_path for r in twice] == [r.image_path for r in kept]


def test_labels_are_not_read_and_the_card_says_so(tmp_path):
    n = 260
    truth = steering(n)
    a = write_tub(tmp_path / "a", truth)
    b = write_tub(tmp_path / "b", truth, labels=-truth[::-1])  # same frames, other labels
    parent = save_parent(tmp_path / "net", {"frames": 1})
    train = TrainConfig(epochs=1, batch_size=32, progress=False, tensorboard=False, num_threads=1)
    for tub in (a, b):
        config = AdaptConfig(
            checkpoint=str(parent), real=[str(tub)], span=(0.0, 1.0), max_frames=100, train=train
        )
        adapt(config, tmp_path / f"out-{tub.name}")
    card = read_card(tmp_path / "out-a")
    step = card.history[-1]
    assert step["step"] == "adapt_zero_label" and step["labels_used"] is False
    assert card.trained_on["labels_used"] is False
    assert card.spec.mirror_average  # as chosen on the validation blocks (config default)
    assert card.trained_on["frames"] == 1  # the parent's sim data are kept
    assert step["teacher"]["frames"] == n and 0 <= step["teacher"]["weight"] <= 1
    assert step["teacher"]["components"] == 2 and 0 < step["teacher"]["explained_variance"] < 1
    assert step["teacher"]["stretch"] >= 1  # match_spread: a ridge's fit is never wider
    weights = [(tmp_path / f"out-{t}" / "model.safetensors").read_bytes() for t in ("a", "b")]
    assert weights[0] == weights[1]  # labels reversed and negated changed nothing
    saved = (tmp_path / "out-a" / "config.yaml").read_text()
    assert "weight: 1.0" in saved and "components: 2" in saved and "match_spread: true" in saved


def test_bad_input_names_the_path_and_writes_nothing(tmp_path):
    import csv

    import cv2

    csv_dir = tmp_path / "csv"
    csv_dir.mkdir()
    with (csv_dir / "log.csv").open("w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(["image", "user/angle"])
        for i in range(250):
            cv2.imwrite(str(csv_dir / f"{i}.png"), np.full((H, W, 3), i % 255, np.uint8))
            out.writerow([f"{i}.png", 0.0])
    short = write_tub(tmp_path / "short", steering(50))
    choppy = tmp_path / "choppy"
    write_tub(choppy, steering(400))
    with TubWriter(choppy, KEYS, TYPES, resume=True) as writer:
        writer.delete([i for i in range(400) if i % 8 == 0])  # runs of 7 frames < the lags
    still = write_tub(tmp_path / "still", np.zeros(250))  # the view never moves: no flow
    parent = save_parent(tmp_path / "net", {"frames": 1})
    for path, words in ((csv_dir, "no timestamps"), (short, "frames in the span"),
                        (choppy, "too short for motion lags"),
                        (still, "optical flow .* never changes")):  # fmt: skip
        out_dir = tmp_path / f"out-{path.name}"
        config = AdaptConfig(checkpoint=str(parent), real=[str(path)], span=(0.0, 1.0))
        with pytest.raises(ValueError, match=words) as info:
            adapt(config, out_dir)
        assert str(path) in str(info.value) and "\n" not in str(info.value)
        assert not out_dir.exists()


def test_config_round_trips_and_rejects_bad_values(tmp_path):
    from sim2real.common.config import ConfigError, load_config, save_config

    config = AdaptConfig(real=["x"], weight=0.5, motion=MotionConfig(last_lag=9))
    save_config(config, tmp_path / "c.yaml")
    assert load_config(AdaptConfig, tmp_path / "c.yaml") == config
    (tmp_path / "bad.yaml").write_text(json.dumps({"weight": 1.5}))
    with pytest.raises(ConfigError, match="weight"):
        load_config(AdaptConfig, tmp_path / "bad.yaml")


@pytest.mark.parametrize("pilot_first", [False, True])
@pytest.mark.parametrize("include_pilot", [False, True])
def test_default_span_keeps_both_splits_blocks_out_around_pilot_frames(
    tmp_path, pilot_first, include_pilot
):
    # 800 frames of the person's driving and 200 of the pilot's: the pilot's frames move
    # finetune's cut, so whichever --include-pilot a later finetune or evaluate takes, adapt
    # must read none of that run's validation or test frames
    from sim2real.transfer.datasets import open_records
    from sim2real.transfer.splits import REAL_SPLIT, split_records

    tub = tmp_path / "tub"
    image = np.full((H, W, 3), 90, np.uint8)
    with TubWriter(tub, [*KEYS, "user/mode"], [*TYPES, "str"]) as writer:
        for i in range(1000):
            pilot = i < 200 if pilot_first else i >= 800
            labels = {"user/angle": 0.0, "user/throttle": 0.3}
            mode = "local" if pilot else "user"
            writer.write({**labels, "user/mode": mode, "_timestamp_ms": 1000 + 50 * i}, image)
    kept = {
        r.image_path
        for r in allowed_records(AdaptConfig(real=[str(tub)], include_pilot=include_pilot))
    }
    assert len(kept) >= MIN_FRAMES
    for later in (False, True):
        parts = split_records(open_records([tub], include_pilot=later).records, REAL_SPLIT, seed=0)
        blocks = {r.image_path for r in parts.val + parts.test}
        assert blocks and not blocks & kept, (later, len(blocks & kept))


def one_epoch_run(tmp_path, truth) -> tuple[Path, Path, AdaptConfig, Path]:
    """(tub, parent, config, out) of a one-epoch adapt run on 100 frames of a tub of `truth`."""
    tub = write_tub(tmp_path / "tub", truth)
    parent = save_parent(tmp_path / "net", {"frames": 1})
    train = TrainConfig(epochs=1, batch_size=32, progress=False, tensorboard=False, num_threads=1)
    config = AdaptConfig(
        checkpoint=str(parent), real=[str(tub)], span=(0.0, 1.0), max_frames=100, train=train
    )
    out = tmp_path / "out"
    adapt(config, out)
    return tub, parent, config, out


def test_resume_keeps_the_run_it_started_and_refuses_another_teacher(tmp_path):
    truth = steering(260)
    tub, parent, config, out = one_epoch_run(tmp_path, truth)
    weights = (out / "model.safetensors").read_bytes()
    with pytest.raises(ValueError, match="already holds an adapt run"):
        adapt(config, out)
    # a changed teacher is refused by name, before the folder changes
    with pytest.raises(ValueError, match=r"weight: 1\.0 -> 0\.5"):
        adapt(config.model_copy(update={"weight": 0.5}), out, resume=True)
    assert (out / "model.safetensors").read_bytes() == weights
    # more epochs continue from the saved state: the first epoch is not trained again
    more = config.model_copy(update={"train": config.train.model_copy(update={"epochs": 2})})
    adapt(more, out, resume=True)
    card = read_card(out)
    assert card.history[-1]["epochs_run"] == 2 and card.metrics["epochs_run"] == 2
    assert (out / "model.safetensors").read_bytes() != weights


def test_a_run_saved_before_components_resumes_and_reproduces_with_its_own_teacher(
    tmp_path, capsys
):
    # a config.yaml written before `components` and `match_spread` was made with every flow
    # feature and no stretch: resuming it with today's defaults would train the rest of the
    # student on another teacher's labels, and its --config would run another teacher
    import yaml

    from sim2real.experiments.cli import main

    tub = write_tub(tmp_path / "tub", steering(260))
    parent = save_parent(tmp_path / "net", {"frames": 1})
    train = TrainConfig(epochs=1, batch_size=32, progress=False, tensorboard=False, num_threads=1)
    old = AdaptConfig(
        checkpoint=str(parent),
        real=[str(tub)],
        span=(0.0, 1.0),
        max_frames=100,
        train=train,
        components=None,
        match_spread=False,
    )
    out = tmp_path / "out"
    adapt(old, out)
    saved = yaml.safe_load((out / "config.yaml").read_text())
    del saved["components"], saved["match_spread"]
    (out / "config.yaml").write_text(yaml.safe_dump(saved))
    weights = (out / "model.safetensors").read_bytes()
    more = {"train": train.model_copy(update={"epochs": 2})}
    today = old.model_copy(update={**more, "components": 2, "match_spread": True})
    with pytest.raises(ValueError, match=r"components: None -> 2") as info:
        adapt(today, out, resume=True)
    assert "\n" not in str(info.value) and (out / "model.safetensors").read_bytes() == weights
    adapt(old.model_copy(update=more), out, resume=True)  # its own teacher: resumes
    assert read_card(out).history[-1]["epochs_run"] == 2
    # the saved file as --config: its teacher, unless the command line names a field
    old_file = tmp_path / "old.yaml"
    old_file.write_text(yaml.safe_dump(saved))
    for flags, expected in (([], (None, False)), (["--components", "3"], (3, False))):
        assert main(["adapt", "--config", str(old_file), "--print-config", *flags]) == 0
        printed = yaml.safe_load(capsys.readouterr().out)
        assert (printed["components"], printed["match_spread"]) == expected
    assert main(["adapt", "--real", str(tub), "--print-config"]) == 0  # no file: today's
    printed = yaml.safe_load(capsys.readouterr().out)
    assert (printed["components"], printed["match_spread"]) == (2, True)


def test_the_card_records_the_components_the_fit_read(tmp_path):
    # more components asked for than the flow has features: the fit reads every one, and
    # the teacher (the card's summary) says how many it read, not how many were asked for
    from sim2real.agents.checkpoint import load_checkpoint
    from sim2real.transfer.adapt import zero_label_teacher

    tub = write_tub(tmp_path / "tub", steering(260))
    network, _ = load_checkpoint(save_parent(tmp_path / "net", {"frames": 1}))
    config = AdaptConfig(real=[str(tub)], span=(0.0, 1.0), components=1000)
    records = allowed_records(config)
    features = motion_span(records, config.motion).of(records).shape[1]
    teacher = zero_label_teacher(network, records, config, config.train.augment)
    assert features < 1000 and teacher.summary(1.0)["components"] == features
    assert teacher.summary(1.0)["explained_variance"] == pytest.approx(1.0)


def test_a_resume_keeps_its_own_epochs_unless_the_command_line_names_them(tmp_path, capsys):
    # the default went 4 -> 8; a resume may change the epochs, so a run started with fewer
    # must not silently train on to today's default
    import yaml

    from sim2real.experiments.cli import main

    tub, parent, config, out = one_epoch_run(tmp_path, steering(260))
    base = ["adapt", "--checkpoint", str(parent), "--real", str(tub), "--out", str(out)]
    named, unnamed = tmp_path / "named.yaml", tmp_path / "unnamed.yaml"
    named.write_text("train: {epochs: 5}\n")
    unnamed.write_text("train: {lr: 1.0e-4}\n")
    for flags, expected in (
        (["--resume"], 1),
        (["--resume", "--epochs", "3"], 3),
        (["--resume", "--set", "train.epochs=2"], 2),
        (["--resume", "--set", "train.lr=1e-4"], 1),  # another train field: its own epochs
        (["--resume", "--config", str(named)], 5),
        (["--resume", "--config", str(unnamed)], 1),
        ([], 8),
    ):
        capsys.readouterr()
        assert main([*base, *flags, "--print-config"]) == 0
        assert yaml.safe_load(capsys.readouterr().out)["train"]["epochs"] == expected, flags


def test_crop_top_is_what_the_adapted_network_reads_and_saves(tmp_path):
    truth = steering(260)
    tub, parent, config, out = one_epoch_run(tmp_path, truth)
    cut = read_card(parent).spec.preprocessing.crop_top
    assert cut > 0 and read_card(out).spec.preprocessing.crop_top == cut
    whole = tmp_path / "whole"
    adapt(config.model_copy(update={"crop_top": 0}), whole)
    assert read_card(whole).spec.preprocessing.crop_top == 0
    assert (whole / "model.safetensors").read_bytes() != (out / "model.safetensors").read_bytes()
    with pytest.raises(ValueError, match="crop_top"):
        AdaptConfig(crop_top=-1)
