"""The adaptation ladder: time-block folds, closed-form calibration, each rung's trainable set,
`auto`'s cross-validated pick recorded in the card, and the CLI's one-line errors."""

import numpy as np
import pytest
import torch

from sim2real.agents.calibration import affine_output, fit_affine
from sim2real.agents.checkpoint import read_weights
from sim2real.agents.model import DrivingNet, ModelSpec, predict
from sim2real.agents.training import TrainConfig
from sim2real.experiments.cli import main
from sim2real.transfer.finetune import FinetuneConfig, finetune, parse_freeze
from sim2real.transfer.ladder import RUNGS, LadderConfig
from sim2real.transfer.ladder_cv import RungScore, pick_rung
from sim2real.transfer.sample_data import sample_path
from sim2real.transfer.splits import kfold_blocks, min_frames_for_folds


def config(parent, cache_dir, freeze, rungs=None, **changes):
    train = TrainConfig(
        epochs=3, batch_size=16, patience=2, progress=False, tensorboard=False, num_threads=1
    )
    ladder = LadderConfig(folds=3, **({"rungs": rungs} if rungs else {}))
    cfg = FinetuneConfig(
        checkpoint=str(parent),
        data=[str(sample_path())],
        frames=48,
        train=train,
        ladder=ladder,
        cache_dir=str(cache_dir),
        **changes,
    )
    cfg.adapter.freeze = freeze
    return cfg


def test_kfold_blocks_are_contiguous_disjoint_and_keep_a_gap():
    folds = kfold_blocks(53, 5, gap=3)
    held = np.concatenate([h for _, h in folds])
    assert sorted(held.tolist()) == list(range(53))  # every frame held out exactly once
    for train, h in folds:
        assert np.all(np.diff(h) == 1) and 10 <= len(h) <= 11
        assert not set(train) & set(h)
        # no training frame within the gap of the held-out block
        assert np.all((train < h[0] - 3) | (train > h[-1] + 3))
        assert len(train) == 53 - len(h) - 3 * (int(h[0] > 0) + int(h[-1] < 52))
    need = min_frames_for_folds(5, 3)
    kfold_blocks(need, 5, gap=3)
    with pytest.raises(ValueError, match=f"needs at least {need} frames, got {need - 1}"):
        kfold_blocks(need - 1, 5, gap=3)


def test_affine_fit_and_fold_into_the_last_layer():
    rng = np.random.default_rng(0)
    p = rng.normal(size=200)
    y = 1.7 * p + 0.3 + rng.normal(scale=0.01, size=200)
    y[::10] = np.nan
    gain, offset = fit_affine(p, y)
    assert gain == pytest.approx(1.7, abs=0.01) and offset == pytest.approx(0.3, abs=0.01)
    gain_only, zero = fit_affine(p, 1.7 * p + 0.5, offset=False)  # a line through 0
    assert zero == 0.0 and gain_only == pytest.approx(1.7 + 0.5 * p.sum() / (p @ p))
    model = DrivingNet(ModelSpec(hidden=8)).eval()
    images = torch.randint(0, 255, (6, 3, 64, 128), dtype=torch.uint8)
    before = predict(model, images)
    affine_output(model, "user/throttle", 2.0, -0.5)
    after = predict(model, images)
    np.testing.assert_allclose(after[:, 1], 2.0 * before[:, 1] - 0.5, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(after[:, 0], before[:, 0])


def score(rung, mean, se):
    return RungScore(rung=rung, mean=mean, se=se, epochs=1, seconds=0.0, curve=[mean])


def test_one_se_rule_prefers_the_simplest_rung_within_one_se():
    scores = [score("gain", 0.50, 0.01), score("probe", 0.33, 0.02), score("head", 0.30, 0.05)]
    assert pick_rung(scores).rung == "probe"  # 0.33 <= 0.30 + 0.05; gain is not
    assert pick_rung(scores, one_se=False).rung == "head"
    tight = [score("gain", 0.36, 0.01), score("head", 0.30, 0.01)]
    assert pick_rung(tight).rung == "head"


def test_the_one_se_rule_applies_up_to_its_frame_count():
    ladder = LadderConfig(one_se_max_frames=200)
    assert ladder.uses_one_se(200) and not ladder.uses_one_se(201)
    assert not LadderConfig(one_se=False).uses_one_se(10)


def test_auto_past_the_one_se_frame_count_takes_the_lowest_rung(parent, cache_dir, tmp_path):
    cfg = config(parent, cache_dir, "auto")
    cfg = cfg.model_copy(update={"ladder": LadderConfig(folds=3, one_se_max_frames=40)})
    search = finetune(cfg, tmp_path / "out").ladder
    assert search.frames == 48
    assert search.pick == min(search.scores, key=lambda s: s.mean).rung
    assert search.rule == "picked: the lowest mean held-out loss"


def test_auto_cross_validates_every_rung_and_records_the_pick(parent, cache_dir, tmp_path):
    cfg = config(parent, cache_dir, "auto")
    result = finetune(cfg, tmp_path / "out")
    search = result.ladder
    # calibrate (gain + offset) is only run when named: an offset learns the few frames' bias
    assert [s.rung for s in search.scores] == ["gain", "probe", "head", "top", "full"]
    assert search.folds == 3 and search.frames == 48
    best = min(search.scores, key=lambda s: s.mean)
    picked = next(s for s in search.scores if s.rung == search.pick)
    assert picked.mean <= best.mean + best.se
    earlier = search.scores[: search.scores.index(picked)]
    assert all(s.mean > best.mean + best.se for s in earlier)
    assert all(len(s.curve) >= 1 for s in search.scores)
    assert search.scores[0].epochs == 0  # gain: closed form
    assert all(1 <= s.epochs <= 3 for s in search.scores[1:])
    step = result.card.history[-1]
    assert step["ladder"]["pick"] == search.pick and len(step["ladder"]["scores"]) == 5
    assert step["ladder"]["config"]["folds"] == 3
    assert "<- picked" in search.table()


@pytest.mark.parametrize(
    ("rung", "fixed", "changed"),
    [
        ("calibrate", ["encoder.", "head.1."], ["head.4."]),
        ("probe", ["encoder.", "head.1."], ["head.4."]),
        ("top", ["encoder.stages.stage1.", "encoder.stages.stage3."], ["encoder.stages.stage5."]),
    ],
)
def test_each_rung_trains_only_its_part(parent, cache_dir, tmp_path, rung, fixed, changed):
    result = finetune(config(parent, cache_dir, rung), tmp_path / "out")
    assert [s.rung for s in result.ladder.scores] == [rung]
    before, after = read_weights(parent), read_weights(tmp_path / "out")
    for prefix in fixed:
        keys = [k for k in after if k.startswith(prefix)]
        assert keys and all(torch.equal(before[k], after[k]) for k in keys), prefix
    for prefix in changed:
        keys = [k for k in after if k.startswith(prefix) and k.endswith("weight")]
        assert any(not torch.equal(before[k][:2], after[k][:2]) for k in keys), prefix


def test_calibrate_records_gains_that_reproduce_the_outputs(parent, cache_dir, tmp_path):
    from sim2real.agents.checkpoint import load_checkpoint
    from sim2real.transfer.adapter import reheaded

    result = finetune(config(parent, cache_dir, "calibrate"), tmp_path / "out")
    fitted = {c["output"]: c for c in result.card.history[-1]["ladder"]["calibration"]}
    assert set(fitted) == {"user/angle", "user/throttle"}
    tuned, _ = load_checkpoint(tmp_path / "out")
    assert not tuned.spec.mirror_average  # the default keeps calibrate's steering offset
    start = reheaded(load_checkpoint(parent)[0], ["user/angle", "user/throttle"]).eval()
    images = torch.randint(0, 255, (5, 3, 64, 128), dtype=torch.uint8)
    p0, p1 = predict(start, images), predict(tuned.eval(), images)
    for i, name in enumerate(["user/angle", "user/throttle"]):
        expected = fitted[name]["gain"] * p0[:, i] + fitted[name]["offset"]
        np.testing.assert_allclose(p1[:, i], expected, rtol=1e-4, atol=1e-5)


def test_parse_freeze_and_clear_cli_errors(parent, cache_dir, tmp_path, capsys):
    assert parse_freeze("3") == 3 and parse_freeze("probe") == "probe"
    assert parse_freeze("stage1,stage2") == ["stage1", "stage2"]
    assert set(RUNGS) >= {"gain", "calibrate", "probe", "head", "top", "lpft", "full"}
    base = ["finetune", "--checkpoint", str(parent), "--data", str(sample_path())]
    assert main([*base, "--out", str(tmp_path / "a"), "--freeze", "bogus"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--freeze 'bogus' is not known" in err and "probe" in err
    args = [*base, "--out", str(tmp_path / "b"), "--frames", "8", "--folds", "5"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "needs at least 10 frames, got 8" in err


def test_freeze_rule_resolves_in_the_cli(parent, cache_dir, tmp_path, capsys):
    cfg = tmp_path / "ft.yaml"
    cfg.write_text(
        "train: {epochs: 2, batch_size: 16, progress: false, tensorboard: false}\n"
        f"cache_dir: {cache_dir}\n"
    )
    args = ["finetune", "--checkpoint", str(parent), "--data", str(sample_path())]
    args += ["--out", str(tmp_path / "out"), "--frames", "40", "--freeze", "rule"]
    assert main([*args, "--config", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert "freeze rule: freeze 5 stage(s)" in out and "frozen stage1" in out


def test_auto_with_plentiful_frames_trains_everything_without_cross_validation(
    parent, cache_dir, tmp_path
):
    cfg = config(parent, cache_dir, "auto")
    cfg.ladder.cv_max_frames = 40  # below the 48 training frames
    lines: list[str] = []
    result = finetune(cfg, tmp_path / "out", log_line=lines.append)
    step = result.card.history[-1]
    assert result.ladder is None and "ladder" not in step
    assert result.frozen == [] and step["auto_plentiful"] is True
    assert step["adapter"]["freeze"] == "none"
    assert any("cv_max_frames 40" in line for line in lines)
    cfg.ladder.cv_max_frames = 48  # not above: the ladder searches
    assert finetune(cfg, tmp_path / "out2").ladder is not None
