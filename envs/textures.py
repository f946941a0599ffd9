"""Generated textures baked once per episode: the top-down floor (floor, verges, asphalt,
edge lines, centre line, marks, glare, baked shadows) and the room's four walls (paint,
skirting, windows, advertising boards), unfolded like a box net into one atlas so that the
renderer samples every surface with a single `cv2.remap`. Lighting is static per episode, so
shading is baked in too.

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

FLOOR_TEXEL = 0.02  # m per floor texel (coarser for big rooms so the floor stays <= MAX_SIDE)
WALL_TEXEL = 0.03  # m per wall texel, vertically
MAX_SIDE = 1400
SHIFT = 3  # sub-pixel bits for cv2 drawing
CEILING_BAND = 0.4  # m of ceiling colour above the walls (rays above it clamp to it)


def hsv_to_rgb(hsv: tuple[float, float, float]) -> np.ndarray:
    """(hue deg, s, v) -> RGB float32 (3,) in [0, 255]."""
    r, g, b = colorsys.hsv_to_rgb((hsv[0] % 360.0) / 360.0, hsv[1], hsv[2])
    return np.array([r, g, b], dtype=np.float32) * 255.0


def _rgb(hsv: tuple[float, float, float], shade: float = 1.0) -> tuple[float, float, float]:
    """A cv2 drawing colour (RGB floats in [0, 255])."""
    c = np.clip(hsv_to_rgb(hsv) * shade, 0, 255)
    return (float(c[0]), float(c[1]), float(c[2]))


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
    """The room unfolded like a box net into one RGB uint8 image: the floor in the middle
    (texel `floor_texel` m, row 0 at ymax, column 0 at xmin, offset by `wall_px` texels) and
    each wall folded out from its floor edge (`wall_texel` m per texel of height). A world
    point (x, y, z) on the floor or a wall then maps to atlas coordinates
    u = wall_px + (x - xmin) / floor_texel + sx * z / wall_texel and
    v = wall_px + (ymax - y) / floor_texel + sy * z / wall_texel,
    with (sx, sy) = (+1, 0) on the x = xmax wall, (-1, 0) at xmin, (0, -1) at ymax, (0, +1)
    at ymin and (0, 0) on the floor."""

    image: np.ndarray
    room: Room
    floor_texel: float
    wall_texel: float
    wall_px: int


def _to_px(points: np.ndarray, room: Room, texel: float) -> np.ndarray:
    """World (N, 2) m -> fixed-point cv2 pixel coordinates (N, 1, 2) int32."""
    col = (points[:, 0] - room.xmin) / texel
    row = (room.ymax - points[:, 1]) / texel
    return np.round(np.stack([col, row], axis=1) * (1 << SHIFT)).astype(np.int32)[:, None, :]


def _grain(rng: np.random.Generator, shape: tuple[int, int], amount: float) -> np.ndarray:
    """Multiplicative noise (H, W, 3) uint8 around 128 (= x1): blotches plus fine grain."""
    h, w = shape
    coarse = rng.standard_normal((max(2, h // 40), max(2, w // 40)), dtype=np.float32)
    fine = rng.standard_normal((max(2, h // 2), max(2, w // 2)), dtype=np.float32)
    field = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)
    field += cv2.resize(fine, (w, h), interpolation=cv2.INTER_LINEAR)
    field = np.clip(128.0 * (1.0 + 0.5 * amount * field), 0, 255).astype(np.uint8)
    return cv2.merge([field, field, field])


def bake_floor(
    track: Track, room: Room, visual: dict, distractors: list[Distractor], rng: np.random.Generator,
    texel: float = FLOOR_TEXEL,
) -> tuple[np.ndarray, float]:  # fmt: skip
    """Top-down floor texture (H, W, 3) uint8 RGB and its texel size m (at least `texel`)."""
    span = max(room.xmax - room.xmin, room.ymax - room.ymin)
    texel = max(texel, span / MAX_SIDE)
    w = int(np.ceil((room.xmax - room.xmin) / texel))
    h = int(np.ceil((room.ymax - room.ymin) / texel))
    px = 1.0 / texel
    # diffuse light on the horizontal floor, relative to a light straight above
    shade = visual["ambient"] + visual["diffuse"] * np.sin(np.radians(visual["light_elevation"]))
    shade = shade / (visual["ambient"] + visual["diffuse"])
    base = np.empty((h, w, 3), np.uint8)
    base[:] = _rgb(visual["floor_color"], shade)
    _floor_pattern(base, rng, px)

    _paint_track(base, track, room, texel, visual, shade, rng)
    base = cv2.multiply(base, _grain(rng, (h, w), visual["road_grain"] + 0.05), scale=1 / 128)
    _shadows(base, room, texel, distractors, visual)
    _glare(base, room, texel, track, visual, rng)
    return base, texel


def _paint_track(
    base: np.ndarray, track: Track, room: Room, texel: float, visual: dict, shade: float,
    rng: np.random.Generator,
) -> None:  # fmt: skip
    """Paint the episode's track style (randomization.STYLES) onto the floor (in place)."""
    style = visual.get("style", "two_lane")
    px = 1.0 / texel
    closed = _to_px(track.points, room, texel)
    # thick strokes cost per segment: draw the wide bands through a point every ~0.25 m only
    # (the chord error on the tightest bend stays under 8 mm, hidden under the edge lines)
    coarse = closed[:: max(1, int(0.25 / (track.length / len(track.points))))]
    lw = visual["line_width"]
    lw_px = max(1, int(round(lw * px)))
    verge_w = visual["verge_width"]
    if style in ("two_lane", "single_lane") and verge_w > 0.01:
        thick = int(round((track.width + 2 * verge_w) * px))
        cv2.polylines(base, [coarse], True, _rgb(visual["verge_color"], shade), thick,
                      cv2.LINE_AA, SHIFT)  # fmt: skip
        _verge_marks(base, track, room, texel, visual, shade, rng)
    if style in ("two_lane", "single_lane", "walls"):  # tape and centre_line: the bare floor
        band = track.width + (2 * visual.get("board_thickness", 0.0) if style == "walls" else 0)
        cv2.polylines(base, [coarse], True, _rgb(visual["road_color"], shade),
                      int(round(band * px)), cv2.LINE_AA, SHIFT)  # fmt: skip
    if style in ("two_lane", "single_lane", "tape"):
        inset = visual["edge_inset"] if style != "tape" else 0.0
        edge_off = track.width / 2 - inset - lw / 2
        sides = [1, -1]
        if style != "two_lane" and rng.random() < visual.get("one_sided", 0.0):
            sides = [int(rng.choice([1, -1]))]
        edges = [_to_px(track.points + s * edge_off * track.normals, room, texel) for s in sides]
        cv2.polylines(base, edges, True, _rgb(visual["edge_color"], shade), lw_px, cv2.LINE_AA,
                      SHIFT)  # fmt: skip
    if style in ("two_lane", "centre_line"):
        centre = _rgb(visual["centre_color"], shade)
        dash, gap = visual["centre_dash"], visual["centre_gap"]
        if gap < 0.03:  # solid line
            cv2.polylines(base, [closed], True, centre, lw_px, cv2.LINE_AA, SHIFT)
        else:
            cv2.fillPoly(base, _dashes(track, room, texel, lw, dash, gap, rng), centre,
                         cv2.LINE_AA, SHIFT)  # fmt: skip


def _dashes(
    track: Track, room: Room, texel: float, lw: float, dash: float, gap: float,
    rng: np.random.Generator,
) -> list[np.ndarray]:  # fmt: skip
    """Rectangular centre-line dashes (square ends, like painted ones) as cv2 polygons."""
    period = dash + gap
    phase = (track.s + rng.uniform(0, period)) % period
    on = phase < dash
    n = len(on)
    polys = []
    for start in np.flatnonzero(on & ~np.roll(on, 1)):
        stop = start
        while on[(stop + 1) % n] and stop - start < n:
            stop += 1
        idx = np.arange(start, stop + 1) % n
        left = track.points[idx] + track.normals[idx] * lw / 2
        right = track.points[idx] - track.normals[idx] * lw / 2
        polys.append(_to_px(np.vstack([left, right[::-1]]), room, texel))
    return polys


def _floor_pattern(base: np.ndarray, rng: np.random.Generator, px: float) -> None:
    """Tiles, planks or plain: a faint grid on the floor beyond the track (in place)."""
    kind = int(rng.integers(0, 3))
    if kind == 0:
        return
    h, w = base.shape[:2]
    size = rng.uniform(0.3, 1.2) * px
    color = tuple(float(v) for v in base[0, 0] * rng.uniform(0.7, 0.95))
    line = max(1, int(round(rng.uniform(0.005, 0.02) * px)))
    for c in np.arange(rng.uniform(0, size), w, size):
        cv2.line(base, (int(c), 0), (int(c), h), color, line)
    if kind == 2:
        for r in np.arange(rng.uniform(0, size), h, size):
            cv2.line(base, (0, int(r)), (w, int(r)), color, line)


def _verge_marks(
    base: np.ndarray, track: Track, room: Room, texel: float, visual: dict, shade: float,
    rng: np.random.Generator,
) -> None:  # fmt: skip
    """Painted white symbols/patches on the verges (like the real mat's bike-lane signs)."""
    n = int(round(visual["verge_marks"]))
    px = 1.0 / texel
    for _ in range(n):
        i = int(rng.integers(len(track.points)))
        side = rng.choice([-1.0, 1.0])
        off = track.width / 2 + rng.uniform(0.15, 0.9) * visual["verge_width"]
        c = track.points[i] + side * off * track.normals[i]
        cpx = _to_px(c[None], room, texel)[0, 0]
        axes = (rng.uniform(0.05, 0.3) * px, rng.uniform(0.03, 0.15) * px)
        angle = -float(np.degrees(np.arctan2(track.tangents[i, 1], track.tangents[i, 0])))
        color = _rgb((0.0, 0.0, rng.uniform(0.85, 1.0)), shade)
        if rng.random() < 0.5:
            ax = (int(axes[0] * (1 << SHIFT)), int(axes[1] * (1 << SHIFT)))
            cv2.ellipse(base, (int(cpx[0]), int(cpx[1])), ax, angle, 0, 360, color, -1,
                        cv2.LINE_AA, SHIFT)  # fmt: skip
        else:
            centre = (float(cpx[0]) / (1 << SHIFT), float(cpx[1]) / (1 << SHIFT))
            box = cv2.boxPoints((centre, (2 * axes[0], 2 * axes[1]), angle))
            box = np.round(box * (1 << SHIFT)).astype(np.int32)
            cv2.fillConvexPoly(base, box, color, cv2.LINE_AA, SHIFT)


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
        cv2.fillConvexPoly(mask, hull, int(255 * strength), cv2.LINE_AA, SHIFT)
    k = 2 * max(1, int(0.06 / texel)) + 1
    mask = cv2.GaussianBlur(mask, (k, k), 0)
    keep = cv2.merge([255 - mask] * 3)
    base[:] = cv2.multiply(base, keep, scale=1 / 255)


def _glare(
    base: np.ndarray, room: Room, texel: float, track: Track, visual: dict, rng: np.random.Generator
) -> None:
    """Bright specular patches of ceiling lights reflected by the mat (in place)."""
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
    glow = cv2.resize(small * (255 * visual["glare_strength"]), (w, h))
    glow = cv2.merge([np.clip(glow, 0, 255).astype(np.uint8)] * 3)
    base[:] = cv2.add(base, glow)


def bake_wall(
    length_px: int, length_m: float, room_height: float, visual: dict, shade: float,
    rng: np.random.Generator,
) -> np.ndarray:  # fmt: skip
    """One wall, (K, length_px, 3) uint8 RGB: row k is height k * WALL_TEXEL m above the floor
    (row 0 at the floor), columns along the wall at the floor's texel size. Rows above the
    wall's height are ceiling."""
    px_h = 1.0 / WALL_TEXEL  # texels per metre of height
    k_wall = max(2, int(np.ceil(room_height * px_h)))
    k_all = k_wall + int(np.ceil(CEILING_BAND * px_h))
    w = length_px
    wall = np.empty((k_all, w, 3), np.uint8)
    base = hsv_to_rgb(visual["wall_color"]) * shade
    ramp = np.linspace(0.92, 1.05, k_wall, dtype=np.float32)[:, None]
    wall[:k_wall] = np.clip(base[None, None, :] * ramp[:, :, None], 0, 255)
    ceiling = hsv_to_rgb(visual["wall_color"]) * 0.75 * (visual["ambient"] + 0.1)
    wall[k_wall:] = np.clip(ceiling, 0, 255)
    # skirting board at the floor
    wall[: max(1, int(rng.uniform(0.03, 0.12) * px_h))] = np.clip(
        base * rng.uniform(0.4, 0.9), 0, 255
    )
    # windows, doors and panels (sizes in metres; columns use the floor texel, so scale)
    col_per_m = w / max(1e-6, length_m)
    for _ in range(int(rng.integers(0, 4))):
        ww, wh = rng.uniform(0.4, 1.5) * col_per_m, rng.uniform(0.4, 1.0) * px_h
        x0 = rng.uniform(0, max(1, w - ww))
        z0 = rng.uniform(0.3 * k_wall, max(0.3 * k_wall + 1, k_wall - wh))
        tone = rng.uniform(0.35, 1.3)
        patch = wall[int(z0) : int(min(k_wall, z0 + wh)), int(x0) : int(x0 + ww)]
        patch[:] = np.clip(patch * tone, 0, 255)
        for k in range(1, int(rng.integers(1, 8))):  # blinds
            zz = int(z0 + k * wh / 8)
            if zz < k_wall:
                wall[zz, int(x0) : int(x0 + ww)] = np.clip(
                    wall[zz, int(x0) : int(x0 + ww)] * 0.8, 0, 255
                )
    # advertising boards along the bottom (like the track-side banners)
    n_banners = int(round(visual["banners"] / 4 + rng.uniform(-0.5, 0.5)))
    for _ in range(max(0, n_banners)):
        bw, bh = rng.uniform(0.8, 2.5) * col_per_m, rng.uniform(0.3, 0.7) * px_h
        x0 = int(rng.uniform(0, max(1, w - bw)))
        x1 = int(min(w, x0 + bw))
        z0 = int(rng.uniform(0, 0.3) * px_h)
        z1 = int(min(k_wall, z0 + bh))
        wall[z0:z1, x0:x1] = np.clip(
            hsv_to_rgb((rng.uniform(0, 360), rng.uniform(0, 0.3), 0.95)) * shade, 0, 255
        )
        for _ in range(int(rng.integers(2, 7))):  # logos and lettering
            lx = int(rng.uniform(x0, max(x0 + 1, x1 - 2)))
            lz = int(rng.uniform(z0, max(z0 + 1, z1 - 2)))
            lw_, lh_ = (
                int(rng.uniform(1, max(2, (x1 - x0) / 3))),
                int(rng.uniform(1, max(2, (z1 - z0) / 3))),
            )
            color = hsv_to_rgb((rng.uniform(0, 360), rng.uniform(0.3, 1), rng.uniform(0.1, 0.9)))
            wall[lz : min(z1, lz + lh_), lx : min(x1, lx + lw_)] = np.clip(color * shade, 0, 255)
    return cv2.multiply(wall, _grain(rng, wall.shape[:2], 0.05), scale=1 / 128)


def build_atlas(
    track: Track, room: Room, visual: dict, distractors: list[Distractor], rng: np.random.Generator,
    image_width: int = 160,
) -> Atlas:  # fmt: skip
    """Bake the floor and the four walls and unfold them into one image (see `Atlas`).

    Smaller camera images get a coarser floor (a 64 px wide image cannot resolve 2 cm texels,
    and a smaller atlas is faster to sample)."""
    texel = FLOOR_TEXEL * float(np.clip(128.0 / image_width, 1.0, 2.0))
    floor, ft = bake_floor(track, room, visual, distractors, rng, texel)
    fh, fw = floor.shape[:2]
    az, el = np.radians(visual["light_azimuth"]), np.radians(visual["light_elevation"])
    light = np.array([np.cos(az) * np.cos(el), np.sin(az) * np.cos(el)])
    norm = visual["ambient"] + visual["diffuse"]

    def wall(length_px: int, length_m: float, inward: tuple[float, float]) -> np.ndarray:
        lit = visual["ambient"] + visual["diffuse"] * max(0.0, float(light @ np.array(inward)))
        return bake_wall(length_px, length_m, room.height, visual, lit / norm, rng)

    x_len, y_len = room.xmax - room.xmin, room.ymax - room.ymin
    w_xmin = wall(fh, y_len, (1.0, 0.0))  # (K, fh, 3), columns run along rows of the floor
    w_xmax = wall(fh, y_len, (-1.0, 0.0))
    w_ymin = wall(fw, x_len, (0.0, 1.0))
    w_ymax = wall(fw, x_len, (0.0, -1.0))
    k = w_xmin.shape[0]
    image = np.empty((fh + 2 * k, fw + 2 * k, 3), np.uint8)
    image[:] = w_xmin[-1, 0]  # corners: ceiling
    image[k : k + fh, k : k + fw] = floor
    image[k : k + fh, k + fw :] = w_xmax.transpose(1, 0, 2)  # height grows to the right
    image[k : k + fh, :k] = w_xmin.transpose(1, 0, 2)[:, ::-1]  # height grows to the left
    image[k + fh :, k : k + fw] = w_ymin  # height grows downward
    image[:k, k : k + fw] = w_ymax[::-1]  # height grows upward
    return Atlas(image=image, room=room, floor_texel=ft, wall_texel=WALL_TEXEL, wall_px=k)
