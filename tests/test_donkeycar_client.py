"""DonkeyCar 5.4.0 itself reads a `sim2real simulate` tub and drives with the exported pilot.

Slow (``pytest -m slow tests/test_donkeycar_client.py``): it makes a Python 3.12 venv (DonkeyCar
5.4 needs >= 3.12) and installs donkeycar==5.4.0, onnxruntime and numpy from PyPI into it;
skipped with the reason where no Python 3.12 or no package index is reachable. Then, in that
interpreter, with no sim2real installed there:

- `donkeycar.parts.tub_v2.Tub(path, read_only=True)` reads the simulated tub: the same records,
  labels and images as sim2real reads;
- `pilot.py`, copied alone next to the script, drives a `donkeycar.vehicle.Vehicle` loop for
  50 iterations (camera part -> DonkeyPilot -> pilot/angle, pilot/throttle), matching what the
  pilot gives here (onnxruntime in the test's own interpreter) to 1e-6.

SIM2REAL_DONKEYCAR_VENV=DIR keeps (and reuses) the venv in DIR instead of a temporary folder;
SIM2REAL_PYTHON312=PATH names the interpreter.
"""

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from other_pythons import find_python

pytestmark = pytest.mark.slow

DONKEYCAR = "donkeycar==5.4.0"
FRAMES = 20
LOOPS = 50


@pytest.fixture(scope="module")
def donkey_python(tmp_path_factory) -> str:
    """The venv's python with donkeycar 5.4.0, onnxruntime and numpy installed."""
    python = find_python(12)
    if python is None:
        pytest.skip("no Python 3.12 interpreter found (DonkeyCar 5.4 needs >= 3.12)")
    kept = os.environ.get("SIM2REAL_DONKEYCAR_VENV")
    venv = Path(kept) if kept else tmp_path_factory.mktemp("donkeycar") / "venv"
    bin_python = venv / "bin" / "python"
    probe = [str(bin_python), "-c", "import donkeycar, onnxruntime; print(donkeycar.__version__)"]
    if bin_python.is_file():
        done = subprocess.run(probe, capture_output=True, text=True)
        if done.returncode == 0 and done.stdout.split()[-1:] == ["5.4.0"]:
            return str(bin_python)
    subprocess.run([python, "-m", "venv", str(venv)], check=True)
    pip = [str(bin_python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    packages = [DONKEYCAR, "onnxruntime>=1.18", "numpy", "typing_extensions"]
    done = subprocess.run([*pip, *packages], capture_output=True, text=True, timeout=1500)
    if done.returncode != 0:
        if "No matching distribution" in done.stderr or "Could not find" in done.stderr:
            pytest.skip(f"cannot install {DONKEYCAR} here: {done.stderr.strip()[-300:]}")
        raise AssertionError(f"pip install {packages} failed:\n{done.stderr[-3000:]}")
    done = subprocess.run(probe, capture_output=True, text=True)
    # (importing donkeycar prints a banner first)
    assert done.stdout.split()[-1:] == ["5.4.0"], done.stderr[-2000:]
    return str(bin_python)


@pytest.fixture(scope="module")
def car_files(tmp_path_factory):
    """A simulated tub, an exported pilot and the pilot part copied alone into one folder."""
    pytest.importorskip("pybullet", reason="simulate needs the sim extra (pybullet)")
    import torch

    import sim2real.transfer.pilot as pilot_module
    from sim2real.agents.checkpoint import ModelCard, save_checkpoint
    from sim2real.agents.model import DrivingNet, ModelSpec
    from sim2real.experiments.simulate import SimulateConfig, simulate
    from sim2real.transfer.export import export_onnx
    from sim2real.transfer.records import read_image_rgb
    from sim2real.transfer.tub import read_tub

    folder = tmp_path_factory.mktemp("car")
    config = SimulateConfig(frames=FRAMES, chunk_frames=10, workers=1, seed=5)
    tub = simulate(folder / "tub", config, progress=False)
    spec = ModelSpec(architecture="pilotnet", hidden=16)
    torch.manual_seed(0)
    save_checkpoint(folder / "ckpt", DrivingNet(spec), ModelCard(spec=spec))
    export_onnx(folder / "ckpt", folder / "pilot.onnx", source_size=(120, 160))
    shutil.copy(pilot_module.__file__, folder / "sim2real_pilot.py")
    # the camera frames, decoded once here, so both interpreters feed identical pixels
    records, _ = read_tub(tub)
    np.save(folder / "frames.npy", np.stack([read_image_rgb(r.image_path) for r in records]))
    return folder, tub


READ_TUB = textwrap.dedent(
    """
    import json, sys
    from donkeycar.parts.tub_v2 import Tub
    tub = Tub(sys.argv[1], read_only=True)
    rows = []
    for record in tub:
        rows.append({k: record[k] for k in ("_index", "user/angle", "user/throttle",
                                            "user/mode", "cam/image_array")})
    print(json.dumps(rows))
    """
)


def test_donkeycar_tub_reads_a_simulated_tub(donkey_python, car_files):
    from sim2real.transfer.tub import read_tub

    folder, tub = car_files
    done = subprocess.run(
        [donkey_python, "-c", READ_TUB, str(tub)], capture_output=True, text=True, cwd=folder
    )
    assert done.returncode == 0, done.stderr[-3000:]
    theirs = json.loads(done.stdout.strip().splitlines()[-1])
    ours, report = read_tub(tub)
    assert len(theirs) == len(ours) == report.usable == FRAMES
    for row, record in zip(theirs, ours, strict=True):
        assert row["_index"] == record.index and row["user/mode"] == record.mode == "user"
        assert row["user/angle"] == record.labels["user/angle"]
        assert row["user/throttle"] == record.labels["user/throttle"]
        assert tub / "images" / row["cam/image_array"] == record.image_path


DRIVE = textwrap.dedent(
    """
    import json, time
    import numpy as np
    from donkeycar.vehicle import Vehicle
    from sim2real_pilot import DonkeyPilot

    frames = np.load("frames.npy", allow_pickle=False)

    class Camera:
        def __init__(self):
            self.i = 0
        def run(self):
            frame = frames[self.i % len(frames)]
            self.i += 1
            return frame
        def shutdown(self):
            pass

    class Recorder:
        def __init__(self):
            self.rows = []
        def run(self, angle, throttle):
            self.rows.append([angle, throttle])
        def shutdown(self):
            pass

    V = Vehicle()
    V.add(Camera(), outputs=["cam/image_array"])
    V.mem["run_pilot"] = True
    pilot = DonkeyPilot("pilot.onnx", image_size=(120, 160))
    V.add(pilot, inputs=["cam/image_array"], outputs=["pilot/angle", "pilot/throttle"],
          run_condition="run_pilot")
    recorder = Recorder()
    V.add(recorder, inputs=["pilot/angle", "pilot/throttle"])
    started = time.perf_counter()
    V.start(rate_hz=1000, max_loop_count=LOOPS)
    seconds = time.perf_counter() - started
    try:
        DonkeyPilot("pilot.onnx", image_size=(240, 320))
        wrong = "accepted"
    except ValueError as exc:
        wrong = str(exc)
    print(json.dumps({"rows": recorder.rows, "seconds": seconds, "wrong": wrong,
                      "frames": len(frames)}))
    """
).replace("LOOPS", str(LOOPS))


def test_exported_pilot_drives_a_donkeycar_vehicle_loop(donkey_python, car_files):
    from sim2real.transfer.pilot import DonkeyPilot

    folder, _ = car_files
    done = subprocess.run(
        [donkey_python, "-c", DRIVE],
        capture_output=True,
        text=True,
        cwd=folder,
        env={**os.environ, "PYTHONPATH": str(folder)},
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    rows = np.array(result["rows"], dtype=np.float64)
    assert rows.shape == (LOOPS, 2) and np.all(np.abs(rows) <= 1.0)
    assert "320x240" in result["wrong"] and "160x120" in result["wrong"]
    # the same commands as the pilot gives in this interpreter, frame for frame
    pilot = DonkeyPilot(folder / "pilot.onnx", image_size=(120, 160))
    frames = np.load(folder / "frames.npy")
    expected = np.array([pilot.run(frames[i % len(frames)]) for i in range(LOOPS)])
    np.testing.assert_allclose(rows, expected, atol=1e-6)
    print(f"DonkeyCar Vehicle: {LOOPS} loops in {result['seconds']:.3f} s", file=sys.stderr)
