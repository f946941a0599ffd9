"""benchmarks/failure_worlds.py: which drives it pools, and one-line errors on bad input."""

import json
import sys
from pathlib import Path

import pytest
from model_helpers import load_benchmark

SPEC = str(
    Path(__file__).resolve().parent.parent / "experiments/configs/policy_two_lane_worlds.yaml"
)


@pytest.fixture(scope="module")
def worlds():
    folder = str(Path(__file__).resolve().parent.parent / "benchmarks")
    sys.path.insert(0, folder)  # it imports dagger_table as its script would
    yield load_benchmark("failure_worlds")
    sys.path.remove(folder)
    del sys.modules["failure_worlds"]
    sys.modules.pop("dagger_table", None)


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_drives_picks_the_arm_or_side_asked(worlds, tmp_path):
    oracle = _jsonl(
        tmp_path / "o.jsonl",
        [
            {"arm": arm, "seed": s, "completed": arm == "expert"}
            for s in (1, 2)
            for arm in ("network", "expert")
        ],
    )
    bench = _jsonl(
        tmp_path / "b.jsonl",
        [{"seed": 5, "start": {"completed": True}, "end": {"completed": False}}],
    )
    assert worlds.drives(oracle) == [(1, False), (2, False)]
    assert worlds.drives(oracle + ":expert") == [(1, True), (2, True)]
    assert worlds.drives(bench) == [(5, False)]
    assert worlds.drives(bench + ":start") == [(5, True)]


def test_bad_input_is_one_line(worlds, tmp_path, monkeypatch):
    bench = _jsonl(
        tmp_path / "b.jsonl",
        [{"seed": 5, "start": {"completed": True}, "end": {"completed": False}}],
    )
    (tmp_path / "bad.jsonl").write_text("{not json\n")
    cases = {
        bench + ":middle": "start or end, got 'middle'",
        str(tmp_path / "missing.jsonl"): "no such file",
        str(tmp_path / "bad.jsonl"): "bad.jsonl:1: not JSON",
        bench + ":start": "needs both failed and lapped drives",  # the one drive lapped
    }
    for spec, message in cases.items():
        monkeypatch.setattr(sys, "argv", ["failure_worlds.py", SPEC, spec])
        with pytest.raises(SystemExit) as exit_:
            worlds.main()
        line = str(exit_.value)
        assert line.startswith("error: ") and message in line and "\n" not in line


def test_the_world_it_compares_is_the_one_the_env_drives(worlds):
    from dagger_table import world

    from sim2real.envs.track_env import TrackDrivingEnv

    env = TrackDrivingEnv(image_size=(40, 48), randomization=SPEC)
    for seed in (20_004, 20_020):
        env.reset(seed=seed, options={"randomize": True})
        drawn = world(seed, Path(SPEC))
        for group in ("track", "camera", "image", "dynamics"):
            assert drawn[group] == env.params[group], group
    env.close()
