"""The car-side path on Python 3.12, where pybullet has no wheel: sim2real installed from this
tree without the `sim` extra, then `models`, `data inspect`, `finetune` of the shipped network
by name, `evaluate`, `export` and the pilot work; the simulator's commands say how to get it.

Slow (``pytest -m slow tests/test_py312_path.py``). The venv is made once and kept between runs
(~/.cache/sim2real/venv-py312, or $SIM2REAL_PY312_VENV); every run reinstalls sim2real itself
from this tree as a wheel (``pip install .``: package data included, as a user gets it), and
pip adds only dependencies that are new since. The first run downloads torch for 3.12 from PyPI,
which on Linux x86_64 is a CUDA build with its nvidia-* packages (several GB; see
docs/donkeycar.md for the measured size and time). Skipped with the reason where no Python 3.12
is found or no package index is reachable. SIM2REAL_PYTHON312=PATH names the interpreter.
"""

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from other_pythons import NO_INDEX, cached_venv, find_python, venv_size_mb

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
SHIPPED = "pilotnet-recipe"
NEEDS_DISK = 8e9
"""bytes free to make the venv (measured: 6.4 GB with torch's CUDA packages)"""


def _pip(python: Path, *args: str, timeout: float) -> subprocess.CompletedProcess:
    command = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout)


SKIP_COPY = shutil.ignore_patterns(
    ".git", ".venv", "build", "dist", "*.egg-info", "runs", "__pycache__", ".*_cache"
)
"""not copied to the build folder: a stale build/lib would leak deleted modules into the wheel"""


@pytest.fixture(scope="module")
def py312(tmp_path_factory) -> Path:
    """The kept venv's python, with sim2real (this tree, no extras) installed."""
    python = find_python(12)
    if python is None:
        pytest.skip("no Python 3.12 interpreter found (SIM2REAL_PYTHON312 names one)")
    venv = cached_venv("venv-py312", "SIM2REAL_PY312_VENV")
    bin_python = venv / "bin" / "python"
    if not bin_python.is_file():
        venv.parent.mkdir(parents=True, exist_ok=True)
        free = shutil.disk_usage(venv.parent).free
        if free < NEEDS_DISK:
            pytest.skip(f"{free / 1e9:.1f} GB free at {venv.parent}; the venv needs ~7 GB")
        subprocess.run([python, "-m", "venv", str(venv)], check=True)
    started = time.perf_counter()
    # pip always rebuilds a local folder, so this is this tree's code, from a clean copy; of
    # the dependencies, only those missing from the kept venv are installed
    source = tmp_path_factory.mktemp("source") / "sim2real"
    shutil.copytree(REPO, source, ignore=SKIP_COPY)  # pip builds in the tree it is given
    done = _pip(bin_python, str(source), timeout=3600)
    if done.returncode != 0:
        if any(text in done.stderr for text in NO_INDEX):
            pytest.skip(f"cannot install sim2real's dependencies here: {done.stderr[-300:]}")
        raise AssertionError(f"pip install (a copy of) {REPO} failed:\n{done.stderr[-3000:]}")
    print(
        f"Python 3.12 venv {venv}: install {time.perf_counter() - started:.0f} s, "
        f"{venv_size_mb(venv):,.0f} MB",
        file=sys.stderr,
    )
    return bin_python


def run(python: Path, *args: str, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {
        "PATH": f"{python.parent}:/usr/bin:/bin",
        "HOME": os.environ.get("HOME", str(cwd)),
        "OMP_NUM_THREADS": "1",
        "SIM2REAL_CACHE": str(cwd / "cache"),
    }
    return subprocess.run(
        [str(python), *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=timeout
    )


PROBE = textwrap.dedent(
    """
    import importlib.util, json, sys
    import torch
    from sim2real.transfer.sample_data import sample_path
    print(json.dumps({
        "python": list(sys.version_info[:2]),
        "pybullet": importlib.util.find_spec("pybullet") is not None,
        "torch": torch.__version__,
        "sample": str(sample_path()),
        "prefix": sys.prefix,
    }))
    """
)


def test_interpreter_is_312_without_pybullet_and_sim2real_is_installed_not_linked(py312):
    done = run(py312, "-c", PROBE, cwd=py312.parent)
    assert done.returncode == 0, done.stderr[-3000:]
    probe = json.loads(done.stdout.strip().splitlines()[-1])
    assert probe["python"] == [3, 12] and probe["pybullet"] is False
    # the shipped sample came with the wheel (package data), not from this checkout
    assert probe["sample"].startswith(probe["prefix"]) and "site-packages" in probe["sample"]


PILOT = textwrap.dedent(
    """
    import sys
    import numpy as np
    from sim2real.transfer.pilot import DonkeyPilot
    from sim2real.transfer.tub import read_tub
    from sim2real.transfer.records import read_image_rgb
    records, _ = read_tub(sys.argv[2])
    pilot = DonkeyPilot(sys.argv[1], image_size=(120, 160))
    commands = [pilot.run(read_image_rgb(r.image_path)) for r in records[:20]]
    try:
        DonkeyPilot(sys.argv[1], image_size=(240, 320))
        wrong = "accepted"
    except ValueError as exc:
        wrong = str(exc)
    print("PILOT", len(commands), all(-1 <= v <= 1 for c in commands for v in c),
          len(set(commands)) > 1, "320x240" in wrong and "160x120" in wrong)
    """
)


def test_finetune_the_shipped_network_evaluate_export_and_drive_on_312(py312, tmp_path):
    probe = json.loads(run(py312, "-c", PROBE, cwd=tmp_path).stdout.strip().splitlines()[-1])
    sample = probe["sample"]
    sim2real = str(py312.parent / "sim2real")
    done = run(py312, sim2real, "models", cwd=tmp_path)  # the console script is installed
    assert done.returncode == 0 and SHIPPED in done.stdout, done.stderr[-2000:]
    done = run(py312, sim2real, "data", "inspect", sample, cwd=tmp_path)
    assert done.returncode == 0 and "usable" in done.stdout, done.stderr[-2000:]
    finetune = ["finetune", "--checkpoint", SHIPPED, "--data", sample, "--frames", "100"]
    done = run(py312, sim2real, *finetune, "--epochs", "2", "--out", "ft", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    card = json.loads((tmp_path / "ft" / "model.json").read_text())
    assert card["trained_on"]["parent_checkpoint"] == SHIPPED  # the name, not a package path
    done = run(py312, sim2real, "evaluate", "--checkpoint", "ft", "--data", sample, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    done = run(py312, sim2real, "export", "--checkpoint", "ft", "--onnx", "p.onnx", cwd=tmp_path)
    assert done.returncode == 0 and (tmp_path / "p.onnx").is_file(), done.stderr[-3000:]
    done = run(py312, "-c", PILOT, "p.onnx", sample, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "PILOT 20 True True True" in done.stdout.splitlines()


NEEDS_SIM = [
    ["simulate", "--out", "sim", "--frames", "10"],
    ["envs", "preview", "--out", "preview.png"],
    ["train-policy", "--out", "policy", "--timesteps", "10"],
]


@pytest.mark.parametrize("command", NEEDS_SIM, ids=lambda c: c[0])
def test_simulator_commands_say_how_to_get_pybullet_on_312(py312, tmp_path, command):
    done = run(py312, str(py312.parent / "sim2real"), *command, cwd=tmp_path)
    assert done.returncode == 2, done.stderr[-3000:]
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"sim2real {command[0]}: error: the simulator needs pybullet")
    assert "pip install 'sim2real[sim]'" in last
    assert "Traceback" not in done.stderr
    assert not (tmp_path / command[2]).exists()  # nothing half-made left behind
