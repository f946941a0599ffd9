"""Generated textures baked once per episode: the top-down floor (floor, verges, asphalt,
edge lines, centre line, marks, glare, baked shadows) and the room's four walls (paint,
baseboard, windows, banners), packed into one atlas so the renderer samples it with a single
`cv2.remap`. Lighting is static per episode, so shading is baked in too.

Texture images are RGB uint8; the floor's row 0 is the room's +y edge (ymax) and column 0 its
-x edge (xmin).
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass

import cv2
import numpy as np

from sim2real.envs.tracks import Track
from sim2real.envs.world import Distractor

FLOOR_TEXEL = 0.015  # m per floor texel (capped so the texture stays <= MAX_SIDE)
WALL_TEXEL = 0.03  # m per wall texel
MAX_SIDE = 2048
SHIFT = 3  # sub-pixel bits for cv2 drawing
CEILING_PATCH = 8  # texels


def hsv_to_rgb(hsv: tuple[float, float, float]) -> np.ndarray:
    """(hue deg, s, v) -> RGB float32 (3,) in [0, 255]."""
    r, g, b = colorsys.hsv_to_rgb((hsv[0] % 360.0) / 360.0, hsv[1], hsv[2])
    return np.array([r, g, b], dtype=np.float32) * 255.0


@dataclass(frozen=True)
class Room:
    """The box the world lives in: floor bounds m, wall height m."""

    xmin: float
    ymin: float
    xmax: float
    ymax: float
    height: float


@dataclass(frozen=True)
class Atlas:
    """All textures in one RGB uint8 image and where each part lies.

    floor: origin (col, row) and texel size m; walls: [x-, x+, y-, y+] origins and texel size;
    ceiling: a (col, row) inside a uniform patch."""

    image: np.ndarray
    room: Room
    floor_texel: float
    floor_origin: tuple[int, int]
    wall_texel: float
    wall_origins: tuple[tuple[int, int], ...]
    ceiling: tuple[float, float]


def _to_px(points: np.ndarray, room: Room, texel: float) -> np.ndarray:
    """World (N, 2) m -> fixed-point cv2 pixel coordinates (N, 1, 2) int32."""
    col = (points[:, 0] - room.xmin) / texel
    row = (room.ymax - points[:, 1]) / texel
    return np.round(np.stack([col, row], axis=1) * (1 << SHIFT)).astype(np.int32)[:, None, :]


def _grain(rng: np.random.Generator, shape: tuple[int, int], amount: float) -> np.ndarray:
    """Multiplicative noise field (H, W, 1) float32 around 1, low-frequency + fine grain."""
    h, w = shape
    coarse = rng.standard_normal((max(2, h // 40), max(2, w // 40)), dtype=np.float32)
    coarse = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)
    fine = rng.standard_normal((max(2, h // 2), max(2, w // 2)), dtype=np.float32)
    fine = cv2.resize(fine, (w, h), interpolation=cv2.INTER_LINEAR)
    return (1.0 + amount * (0.5 * coarse + 0.5 * fine))[:, :, None]


def _paint(layer: np.ndarray, mask: np.ndarray, color: np.ndarray) -> None:
    """Blend `color` into float image `layer` with uint8 anti-aliased `mask` (H, W)."""
    a = mask.astype(np.float32)[:, :, None] * (1.0 / 255.0)
    layer *= 1.0 - a
    layer += a * color


def bake_floor(
    track: Track, room: Room, visual: dict, distractors: list[Distractor], rng: np.random.Generator
) -> tuple[np.ndarray, float]:
    """Top-down floor texture (H, W, 3) uint8 and its texel size m."""
    span = max(room.xmax - room.xmin, room.ymax - room.ymin)
    texel = max(FLOOR_TEXEL, span / MAX_SIDE)
    w = int(np.ceil((room.xmax - room.xmin) / texel))
    h = int(np.ceil((room.ymax - room.ymin) / texel))
    px = 1.0 / texel
    base = np.empty((h, w, 3), np.float32)
    base[:] = hsv_to_rgb(visual["floor_color"])
    _floor_pattern(base, rng, px)
    base *= _grain(rng, (h, w), 0.06)

    mask = np.zeros((h, w), np.uint8)
    closed = _to_px(track.points, room, texel)
    road_w = track.width
    lw = visual["line_width"]

    def stroke(points_px: np.ndarray, width_m: float, closed_: bool = True) -> np.ndarray:
        mask[:] = 0
        cv2.polylines(
            mask, [points_px], closed_, 255, max(1, int(round(width_m * px))), cv2.LINE_AA, SHIFT
        )
        return mask

    verge_w = visual["verge_width"]
    if verge_w > 0.01:
        _paint(base, stroke(closed, road_w + 2 * verge_w), hsv_to_rgb(visual["verge_color"]))
        _verge_marks(base, track, room, texel, visual, rng)
    road = np.empty_like(base)
    road[:] = hsv_to_rgb(visual["road_color"])
    road *= _grain(rng, (h, w), visual["road_grain"])
    a = stroke(closed, road_w).astype(np.float32)[:, :, None] * (1.0 / 255.0)
    base *= 1.0 - a
    base += a * road

    edge_off = road_w / 2 - visual["edge_inset"] - lw / 2
    edge_rgb = hsv_to_rgb(visual["edge_color"])
    for side in (1.0, -1.0):
        pts = track.points + side * edge_off * track.normals
        _paint(base, stroke(_to_px(pts, room, texel), lw), edge_rgb)

    dash, gap = visual["centre_dash"], visual["centre_gap"]
    mask[:] = 0
    if gap < 0.03:  # solid line
        cv2.polylines(mask, [closed], True, 255, max(1, int(round(lw * px))), cv2.LINE_AA, SHIFT)
    else:
        period = dash + gap
        phase = (track.s + rng.uniform(0, period)) % period
        on = phase < dash
        starts = np.flatnonzero(on & ~np.roll(on, 1))
        segments = []
        for start in starts:
            stop = start
            while on[(stop + 1) % len(on)] and stop - start < len(on):
                stop += 1
            idx = np.arange(start, stop + 1) % len(on)
            segments.append(closed[idx])
        cv2.polylines(mask, segments, False, 255, max(1, int(round(lw * px))), cv2.LINE_AA, SHIFT)
    _paint(base, mask, hsv_to_rgb(visual["centre_color"]))

    _shadows(base, room, texel, distractors, visual)
    _glare(base, room, texel, track, visual, rng)

    shade = visual["ambient"] + visual["diffuse"] * np.sin(np.radians(visual["light_elevation"]))
    base *= shade / (visual["ambient"] + visual["diffuse"]) * 1.05
    return np.clip(base, 0, 255).astype(np.uint8), texel


def _floor_pattern(base: np.ndarray, rng: np.random.Generator, px: float) -> None:
    """Tiles, planks or plain: a faint pattern on the floor beyond the track."""
    kind = int(rng.integers(0, 3))
    h, w = base.shape[:2]
    if kind == 0:
        return
    size = rng.uniform(0.3, 1.2) * px
    tone = rng.uniform(0.75, 0.95)
    line = max(1, int(round(rng.uniform(0.005, 0.02) * px)))
    for c in np.arange(rng.uniform(0, size), w, size):
        base[:, int(c) : int(c) + line] *= tone
    if kind == 2:
        for r in np.arange(rng.uniform(0, size), h, size):
            base[int(r) : int(r) + line, :] *= tone


def _verge_marks(
    base: np.ndarray, track: Track, room: Room, texel: float, visual: dict, rng: np.random.Generator
) -> None:
    """Painted white symbols/patches on the verges (like the real mat's bike-lane signs)."""
    n = int(round(visual["verge_marks"]))
    if n == 0:
        return
    mask = np.zeros(base.shape[:2], np.uint8)
    px = 1.0 / texel
    for _ in range(n):
        i = int(rng.integers(len(track.points)))
        side = rng.choice([-1.0, 1.0])
        off = track.width / 2 + rng.uniform(0.15, 0.9) * visual["verge_width"]
        c = track.points[i] + side * off * track.normals[i]
        cpx = _to_px(c[None], room, texel)[0, 0]
        axes = (
            int(rng.uniform(0.05, 0.25) * px * (1 << SHIFT)),
            int(rng.uniform(0.03, 0.15) * px * (1 << SHIFT)),
        )
        angle = float(np.degrees(np.arctan2(track.tangents[i, 1], track.tangents[i, 0])))
        if rng.random() < 0.5:
            cv2.ellipse(mask, (int(cpx[0]), int(cpx[1])), axes, -angle, 0, 360, 255, -1,
                        cv2.LINE_AA, SHIFT)  # fmt: skip
        else:
            box = cv2.boxPoints(
                ((float(cpx[0]), float(cpx[1])), (float(axes[0] * 2), float(axes[1] * 2)), -angle)
            )
            cv2.fillConvexPoly(mask, box.astype(np.int32), 255, cv2.LINE_AA, SHIFT)
    _paint(base, mask, hsv_to_rgb((0.0, 0.0, rng.uniform(0.85, 1.0))))


def _shadows(
    base: np.ndarray, room: Room, texel: float, distractors: list[Distractor], visual: dict
) -> None:
    """Soft shadows of the distractors cast along the light direction onto the floor."""
    strength = visual["shadow_strength"]
    if strength <= 0.01 or not distractors:
        return
    az, el = np.radians(visual["light_azimuth"]), np.radians(visual["light_elevation"])
    away = -np.array([np.cos(az), np.sin(az)]) / np.tan(el)  # ground shift per metre of height
    mask = np.zeros(base.shape[:2], np.uint8)
    for d in distractors:
        c, s = np.cos(d.yaw), np.sin(d.yaw)
        hx, hy, hz = d.half_extents
        corners = np.array([[hx, hy], [hx, -hy], [-hx, -hy], [-hx, hy]]) @ np.array(
            [[c, s], [-s, c]]
        )
        foot = corners + d.center[:2]
        top = foot + away * min(2 * hz, 3.0)
        hull = cv2.convexHull(_to_px(np.vstack([foot, top]), room, texel))
        cv2.fillConvexPoly(mask, hull, 255, cv2.LINE_AA, SHIFT)
    blur = max(1, int(0.05 / texel)) | 1
    mask = cv2.GaussianBlur(mask, (blur * 2 + 1, blur * 2 + 1), 0)
    base *= 1.0 - strength * mask.astype(np.float32)[:, :, None] / 255.0


def _glare(
    base: np.ndarray, room: Room, texel: float, track: Track, visual: dict, rng: np.random.Generator
) -> None:
    """Bright specular patches of ceiling lights reflected by the mat."""
    n = int(round(visual["glare"]))
    if n == 0 or visual["glare_strength"] <= 0:
        return
    h, w = base.shape[:2]
    small = np.zeros((max(2, h // 8), max(2, w // 8)), np.float32)
    for _ in range(n):
        p = track.points[int(rng.integers(len(track.points)))] + rng.normal(0, 0.5, 2)
        col = (p[0] - room.xmin) / texel / 8
        row = (room.ymax - p[1]) / texel / 8
        r = rng.uniform(0.2, 0.8) / texel / 8
        cv2.circle(small, (int(col), int(row)), max(1, int(r)), 1.0, -1)
    small = cv2.GaussianBlur(small, (0, 0), max(1.0, 0.15 / texel / 8))
    glow = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)[:, :, None]
    base += visual["glare_strength"] * glow * (255.0 - base)


def bake_wall(
    length: float, height: float, visual: dict, normal_shade: float, rng: np.random.Generator
) -> np.ndarray:
    """One wall's texture (rows top to bottom, columns along the wall) (H, W, 3) uint8."""
    w = max(4, int(np.ceil(length / WALL_TEXEL)))
    h = max(4, int(np.ceil(height / WALL_TEXEL)))
    px = 1.0 / WALL_TEXEL
    wall = np.empty((h, w, 3), np.float32)
    wall[:] = hsv_to_rgb(visual["wall_color"])
    wall *= np.linspace(0.9, 1.05, h, dtype=np.float32)[:, None, None]
    wall *= _grain(rng, (h, w), 0.05)
    base_h = int(rng.uniform(0.03, 0.12) * px)
    wall[h - base_h :] *= rng.uniform(0.4, 0.9)
    # windows, doors and panels
    for _ in range(int(rng.integers(0, 4))):
        ww, wh = rng.uniform(0.4, 1.5) * px, rng.uniform(0.4, 1.2) * px
        x0, y0 = rng.uniform(0, max(1, w - ww)), rng.uniform(0, max(1, h * 0.6 - wh))
        tone = rng.uniform(0.3, 1.3)
        wall[int(y0) : int(y0 + wh), int(x0) : int(x0 + ww)] *= tone
        for k in range(1, int(rng.integers(1, 8))):  # blinds
            yy = int(y0 + k * wh / 8)
            wall[yy : yy + 1, int(x0) : int(x0 + ww)] *= 0.8
    # banners along the bottom of the wall (like the track-side advertising boards)
    n_banners = int(round(visual["banners"] / 4 + rng.uniform(-0.5, 0.5)))
    for _ in range(max(0, n_banners)):
        bw, bh = rng.uniform(0.8, 2.5) * px, rng.uniform(0.3, 0.7) * px
        x0 = rng.uniform(0, max(1, w - bw))
        y0 = h - base_h - bh - rng.uniform(0, 0.3) * px
        x0i, y0i, x1i, y1i = int(x0), int(max(0, y0)), int(x0 + bw), int(max(1, y0 + bh))
        wall[y0i:y1i, x0i:x1i] = hsv_to_rgb((rng.uniform(0, 360), rng.uniform(0, 0.3), 0.95))
        for _ in range(int(rng.integers(2, 7))):  # logos and lettering
            lx = rng.uniform(x0i, max(x0i + 1, x1i - 4))
            ly = rng.uniform(y0i, max(y0i + 1, y1i - 3))
            lw_, lh_ = rng.uniform(2, bw / 3), rng.uniform(1, bh / 3)
            color = hsv_to_rgb((rng.uniform(0, 360), rng.uniform(0.3, 1), rng.uniform(0.1, 0.9)))
            wall[int(ly) : int(ly + lh_), int(lx) : int(min(x1i, lx + lw_))] = color
    wall *= normal_shade
    return np.clip(wall, 0, 255).astype(np.uint8)


def build_atlas(
    track: Track, room: Room, visual: dict, distractors: list[Distractor], rng: np.random.Generator
) -> Atlas:
    """Bake every surface of the room and pack them into one image."""
    floor, floor_texel = bake_floor(track, room, visual, distractors, rng)
    az, el = np.radians(visual["light_azimuth"]), np.radians(visual["light_elevation"])
    light = np.array([np.cos(az) * np.cos(el), np.sin(az) * np.cos(el)])
    norm = visual["ambient"] + visual["diffuse"]
    walls = []
    # inward normals: x- wall faces +x, x+ faces -x, y- faces +y, y+ faces -y
    for length, normal in (
        (room.ymax - room.ymin, (1.0, 0.0)),
        (room.ymax - room.ymin, (-1.0, 0.0)),
        (room.xmax - room.xmin, (0.0, 1.0)),
        (room.xmax - room.xmin, (0.0, -1.0)),
    ):
        lit = visual["ambient"] + visual["diffuse"] * max(0.0, float(light @ np.array(normal)))
        walls.append(bake_wall(length, room.height, visual, lit / norm, rng))
    width = max(floor.shape[1], *(wl.shape[1] for wl in walls), CEILING_PATCH)
    height = floor.shape[0] + sum(wl.shape[0] for wl in walls) + CEILING_PATCH
    image = np.zeros((height, width, 3), np.uint8)
    image[: floor.shape[0], : floor.shape[1]] = floor
    row = floor.shape[0]
    origins = []
    for wl in walls:
        image[row : row + wl.shape[0], : wl.shape[1]] = wl
        origins.append((0, row))
        row += wl.shape[0]
    ceiling_rgb = hsv_to_rgb(visual["wall_color"]) * 0.8 * (visual["ambient"] / norm)
    image[row : row + CEILING_PATCH, :CEILING_PATCH] = np.clip(ceiling_rgb, 0, 255)
    return Atlas(
        image=image,
        room=room,
        floor_texel=floor_texel,
        floor_origin=(0, 0),
        wall_texel=WALL_TEXEL,
        wall_origins=tuple(origins),
        ceiling=(CEILING_PATCH / 2, row + CEILING_PATCH / 2),
    )
