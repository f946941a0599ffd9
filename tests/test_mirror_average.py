"""Mirror test-time averaging (`ModelSpec.mirror_average`): the network, its card, evaluate,
fine-tuning, the ONNX export and the pilot part, on real frames of the shipped sample tub."""

import json

import numpy as np
import onnxruntime as ort
import pytest
import torch
from model_helpers import finetune_config, save_parent, set_batchnorm_statistics

from sim2real.agents.augment import Augmentation
from sim2real.agents.checkpoint import ModelCard, load_checkpoint, read_card, save_checkpoint
from sim2real.agents.model import DrivingNet, ModelSpec, predict
from sim2real.agents.temporal import Temporal
from sim2real.experiments.cli import main
from sim2real.transfer.datasets import open_records
from sim2real.transfer.evaluate import evaluate_offline
from sim2real.transfer.export import export_onnx, load_frames, run_onnx
from sim2real.transfer.finetune import FinetuneConfig, finetune
from sim2real.transfer.pilot import DonkeyPilot
from sim2real.transfer.sample_data import sample_path

OUTPUTS = ["user/angle", "user/throttle", "sim/cte"]


def _net(mirror: bool, seed: int = 0) -> DrivingNet:
    spec = ModelSpec(outputs=OUTPUTS, hidden=16, mirror_average=mirror)
    torch.manual_seed(seed)
    return set_batchnorm_statistics(DrivingNet(spec)).eval()


@pytest.fixture(scope="module")
def frames():
    records = open_records([sample_path()]).records
    return load_frames([r.image_path for r in records[::90]])  # 12 real frames, 120x160


def _inputs(frames: np.ndarray, net: DrivingNet) -> torch.Tensor:
    pre = net.spec.preprocessing
    return torch.from_numpy(np.stack([pre.apply(f).transpose(2, 0, 1) for f in frames]))


def test_a_mirrored_frame_gives_the_negated_steering_and_the_same_throttle(frames):
    net = _net(mirror=True)
    x = _inputs(frames, net)
    direct, mirrored = predict(net, x), predict(net, x.flip(3))
    assert np.ptp(direct[:, 0]) > 0  # the frames give different steering
    np.testing.assert_allclose(mirrored[:, 0], -direct[:, 0], atol=1e-6, rtol=0)  # steering
    np.testing.assert_allclose(mirrored[:, 2], -direct[:, 2], atol=1e-6, rtol=0)  # sim/cte
    np.testing.assert_allclose(mirrored[:, 1], direct[:, 1], atol=1e-6, rtol=0)  # throttle
    # the same weights without the option: not symmetric, and the average is what it returns
    plain = _net(mirror=False)
    p, q = predict(plain, x), predict(plain, x.flip(3))
    assert np.abs(q[:, 0] + p[:, 0]).max() > 1e-3
    signs = np.array([-1.0, 1.0, -1.0])
    np.testing.assert_allclose(direct, (p + q * signs) / 2, atol=1e-6, rtol=0)


def test_training_mode_runs_the_plain_network(frames):
    net, plain = _net(mirror=True), _net(mirror=False)
    for m in (net, plain):
        m.train()
        for module in m.modules():  # dropout off; BatchNorm in batch mode
            if isinstance(module, torch.nn.Dropout):
                module.p = 0.0
    x = _inputs(frames, net).float() / 255.0
    with torch.no_grad():
        np.testing.assert_array_equal(net(x).numpy(), plain(x).numpy())


def test_card_round_trip_and_old_cards(tmp_path, frames):
    net = _net(mirror=True)
    save_checkpoint(tmp_path / "on", net, ModelCard(spec=net.spec))
    loaded, card = load_checkpoint(tmp_path / "on")
    assert card.spec.mirror_average and loaded.spec.mirror_average
    x = _inputs(frames, net)
    np.testing.assert_array_equal(predict(loaded, x), predict(net, x))
    # a card written before the option existed loads with it off
    data = json.loads((tmp_path / "on" / "model.json").read_text())
    del data["spec"]["mirror_average"]
    (tmp_path / "on" / "model.json").write_text(json.dumps(data))
    assert read_card(tmp_path / "on").spec.mirror_average is False


def test_bad_values_are_one_line_errors(tmp_path, capsys):
    with pytest.raises(ValueError, match="mirror_average"):
        ModelSpec(mirror_average="sometimes")
    with pytest.raises(ValueError, match="this one reads model.temporal.previous_action"):
        ModelSpec(mirror_average=True, temporal=Temporal(previous_action=True))
    net = _net(mirror=False)
    save_checkpoint(tmp_path / "c", net, ModelCard(spec=net.spec))
    data = json.loads((tmp_path / "c" / "model.json").read_text())
    data["spec"]["mirror_average"] = "maybe"
    (tmp_path / "c" / "model.json").write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"model\.json.*mirror_average"):
        read_card(tmp_path / "c")
    with pytest.raises(SystemExit) as exc:
        main(["evaluate", "--checkpoint", "pilotnet-recipe", "--mirror-average", "maybe"])
    assert exc.value.code == 2
    assert "--mirror-average: invalid choice: 'maybe'" in capsys.readouterr().err


def test_onnx_runs_the_average_inside_the_graph(tmp_path, frames):
    net = _net(mirror=False, seed=3)
    save_checkpoint(tmp_path / "ckpt", net, ModelCard(spec=net.spec, source_size=(120, 160)))
    result = export_onnx(
        tmp_path / "ckpt",
        tmp_path / "pilot.onnx",
        check_frames=frames[:4],  # onnxruntime against torch, or nothing is written
        dynamo=False,
        mirror_average=True,
    )
    assert result.max_abs_diff is not None and result.max_abs_diff <= 1e-4
    session = ort.InferenceSession(str(result.onnx_path), providers=["CPUExecutionProvider"])
    got = run_onnx(session, frames)
    net.spec.mirror_average = True
    np.testing.assert_allclose(got["steering"], predict(net, _inputs(frames, net))[:, 0], atol=1e-4)
    # the graph is symmetric on raw camera frames (crop rows, resize, then the network)
    flipped = run_onnx(session, np.ascontiguousarray(frames[:, :, ::-1]))
    np.testing.assert_allclose(flipped["steering"], -got["steering"], atol=1e-5)
    np.testing.assert_allclose(flipped["throttle"], got["throttle"], atol=1e-5)
    pilot = DonkeyPilot(result.onnx_path, image_size=(120, 160))
    angle, _ = pilot.run(frames[5])
    mirrored_angle, _ = pilot.run(np.ascontiguousarray(frames[5, :, ::-1]))
    assert angle == pytest.approx(-mirrored_angle, abs=1e-5) and abs(angle) > 1e-4


def test_finetune_saves_the_option_and_evaluate_honours_it(tmp_path):
    parent = save_parent(tmp_path / "parent", {"paths": []})
    config = finetune_config(parent, tmp_path / "cache", frames=40)  # the default: on
    config.adapter.freeze = "gain"
    config.ladder.folds = 2
    result = finetune(config, tmp_path / "ft")
    assert result.card.spec.mirror_average and read_card(tmp_path / "ft").spec.mirror_average
    data = [str(sample_path())]
    on = evaluate_offline(tmp_path / "ft", data, n_boot=20, progress=False)
    off = evaluate_offline(tmp_path / "ft", data, n_boot=20, progress=False, mirror_average=False)
    assert on.info["mirror_average"] and not off.info["mirror_average"]
    r2_on, r2_off = on.metrics["steering_r2"].value, off.metrics["steering_r2"].value
    assert np.isfinite(r2_on) and np.isfinite(r2_off) and r2_on != r2_off


def test_the_calibrate_rung_keeps_its_offset():
    assert FinetuneConfig().mirror_for("gain") and FinetuneConfig().mirror_for(None)
    assert not FinetuneConfig().mirror_for("calibrate")  # the average cancels its offset
    assert not FinetuneConfig(mirror_average=False).mirror_for("gain")
    with pytest.raises(ValueError, match="--mirror-average off"):
        FinetuneConfig(mirror_average=True, adapter={"freeze": "calibrate"})


def test_evaluate_sim_applies_the_override_and_records_it(tmp_path, capsys):
    from test_closed_loop_cli import _full_left_checkpoint

    _full_left_checkpoint(tmp_path / "ckpt")  # the average cancels full left to straight ahead
    args = ["evaluate", "--checkpoint", str(tmp_path / "ckpt"), "--sim", "--episodes", "1"]
    results = {}
    for flag in ("off", "on"):
        out = tmp_path / f"{flag}.json"
        assert main([*args, "--nominal", "--mirror-average", flag, "--json", str(out)]) == 0
        results[flag] = json.loads(out.read_text())
    assert "mirror-averaged" in capsys.readouterr().out
    assert results["on"]["checkpoint"]["mirror_average"] is True
    assert results["off"]["checkpoint"]["mirror_average"] is False
    # full left leaves the road sooner than straight ahead
    assert results["on"]["episodes"][0]["steps"] > results["off"]["episodes"][0]["steps"]


def test_a_temporal_network_refuses_the_average_in_one_line(tmp_path, capsys):
    gap = Temporal(previous_frame_gap=2)
    with pytest.raises(ValueError, match=r"previous_frame_gap = 2: turn") as exc:
        ModelSpec(mirror_average=True, temporal=gap)
    assert "previous_action" not in str(exc.value) and "preprocessing" not in str(exc.value)
    spec = ModelSpec(hidden=8, temporal=gap)
    net = DrivingNet(spec)
    save_checkpoint(tmp_path / "stack", net, ModelCard(spec=spec, source_size=(120, 160)))
    ckpt = str(tmp_path / "stack")
    evaluate = ["evaluate", "--checkpoint", ckpt, "--mirror-average", "on"]
    for argv in (
        [*evaluate, "--sim", "--episodes", "1"],
        [*evaluate, "--data", str(sample_path()), "--n-boot", "10"],
        ["export", "--checkpoint", ckpt, "--onnx", str(tmp_path / "s.onnx")]
        + ["--mirror-average", "on"],
    ):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and ckpt in err and "--mirror-average on" in err, err
        assert "previous_frame_gap = 2" in err and "ModelSpec(" not in err


def _val_scores(checkpoint, config, mirror: bool) -> dict:
    """Per-output validation metrics of the saved `checkpoint`, scored here."""
    from sim2real.agents.losses import evaluate_loss
    from sim2real.agents.training import dataset_tensors
    from sim2real.transfer.finetune import open_finetune_data

    model, _ = load_checkpoint(checkpoint)
    model.spec.mirror_average = mirror
    images, targets = dataset_tensors(open_finetune_data(config, model.spec.preprocessing).val)
    names = model.spec.outputs
    _, metrics = evaluate_loss(model, images, targets, names, torch.ones(len(names)), "cpu")
    return metrics


@pytest.mark.parametrize("freeze", ["all", "none", "align"])
def test_the_card_scores_the_saved_averaged_network(tmp_path, freeze):
    """The cached-head fit, `fit`, and aligned fine-tuning (`finetune_mixed`)."""
    from sim2real.agents.alignment import AlignmentConfig

    parent = save_parent(tmp_path / "parent", {"paths": []})
    changes = {"adapter": {"freeze": freeze}}
    if freeze == "align":
        align = AlignmentConfig(unlabeled=[str(sample_path())], max_frames=60)
        changes = {"adapter": {"freeze": 3}, "align": align}
    config = finetune_config(parent, tmp_path / "cache", frames=40, **changes)
    result = finetune(config, tmp_path / "ft")
    assert result.cached_features == (freeze == "all")
    card = read_card(tmp_path / "ft")
    assert card.spec.mirror_average
    saved = _val_scores(tmp_path / "ft", config, mirror=True)
    plain = _val_scores(tmp_path / "ft", config, mirror=False)
    for name in ("user/angle", "user/throttle"):
        got = card.metrics["val"][name]["mse"]
        assert got == pytest.approx(saved[name]["mse"], rel=1e-5)
    assert card.metrics["val"]["user/angle"]["mse"] != pytest.approx(
        plain["user/angle"]["mse"], rel=1e-3
    )


def test_a_run_with_other_mirrored_labels_refuses_the_average():
    from sim2real.agents.pretrain import PretrainConfig

    train = {"augment": {"mirrored_labels": ["user/angle"]}}  # sim/cte no longer negated
    with pytest.raises(ValueError, match=r"train\.augment\.mirrored_labels is \['user/angle'\]"):
        FinetuneConfig(mirror_average=True, train=train)
    assert not FinetuneConfig(train=train).mirror_for(None)  # the default: off for this run
    assert FinetuneConfig(train=train, mirror_average=False).mirror_for("gain") is False
    with pytest.raises(ValueError, match="model.mirror_average negates the default"):
        PretrainConfig(model={"mirror_average": True}, train=train)
    # the default list in another order is the same set of labels
    reordered = {"augment": {"mirrored_labels": list(reversed(Augmentation().mirrored_labels))}}
    assert FinetuneConfig(mirror_average=True, train=reordered).mirror_for(None)
    assert PretrainConfig(model={"mirror_average": True}).model.mirror_average


def test_the_gain_rung_fits_the_gain_of_the_network_as_saved(tmp_path):
    from sim2real.agents.calibration import fit_affine
    from sim2real.agents.training import dataset_tensors
    from sim2real.transfer.finetune import open_finetune_data

    parent = save_parent(tmp_path / "parent", {"paths": []})
    config = finetune_config(parent, tmp_path / "cache", frames=40, adapter={"freeze": "gain"})
    config.ladder.folds = 2
    result = finetune(config, tmp_path / "ft")
    assert result.card.spec.mirror_average and result.ladder.pick == "gain"
    model, card = load_checkpoint(tmp_path / "ft")
    images, targets = dataset_tensors(open_finetune_data(config, model.spec.preprocessing).train)
    gain, _ = fit_affine(predict(model, images)[:, 0], targets[:, 0].double().numpy(), offset=False)
    assert gain == pytest.approx(1.0, abs=1e-2)  # the saved network's own best gain (float32)
    steering = [c for c in card.history[-1]["ladder"]["calibration"] if c["output"] == "user/angle"]
    assert steering and steering[0]["gain"] != 1.0
