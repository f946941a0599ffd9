"""ONNX export and the DonkeyCar pilot part, on real frames of the shipped sample tub."""

import numpy as np
import onnxruntime as ort
import pytest
import torch
from model_helpers import set_batchnorm_statistics

from sim2real.agents.checkpoint import ModelCard, save_checkpoint
from sim2real.agents.model import DrivingNet, ModelSpec
from sim2real.agents.preprocessing import Preprocessing
from sim2real.transfer.datasets import open_records
from sim2real.transfer.export import (
    CarInputModel,
    export_onnx,
    load_frames,
    read_metadata,
    resize_mismatch,
    run_onnx,
)
from sim2real.transfer.pilot import DonkeyPilot
from sim2real.transfer.sample_data import sample_path


@pytest.fixture(scope="module")
def frames():
    records = open_records([sample_path()]).records
    return load_frames([r.image_path for r in records[::50]])  # 20 real frames, 120x160


def _checkpoint(directory, outputs=("user/angle", "user/throttle"), seed=0, prep=None):
    spec = ModelSpec(
        architecture="pilotnet",
        outputs=list(outputs),
        hidden=16,
        preprocessing=prep or Preprocessing(),
    )
    torch.manual_seed(seed)
    # non-trivial BatchNorm statistics, so the export must carry them
    model = set_batchnorm_statistics(DrivingNet(spec))
    save_checkpoint(directory, model, ModelCard(spec=spec, trained_on={"test": True}))
    return model.eval()


@pytest.fixture(scope="module")
def exported(tmp_path_factory, frames):
    folder = tmp_path_factory.mktemp("export")
    model = _checkpoint(folder / "ckpt")
    result = export_onnx(folder / "ckpt", folder / "pilot.onnx", check_frames=frames[:4])
    return model, result


def test_onnx_matches_torch_on_real_frames_with_dynamic_batch(exported, frames):
    model, result = exported
    assert result.max_abs_diff is not None and result.max_abs_diff <= 1e-4
    session = ort.InferenceSession(str(result.onnx_path), providers=["CPUExecutionProvider"])
    for batch in (frames[:1], frames[4:11]):  # batch sizes other than the traced one
        got = run_onnx(session, batch)
        # reference: the training path (cv2 preprocessing, uint8, /255) through the network
        pre = model.spec.preprocessing
        x = np.stack([pre.apply(f).transpose(2, 0, 1) for f in batch])
        with torch.no_grad():
            ref = model(torch.from_numpy(x).float() / 255.0).numpy()
        assert set(got) == {"steering", "throttle"}
        np.testing.assert_allclose(got["steering"], ref[:, 0], atol=1e-4, rtol=0)
        np.testing.assert_allclose(got["throttle"], ref[:, 1], atol=1e-4, rtol=0)
        assert np.ptp(got["steering"]) > 0 or len(batch) == 1  # frames do differ


def test_metadata_carries_the_model_card(exported):
    model, result = exported
    meta = read_metadata(result.onnx_path)
    assert meta["source_size"] == (120, 160)
    assert meta["outputs"] == {"steering": "user/angle", "throttle": "user/throttle"}
    assert ModelCard.model_validate(meta["card"]).spec == model.spec


def test_in_graph_resize_equals_cv2_area_on_real_frames(frames):
    for pre in (Preprocessing(), Preprocessing(crop_top=0, height=60, width=80)):
        mismatch = resize_mismatch(pre, frames)
        assert mismatch["n_diff"] == 0, (pre, mismatch)


def test_pilot_part_returns_sane_commands_on_real_frames(exported, frames):
    _, result = exported
    pilot = DonkeyPilot(result.onnx_path)
    commands = np.array([pilot.run(f) for f in frames])
    assert commands.shape == (len(frames), 2)
    assert np.all(np.isfinite(commands)) and np.all(np.abs(commands) <= 1.0)
    session = ort.InferenceSession(str(result.onnx_path), providers=["CPUExecutionProvider"])
    expected = np.clip(run_onnx(session, frames)["steering"], -1, 1)
    np.testing.assert_allclose(commands[:, 0], expected, atol=1e-6)
    assert pilot.run(None) == (0.0, 0.0)
    assert pilot.run_threaded(frames[0]) == pilot.run(frames[0])
    assert DonkeyPilot(result.onnx_path, throttle=0.3).run(frames[0])[1] == 0.3
    with pytest.raises(ValueError, match=r"exported for 160x120 RGB frames, shape \(120, 160, 3\)"):
        pilot.run(np.zeros((96, 128, 3), np.uint8))
    pilot.shutdown()
    with pytest.raises(RuntimeError, match="shutdown"):
        pilot.run(frames[0])


def test_bad_inputs_fail_clearly(tmp_path, frames):
    with pytest.raises(FileNotFoundError):
        DonkeyPilot(tmp_path / "missing.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"not onnx")
    with pytest.raises(ValueError, match="not a loadable ONNX model"):
        DonkeyPilot(tmp_path / "junk.onnx")
    with pytest.raises(FileNotFoundError, match="not found"):
        export_onnx(tmp_path / "no-checkpoint", tmp_path / "x.onnx")
    model = _checkpoint(tmp_path / "ckpt")
    with pytest.raises(ValueError, match="check frames"):
        export_onnx(tmp_path / "ckpt", tmp_path / "x.onnx", check_frames=frames[:, :100])
    assert not (tmp_path / "x.onnx").exists()
    assert CarInputModel(model, (120, 160)).output_names == ["steering", "throttle"]


def test_steering_only_model_needs_a_constant_throttle(tmp_path, frames):
    _checkpoint(tmp_path / "ckpt", outputs=("user/angle", "sim/cte"))
    result = export_onnx(tmp_path / "ckpt", tmp_path / "p.onnx", dynamo=False)
    assert result.output_names == ["steering", "sim_cte"]
    with pytest.raises(ValueError, match="no throttle"):
        DonkeyPilot(result.onnx_path)
    angle, throttle = DonkeyPilot(result.onnx_path, throttle=0.25).run(frames[0])
    assert -1 <= angle <= 1 and throttle == 0.25
    assert read_metadata(result.onnx_path)["outputs"]["sim_cte"] == "sim/cte"


def test_export_command_writes_a_checked_model(tmp_path, capsys, frames):
    from sim2real.experiments.cli import main

    model = _checkpoint(tmp_path / "ckpt")
    args = ["export", "--checkpoint", str(tmp_path / "ckpt"), "--onnx", str(tmp_path / "p.onnx")]
    assert main([*args, "--torchscript", "--check-frames", "8"]) == 0
    out = capsys.readouterr().out
    assert "parity: onnxruntime vs torch" in out and "on 8 real frames" in out
    # the car's part drives with the network's own outputs on a real frame
    pre = model.spec.preprocessing
    x = torch.from_numpy(pre.apply(frames[3]).transpose(2, 0, 1)[None]).float() / 255.0
    with torch.no_grad():
        ref = np.clip(model(x).numpy()[0], -1, 1)
    angle, throttle = DonkeyPilot(tmp_path / "p.onnx").run(frames[3])
    np.testing.assert_allclose([angle, throttle], ref, atol=1e-4, rtol=0)
    assert abs(angle) > 1e-3  # (a zero answer would match an all-zero network)
    assert main([*args, "--source-size", "96", "128", "--check-data", str(sample_path())]) == 2
    assert "--source-size" in capsys.readouterr().err
    # an existing file is replaced only with --force
    before = (tmp_path / "p.onnx").read_bytes()
    assert main([*args, "--check-frames", "2"]) == 2
    assert "--force" in capsys.readouterr().err
    assert (tmp_path / "p.onnx").read_bytes() == before
    assert main([*args, "--check-frames", "2", "--force", "--torchscript"]) == 0


def test_per_image_normalization_exports_and_ignores_exposure(tmp_path, frames):
    _checkpoint(tmp_path / "ckpt", prep=Preprocessing(normalization="per_image"))
    result = export_onnx(tmp_path / "ckpt", tmp_path / "p.onnx", check_frames=frames[:4])
    assert result.max_abs_diff is not None and result.max_abs_diff <= 1e-4
    session = ort.InferenceSession(str(result.onnx_path), providers=["CPUExecutionProvider"])
    bright = run_onnx(session, frames[:8])["steering"]
    # the same frames at 60% exposure (no clipping): per-image normalisation undoes the gain,
    # up to uint8 rounding, so the outputs move far less than they differ between frames
    dim = (frames[:8].astype(np.float32) * 0.6).round().astype(np.uint8)
    moved = np.abs(run_onnx(session, dim)["steering"] - bright).max()
    assert moved < 0.1 * np.ptp(bright)
    # the fixed normalisation exports too, and its outputs do move with exposure
    _checkpoint(tmp_path / "fixed")
    fixed = export_onnx(tmp_path / "fixed", tmp_path / "f.onnx", dynamo=False).onnx_path
    session = ort.InferenceSession(str(fixed), providers=["CPUExecutionProvider"])
    bright = run_onnx(session, frames[:8])["steering"]
    moved = np.abs(run_onnx(session, dim)["steering"] - bright).max()
    assert moved > 0.3 * np.ptp(bright)


PILOT_ALONE = """
import sys
sys.modules["sim2real"] = None  # the car has no sim2real: importing it would fail
sys.path.insert(0, sys.argv[1])
import numpy as np
from sim2real_pilot import DonkeyPilot

onnx = sys.argv[2]
try:
    DonkeyPilot(onnx, image_size=(240, 320))
except ValueError as exc:
    print("WRONG-SIZE", exc)
pilot = DonkeyPilot(onnx, image_size=(120, 160))
frame = np.full((120, 160, 3), 90, np.uint8)
before = pilot.run(frame)
try:
    pilot.load(sys.argv[1] + "/missing.onnx")
except FileNotFoundError:
    print("MISSING kept the old model:", pilot.run(frame) == before)
pilot.load(onnx)  # DonkeyCar's model reload
print("RELOADED", pilot.run(frame) == before, all(-1 <= v <= 1 for v in before))
"""


def test_pilot_copied_alone_checks_the_camera_size_when_built_and_reloads(exported, tmp_path):
    import shutil
    import subprocess
    import sys

    import sim2real.transfer.pilot as pilot_module

    _, result = exported
    shutil.copy(pilot_module.__file__, tmp_path / "sim2real_pilot.py")
    done = subprocess.run(
        [sys.executable, "-c", PILOT_ALONE, str(tmp_path), str(result.onnx_path)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    wrong = next(line for line in lines if line.startswith("WRONG-SIZE"))
    assert "320x240" in wrong and "160x120" in wrong and "IMAGE_W" in wrong
    assert "MISSING kept the old model: True" in lines
    assert "RELOADED True True" in lines


def test_pilot_docstring_is_right_for_donkeycar_5():
    import sim2real.transfer.pilot as pilot_module

    doc = pilot_module.__doc__
    assert "onnxruntime>=1.18" in doc and "AI_THROTTLE_MULT = 0.7" in doc
    assert "Start the car *without* ``--model``" in doc and "not inside it" in doc
    assert "image_size=(cfg.IMAGE_H, cfg.IMAGE_W)" in doc


def test_export_refuses_a_frame_size_the_network_was_not_trained_on(tmp_path):
    spec = ModelSpec(architecture="pilotnet", hidden=8)
    card = ModelCard(spec=spec, source_size=(120, 160))
    save_checkpoint(tmp_path / "ckpt", DrivingNet(spec), card)
    with pytest.raises(ValueError, match=r"frames are 320x240 .* trained on 160x120"):
        export_onnx(tmp_path / "ckpt", tmp_path / "p.onnx", source_size=(240, 320))
    assert not (tmp_path / "p.onnx").exists()


def test_a_temporal_network_needs_steering_and_throttle_outputs(frames):
    """The network is fed its own previous [steering, throttle] (`rollout_context` through
    `predict_rollout`, as evaluate, the closed-loop driver and the pilot do): a previous-action
    network without both outputs is refused when its spec is made, in one line, so no command
    trains or exports one."""
    from sim2real.agents.temporal import Temporal
    from sim2real.transfer.export import rollout_context

    temporal = Temporal(previous_action=True)
    with pytest.raises(ValueError, match="outputs must include 'user/angle' and 'user/throttle'"):
        ModelSpec(outputs=["user/angle"], hidden=8, temporal=temporal)
    both = ModelSpec(outputs=["user/angle", "user/throttle"], hidden=8, temporal=temporal)
    wrapper = CarInputModel(DrivingNet(both), frames.shape[1:3])
    context = rollout_context(wrapper, frames)
    assert context.shape == (len(frames), 2) and context.dtype == np.float32
    assert not context[0].any() and context[1:].any() and np.abs(context).max() <= 1.0
    assert rollout_context(wrapper, frames[:0]).shape == (0, 2)
