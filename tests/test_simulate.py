"""`simulate`: same seed -> same tub whatever the worker count; interrupted runs resume."""

import ast
import json
import os
import subprocess
import sys
import time

import pytest

pytest.importorskip("sim2real.envs.recording", reason="ENVS' sim2real.envs.recording not present")

from sim2real.envs.randomization import resolve_spec  # noqa: E402
from sim2real.experiments.cli import main  # noqa: E402
from sim2real.experiments.simulate import SimulateConfig, chunk_seed, simulate  # noqa: E402
from sim2real.transfer.datasets import open_records  # noqa: E402
from sim2real.transfer.training_data import recorded_randomization  # noqa: E402
from sim2real.transfer.tub import read_manifest  # noqa: E402

TINY = {"frames": 60, "chunk_frames": 20, "image_height": 64, "image_width": 64}


def content(tub):
    """Catalog lines and image bytes: everything but creation times (and `_timestamp_ms`,
    which counts from the tub's creation)."""
    lines = [
        {k: v for k, v in json.loads(line).items() if k != "_timestamp_ms"}
        for path in sorted(tub.glob("catalog_*.catalog"))
        for line in path.read_text().splitlines()
    ]
    images = {p.name: p.read_bytes() for p in sorted((tub / "images").iterdir())}
    return lines, images


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("sim") / "one_worker"
    return simulate(out, SimulateConfig(seed=3, workers=1, **TINY), progress=False)


def test_same_seed_same_tub_whatever_the_workers(reference, tmp_path):
    two = simulate(tmp_path / "two", SimulateConfig(seed=3, workers=2, **TINY), progress=False)
    assert content(two) == content(reference)
    other = simulate(tmp_path / "seed4", SimulateConfig(seed=4, workers=1, **TINY), progress=False)
    assert content(other)[1] != content(reference)[1]


def test_recording_is_a_readable_tub_with_sim_labels(reference):
    result = open_records([reference], check_images=True)
    assert result.report.usable == 60
    labels = result.records[0].labels
    assert {"user/angle", "user/throttle", "sim/cte", "sim/heading_error", "sim/curvature"} <= set(
        labels
    )
    assert all(-1 <= r.labels["user/angle"] <= 1 for r in result.records)
    assert {r.session for r in result.records} >= {"sim_3_0000_000", "sim_3_0002_000"}
    for name in ("config.yaml", "run.json"):
        assert (reference / name).is_file()
    # the resolved randomization travels in the manifest, where pretraining reads it
    recorded = recorded_randomization([reference])[str(reference)]
    assert recorded["spec"] == resolve_spec(None).model_dump(mode="json")
    assert (recorded["seed"], recorded["image_size"]) == (3, [64, 64])


def test_interrupted_run_leaves_whole_chunks_and_resumes(reference, tmp_path):
    out = tmp_path / "cut"
    config = SimulateConfig(seed=3, workers=1, **TINY)

    def stop_after_first(chunk, done):
        if chunk == 0:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        simulate(out, config, progress=False, on_chunk=stop_after_first)
    assert read_manifest(out)["catalog"]["current_index"] == 20
    assert open_records([out]).report.usable == 20
    with pytest.raises(ValueError, match="--resume"):
        simulate(out, config, progress=False)
    with pytest.raises(ValueError, match="different config"):
        simulate(out, config.model_copy(update={"seed": 5}), resume=True, progress=False)
    # a spec that differs from the one the manifest recorded is refused
    manifest = out / "manifest.json"
    text = manifest.read_text()
    lines = text.splitlines()
    metadata = json.loads(lines[2])
    metadata["randomization"]["spec"] = {"light": {"intensity": [0.1, 0.2]}}
    manifest.write_text("\n".join([*lines[:2], json.dumps(metadata), *lines[3:]]) + "\n")
    with pytest.raises(ValueError, match="randomization spec changed"):
        simulate(out, config, resume=True, progress=False)
    manifest.write_text(text)
    # what a SIGKILL during an atomic write leaves behind; --resume removes it
    orphan = out / "images" / ".25_cam_image_array_.jpg.k3x9_q2a.tmp"
    orphan.write_bytes(b"half a jpeg")
    simulate(out, config.model_copy(update={"workers": 2}), resume=True, progress=False)
    assert not orphan.exists()
    assert content(out) == content(reference)


def test_timestamps_are_wall_clock_like_at_20_hz(reference):
    records = open_records([reference]).records
    stamps = [r.timestamp_ms for r in records]
    created_ms = read_manifest(reference)["manifest_metadata"]["created_at"] * 1000
    assert abs(stamps[0] - created_ms) < 1000  # starts when the tub was created
    assert abs(stamps[0] - time.time() * 1000) < 3600 * 1000  # not 1970
    assert set(map(int.__sub__, stamps[1:], stamps[:-1])) == {50}


def test_chunk_seeds_depend_on_seed_and_chunk_only():
    # the same values in fresh processes with other hash seeds (workers are such processes)
    here = [chunk_seed(3, k) for k in range(4)] + [chunk_seed(4, 0)]
    code = (
        "from sim2real.experiments.simulate import chunk_seed; "
        "print([chunk_seed(3, k) for k in range(4)] + [chunk_seed(4, 0)])"
    )
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        done = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        )
        assert ast.literal_eval(done.stdout.strip()) == here
    assert len({chunk_seed(3, k) for k in range(50)} | {chunk_seed(4, 0)}) == 51


def test_cli_rejects_bad_config(tmp_path, capsys):
    assert main(["simulate", "--out", str(tmp_path / "x"), "--frames", "0"]) == 2
    assert "frames" in capsys.readouterr().err
