"""Videos of driving: an atomic OpenCV video writer, labelled action bars, and tub playback.

`VideoFile` writes RGB frames to an MP4 (OpenCV's built-in ``mp4v`` MPEG-4 encoder) or an AVI
(``MJPG``) chosen by the file's suffix, under a temporary name that is renamed into place when
the video is complete, so a reader never sees half a video. `tub_video` plays a driving dataset
(DonkeyCar tub, real or sim, or CSV folder) back at its recording rate with its labels drawn in;
`sim2real.experiments.drive_video` builds closed-loop drive videos on the same pieces.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

import cv2
import numpy as np

from sim2real.transfer.records import Record, read_image_rgb

FPS = 20.0
"""frames per second: DonkeyCar's DRIVE_LOOP_HZ and the simulator's control rate (CONTROL_DT)"""

CODECS: dict[str, tuple[str, ...]] = {".mp4": ("mp4v", "avc1"), ".avi": ("MJPG",)}
"""FourCCs tried in order per file suffix"""

FONT = cv2.FONT_HERSHEY_SIMPLEX
WHITE, GREY, DARK = (255, 255, 255), (150, 150, 150), (30, 30, 30)
EXPERT_COLOUR, NETWORK_COLOUR, LABEL_COLOUR = (60, 200, 90), (255, 140, 30), (80, 160, 255)


def check_video_path(path: str | Path) -> Path:
    """`path` as a Path after checking that a video can be written there: a known suffix
    (.mp4, .avi), not a folder, and a parent folder that exists or can be made and takes a
    new file. Raises ValueError naming the path otherwise."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path}: is a folder, not a video file name")
    if path.suffix.lower() not in CODECS:
        raise ValueError(f"{path}: a video file must end in {' or '.join(CODECS)}")
    check_writable_folder(path.parent, what="video folder")
    return path


def check_writable_folder(folder: str | Path, *, what: str = "folder") -> Path:
    """Make `folder` (and its parents) if needed and check a file can be created in it;
    raises ValueError naming the folder when it is a file or cannot be written."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{folder}: {what} is a file, not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise ValueError(f"{folder}: cannot write to this {what} ({exc.strerror})") from exc
    return folder


class VideoFile:
    """Write (H, W, 3) uint8 RGB frames to `path` at `fps`; use as a context manager.

    The writer opens on the first frame (its size fixes the video's; later frames must match).
    On a clean exit the temporary file is renamed to `path`; on an exception it is removed.
    `codec` holds the FourCC that was used."""

    def __init__(self, path: str | Path, fps: float = FPS) -> None:
        self.path = check_video_path(path)
        self.fps = float(fps)
        self.frames = 0
        self.codec: str | None = None
        self.size: tuple[int, int] | None = None  # (width, height)
        self._writer: cv2.VideoWriter | None = None
        fd, name = tempfile.mkstemp(
            prefix=f".{self.path.name}.", suffix=self.path.suffix, dir=self.path.parent
        )
        os.close(fd)
        self._tmp = Path(name)

    def write(self, frame: np.ndarray) -> None:
        """Append one (H, W, 3) uint8 RGB frame."""
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise ValueError(f"a video frame is (H, W, 3) uint8, got {frame.shape} {frame.dtype}")
        height, width = frame.shape[:2]
        if self._writer is None:
            self._open(width, height)
        elif (width, height) != self.size:
            raise ValueError(f"{self.path}: frame size {width}x{height} != video's {self.size}")
        self._writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        self.frames += 1

    def _open(self, width: int, height: int) -> None:
        for codec in CODECS[self.path.suffix.lower()]:
            writer = cv2.VideoWriter(
                str(self._tmp), cv2.VideoWriter_fourcc(*codec), self.fps, (width, height)
            )
            if writer.isOpened():
                self._writer, self.codec, self.size = writer, codec, (width, height)
                return
            writer.release()
        raise ValueError(
            f"{self.path}: this OpenCV build cannot encode {self.path.suffix} "
            f"(tried {', '.join(CODECS[self.path.suffix.lower()])}); try .avi (MJPG)"
        )

    def close(self, keep: bool = True) -> None:
        """Finish the video: rename it into place (keep) or delete it."""
        if self._writer is not None:
            self._writer.release()
            self._writer = None
        if keep and self.frames > 0:
            os.chmod(self._tmp, 0o666 & ~_umask())
            os.replace(self._tmp, self.path)
        else:
            self._tmp.unlink(missing_ok=True)
            if keep:
                raise ValueError(f"{self.path}: no frames to write")

    def __enter__(self) -> VideoFile:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close(keep=exc_type is None)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def read_video(path: str | Path) -> tuple[int, int, int, float]:
    """(frames, height, width, fps) of a video, as OpenCV reads it back (frames decoded and
    counted, not taken from the header)."""
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise ValueError(f"{path}: OpenCV cannot open this video")
    try:
        fps = float(capture.get(cv2.CAP_PROP_FPS))
        frames, height, width = 0, 0, 0
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            frames += 1
            height, width = frame.shape[:2]
        return frames, height, width, fps
    finally:
        capture.release()


# ------------------------------------------------------------------------------- drawing
def text(canvas: np.ndarray, x: int, y: int, words: str, colour=WHITE, scale: float = 0.4):
    """Anti-aliased text with its baseline at (x, y) px."""
    cv2.putText(canvas, words, (x, y), FONT, scale, colour, 1, cv2.LINE_AA)


def signed_bar(
    canvas: np.ndarray,
    x: int,
    y: int,
    width: int,
    height: int,
    value: float,
    colour: tuple[int, int, int],
    label: str,
    span: float = 1.0,
) -> None:
    """A horizontal bar for `value` in [-span, span], filled from the centre (0) toward the
    value's side, with `label` on its left and the value on its right; at (x, y) px (top left
    of the whole row), `width` px wide overall."""
    label_w, value_w = 62, 48
    left, right = x + label_w, x + width - value_w
    mid = (left + right) // 2
    cv2.rectangle(canvas, (left, y), (right, y + height), DARK, -1)
    fraction = float(np.clip(value / span, -1.0, 1.0)) if np.isfinite(value) else 0.0
    end = int(round(mid + fraction * (right - left) / 2))
    if end != mid:
        cv2.rectangle(canvas, (min(mid, end), y + 2), (max(mid, end), y + height - 2), colour, -1)
    cv2.line(canvas, (mid, y), (mid, y + height), GREY, 1)
    text(canvas, x + 2, y + height - 3, label, colour)
    shown = f"{value:+.2f}" if np.isfinite(value) else "--"
    text(canvas, right + 4, y + height - 3, shown, WHITE)


def upscale(image: np.ndarray, factor: int) -> np.ndarray:
    """`image` enlarged by an integer `factor` (nearest neighbour: pixels stay visible)."""
    if factor == 1:
        return image
    return cv2.resize(image, None, fx=factor, fy=factor, interpolation=cv2.INTER_NEAREST)


def even(n: int) -> int:
    """`n` rounded up to an even number (many encoders want even frame sizes)."""
    return n + (n % 2)


# ---------------------------------------------------------------------------- playback
PLAYBACK_LABELS: tuple[tuple[str, str, float], ...] = (
    ("user/angle", "steer", 1.0),
    ("user/throttle", "throttle", 1.0),
    ("pilot/angle", "pilot st", 1.0),
    ("pilot/throttle", "pilot th", 1.0),
    ("sim/cte", "cte m", 0.5),
    ("sim/heading_error", "head rad", 0.5),
    ("sim/speed", "m/s", 3.0),
)
"""(label, caption, bar span) drawn by `tub_video` when a record has the label"""

ROW_H = 16


def playback_frame(
    record: Record,
    image: np.ndarray | None,
    size: tuple[int, int],
    scale: int,
    labels: Sequence[str] | None = None,
    start_ms: int | None = None,
) -> np.ndarray:
    """One playback frame (H, W, 3) uint8 RGB: the record's image (resized to `size` (H, W),
    black if unreadable) enlarged `scale` times, a caption line (index, session, seconds since
    `start_ms`) and one bar per label of PLAYBACK_LABELS in `labels` (default: those the record
    has; a missing one shows "--")."""
    height, width = size
    if image is None:
        image = np.zeros((height, width, 3), np.uint8)
    elif image.shape[:2] != (height, width):
        image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    view = upscale(image, scale)
    wanted = record.labels.keys() if labels is None else set(labels)
    rows = [row for row in PLAYBACK_LABELS if row[0] in wanted]
    frame_w = even(max(view.shape[1], 260))
    panel_h = 20 + ROW_H * len(rows) + 4
    frame = np.zeros((even(view.shape[0] + panel_h), frame_w, 3), np.uint8)
    frame[: view.shape[0], : view.shape[1]] = view
    top = view.shape[0]
    stamp = ""
    if record.timestamp_ms is not None and start_ms is not None:
        stamp = f"  t {(record.timestamp_ms - start_ms) / 1000:.2f} s"
    text(frame, 4, top + 14, f"#{record.index} {record.session}{stamp}", GREY)
    for k, (name, caption, span) in enumerate(rows):
        value = record.labels.get(name, float("nan"))
        y = top + 20 + k * ROW_H
        signed_bar(frame, 4, y, frame_w - 8, ROW_H - 3, value, LABEL_COLOUR, caption, span)
        if name == "user/angle" and np.isfinite(value):  # steering needle: -1 = full left
            _needle(frame, view.shape[1] // 2, view.shape[0] - 4, value)
    return frame


def _needle(canvas: np.ndarray, cx: int, cy: int, steering: float, length: int = 40) -> None:
    angle = float(np.clip(steering, -1.0, 1.0)) * np.radians(60)
    tip = (int(round(cx + length * np.sin(angle))), int(round(cy - length * np.cos(angle))))
    cv2.line(canvas, (cx, cy), tip, (255, 230, 0), 2, cv2.LINE_AA)
    cv2.circle(canvas, (cx, cy), 3, (255, 230, 0), -1, cv2.LINE_AA)


def recording_rate(records: Sequence[Record]) -> float:
    """Frames per second the records were taken at: 1000 / the median gap between consecutive
    timestamps of one session (gaps over 1 s, pauses, left out), rounded to a whole number in
    [1, 60]; FPS (20) when the records carry no timestamps."""
    gaps = [
        b.timestamp_ms - a.timestamp_ms
        for a, b in zip(records, records[1:], strict=False)
        if a.timestamp_ms is not None
        and b.timestamp_ms is not None
        and (a.source, a.session) == (b.source, b.session)
        and 0 < b.timestamp_ms - a.timestamp_ms <= 1000
    ]
    if not gaps:
        return FPS
    return float(np.clip(round(1000.0 / float(np.median(gaps))), 1, 60))


def tub_video(
    records: Sequence[Record],
    path: str | Path,
    *,
    fps: float | None = None,
    scale: int = 2,
) -> dict[str, object]:
    """Play `records` (in their order) back as a video at `path` (.mp4 or .avi), one frame per
    record at `fps` (default: the recording's own rate, `recording_rate`; 20 for DonkeyCar),
    each image enlarged `scale` times with its labels drawn in (steering needle and bars for
    every label in PLAYBACK_LABELS it has). All frames take the first readable image's size.
    Returns {"path", "frames", "fps", "codec", "size"}."""
    if not records:
        raise ValueError("no records to play back")
    fps = recording_rate(records) if fps is None else float(fps)
    if scale < 1:
        raise ValueError(f"scale must be >= 1, got {scale}")
    first = next((im for r in records if (im := read_image_rgb(r.image_path)) is not None), None)
    size = first.shape[:2] if first is not None else (120, 160)
    # every frame of a video has one size: the panel shows every label any record has
    labels = sorted({name for r in records for name in r.labels})
    starts: dict[tuple[str, str], int] = {}  # the time shown counts from each session's start
    for r in records:
        if r.timestamp_ms is not None:
            key = (r.source, r.session)
            starts[key] = min(starts.get(key, r.timestamp_ms), r.timestamp_ms)
    with VideoFile(path, fps) as video:
        for record in records:
            image = read_image_rgb(record.image_path)
            start = starts.get((record.source, record.session))
            video.write(playback_frame(record, image, size, scale, labels, start))
    return {"path": str(video.path), "frames": video.frames, "fps": fps, "codec": video.codec,
            "size": list(video.size or ())}  # fmt: skip
