"""One video per closed-loop episode: the camera beside a top-down map of the track with the
car's path so far, and the expert's and the network's actions as labelled bars.

`DriveVideoRecorder` is a `sim2real.agents.closed_loop.DriveRecorder`: pass it to
`evaluate_checkpoint(..., recorder=...)` (or `sim2real evaluate --sim --video DIR`). It writes
``DIR/seed-<seed>.mp4`` per episode and keeps ``DIR/videos.jsonl``: one JSON line per video
with the seed, the lap result and the mean |steering error| of the network against the expert.

`drive_clips` re-drives the worst and the best episode of an evaluation into small animated
WebP clips (`ClipRecorder`: camera at its own size, the last 15 s at 10 fps), which an HTML
report can embed as data URIs and browsers play in an <img>.
"""

from __future__ import annotations

import io
import json
from collections import deque
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from sim2real.agents.closed_loop import DriveFrame
from sim2real.common.io import atomic_write_bytes, atomic_write_text
from sim2real.envs.tracks import Track
from sim2real.experiments.video import (
    CODECS,
    EXPERT_COLOUR,
    FPS,
    GREY,
    NETWORK_COLOUR,
    VideoFile,
    check_writable_folder,
    even,
    signed_bar,
    text,
    upscale,
)

INDEX_NAME = "videos.jsonl"
MAP_BACKGROUND, ROAD, CENTRE, PATH = (18, 40, 18), (90, 90, 90), (200, 200, 200), (255, 60, 60)


class TrackMap:
    """A top-down drawing of `track` in a `size` x `size` px square: the road (its width to
    scale) with a centre line; `draw(position, yaw)` adds the driven path and the car."""

    def __init__(self, track: Track, size: int, margin: float = 0.6) -> None:
        xmin, ymin, xmax, ymax = track.bounds(margin)
        self.scale = (size - 1) / max(xmax - xmin, ymax - ymin)  # px per m
        self.origin = np.array([xmin, ymin])
        # centre the shorter side
        self.offset = (size - 1 - self.scale * np.array([xmax - xmin, ymax - ymin])) / 2
        self.size = size
        self.background = np.full((size, size, 3), MAP_BACKGROUND, np.uint8)
        centre = self.pixels(track.points)
        road_px = max(2, int(round(track.width * self.scale)))
        cv2.polylines(self.background, [centre], True, ROAD, road_px, cv2.LINE_AA)
        cv2.polylines(self.background, [centre], True, CENTRE, 1, cv2.LINE_AA)
        self.path = self.background.copy()
        self._last: np.ndarray | None = None

    def pixels(self, xy: np.ndarray) -> np.ndarray:
        """World (N, 2) m -> (N, 1, 2) int32 px (y up in the world = up in the image)."""
        xy = np.asarray(xy, np.float64).reshape(-1, 2)
        u = (xy[:, 0] - self.origin[0]) * self.scale + self.offset[0]
        v = self.size - 1 - ((xy[:, 1] - self.origin[1]) * self.scale + self.offset[1])
        return np.round(np.stack([u, v], axis=1)).astype(np.int32).reshape(-1, 1, 2)

    def draw(self, position: np.ndarray, yaw: float) -> np.ndarray:
        """The map with the path driven so far (extended to `position` (2,) m) and the car as
        an arrow pointing along `yaw` rad; (size, size, 3) uint8."""
        point = self.pixels(position)[0, 0]
        if self._last is not None:  # the path layer grows by one segment per frame
            cv2.line(self.path, tuple(self._last), tuple(point), PATH, 2, cv2.LINE_AA)
        self._last = point
        canvas = self.path.copy()
        tip = point + np.round(12 * np.array([np.cos(yaw), -np.sin(yaw)])).astype(np.int32)
        cv2.arrowedLine(canvas, tuple(point), tuple(tip), (255, 255, 0), 2, cv2.LINE_AA, 0, 0.4)
        return canvas


def read_index(path: Path) -> list[dict[str, Any]]:
    """The entries of a videos.jsonl index ([] when there is none); ValueError naming the
    file and line when a line is not a JSON object with a "video" name."""
    if not path.is_file():
        return []
    entries = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: line {number} is not JSON ({exc.msg})") from exc
        if not isinstance(entry, dict) or not isinstance(entry.get("video"), str):
            raise ValueError(f'{path}: line {number} has no "video" name')
        entries.append(entry)
    return entries


class DriveVideoRecorder:
    """Writes one video per closed-loop episode into `folder` (see the module docstring).

    scale: camera enlargement (integer); the map is a square as tall as the enlarged camera.
    suffix: ".mp4" (OpenCV's mp4v) or ".avi" (MJPG). Each video is renamed into place when its
    episode ends and the index is rewritten then, so an interrupted run leaves whole files. An
    index already in `folder` is kept: a video of the same name replaces its line.
    `recorded` counts the videos written by this recorder."""

    def __init__(
        self, folder: str | Path, *, scale: int = 2, suffix: str = ".mp4", fps: float = FPS
    ) -> None:
        self.folder = check_writable_folder(folder, what="video folder")
        if scale < 1:
            raise ValueError(f"scale must be >= 1, got {scale}")
        if suffix not in CODECS:
            raise ValueError(f"video suffix must be one of {', '.join(CODECS)}, got {suffix!r}")
        self.scale, self.suffix, self.fps = int(scale), suffix, float(fps)
        self.entries = read_index(self.folder / INDEX_NAME)
        self.recorded = 0
        self._video: VideoFile | None = None

    def begin(self, seed: int, track: Track) -> None:
        self.seed, self.track = seed, track
        self._map: TrackMap | None = None
        self._errors: list[float] = []
        self._video = VideoFile(self.folder / f"seed-{seed}{self.suffix}", self.fps)

    def frame(self, frame: DriveFrame) -> None:
        assert self._video is not None, "begin() first"
        view = upscale(frame.camera, self.scale)
        if self._map is None:
            self._map = TrackMap(self.track, view.shape[0])
        self._errors.append(abs(float(frame.network_action[0] - frame.expert_action[0])))
        track_map = self._map.draw(frame.position, frame.yaw)
        self._video.write(compose(view, track_map, frame, self.seed, self.fps))

    def end(self, episode: dict[str, Any]) -> None:
        assert self._video is not None, "begin() first"
        video, self._video = self._video, None
        video.close(keep=True)
        entry = {
            "video": video.path.name,
            "seed": int(episode["seed"]),
            "outcome": episode["outcome"],
            "completed": bool(episode["completed"]),
            "lap_fraction": round(float(episode["lap_fraction"]), 4),
            "steps": int(episode["steps"]),
            "frames": video.frames,
            "mean_abs_steering_error": round(float(np.mean(self._errors)), 4),
            "mean_abs_cte_m": round(float(episode["mean_abs_cte_m"]), 4),
            "codec": video.codec,
        }
        self.entries = [e for e in self.entries if e["video"] != entry["video"]] + [entry]
        self.recorded += 1
        lines = "".join(json.dumps(e) + "\n" for e in self.entries)
        atomic_write_text(self.folder / INDEX_NAME, lines)

    def abort(self) -> None:
        """Drop a video in progress (after an error)."""
        if self._video is not None:
            self._video.close(keep=False)
            self._video = None


def compose(
    view: np.ndarray,
    track_map: np.ndarray,
    frame: DriveFrame,
    seed: int,
    fps: float = FPS,
    short: bool = False,
) -> np.ndarray:
    """Camera `view` beside `track_map`, above a panel with the caption and four bars
    (expert / network steering and throttle); (H, W, 3) uint8, even sides. short: a caption
    that fits a 280 px wide frame (no step count, no speed)."""
    top_h = view.shape[0]
    width = even(view.shape[1] + track_map.shape[1])
    panel_h = 4 * 15 + 22
    out = np.zeros((even(top_h + panel_h), width, 3), np.uint8)
    out[:top_h, : view.shape[1]] = view
    out[: track_map.shape[0], view.shape[1] : view.shape[1] + track_map.shape[1]] = track_map
    y = top_h + 15
    caption = f"seed {seed}  t {frame.step / fps:4.1f} s  cte {frame.cte:+.2f} m"
    if not short:
        caption = (
            f"seed {seed}  step {frame.step}  t {frame.step / fps:5.1f} s  "
            f"cte {frame.cte:+.2f} m  {frame.speed:.2f} m/s"
        )
    text(out, 4, y, caption, GREY)
    expert, network = frame.expert_action, frame.network_action
    rows = (
        ("expert st", expert[0], EXPERT_COLOUR),
        ("net st", network[0], NETWORK_COLOUR),
        ("expert th", expert[1], EXPERT_COLOUR),
        ("net th", network[1], NETWORK_COLOUR),
    )
    for k, (label, value, colour) in enumerate(rows):
        signed_bar(out, 4, y + 5 + 15 * k, width - 8, 12, float(value), colour, label)
    return out


class ClipRecorder:
    """Keeps the last `seconds` of each episode, every `stride`-th step, composed at the
    camera's own size, and writes it as an animated WebP ``folder/<prefix>seed-<seed>.webp``
    (plays in browsers' <img>; Pillow encodes it). `written` lists the clips' paths."""

    def __init__(
        self,
        folder: str | Path,
        *,
        prefix: str = "",
        stride: int = 2,
        seconds: float = 15.0,
        quality: int = 50,
    ) -> None:
        self.folder = check_writable_folder(folder, what="clip folder")
        self.prefix, self.stride, self.quality = prefix, int(stride), int(quality)
        self.keep = max(1, int(round(seconds * FPS / self.stride)))
        self.written: list[Path] = []

    def begin(self, seed: int, track: Track) -> None:
        self.seed, self.track = seed, track
        self._map: TrackMap | None = None
        self._frames: deque[np.ndarray] = deque(maxlen=self.keep)

    def frame(self, frame: DriveFrame) -> None:
        if self._map is None:
            self._map = TrackMap(self.track, frame.camera.shape[0])
        track_map = self._map.draw(frame.position, frame.yaw)  # every step: the path stays whole
        if frame.step % self.stride == 0:
            self._frames.append(compose(frame.camera, track_map, frame, self.seed, short=True))

    def end(self, episode: dict[str, Any]) -> None:
        from PIL import Image

        images = [Image.fromarray(f) for f in self._frames]
        if not images:
            return
        buffer = io.BytesIO()
        images[0].save(
            buffer,
            format="WEBP",
            save_all=True,
            append_images=images[1:],
            duration=int(round(1000 * self.stride / FPS)),
            loop=0,
            quality=self.quality,
            method=0,
        )
        path = self.folder / f"{self.prefix}seed-{self.seed}.webp"
        atomic_write_bytes(path, buffer.getvalue())
        self.written.append(path)


def worst_and_best(episodes: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """{"worst": ..., "best": ...} of closed-loop episodes, ranked by lap completed, then lap
    fraction, then mean |cte| (lower is better); one entry "only" when there is one episode."""
    if not episodes:
        raise ValueError("no episodes to choose from")

    def rank(e: dict[str, Any]) -> tuple[bool, float, float]:
        return (bool(e["completed"]), float(e["lap_fraction"]), -float(e["mean_abs_cte_m"]))

    worst, best = min(episodes, key=rank), max(episodes, key=rank)
    if worst["seed"] == best["seed"]:
        return {"only": worst}
    return {"worst": worst, "best": best}


def drive_clips(
    checkpoint: str | Path, closed_loop: dict[str, Any], folder: str | Path
) -> list[dict[str, Any]]:
    """Re-drive the worst and the best episode of `closed_loop` (an `evaluate_closed_loop`
    result for `checkpoint`) with the same settings and write a WebP clip of each into
    `folder`; returns one entry per clip: role, seed, outcome and lap fraction as first
    driven, the re-drive's outcome (the same unless floating-point rounding differs), path."""
    from sim2real.agents.closed_loop import evaluate_closed_loop
    from sim2real.agents.ensemble import load_predictor

    model, _ = load_predictor(checkpoint)  # one network or an ensemble, as first driven
    settings = closed_loop["settings"]
    entries = []
    for role, episode in worst_and_best(closed_loop["episodes"]).items():
        clips = ClipRecorder(folder, prefix=f"drive-{role}-")
        again = evaluate_closed_loop(
            model,
            seeds=[episode["seed"]],
            nominal=settings["nominal"],
            strength=settings["strength"],
            image_size=tuple(settings["image_size"]),
            max_steps=settings["max_steps"],
            randomization=settings.get("randomization"),
            stall_steps=settings.get("stall_steps", 100),
            throttle_scale=settings.get("throttle_scale", 1.0),
            recorder=clips,
        )["episodes"][0]
        if clips.written:
            entries.append(
                {
                    "role": role,
                    "seed": int(episode["seed"]),
                    "outcome": episode["outcome"],
                    "lap_fraction": float(episode["lap_fraction"]),
                    "redriven_outcome": again["outcome"],
                    "path": clips.written[0],
                }
            )
    return entries
