"""Self-training (`finetune --pseudo-label`): smoothing along time within runs, mirror-averaged
pseudo-labels and their confidence, unlabeled frames that never include held-out or labelled
frames, the student run end to end (card, teacher, frozen stages), and the CLI's errors."""

from pathlib import Path

import numpy as np
import pytest
import torch
from model_helpers import finetune_config

from sim2real.agents.augment import Augmentation
from sim2real.agents.checkpoint import load_checkpoint, read_card
from sim2real.agents.model import DrivingNet, ModelSpec, predict
from sim2real.experiments.cli import main
from sim2real.transfer.datasets import open_records
from sim2real.transfer.finetune import FinetuneConfig, finetune, open_finetune_data
from sim2real.transfer.records import Record
from sim2real.transfer.sample_data import sample_path
from sim2real.transfer.selftrain import (
    PseudoLabels,
    SelfTrainConfig,
    pseudo_label,
    recorded_agreement,
    selftrain_sources,
    smooth_labels,
    smoothed,
    unlabeled_frames,
)


@pytest.mark.parametrize("method", ["savgol", "median"])
def test_smoothing_denoises_within_a_run_and_never_across_runs(method):
    rng = np.random.default_rng(0)
    t = np.arange(200)
    clean = np.sin(t / 15.0)
    noisy = clean + rng.normal(scale=0.2, size=t.size)
    # two runs: a step of 5 between them must stay a step
    labels = np.stack([np.r_[noisy[:100], noisy[100:] + 5.0], np.full(200, np.nan)], axis=1)
    truth = np.r_[clean[:100], clean[100:] + 5.0]
    segments = np.r_[np.zeros(100), np.ones(100)].astype(int)
    out = smooth_labels(labels, segments, method, 11)
    assert np.mean((out[:, 0] - truth) ** 2) < 0.5 * np.mean((labels[:, 0] - truth) ** 2)
    assert np.abs(out[95:100, 0] - truth[95:100]).max() < 1.0  # no pull from the next run
    assert np.abs(out[100:105, 0] - truth[100:105]).max() < 1.0
    assert np.isnan(out[:, 1]).all()
    np.testing.assert_array_equal(smooth_labels(labels, segments, "none", 11), labels)
    with pytest.raises(ValueError, match="window must be odd"):
        SelfTrainConfig(window=10)


def test_keep_spread_stretches_the_smoothed_labels_back_to_the_raw_spread():
    rng = np.random.default_rng(0)
    raw = np.stack(
        [rng.normal(size=200).cumsum() * 0.1 + rng.normal(scale=1.0, size=200), np.ones(200)],
        axis=1,
    )
    raw[5, 0] = np.nan  # a frame the teacher did not label: ignored, kept NaN
    segments = np.r_[np.zeros(100), np.ones(100)].astype(int)
    plain = smoothed(raw, segments, SelfTrainConfig())
    kept = smoothed(raw, segments, SelfTrainConfig(keep_spread=True))
    # the smoothing shrinks them (the run with the NaN stays raw: `smooth_labels`)
    assert np.std(plain[100:, 0]) < 0.8 * np.std(raw[100:, 0])
    # stretched back where it was smoothed; the run with the NaN was not, and is kept raw
    assert np.std(kept[100:, 0]) == pytest.approx(np.std(raw[100:, 0]))
    np.testing.assert_array_equal(kept[:100, 0], raw[:100, 0])
    assert np.nanmean(kept[:, 0]) == pytest.approx(np.nanmean(plain[:, 0]))
    assert np.corrcoef(kept[100:, 0], plain[100:, 0])[0, 1] == pytest.approx(1.0)  # affine
    np.testing.assert_allclose(kept[:, 1], 1.0)  # a constant label stays
    assert np.isnan(kept[5, 0])


def test_keep_spread_leaves_a_run_the_smoothing_left_raw_as_it_is():
    # a run with a frame the teacher did not label is not smoothed (`smooth_labels`): it kept
    # its spread, so stretching it too would widen it past its raw labels
    rng = np.random.default_rng(0)
    raw = rng.normal(size=(100, 1))
    raw[3, 0] = np.nan
    segments = np.r_[np.zeros(50), np.ones(50)].astype(int)
    kept = smoothed(raw, segments, SelfTrainConfig(keep_spread=True))
    np.testing.assert_array_equal(kept[:50], raw[:50])
    assert np.std(kept[50:, 0]) == pytest.approx(np.std(raw[50:, 0]))
    plain = smoothed(raw, segments, SelfTrainConfig())
    assert np.corrcoef(kept[50:, 0], plain[50:, 0])[0, 1] == pytest.approx(1.0)


def test_pseudo_labels_average_the_mirror_and_keep_the_most_consistent():
    torch.manual_seed(0)
    model = DrivingNet(ModelSpec(hidden=8)).eval()
    images = torch.randint(0, 255, (12, 3, 64, 128), dtype=torch.uint8)
    augment = Augmentation()
    config = SelfTrainConfig(smooth="none", keep=0.25)
    pseudo = pseudo_label(model, images, np.zeros(12, dtype=int), config, augment)
    direct, mirrored = predict(model, images), predict(model, images.flip(3))
    expected = (direct + mirrored * np.array([-1.0, 1.0])) / 2  # steering negated back
    np.testing.assert_allclose(pseudo.raw, expected, rtol=1e-6, atol=1e-7)
    disagreement = np.abs(direct[:, 0] + mirrored[:, 0])
    np.testing.assert_allclose(pseudo.disagreement, disagreement, rtol=1e-6, atol=1e-7)
    assert pseudo.kept.sum() == 3
    assert disagreement[pseudo.kept].max() <= disagreement[~pseudo.kept].min()


def test_recorded_agreement_scores_the_kept_pseudo_labels_against_recorded_ones():
    rng = np.random.default_rng(0)
    truth = np.stack([rng.normal(size=40), np.full(40, np.nan)], axis=1)
    raw = truth.copy()
    raw[:10, 0] = 50.0  # frames the student does not train on: not scored
    labels = raw + rng.normal(scale=0.5, size=raw.shape)
    kept = np.arange(40) >= 10
    pseudo = PseudoLabels(torch.zeros(40), raw, labels, np.zeros(40), np.zeros(40, int), kept)
    scores = recorded_agreement(pseudo, truth, ["user/angle", "user/throttle"])
    assert list(scores) == ["user/angle"]  # throttle was never recorded
    angle = scores["user/angle"]
    assert angle["frames"] == 30 and angle["raw_r2"] == pytest.approx(1.0)
    y, s = truth[10:, 0], labels[10:, 0]
    assert angle["smoothed_r2"] == pytest.approx(
        1 - np.sum((s - y) ** 2) / np.sum((y - y.mean()) ** 2)
    )
    assert angle["smoothed_r"] == pytest.approx(np.corrcoef(s, y)[0, 1])
    assert recorded_agreement(pseudo, np.full((40, 2), np.nan), ["a", "b"]) == {}


def test_recorded_agreement_does_not_score_against_frames_the_pilot_drove():
    # with include_pilot the pilot's frames are unlabeled frames too, but their user/angle is
    # the idle joystick, not a person's steering: no truth to score the teacher against
    rng = np.random.default_rng(1)
    truth = rng.normal(size=(40, 1))
    raw = truth + rng.normal(scale=0.1, size=truth.shape)
    pseudo = PseudoLabels(
        torch.zeros(40), raw, raw, np.zeros(40), np.zeros(40, int), np.ones(40, bool)
    )
    modes = ["user"] * 30 + ["local_angle"] * 5 + ["local"] * 5
    records = [
        Record(i, "s", None, Path(f"{i}.jpg"), {"user/angle": 0.0}, "tub", mode)
        for i, mode in enumerate(modes)
    ]
    truth[30:] = 0.0  # what the joystick says while the pilot steers
    scores = recorded_agreement(pseudo, truth, ["user/angle"], records)
    assert scores["user/angle"]["frames"] == 30
    assert scores["user/angle"]["raw_r"] == pytest.approx(
        np.corrcoef(raw[:30, 0], truth[:30, 0])[0, 1]
    )


def test_unlabeled_frames_leave_out_held_out_and_labelled_frames(parent, cache_dir):
    config = finetune_config(parent, cache_dir, 40, selftrain=SelfTrainConfig(max_frames=None))
    model, _ = load_checkpoint(parent)
    data = open_finetune_data(config, model.spec.preprocessing)
    sources, exclude = selftrain_sources(config, data)
    assert sources == [str(sample_path())]
    st = SelfTrainConfig(max_frames=None)
    images, segments, truth, _ = unlabeled_frames(
        st, sources, ["user/angle"], model.spec.preprocessing, exclude=exclude, progress=False
    )
    records = open_records([str(sample_path())]).records
    held = {str(p) for p in exclude}
    labelled = {str(r.image_path) for r in data.parts.train}
    assert len(labelled) == 40 and labelled <= held
    assert {str(r.image_path) for r in data.parts.val + data.parts.test} <= held
    assert len(images) == len([r for r in records if str(r.image_path) not in held]) > 100
    assert len(segments) == len(images) == len(truth)
    # 40 labelled frames in blocks of 10 cut the training part into at least 4 runs
    assert len(np.unique(segments)) >= 4 and np.all(np.diff(segments) >= 0)
    capped = unlabeled_frames(
        SelfTrainConfig(max_frames=50, block_frames=25),
        sources,
        ["user/angle"],
        model.spec.preprocessing,
        exclude=exclude,
        progress=False,
    )
    assert len(capped[0]) == 50


def test_finetune_with_pseudo_labels_writes_teacher_and_student(parent, cache_dir, tmp_path):
    st = SelfTrainConfig(max_frames=120, block_frames=40, epochs=1, freeze=3, keep=0.5)
    config = finetune_config(parent, cache_dir, 40, selftrain=st)
    config.adapter.freeze = "head"
    config.ladder.folds = 3
    result = finetune(config, tmp_path / "run")
    step = result.card.history[-1]
    assert step["step"] == "finetune_selftrain"
    assert step["teacher"]["rung"] == "head"
    assert step["rounds"][0]["frames"] == 120 and step["rounds"][0]["kept"] == 60
    # the sample's unlabeled frames are recorded: the card scores the kept pseudo-labels
    assert step["rounds"][0]["recorded"]["user/angle"]["frames"] == 60
    assert result.card.trained_on["pseudo_labelled"] == 60
    assert result.frozen == ["stage1", "stage2", "stage3"]
    teacher, _ = load_checkpoint(tmp_path / "run" / "teacher")
    student, _ = load_checkpoint(tmp_path / "run")
    t, s = teacher.state_dict(), student.state_dict()
    for name in t:  # the frozen stages keep the teacher's weights; the top stages moved
        if "stage1" in name or "stage2" in name or "stage3" in name:
            assert torch.equal(t[name], s[name]), name
    moved = [n for n in t if "stage5" in n and n.endswith("weight") and not torch.equal(t[n], s[n])]
    assert moved


def test_crop_top_reaches_the_teacher_and_the_student_of_a_self_trained_run(
    parent, cache_dir, tmp_path
):
    # finetune's default self-trains: --crop-top must hold for every network it saves
    assert read_card(parent).spec.preprocessing.crop_top > 0
    st = SelfTrainConfig(max_frames=80, block_frames=40, epochs=1, keep=0.5)
    config = finetune_config(parent, cache_dir, 40, selftrain=st, crop_top=0)
    config.adapter.freeze = "head"
    config.ladder.folds = 3
    result = finetune(config, tmp_path / "run")
    assert result.card.history[-1]["step"] == "finetune_selftrain"
    for folder in (tmp_path / "run" / "teacher", tmp_path / "run"):
        model, card = load_checkpoint(folder)
        assert card.spec.preprocessing.crop_top == 0 == model.spec.preprocessing.crop_top


def test_pseudo_label_cli_errors(parent, tmp_path, capsys):
    base = ["finetune", "--checkpoint", str(parent), "--data", str(sample_path())]
    missing = tmp_path / "nowhere"
    assert main([*base, "--out", str(tmp_path / "a"), "--pseudo-label", str(missing)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "nowhere" in err
    args = [*base, "--out", str(tmp_path / "b"), "--pseudo-label", "--cotrain-sim", str(missing)]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "does not combine" in err
    # every training frame labelled (no --frames): no frame is left to pseudo-label; said in
    # one line before the teacher trains or anything is written
    assert main([*base, "--out", str(tmp_path / "c"), "--pseudo-label"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "0 usable frame(s)" in err
    assert not (tmp_path / "c").exists()
    # ... also for an ensemble, each member self-training, called as a library (no CLI to
    # clear the stub folder afterwards)
    from model_helpers import finetune_config, save_parent

    other = save_parent(tmp_path / "other", {}, history=[])  # the ensemble's second start
    config = finetune_config(parent, tmp_path / "cache", None, selftrain=SelfTrainConfig())
    config.ensemble_with = [str(other)]
    with pytest.raises(ValueError, match=r"0 usable frame\(s\)"):
        finetune(config, tmp_path / "d")
    assert not (tmp_path / "d").exists()
    cfg = FinetuneConfig(selftrain={})
    assert cfg.selftrain is not None and cfg.selftrain.unlabeled == []
    assert not Path(missing).exists()


def test_recalibrate_fits_the_gain_of_the_network_as_saved(parent, cache_dir, tmp_path):
    from sim2real.agents.calibration import fit_affine
    from sim2real.agents.training import dataset_tensors

    st = SelfTrainConfig(max_frames=80, block_frames=40, epochs=1, freeze=3, recalibrate=True)
    config = finetune_config(parent, cache_dir, 40, selftrain=st)
    config.adapter.freeze = "head"
    config.ladder.folds = 2
    result = finetune(config, tmp_path / "run")
    assert result.card.spec.mirror_average
    assert result.card.history[-1]["calibration"]  # a gain was fitted and folded in
    student, _ = load_checkpoint(tmp_path / "run")  # mirror-averaged, as saved
    images, targets = dataset_tensors(open_finetune_data(config, student.spec.preprocessing).train)
    pred = predict(student, images)
    # the saved network's own best gain (through 0) on the labelled frames is 1
    gain, _ = fit_affine(pred[:, 0], targets[:, 0].double().numpy(), offset=False)
    assert gain == pytest.approx(1.0, abs=1e-2)  # (float32)


def test_finetune_self_trains_by_default_only_where_enough_unlabeled_frames_are_left(tmp_path):
    # the default is decided from the data: 2,000 records leave 1,260 training frames, so 100
    # labelled frames leave 1,160 (on) and 400 leave 860 (off, below SELFTRAIN_MIN_UNLABELED)
    from test_data_tub import INPUTS, TYPES

    from sim2real.experiments.cli import build_parser
    from sim2real.experiments.commands.finetune import (
        SELFTRAIN_MIN_UNLABELED,
        default_selftrain,
        selftrain_mentions,
    )
    from sim2real.experiments.config_options import config_from_args
    from sim2real.transfer.finetune import FinetuneConfig
    from sim2real.transfer.tub import TubWriter

    tub = tmp_path / "tub"
    with TubWriter(tub, INPUTS, TYPES) as writer:
        image = np.full((24, 32, 3), 90, np.uint8)
        for i in range(2000):
            labels = {"user/angle": 0.0, "user/throttle": 0.3, "user/mode": "user", "sim/cte": 0.0}
            writer.write({**labels, "_timestamp_ms": 1000 + 50 * i}, image)

    def decide(*extra: str) -> tuple[object, str]:
        argv = ["finetune", "--checkpoint", "pilotnet-recipe", "--data", str(tub), *extra]
        args = build_parser().parse_args([*argv, "--out", str(tmp_path / "out")])
        config = config_from_args(FinetuneConfig, args)
        resuming = args.out if args.resume else None
        chosen, in_file, off = selftrain_mentions(args)
        return default_selftrain(config, chosen, resuming, in_file=in_file, off=off)

    on, why = decide("--frames", "100")
    assert on == SelfTrainConfig(teacher="motion", max_frames=6000, epochs=4)
    assert "1160 of the 1160 other training" in why
    off, why = decide("--frames", "400")
    assert off is None and "860 unlabeled frames left" in why
    assert str(SELFTRAIN_MIN_UNLABELED) in why
    assert decide("--frames", "100", "--pseudo-label", "none") == (None, "")
    with pytest.raises(ValueError, match="'none' cannot be combined with paths"):
        decide("--frames", "100", "--pseudo-label", "none", str(tub))
    assert decide("--frames", "100", "--set", "selftrain.keep=0.5")[0].keep == 0.5
    # a knob set on the command line keeps the command's teacher (else `--set
    # selftrain.max_frames=4000` would quietly measure the network teacher)
    assert decide("--frames", "100", "--set", "selftrain.keep=0.5")[0].teacher == "motion"
    assert decide("--set", "selftrain.unlabeled=[]")[0].teacher == "motion"
    assert decide("--frames", "100", "--pseudo-label")[0].teacher == "motion"
    # ... and the command's unlabeled frames and epochs (6,000 and 4: docs/selftrain.md,
    # "Closing the student-teacher gap"), each unless the command line names it
    keep = decide("--frames", "100", "--set", "selftrain.keep=0.5")[0]
    assert (keep.max_frames, keep.epochs) == (6000, 4)
    assert decide("--frames", "100", "--pseudo-label")[0].max_frames == 6000
    named = decide("--frames", "100", "--set", "selftrain.max_frames=500")[0]
    assert (named.max_frames, named.epochs) == (500, 4)
    named = decide("--frames", "100", "--set", "selftrain.epochs=2")[0]
    assert (named.max_frames, named.epochs) == (6000, 2)
    flags = ("--pseudo-label", "--set", "selftrain.teacher=network")
    assert decide("--frames", "100", *flags)[0].teacher == "network"
    assert decide("--frames", "100", "--freeze", "head") == (None, "")  # a rung the user named
    assert decide("--frames", "100", "--from-scratch") == (None, "")
    off, why = decide()  # every training frame is labelled: nothing is left, and it says so
    assert off is None and "every training frame of --data is labelled" in why
    config_file = tmp_path / "ft.yaml"
    config_file.write_text("selftrain: null\n")
    assert decide("--frames", "100", "--config", str(config_file)) == (None, "")
    flags = ("--config", str(config_file), "--pseudo-label")  # the command line turns it on
    assert decide("--frames", "100", *flags)[0].teacher == "motion"
    # a file's `selftrain:` without a teacher is SelfTrainConfig's (network), so a config
    # saved before the teacher field reproduces its run; one that names it keeps it
    config_file.write_text("selftrain:\n  keep: 0.5\n")
    assert decide("--frames", "100", "--config", str(config_file))[0].teacher == "network"
    in_file = decide("--frames", "100", "--config", str(config_file))[0]
    assert (in_file.max_frames, in_file.epochs) == (2000, 6)
    flags = ("--config", str(config_file), "--set", "selftrain.epochs=2")
    assert decide("--frames", "100", *flags)[0].teacher == "network"
    # --pseudo-label none is off, whatever the file says; beside --set selftrain...: refused
    assert decide("--frames", "100", "--config", str(config_file), "--pseudo-label", "none") == (
        None,
        "",
    )
    with pytest.raises(ValueError, match="--pseudo-label none .* --set selftrain.keep=0.5"):
        decide("--frames", "100", "--pseudo-label", "none", "--set", "selftrain.keep=0.5")
    config_file.write_text("selftrain:\n  teacher: motion\n")
    assert decide("--frames", "100", "--config", str(config_file))[0].teacher == "motion"
    # --resume: a started run keeps its own choice, whatever the default would be now
    assert decide("--frames", "100", "--resume")[0].teacher == "motion"  # nothing saved yet
    from sim2real.common.config import save_config

    (tmp_path / "out").mkdir()
    saved = FinetuneConfig(checkpoint="pilotnet-recipe", data=[str(tub)], frames=100)
    save_config(saved, tmp_path / "out" / "config.yaml")  # a run started without it
    assert decide("--frames", "100", "--resume") == (None, "")
    keep = saved.model_copy(update={"selftrain": SelfTrainConfig(keep=0.5)})
    save_config(keep, tmp_path / "out" / "config.yaml")
    assert decide("--frames", "100", "--resume")[0].keep == 0.5
    # resuming a run started with `--pseudo-label` before the teacher field existed (its
    # config.yaml names none): the same command line resumes it with the network teacher it
    # started with (the command's motion default would make the resume check refuse it)
    text = (tmp_path / "out" / "config.yaml").read_text()
    old_style = "\n".join(line for line in text.splitlines() if "teacher:" not in line)
    assert old_style != text
    (tmp_path / "out" / "config.yaml").write_text(old_style + "\n")
    assert decide("--frames", "100", "--pseudo-label", "--resume")[0].teacher == "network"
    save_config(keep, tmp_path / "out" / "config.yaml")
    # a run saved with SelfTrainConfig's 2,000 frames and 6 epochs resumes with them
    resumed = decide("--frames", "100", "--pseudo-label", "--resume")[0]
    assert (resumed.max_frames, resumed.epochs) == (2000, 6)
    flags = ("--pseudo-label", "--set", "selftrain.teacher=motion", "--resume")
    assert decide("--frames", "100", *flags)[0].teacher == "motion"  # named: as named


def test_held_out_frames_follow_the_split_with_pilot_frames_included(tmp_path):
    # --include-pilot puts the pilot's frames into the split, so the validation and test
    # blocks must be cut from the same records; else user frames of those blocks could become
    # unlabeled (self-training) frames. Pilot laps first, then the person's driving.
    from test_data_tub import INPUTS, TYPES

    from sim2real.transfer.cotrain import held_out_images
    from sim2real.transfer.splits import split_records
    from sim2real.transfer.tub import TubWriter

    tub = tmp_path / "tub"
    with TubWriter(tub, INPUTS, TYPES) as writer:
        image = np.full((24, 32, 3), 90, np.uint8)
        for i in range(400):
            mode = "local" if i < 200 else "user"
            labels = {"user/angle": 0.0, "user/throttle": 0.3, "user/mode": mode, "sim/cte": 0.0}
            writer.write({**labels, "_timestamp_ms": 1000 + 50 * i}, image)
    config = FinetuneConfig(checkpoint="c", data=[str(tub)], include_pilot=True)
    records = open_records([tub], include_pilot=True).records
    parts = split_records(records, config.split, seed=config.train.seed)
    held = set(held_out_images(config))
    outside_train = [Path(r.image_path) for r in [*parts.val, *parts.test]]
    assert outside_train and all(p in held for p in outside_train)
    assert not held & {Path(r.image_path) for r in parts.train}


def test_self_training_reads_pilot_frames_as_unlabeled_with_include_pilot(
    parent, cache_dir, tmp_path, monkeypatch
):
    # the default's count ("labels N of the M other training frames") and held_out_images cut
    # the split from the records --include-pilot reads; the unlabeled frames come from the same
    import sim2real.transfer.selftrain as selftrain

    seen: list[bool] = []
    original = selftrain.unlabeled_frames

    def spy(*args, include_pilot=False, **kwargs):
        seen.append(include_pilot)
        return original(*args, include_pilot=include_pilot, **kwargs)

    monkeypatch.setattr(selftrain, "unlabeled_frames", spy)
    st = SelfTrainConfig(max_frames=40, block_frames=20, epochs=1)
    config = finetune_config(parent, cache_dir, 40, selftrain=st, include_pilot=True)
    config.adapter.freeze = "head"
    config.ladder.folds = 3
    finetune(config, tmp_path / "run")
    assert seen == [True]
