"""A contact sheet of randomized camera frames beside a top-down map of a track, so a person
sees at a glance what the randomization does."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sim2real.common.io import agg_pyplot, atomic_save_figure
from sim2real.envs.expert import ExpertDriver
from sim2real.envs.randomization import STYLES, RandomizationSpec, resolve_spec
from sim2real.envs.track_env import TrackDrivingEnv


def preview_frames(
    seed: int = 0,
    n: int = 12,
    *,
    strength: float = 1.0,
    randomization: None | RandomizationSpec | str | Path = None,
    image_size: tuple[int, int] = (120, 160),
) -> tuple[list[np.ndarray], list[str], dict]:
    """`n` frames, one per episode (seeds seed..seed+n-1), each after the expert has driven a
    little way; returns (frames (H, W, 3) uint8, captions, map of the first episode) where the
    map holds the floor texture "floor" (h, w, 3) uint8, its "extent" (xmin, xmax, ymin, ymax) m,
    the "centreline" (N, 2) m and the "car" (position (2,) m, yaw rad) at its frame."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    env = TrackDrivingEnv(image_size=image_size, randomization=randomization, strength=strength)
    frames, captions, track_map = [], [], {}
    try:
        for k in range(n):
            obs, info = env.reset(seed=seed + k)
            if k == 0:
                atlas = env._renderer.atlas
                room, wp = atlas.room, atlas.wall_px
                fh = int(round((room.ymax - room.ymin) / atlas.floor_texel))
                fw = int(round((room.xmax - room.xmin) / atlas.floor_texel))
                track_map = {
                    "floor": atlas.image[wp : wp + fh, wp : wp + fw].copy(),
                    "extent": (room.xmin, room.xmax, room.ymin, room.ymax),
                    "centreline": env.track.points.copy(),
                }
            expert = ExpertDriver(env, seed=seed + k)
            for _ in range(int(env.np_random.integers(5, 60))):
                obs, _, terminated, _, info = env.step(expert.act())
                if terminated:
                    break
            if k == 0:
                track_map["car"] = (env.car_state.position[:2].copy(), env.car_state.yaw)
            cam = info["randomization"]["camera"]
            captions.append(
                f"seed {seed + k}  fov {cam['hfov']:.0f}°  pitch {cam['pitch']:.0f}°  "
                f"cte {info['cte']:+.2f} m"
            )
            frames.append(obs)
    finally:
        env.close()
    return frames, captions, track_map


def write_preview(
    out: str | Path,
    seed: int = 0,
    n: int = 12,
    *,
    strength: float = 1.0,
    randomization: None | RandomizationSpec | str | Path = None,
    image_size: tuple[int, int] = (120, 160),
) -> Path:
    """Render the contact sheet and the map into one PNG at `out` (written atomically)."""
    plt = agg_pyplot()

    out = Path(out)
    if out.suffix.lower() != ".png":
        raise ValueError(f"--out must name a .png file, got {out}")
    frames, captions, track_map = preview_frames(
        seed, n, strength=strength, randomization=randomization, image_size=image_size
    )
    cols = min(4, n)
    rows = int(np.ceil(n / cols))
    fig = plt.figure(figsize=(3.2 * cols + 5.5, max(4.5, 2.9 * rows)), dpi=110)
    grid = fig.add_gridspec(rows, cols + 2)
    ax_map = fig.add_subplot(grid[:, :2])
    xmin, xmax, ymin, ymax = track_map["extent"]
    ax_map.imshow(track_map["floor"], extent=(xmin, xmax, ymin, ymax), origin="upper")
    line = track_map["centreline"]
    ax_map.plot(line[:, 0], line[:, 1], lw=0.6, color="red", alpha=0.6, label="centreline")
    pos, yaw = track_map["car"]
    ax_map.annotate(
        "", xy=(pos[0] + 0.8 * np.cos(yaw), pos[1] + 0.8 * np.sin(yaw)), xytext=tuple(pos),
        arrowprops={"arrowstyle": "->", "color": "red", "lw": 2},
    )  # fmt: skip
    ax_map.set_title(f"track of seed {seed} (top-down, m); arrow: car of frame 1", fontsize=9)
    ax_map.set_xlabel("x (m)")
    ax_map.set_ylabel("y (m)")
    for k, (frame, caption) in enumerate(zip(frames, captions, strict=True)):
        ax = fig.add_subplot(grid[k // cols, 2 + k % cols])
        ax.imshow(frame)
        ax.set_title(caption, fontsize=7)
        ax.axis("off")
    fig.suptitle(
        f"sim2real/TrackDriving-v1: randomization strength {strength}, "
        f"{image_size[1]}x{image_size[0]} camera frames",
        fontsize=11,
    )
    fig.tight_layout()
    return atomic_save_figure(fig, out)


def write_style_preview(
    out: str | Path,
    seed: int = 0,
    per_style: int = 4,
    *,
    strength: float = 1.0,
    randomization: None | RandomizationSpec | str | Path = None,
    image_size: tuple[int, int] = (120, 160),
) -> Path:
    """One row per track style (randomization.STYLES) of `per_style` frames, the style pinned
    and everything else drawn from the spec at `strength`; PNG at `out` (written atomically)."""
    plt = agg_pyplot()

    out = Path(out)
    if out.suffix.lower() != ".png":
        raise ValueError(f"--out must name a .png file, got {out}")
    if per_style < 1:
        raise ValueError(f"n must be >= 1, got {per_style}")
    spec = resolve_spec(randomization)
    fig, axes = plt.subplots(
        len(STYLES), per_style, figsize=(2.6 * per_style, 2.2 * len(STYLES)), dpi=110,
        squeeze=False,
    )  # fmt: skip
    for row, style in enumerate(STYLES):
        frames, captions, _ = preview_frames(
            seed, per_style, strength=strength, randomization=spec.with_style(style),
            image_size=image_size,
        )  # fmt: skip
        for col, (frame, caption) in enumerate(zip(frames, captions, strict=True)):
            ax = axes[row, col]
            ax.imshow(frame)
            ax.set_title(f"{style}: {caption}" if col == 0 else caption, fontsize=6)
            ax.axis("off")
    fig.suptitle(f"sim2real/TrackDriving-v1 track styles, randomization strength {strength}")
    fig.tight_layout()
    return atomic_save_figure(fig, out)
