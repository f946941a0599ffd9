"""Stand-ins for another camera mount: a copy of a DonkeyCar tub with every image warped as a
camera mounted differently would see the same scene (docs/transfer.md, "Another camera mount:
stand-ins").

    python benchmarks/mount_standin.py write SRC_TUB OUT_TUB MOUNT [--horizon F] [--quality Q]
    python benchmarks/mount_standin.py sheet SRC_TUB OUT.png MOUNT... [--horizon F] [--frames I,J]

MOUNT is a name from `MOUNTS` (or `identity`: the images re-encoded only, the control for the
JPEG round trip). `write` copies every file of SRC_TUB but its images and `preview.png` byte for
byte (manifest, catalogs: the labels, `deleted_indexes`, timestamps unchanged), writes each image
of `images/` warped (OpenCV, same size, same name, JPEG), and records the warp in
`OUT_TUB/standin.json`. SRC_TUB is only read. OUT_TUB must not exist; it is written beside
itself and renamed when complete. `sheet` draws the original beside each mount for a few frames.

Each mount is one 3x3 homography of the image, built from a pinhole with a nominal horizontal
field of view (`--hfov`, 90 degrees: the tubs' lenses are wide; the exact value only bends the
edges): a rotation of the camera (pitch, roll) is K R K^-1; a narrower field of view is a zoom
about the centre (crop and resize); a higher camera at the same pitch stretches the ground's
rows away from the horizon row (`--horizon`, a fraction of the height; the ground is exact at
zero pitch, anything above the horizon an approximation). Pixels a mount sees that the original
did not (pitching up, rolling) repeat the nearest edge pixel (`cv2.BORDER_REPLICATE`).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np


@dataclass(frozen=True)
class Mount:
    """A camera mount relative to the recording's, as image-space quantities."""

    horizon_shift: float = 0.0
    """vertical shift of the horizon, a fraction of the image height (+: down, the camera
    pitched up; -: up, pitched down)"""
    roll_deg: float = 0.0
    """roll of the camera about its optical axis, degrees (+: the image turns clockwise)"""
    zoom: float = 1.0
    """focal length over the recording's (> 1: a narrower field of view, crop and resize)"""
    height: float = 1.0
    """camera height over the recording's (> 1: higher; the ground stretches away from the
    horizon row)"""


MOUNTS: dict[str, Mount] = {
    "identity": Mount(),
    # camera pitched up (horizon 12% of the height lower) and rolled 3 degrees
    "pitchup-roll": Mount(horizon_shift=0.12, roll_deg=3.0),
    # a narrower lens (x1.25) pitched down (horizon 10% of the height higher)
    "tele-pitchdown": Mount(horizon_shift=-0.10, zoom=1.25),
    # the camera 30% higher at the same pitch
    "higher": Mount(height=1.3),
}


def intrinsics(width: int, height: int, hfov_deg: float) -> np.ndarray:
    """(3, 3) pinhole K of a `width` x `height` image with a horizontal field of view."""
    f = (width / 2) / math.tan(math.radians(hfov_deg) / 2)
    return np.array([[f, 0, (width - 1) / 2], [0, f, (height - 1) / 2], [0, 0, 1]])


def homography(
    mount: Mount, width: int, height: int, horizon: float = 0.3, hfov_deg: float = 90.0
) -> np.ndarray:
    """(3, 3) map from the recording's pixel coordinates to the mount's.

    `horizon`: the horizon's row in the recording, a fraction of the height (used by `height`
    only)."""
    k = intrinsics(width, height, hfov_deg)
    f = k[0, 0]
    # pitch: a rotation about the camera's x axis moving the centre row by horizon_shift * H
    pitch = math.atan(mount.horizon_shift * height / f)
    cp, sp = math.cos(pitch), math.sin(pitch)
    r_pitch = np.array([[1, 0, 0], [0, cp, sp], [0, -sp, cp]])
    roll = math.radians(mount.roll_deg)
    cr, sr = math.cos(roll), math.sin(roll)
    r_roll = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
    rotate = k @ r_roll @ r_pitch @ np.linalg.inv(k)
    # height: ground rows at depth Z sit at y_h + f h / Z; a camera h' = c h away puts them at
    # y_h + c (y - y_h); x = f X / Z does not change
    y_h = horizon * (height - 1)
    lift = np.array([[1, 0, 0], [0, mount.height, (1 - mount.height) * y_h], [0, 0, 1]])
    cx, cy = k[0, 2], k[1, 2]
    zoom = np.array(
        [[mount.zoom, 0, (1 - mount.zoom) * cx], [0, mount.zoom, (1 - mount.zoom) * cy], [0, 0, 1]]
    )
    return zoom @ rotate @ lift


def warp(image: np.ndarray, h: np.ndarray) -> np.ndarray:
    """`image` (H, W, C) uint8 seen through homography `h` (same size)."""
    rows, cols = image.shape[:2]
    return cv2.warpPerspective(
        image, h, (cols, rows), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )


def check_options(horizon: float, hfov_deg: float, quality: int = 95) -> None:
    """ValueError naming the first option no stand-in can be made with."""
    if not 0.0 <= horizon < 1.0:
        raise ValueError(
            f"--horizon {horizon}: the horizon row is a fraction of the height, in [0, 1)"
        )
    if not 0.0 < hfov_deg < 180.0:
        raise ValueError(f"--hfov {hfov_deg}: a pinhole's field of view lies in (0, 180) degrees")
    if not 1 <= quality <= 100:
        raise ValueError(f"--quality {quality}: JPEG quality lies in 1-100")


def write_standin(
    src: Path,
    out: Path,
    name: str,
    horizon: float = 0.3,
    hfov_deg: float = 90.0,
    quality: int = 95,
) -> int:
    """Write `out`, a copy of tub `src` with every image of `src/images` warped by mount `name`;
    returns the number of images written. `src` is only read; `out` must not exist."""
    if name not in MOUNTS:
        raise ValueError(f"mount {name!r}: not one of {', '.join(MOUNTS)}")
    check_options(horizon, hfov_deg, quality)
    if not (src / "manifest.json").is_file() or not (src / "images").is_dir():
        raise ValueError(f"{src}: not a DonkeyCar tub v2 (no manifest.json or images/)")
    if out.exists():
        raise ValueError(f"{out}: exists; a stand-in is written once, to a new folder")
    if src.resolve() in out.resolve().parents or src.resolve() == out.resolve():
        raise ValueError(f"{out}: inside the source tub {src}")
    tmp = out.with_name(out.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    (tmp / "images").mkdir(parents=True)
    for entry in sorted(src.iterdir()):
        if entry.is_file() and entry.name != "preview.png":
            shutil.copy2(entry, tmp / entry.name)
    h = None
    count = 0
    params = [cv2.IMWRITE_JPEG_QUALITY, quality]
    for image_path in sorted((src / "images").iterdir()):
        if image_path.suffix.lower() not in (".jpg", ".jpeg", ".png"):
            continue
        image = cv2.imread(str(image_path), cv2.IMREAD_COLOR)
        if image is None:  # unreadable in the source: copy it as is, the reader skips it there
            shutil.copy2(image_path, tmp / "images" / image_path.name)
            continue
        if h is None:
            h = homography(MOUNTS[name], image.shape[1], image.shape[0], horizon, hfov_deg)
        target = tmp / "images" / image_path.name
        if not cv2.imwrite(str(target), warp(image, h), params):
            raise OSError(f"{target}: not written")
        count += 1
    record = {
        "source": str(src.resolve()),
        "mount": name,
        **asdict(MOUNTS[name]),
        "horizon": horizon,
        "hfov_deg": hfov_deg,
        "jpeg_quality": quality,
        "homography": None if h is None else h.tolist(),
        "images": count,
        "script": "benchmarks/mount_standin.py",
    }
    (tmp / "standin.json").write_text(json.dumps(record, indent=1) + "\n")
    os.replace(tmp, out)
    return count


def contact_sheet(
    src: Path,
    out: Path,
    names: list[str],
    frames: list[int],
    horizon: float = 0.3,
    hfov_deg: float = 90.0,
    scale: int = 2,
) -> None:
    """A PNG: one row per frame index of `frames`, the original then each mount, labelled."""
    check_options(horizon, hfov_deg)
    rows = []
    for index in frames:
        path = src / "images" / f"{index}_cam_image_array_.jpg"
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise ValueError(f"{path}: not readable")
        tiles = []
        for name in ["original", *names]:
            tile = (
                image
                if name == "original"
                else warp(
                    image,
                    homography(MOUNTS[name], image.shape[1], image.shape[0], horizon, hfov_deg),
                )
            )
            tile = cv2.resize(tile, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
            cv2.putText(
                tile, name, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 255, 255), 1, cv2.LINE_AA
            )
            tiles.append(cv2.copyMakeBorder(tile, 2, 2, 2, 2, cv2.BORDER_CONSTANT, value=0))
        rows.append(np.hstack(tiles))
    if not cv2.imwrite(str(out), np.vstack(rows)):
        raise OSError(f"{out}: not written")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    w = sub.add_parser("write", help="write a warped copy of a tub")
    w.add_argument("src", type=Path)
    w.add_argument("out", type=Path)
    w.add_argument("mount", choices=sorted(MOUNTS))
    w.add_argument("--quality", type=int, default=95, help="JPEG quality (95)")
    s = sub.add_parser("sheet", help="original beside each mount, a few frames")
    s.add_argument("src", type=Path)
    s.add_argument("out", type=Path)
    s.add_argument("mounts", nargs="+", choices=sorted(MOUNTS))
    s.add_argument("--frames", default="2000,8000,12000", help="image indexes (2000,8000,12000)")
    for p in (w, s):
        p.add_argument("--horizon", type=float, default=0.3, help="horizon row / height (0.3)")
        p.add_argument("--hfov", type=float, default=90.0, help="nominal field of view (90)")
    args = parser.parse_args(argv)
    try:
        if args.command == "write":
            count = write_standin(
                args.src, args.out, args.mount, args.horizon, args.hfov, args.quality
            )
            print(f"{args.out}: {count} images, mount {args.mount}")
        else:
            frames = [int(i) for i in args.frames.split(",")]
            contact_sheet(args.src, args.out, args.mounts, frames, args.horizon, args.hfov)
            print(args.out)
    except (ValueError, OSError) as exc:
        print(f"mount_standin: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
