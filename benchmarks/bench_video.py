"""How long a drive video takes to encode, and what the recording hook costs a drive.

Usage: python benchmarks/bench_video.py [--steps 300] [--repeat 3] [--checkpoint CKPT]
       [--out DIR] [--json FILE]

1. Frames: a drive of `--steps` steps on held-out track 10000 (nominal world, 120x160 camera).
   With --checkpoint, the network drives (`evaluate_closed_loop` with a recorder that keeps the
   frames; a drive that ends early gives fewer frames). Without one, the expert drives with
   steering perturbations (its executed command stands in for the network's action, its clean
   command is the expert's): the frames a video gets are the same kind either way.
2. Encoding: those frames fed to `DriveVideoRecorder` (camera x2 beside the track map, bars,
   mp4v), timed from `begin` to the renamed file, `--repeat` times; wall and CPU seconds.
3. Report clip: the same frames into `ClipRecorder` (animated WebP, the last 15 s at 10 fps,
   camera at its own size), as the study report embeds the worst and best drive.
4. Hook cost: a parked network (constant zero output) driven for `--steps` steps with and
   without a recorder that keeps frames; the difference per step is the hook's overhead
   (render copy + expert command), not counting encoding.

One torch thread; OpenCV keeps its default threads (printed). The load average is printed
beside the times (the machine is shared).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from sim2real.agents.closed_loop import DriveFrame, evaluate_closed_loop
from sim2real.agents.model import DrivingNet, ModelSpec
from sim2real.agents.preprocessing import Preprocessing
from sim2real.common.io import atomic_write_json
from sim2real.common.machine import load_average, load_text, machine_info
from sim2real.envs.expert import ExpertDriver
from sim2real.envs.track_env import TrackDrivingEnv
from sim2real.experiments.drive_video import ClipRecorder, DriveVideoRecorder
from sim2real.experiments.video import read_video

SEED = 10_000


class Keep:
    """A recorder that keeps the frames and the track (nothing written)."""

    def __init__(self) -> None:
        self.frames: list[DriveFrame] = []

    def begin(self, seed, track) -> None:
        self.track = track

    def frame(self, frame: DriveFrame) -> None:
        self.frames.append(frame)

    def end(self, episode) -> None:
        self.episode = episode


def expert_frames(steps: int) -> tuple[list[DriveFrame], object, dict]:
    """The expert's drive (perturbed 2% of steps) as DriveFrames, with its track."""
    env = TrackDrivingEnv(render_mode="rgb_array")
    try:
        _, info = env.reset(seed=SEED, options={"randomize": False})
        expert = ExpertDriver(env, perturbation=0.02, seed=SEED)
        frames = []
        for step in range(steps):
            action = expert.act()
            state = env.car_state
            frames.append(
                DriveFrame(
                    step,
                    env.render(),
                    np.asarray(state.position[:2], float).copy(),
                    float(state.yaw),
                    action,
                    expert.label.copy(),
                    float(info["cte"]),
                    float(info["speed"]),
                )
            )
            _, _, terminated, _, info = env.step(action)
            if terminated:
                break
        episode = {"seed": SEED, "outcome": "timeout", "completed": False, "steps": len(frames),
                   "lap_fraction": 0.0, "mean_abs_cte_m": 0.0}  # fmt: skip
        return frames, env.track, episode
    finally:
        env.close()


def network_frames(checkpoint: Path, steps: int) -> tuple[list[DriveFrame], object, dict]:
    from sim2real.agents.checkpoint import load_checkpoint
    from sim2real.agents.closed_loop import camera_size_for

    model, card = load_checkpoint(checkpoint)
    keep = Keep()
    evaluate_closed_loop(
        model,
        seeds=[SEED],
        nominal=True,
        image_size=camera_size_for(card),
        max_steps=steps,
        stall_steps=None,
        recorder=keep,
    )
    return keep.frames, keep.track, keep.episode


def timed_recording(recorder, frames, track, episode) -> tuple[float, float]:
    """(wall s, CPU s) of `recorder` (a drive recorder) writing the drive of `frames`."""
    wall, cpu = time.perf_counter(), time.process_time()
    recorder.begin(SEED, track)
    for frame in frames:
        recorder.frame(frame)
    recorder.end(episode)
    return time.perf_counter() - wall, time.process_time() - cpu


def encode(frames, track, episode, folder: Path) -> tuple[float, float, Path]:
    """(wall s, CPU s, video path) of writing one drive video."""
    wall, cpu = timed_recording(DriveVideoRecorder(folder), frames, track, episode)
    return wall, cpu, folder / f"seed-{SEED}.mp4"


def clip(frames, track, episode, folder: Path) -> tuple[float, float, Path]:
    """(wall s, CPU s, path) of writing the report's WebP clip of the drive."""
    recorder = ClipRecorder(folder)
    wall, cpu = timed_recording(recorder, frames, track, episode)
    return wall, cpu, recorder.written[0]


def hook_overhead(steps: int) -> dict[str, float]:
    """Wall s per step of a parked network's drive without and with a frame-keeping recorder."""
    net = DrivingNet(
        ModelSpec(
            architecture="resnet_small",
            preprocessing=Preprocessing(crop_top=40, height=60, width=80),
            hidden=8,
        )
    )
    with torch.no_grad():
        net.head[-1].weight.zero_()
        net.head[-1].bias.zero_()
    out = {}
    for name, recorder in (("plain", None), ("recorded", Keep()), ("plain_again", None)):
        start = time.perf_counter()
        evaluate_closed_loop(
            net, seeds=[SEED], nominal=True, max_steps=steps, stall_steps=None, recorder=recorder
        )
        out[f"{name}_ms_per_step"] = 1000 * (time.perf_counter() - start) / steps
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--checkpoint", type=Path)
    parser.add_argument("--out", type=Path, help="keep the video here (default: a temp folder)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.checkpoint:
        frames, track, episode = network_frames(args.checkpoint, args.steps)
    else:
        frames, track, episode = expert_frames(args.steps)
    print(f"{len(frames)} frames ({'network' if args.checkpoint else 'expert'} drive)")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.out or Path(tmp)
        for _ in range(args.repeat):
            load = load_average()
            wall, cpu, path = encode(frames, track, episode, folder)
            results.append({"wall_s": wall, "cpu_s": cpu, "load_average": load})
            print(f"encode: {wall:.2f} s wall, {cpu:.2f} s CPU (load {load_text(load)})")
        count, height, width, _ = read_video(path)
        size = path.stat().st_size
        clip_wall, clip_cpu, clip_path = clip(frames, track, episode, folder)
        clip_bytes = clip_path.stat().st_size
    print(f"report clip: {clip_wall:.2f} s wall, {clip_cpu:.2f} s CPU, {clip_bytes / 1e6:.2f} MB")
    overhead = hook_overhead(args.steps)
    print(
        f"video: {count} frames {width}x{height}, {size / 1e6:.2f} MB; OpenCV threads "
        f"{cv2.getNumThreads()}; hook: {overhead['plain_ms_per_step']:.1f} / "
        f"{overhead['recorded_ms_per_step']:.1f} / {overhead['plain_again_ms_per_step']:.1f} "
        f"ms per step (plain / recorded / plain), load {load_text()}"
    )
    report = {
        "frames": count,
        "size": [height, width],
        "bytes": size,
        "encode": results,
        "best_wall_s": min(r["wall_s"] for r in results),
        "hook": overhead,
        "clip": {"wall_s": clip_wall, "cpu_s": clip_cpu, "bytes": clip_bytes},
        "machine": machine_info(),
        "opencv": cv2.__version__,
        "opencv_threads": cv2.getNumThreads(),
    }
    if args.json:
        atomic_write_json(args.json, report)


if __name__ == "__main__":
    main()
