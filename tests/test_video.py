"""Videos: closed-loop drives recorded from real PyBullet episodes, tub playback, bad paths."""

import base64
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from sim2real.agents.checkpoint import ModelCard, save_checkpoint
from sim2real.agents.closed_loop import evaluate_closed_loop
from sim2real.agents.model import DrivingNet, ModelSpec
from sim2real.agents.preprocessing import Preprocessing
from sim2real.experiments.cli import main
from sim2real.experiments.drive_video import PATH, DriveVideoRecorder
from sim2real.experiments.video import (
    LABEL_COLOUR,
    VideoFile,
    playback_frame,
    read_video,
    recording_rate,
)
from sim2real.transfer.datasets import read_sources
from sim2real.transfer.records import Record
from sim2real.transfer.sample_data import sample_path

CAMERA = (40, 48)
SMALL = Preprocessing(crop_top=8, height=32, width=32)


def constant_driver(steering: float, throttle: float) -> DrivingNet:
    """A network whose output is always [steering, throttle] (zero weights, set biases)."""
    torch.set_num_threads(1)
    net = DrivingNet(ModelSpec(architecture="resnet_small", preprocessing=SMALL, hidden=8))
    with torch.no_grad():
        net.head[-1].weight.zero_()
        net.head[-1].bias.copy_(torch.tensor([steering, throttle]))
    return net


class Collect:
    """A recorder that keeps every frame it is given (to check what the video shows)."""

    def __init__(self, inner):
        self.inner, self.frames, self.episodes = inner, [], []

    def begin(self, seed, track):
        self.inner.begin(seed, track)

    def frame(self, frame):
        self.frames.append(frame)
        self.inner.frame(frame)

    def end(self, episode):
        self.episodes.append(episode)
        self.inner.end(episode)


def _path_pixels(frame_bgr: np.ndarray, left: int) -> int:
    """Pixels of the map (columns from `left`) in the driven path's red."""
    b, g, r = (frame_bgr[:, left:, k].astype(int) for k in range(3))
    target = PATH[::-1]
    return int(np.sum((abs(b - target[0]) < 60) & (abs(g - target[1]) < 60) & (r > 180)))


def test_a_recorded_drive_is_a_video_of_every_step(tmp_path):
    net = constant_driver(0.0, 0.6)
    plain = evaluate_closed_loop(net, seeds=[10_001], max_steps=40, image_size=CAMERA)
    recorder = Collect(DriveVideoRecorder(tmp_path / "videos"))
    recorded = evaluate_closed_loop(
        net, seeds=[10_001], max_steps=40, image_size=CAMERA, recorder=recorder
    )
    # recording watches the drive without changing it
    assert recorded["episodes"] == plain["episodes"]
    steps = recorded["episodes"][0]["steps"]
    assert len(recorder.frames) == steps > 10

    frames, height, width, fps = read_video(tmp_path / "videos" / "seed-10001.mp4")
    assert frames == steps and fps == pytest.approx(20.0)
    camera_w, map_w = 2 * CAMERA[1], 2 * CAMERA[0]  # camera x2 beside a square map as tall
    assert width == camera_w + map_w and height > 2 * CAMERA[0]
    # the map draws the path driven so far: none on the first frame, some on the last
    capture = cv2.VideoCapture(str(tmp_path / "videos" / "seed-10001.mp4"))
    decoded = [capture.read()[1] for _ in range(frames)]
    capture.release()
    assert _path_pixels(decoded[0], camera_w) < 3 < _path_pixels(decoded[-1], camera_w)

    # the index names the episode, and its mean error is |network - expert| steering
    (line,) = (tmp_path / "videos" / "videos.jsonl").read_text().splitlines()
    entry = json.loads(line)
    errors = [abs(f.network_action[0] - f.expert_action[0]) for f in recorder.frames]
    assert entry["seed"] == 10_001 and entry["frames"] == steps
    assert entry["outcome"] == recorded["episodes"][0]["outcome"]
    assert entry["mean_abs_steering_error"] == pytest.approx(np.mean(errors), abs=1e-4)
    assert all(f.network_action[0] == 0.0 for f in recorder.frames)
    assert len({round(float(f.expert_action[0]), 3) for f in recorder.frames}) > 1
    assert not [p for p in (tmp_path / "videos").iterdir() if p.name.startswith(".")]


def _checkpoint(folder: Path) -> None:
    net = constant_driver(-1.0, 1.0)  # full left at full throttle: off the road within seconds
    save_checkpoint(
        folder, net, ModelCard(spec=net.spec, trained_on={"env_config": {"image_size": [40, 48]}})
    )


def test_evaluate_sim_video_cli_writes_one_video_per_episode(tmp_path, capsys):
    _checkpoint(tmp_path / "ckpt")
    args = ["evaluate", "--checkpoint", str(tmp_path / "ckpt"), "--sim", "--episodes", "2"]
    assert main([*args, "--nominal", "--video", str(tmp_path / "v")]) == 0
    assert "videos: 2 in" in capsys.readouterr().out
    entries = [json.loads(x) for x in (tmp_path / "v" / "videos.jsonl").read_text().splitlines()]
    assert [e["seed"] for e in entries] == [10_000, 10_001]
    for e in entries:
        assert e["outcome"] == "off_road" and not e["completed"]
        assert read_video(tmp_path / "v" / e["video"])[0] == e["steps"]
    # a later run into the same folder adds to the index; a video driven again replaces its line
    more = ["--episodes", "2", "--seed-start", "10001", "--nominal", "--video", str(tmp_path / "v")]
    assert main([*args[:-2], *more]) == 0
    assert "videos: 2 in" in capsys.readouterr().out
    entries = [json.loads(x) for x in (tmp_path / "v" / "videos.jsonl").read_text().splitlines()]
    assert [e["seed"] for e in entries] == [10_000, 10_001, 10_002]
    (tmp_path / "v" / "videos.jsonl").write_text("{not json\n")
    assert main([*args, "--video", str(tmp_path / "v")]) == 2
    assert "videos.jsonl: line 1 is not JSON" in capsys.readouterr().err


def test_bad_video_paths_are_one_line_errors(tmp_path, capsys):
    _checkpoint(tmp_path / "ckpt")
    a_file = tmp_path / "taken"
    a_file.write_text("not a folder")
    args = ["evaluate", "--checkpoint", str(tmp_path / "ckpt"), "--sim", "--episodes", "1"]
    assert main([*args, "--video", str(a_file)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "taken: video folder is a file" in err
    assert main([*args, "--video", str(a_file / "under")]) == 2  # cannot make a folder there
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "cannot write" in err
    assert main(["evaluate", "--checkpoint", str(tmp_path / "ckpt"), "--video", "v"]) == 2
    assert "use it with --sim" in capsys.readouterr().err

    sample = str(sample_path())
    for bad, message in [
        (tmp_path / "clip.gif", "must end in .mp4 or .avi"),
        (a_file / "clip.mp4", "taken: video folder is a file"),
        (tmp_path, "is a folder"),
    ]:
        assert main(["data", "inspect", sample, "--no-decode", "--video", str(bad)]) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and message in err, err
    assert not list(tmp_path.glob("*.mp4"))


def test_inspect_video_plays_every_usable_record_of_the_sample_tub(tmp_path, capsys):
    tub = tmp_path / "tub"
    shutil.copytree(sample_path(), tub)
    (tub / "images" / "101_cam_image_array_.jpg").unlink()  # one record less to play
    out = tmp_path / "out" / "sample.mp4"
    assert main(["data", "inspect", str(tub), "--no-decode", "--video", str(out)]) == 0
    usable = len(read_sources([tub], check_images=False).records)
    assert f"({usable} frames at 20 fps, mp4v)" in capsys.readouterr().out
    frames, height, width, fps = read_video(out)
    assert (frames, fps) == (usable, pytest.approx(20.0))
    assert width == 2 * 160 and height > 2 * 120


def test_playback_bars_follow_the_labels_and_sim_labels_get_rows(tmp_path):
    image = np.full((120, 160, 3), 90, np.uint8)

    def frame(labels):
        record = Record(7, "s", 1000, tmp_path / "none.jpg", labels, "tub")
        return playback_frame(record, image, (120, 160), 2)

    left, right = frame({"user/angle": -0.8}), frame({"user/angle": 0.8})
    bar = slice(240 + 20, 240 + 33)  # the first bar's row, below the 240 px camera view
    middle = left.shape[1] // 2

    def coloured(img, cols):
        return int(np.all(img[bar, cols] == LABEL_COLOUR, axis=-1).sum())

    assert coloured(left, slice(0, middle - 5)) > 50 > coloured(left, slice(middle + 5, None))
    assert coloured(right, slice(middle + 5, None)) > 50 > coloured(right, slice(0, middle - 5))
    sim = frame({"user/angle": 0.0, "user/throttle": 0.5, "sim/cte": 0.1})
    assert sim.shape[0] > left.shape[0] and sim.shape[1] == left.shape[1]


def test_video_file_is_written_whole_or_not_at_all(tmp_path):
    frame = np.zeros((32, 48, 3), np.uint8)
    with pytest.raises(RuntimeError, match="interrupted"), VideoFile(tmp_path / "a.mp4") as video:
        video.write(frame)
        raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []
    with VideoFile(tmp_path / "b.avi") as video:
        for _ in range(5):
            video.write(frame)
        with pytest.raises(ValueError, match="frame size"):
            video.write(np.zeros((16, 16, 3), np.uint8))
    assert video.codec == "MJPG" and read_video(tmp_path / "b.avi")[:3] == (5, 32, 48)
    assert [p.name for p in tmp_path.iterdir()] == ["b.avi"]


def test_report_clips_show_the_worst_and_best_drive_and_embed_in_html(tmp_path):
    from PIL import Image

    from sim2real.experiments.drive_video import drive_clips
    from sim2real.experiments.report_render import render_html

    _checkpoint(tmp_path / "ckpt")  # full left: each seed leaves the road after its own distance
    net = constant_driver(-1.0, 1.0)
    result = evaluate_closed_loop(net, seeds=[10_000, 10_001, 10_002], image_size=CAMERA)
    by_fraction = sorted(result["episodes"], key=lambda e: e["lap_fraction"])
    clips = {c["role"]: c for c in drive_clips(tmp_path / "ckpt", result, tmp_path / "fig")}
    assert clips["worst"]["seed"] == by_fraction[0]["seed"]
    assert clips["best"]["seed"] == by_fraction[-1]["seed"]
    for clip in clips.values():
        episode = next(e for e in result["episodes"] if e["seed"] == clip["seed"])
        assert clip["redriven_outcome"] == episode["outcome"] == "off_road"
        with Image.open(clip["path"]) as webp:  # every 2nd step, as an animation
            assert webp.format == "WEBP" and webp.n_frames == (episode["steps"] + 1) // 2
            assert webp.size == (CAMERA[1] + CAMERA[0], webp.size[1])
    page = render_html([("img", "drive_worst")], {"drive_worst": clips["worst"]["path"]}, "T")
    embedded = page.split('src="data:image/webp;base64,')[1].split('"')[0]
    assert base64.b64decode(embedded) == clips["worst"]["path"].read_bytes()


def test_report_clips_redrive_an_ensemble_as_it_was_evaluated(tmp_path):
    from PIL import Image

    from sim2real.agents.ensemble import load_predictor, save_ensemble
    from sim2real.experiments.drive_video import drive_clips

    names = ["member-0", "member-1"]  # full left and gentle left: the ensemble averages them
    for name, steering in zip(names, (-1.0, -0.2), strict=True):
        net = constant_driver(steering, 1.0)
        save_checkpoint(tmp_path / "ens" / name, net, ModelCard(spec=net.spec))
    save_ensemble(tmp_path / "ens", ModelCard(spec=net.spec, members=names))
    model, _ = load_predictor(tmp_path / "ens")
    result = evaluate_closed_loop(model, seeds=[10_000], image_size=CAMERA, max_steps=300)
    episode = result["episodes"][0]
    clip = drive_clips(tmp_path / "ens", result, tmp_path / "fig")[0]
    assert clip["redriven_outcome"] == episode["outcome"]
    alone = evaluate_closed_loop(constant_driver(-1.0, 1.0), seeds=[10_000], image_size=CAMERA)
    assert alone["episodes"][0]["steps"] != episode["steps"]  # the average, not one member
    with Image.open(clip["path"]) as webp:  # the re-drive took as many steps as the first
        assert webp.n_frames == (episode["steps"] + 1) // 2


def test_playback_rate_is_the_recordings_own():
    def records(gaps_ms, session="s", start=1000):
        times = np.cumsum([start, *gaps_ms])
        return [Record(i, session, int(t), Path("x.jpg"), {}, "tub") for i, t in enumerate(times)]

    assert recording_rate(records([51, 49, 50, 5000, 52])) == 20.0  # a pause is not a frame gap
    assert recording_rate(records([100, 101, 99])) == 10.0
    # gaps count within a session only: 50, 50, 200, 200 -> 125 ms (the 200 ms between the
    # sessions would make it 200)
    joined = records([50, 50]) + records([200, 200], session="t", start=1300)
    assert recording_rate(joined) == 8.0
    untimed = [Record(0, "s", None, Path("x.jpg"), {}, "tub")] * 3
    assert recording_rate(untimed) == 20.0
