"""Motion features of a recording (`transfer.motion`) and the motion teacher: a synthetic tub
whose frames shift sideways by known amounts gives that shift's sign and size; the features
never read a frame outside the span allowed (the validation block of a split); a ridge on the
lagged features recovers labels that follow the shift where a network's guess cannot."""

import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from model_helpers import finetune_config
from panning import frames_panning

from sim2real.agents.augment import Augmentation
from sim2real.agents.checkpoint import load_checkpoint
from sim2real.transfer.cotrain import held_out_images
from sim2real.transfer.datasets import open_records
from sim2real.transfer.finetune import finetune
from sim2real.transfer.motion import (
    FEATURES,
    MotionConfig,
    cached_motion_features,
    fit_ridge_cv,
    motion_features,
    motion_span,
    teacher_inputs,
)
from sim2real.transfer.records import run_ids
from sim2real.transfer.sample_data import sample_path
from sim2real.transfer.selftrain import SelfTrainConfig, mirrored_prediction, motion_records
from sim2real.transfer.tub import TubWriter

H, W = 120, 160
INPUTS = ["cam/image_array", "user/angle", "user/throttle"]
TYPES = ["image_array", "float", "float"]
DX = [FEATURES.index(n) for n in FEATURES if n.startswith("dx")]


def write_tub(path: Path, frames: list[np.ndarray], angles: np.ndarray) -> Path:
    with TubWriter(path, INPUTS, TYPES) as writer:
        for frame, angle in zip(frames, angles, strict=True):
            ok, png = cv2.imencode(".png", frame)  # lossless, so the shift is exact
            assert ok
            fields = {"user/angle": float(angle), "user/throttle": 0.3}
            writer.write(fields, png.tobytes())
    return path


@pytest.mark.parametrize("method", ["dis", "farneback"])
def test_flow_features_give_the_sign_and_size_of_a_known_sideways_shift(tmp_path, method):
    shifts = np.r_[np.full(6, 3.0), np.full(6, -2.0)]  # right 3 px a frame, then left 2
    tub = write_tub(tmp_path / "tub", frames_panning(H, W, shifts), np.zeros(len(shifts) + 1))
    records = open_records([tub]).records
    full = motion_features(records, MotionConfig(method=method, scale=1.0))
    half = motion_features(records, MotionConfig(method=method, scale=0.5))
    assert np.isnan(full[-1]).all()  # the run's last frame has no next frame
    # the content moves right, then left: every horizontal median says so, near the size
    np.testing.assert_allclose(full[1:5][:, DX], 3.0, atol=0.5)
    np.testing.assert_allclose(full[7:11][:, DX], -2.0, atol=0.5)
    np.testing.assert_allclose(half[1:5][:, DX], 1.5, atol=0.35)  # pixels of the half frame
    assert np.abs(full[1:11, FEATURES.index("dy_bottom")]).max() < 0.5


def test_features_never_read_past_the_training_part(parent, cache_dir, tmp_path):
    # a tub of one run, cut as finetune cuts it: altering every frame outside the training
    # part (the gaps, validation and test blocks) changes no feature of a training frame,
    # while altering the last training frame does
    n = 160
    shifts = np.full(n - 1, 2.0)
    frames = frames_panning(H, W, shifts)
    tub = write_tub(tmp_path / "tub", frames, np.zeros(n))
    config = finetune_config(parent, cache_dir, 20, data=[str(tub)])
    held = {str(p) for p in held_out_images(config)}
    allowed = motion_records(config, [str(tub)])
    assert held and allowed and not held & {str(r.image_path) for r in allowed}
    motion = MotionConfig(scale=1.0, first_lag=-2, last_lag=9)
    before = motion_span(allowed, motion).stack
    last_allowed = len(allowed) - 1
    assert before[last_allowed].any()  # it has features from its own past

    for p in held:  # whatever the held-out frames show, nothing changes
        cv2.imwrite(p, np.full((H, W, 3), 255, np.uint8))
    after = motion_span(motion_records(config, [str(tub)]), motion).stack
    np.testing.assert_array_equal(after, before)

    cv2.imwrite(str(allowed[-1].image_path), np.full((H, W, 3), 255, np.uint8))
    changed = motion_span(motion_records(config, [str(tub)]), motion).stack
    assert not np.array_equal(changed, before)


def test_motion_features_are_cached_by_file_and_setting(tmp_path):
    shifts = np.full(8, 2.0)
    tub = write_tub(tmp_path / "tub", frames_panning(H, W, shifts), np.zeros(9))
    records = open_records([tub]).records
    config = MotionConfig(scale=1.0)
    first = cached_motion_features(records, config, tmp_path / "cache")
    [entry] = (tmp_path / "cache" / "motion").iterdir()
    np.save(entry, np.full_like(first, 7.0))  # a second run reads the cache, not the images
    np.testing.assert_array_equal(cached_motion_features(records, config, tmp_path / "cache"), 7.0)
    other = cached_motion_features(records, MotionConfig(scale=0.5), tmp_path / "cache")
    assert np.isfinite(other[:-1]).all() and not np.allclose(other[:-1], 7.0)


def test_motion_teacher_recovers_labels_that_follow_the_shift(tmp_path):
    # steering at t shows up as the shift 2 frames later: label = shift[t + 2] / 4; a
    # network that guesses (noise around the label's mean) cannot label held-out runs, the
    # ridge on [guess, lagged flow] fitted on 60 frames can
    rng = np.random.default_rng(1)
    n = 200
    shifts = np.clip(np.convolve(rng.normal(0, 2.0, n + 20), np.ones(9) / 3, "same"), -4, 4)[:n]
    angles = np.r_[shifts[2:] / 4.0, 0.0, 0.0, 0.0][:n]
    frames = frames_panning(H, W, shifts[: n - 1], seed=2)
    tub = write_tub(tmp_path / "tub", frames, angles)
    records = open_records([tub]).records
    span = motion_span(records, MotionConfig(scale=0.5, first_lag=-2, last_lag=6))
    x = span.of(records)
    y = np.array([r.labels["user/angle"] for r in records])
    guess = rng.normal(0, 0.3, n)
    blocks = np.arange(n) // 10
    train = np.isin(blocks, np.arange(0, 18, 3))  # 60 frames in 6 runs of 10
    test = ~train & (np.arange(n) < n - 10)  # (the recording's end: no future flow)
    motion = fit_ridge_cv(teacher_inputs(guess, x)[train], y[train], blocks[train])
    network = fit_ridge_cv(guess[train, None], y[train], blocks[train])

    def r2(pred: np.ndarray) -> float:
        return 1 - np.mean((pred - y[test]) ** 2) / np.var(y[test])

    assert r2(motion.predict(teacher_inputs(guess, x)[test])) > 0.8
    assert r2(network.predict(guess[test, None])) < 0.1
    assert motion.cv_r2 > 0.6 > network.cv_r2
    assert run_ids(records).max() == 0


def test_selftrain_config_reads_the_motion_teacher_from_yaml_keys():
    st = SelfTrainConfig.model_validate(
        {"teacher": "motion", "motion": {"method": "farneback", "first_lag": 0}}
    )
    assert st.motion.method == "farneback" and st.motion.lags.tolist() == list(range(0, 7))
    with pytest.raises(ValueError, match="last_lag 1 is before first_lag 3"):
        SelfTrainConfig.model_validate({"motion": {"first_lag": 3, "last_lag": 1}})


def sample_tub_with_gaps(path: Path, frames: int, every: int) -> Path:
    """The sample's first `frames` frames as a tub with every `every`-th record deleted: runs
    of `every - 1` frames, too short to see the car's motion."""
    source = open_records([sample_path()]).records[:frames]
    with TubWriter(path, INPUTS, TYPES) as writer:
        for record in source:
            fields = {k: record.labels[k] for k in ("user/angle", "user/throttle")}
            writer.write(fields, record.image_path.read_bytes())
        for i in range(0, frames, every):
            writer.delete(i)
    return path


def spy_student(monkeypatch) -> list:
    """The pseudo-labels each student trains on, as `train_student` receives them."""
    import sim2real.transfer.selftrain as selftrain

    seen = []
    original = selftrain.train_student

    def spy(student, labelled, pseudo, *args, **kwargs):
        seen.append(pseudo)
        return original(student, labelled, pseudo, *args, **kwargs)

    monkeypatch.setattr(selftrain, "train_student", spy)
    return seen


def selftrain_run(parent, cache_dir, out: Path, **changes) -> tuple[dict, list[str]]:
    st = SelfTrainConfig(teacher="motion", max_frames=120, block_frames=40, epochs=1, freeze=3)
    config = finetune_config(parent, cache_dir, 40, selftrain=st, **changes)
    config.adapter.freeze = "head"
    config.ladder.folds = 3
    lines: list[str] = []
    result = finetune(config, out, log_line=lines.append)
    return result.card.history[-1], lines


def test_motion_teacher_labels_steering_and_leaves_throttle_to_the_network(
    parent, cache_dir, tmp_path, monkeypatch
):
    seen = spy_student(monkeypatch)
    step, lines = selftrain_run(parent, cache_dir, tmp_path / "run")
    fit = step["motion_teacher"]["labels"]["user/angle"]
    assert np.isfinite(fit["cv_r2"]) and fit["alpha"] > 0
    assert "user/throttle" not in step["motion_teacher"]["labels"]
    assert any(line.startswith("motion teacher: user/angle CV R²") for line in lines)
    teacher, _ = load_checkpoint(tmp_path / "run" / "teacher")
    teacher.spec.mirror_average = False
    [pseudo] = seen
    network = mirrored_prediction(teacher, pseudo.images, Augmentation())
    np.testing.assert_allclose(pseudo.raw[:, 1], network[:, 1], rtol=1e-6, atol=1e-7)
    assert not np.allclose(pseudo.raw[:, 0], network[:, 0], atol=1e-3)


def test_motion_teacher_falls_back_to_the_network_on_runs_too_short(
    parent, cache_dir, tmp_path, monkeypatch
):
    tub = sample_tub_with_gaps(tmp_path / "tub", 300, 3)
    seen = spy_student(monkeypatch)
    step, lines = selftrain_run(parent, cache_dir, tmp_path / "run", data=[str(tub)])
    reason = step["motion_teacher"]["fallback"]
    assert "runs shorter than 12 frames" in reason
    assert [line for line in lines if line.startswith("motion teacher off")] == [
        f"motion teacher off, the network teacher labels: {reason}"
    ]
    teacher, _ = load_checkpoint(tmp_path / "run" / "teacher")
    teacher.spec.mirror_average = False
    [pseudo] = seen  # the network's labels, nothing lost
    network = mirrored_prediction(teacher, pseudo.images, Augmentation())
    np.testing.assert_allclose(pseudo.raw, network, rtol=1e-6, atol=1e-7)
    assert step["rounds"][0]["kept"] == len(pseudo.raw) > 0


def test_cached_features_follow_a_changed_file_or_frame_set(tmp_path):
    # the cache is keyed by the frames read and their files: a frame left out, or an image
    # rewritten in place, gets fresh features rather than a stale entry
    tub = write_tub(tmp_path / "tub", frames_panning(H, W, np.full(8, 2.0)), np.zeros(9))
    records = open_records([tub]).records
    config, cache = MotionConfig(scale=1.0), tmp_path / "cache"
    first = cached_motion_features(records, config, cache)
    fewer = records[:4] + records[5:]  # frame 4 cut out: frame 3 ends its run
    part = cached_motion_features(fewer, config, cache)
    assert np.isfinite(first[3]).all() and np.isnan(part[3]).all()
    np.testing.assert_array_equal(part[:3], first[:3])

    path = records[1].image_path
    moved = frames_panning(H, W, np.full(8, -3.0))[1]  # same size, content moving the other way
    ok, png = cv2.imencode(path.suffix, moved)
    assert ok
    stat = path.stat()
    path.write_bytes(png.tobytes())
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    again = cached_motion_features(records, config, cache)
    assert not np.allclose(again[0], first[0])  # flow 0 -> 1 recomputed from the new image
    np.testing.assert_array_equal(again[3:], first[3:])


def test_motion_teacher_is_fitted_on_the_labelled_frames_only(parent, cache_dir):
    # the ridge reads the labelled frames' labels and never an unlabeled frame's: other labels
    # on the unlabeled records change nothing, other labels on the labelled frames do
    import dataclasses

    from sim2real.agents.training import dataset_tensors
    from sim2real.transfer.finetune import open_finetune_data
    from sim2real.transfer.selftrain import motion_labels, selftrain_sources, unlabeled_frames

    st = SelfTrainConfig(teacher="motion", max_frames=120, block_frames=40)
    config = finetune_config(parent, cache_dir, 40, selftrain=st)
    model, _ = load_checkpoint(parent)
    pre, outputs = model.spec.preprocessing, list(config.adapter.outputs)
    data = open_finetune_data(config, pre)
    sources, exclude = selftrain_sources(config, data)
    images, _, _, unlabeled = unlabeled_frames(
        st, sources, outputs, pre, exclude=exclude, cache_dir=cache_dir, progress=False
    )
    labelled = dataset_tensors(data.train)

    def raw(labelled, unlabeled) -> np.ndarray:
        args = (config, sources, labelled, data.train.records, images, unlabeled, outputs)
        result = motion_labels(*args)
        assert result.raw is not None, result.report
        return result.raw

    before = raw(labelled, unlabeled)
    other = [dataclasses.replace(r, labels={k: -v for k, v in r.labels.items()}) for r in unlabeled]
    np.testing.assert_array_equal(raw(labelled, other), before)
    images_l, targets = labelled
    changed = raw((images_l, targets.flip(0)), unlabeled)  # the labelled frames relabelled
    assert not np.allclose(changed[:, 0], before[:, 0])
