"""benchmarks/bench_policy_finetune.py: resumable, and a reused start must match the settings."""

import json
import sys
from pathlib import Path

import pytest
import torch
from model_helpers import load_benchmark
from test_closed_loop_cli import _full_left_checkpoint

from sim2real.agents.checkpoint import load_checkpoint, save_checkpoint


@pytest.fixture(scope="module")
def bench():
    yield load_benchmark("bench_policy_finetune")
    del sys.modules["bench_policy_finetune"]


def _run(bench, monkeypatch, *args):
    monkeypatch.setattr(sys, "argv", ["bench_policy_finetune.py", *map(str, args)])
    bench.main()


def _steer(folder: Path, steering: float) -> None:
    """Rewrite the checkpoint in `folder` to steer `steering` at full throttle."""
    net, card = load_checkpoint(folder)
    with torch.no_grad():
        net.head[-1].bias.copy_(torch.tensor([steering, 1.0]))
    save_checkpoint(folder, net, card)


def test_reusing_a_start_checks_its_settings(bench, tmp_path, monkeypatch, capsys):
    start, end = tmp_path / "start", tmp_path / "end"
    _full_left_checkpoint(start)
    _full_left_checkpoint(end)
    _steer(end, 1.0)
    common = ["--start", start, "--end", end, "--episodes", 2, "--max-steps", 25]
    _run(bench, monkeypatch, *common, "--out", tmp_path / "a")
    first = bench.read_done(tmp_path / "a" / bench.EPISODES_FILE)
    assert sorted(first) == [10_000, 10_001]
    saved = json.loads((tmp_path / "a" / bench.SETTINGS_FILE).read_text())
    assert saved["strength"] == 1.0 and len(saved["start_fingerprint"]) == 64

    with pytest.raises(SystemExit, match="strength 1.0 there vs 0.5 now"):
        _run(bench, monkeypatch, *common, "--out", tmp_path / "b", "--reuse-start",
             tmp_path / "a", "--strength", 0.5)  # fmt: skip
    _run(bench, monkeypatch, *common, "--out", tmp_path / "b", "--reuse-start", tmp_path / "a")
    reused = bench.read_done(tmp_path / "b" / bench.EPISODES_FILE)
    for seed, row in reused.items():
        assert row["start"]["reused_from"] == str(tmp_path / "a")
        assert row["start"]["outcome"] == first[seed]["start"]["outcome"]

    _steer(start, 0.5)  # same path, other weights: neither a resume nor a reuse may mix them
    with pytest.raises(SystemExit, match=r"--out .*: start .* \(other contents\)"):
        _run(bench, monkeypatch, *common, "--out", tmp_path / "a")
    with pytest.raises(SystemExit, match="--reuse-start .* other settings"):
        _run(bench, monkeypatch, *common, "--out", tmp_path / "c", "--reuse-start", tmp_path / "a")


def test_an_interrupted_last_row_is_dropped_and_a_broken_one_refused(bench, tmp_path):
    path = tmp_path / "episodes.jsonl"
    path.write_text('{"seed": 1, "start": {}, "end": {}}\n{"seed": 2, "sta')
    assert list(bench.read_done(path)) == [1]
    bench.write_done(path, bench.read_done(path))
    assert path.read_text() == '{"seed": 1, "start": {}, "end": {}}\n'
    path.write_text('{"seed": 2, "sta\n{"seed": 1, "start": {}, "end": {}}\n')
    with pytest.raises(ValueError, match="line 1 is not a JSON episode row"):
        bench.read_done(path)


def test_settings_are_written_with_the_first_episode(bench, tmp_path, monkeypatch):
    start = tmp_path / "start"
    _full_left_checkpoint(start)
    common = ["--start", start, "--end", start, "--episodes", 1, "--max-steps", 10]
    out = tmp_path / "out"

    def dies(*args, **kwargs):
        raise RuntimeError("killed before the first episode ended")

    with monkeypatch.context() as patch:
        patch.setattr(bench, "drive_episode", dies)
        with pytest.raises(RuntimeError, match="killed"):
            _run(bench, patch, *common, "--out", out, "--strength", 0.5)
    assert not (out / bench.SETTINGS_FILE).exists()  # no episode, so nothing to hold a re-run to
    # a settings file that describes no drive (left by an older version) refuses nothing either
    (out / bench.SETTINGS_FILE).write_text(json.dumps({"strength": 0.5, "start": str(start)}))
    _run(bench, monkeypatch, *common, "--out", out)
    assert json.loads((out / bench.SETTINGS_FILE).read_text())["strength"] == 1.0
    assert list(bench.read_done(out / bench.EPISODES_FILE)) == [10_000]
