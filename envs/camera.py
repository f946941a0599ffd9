"""The car's camera: a wide barrel-distorted lens, rendered in two cheap passes.

1. Room pass (every step): each output pixel's ray (fixed per episode by the lens) is rotated
   into the world and intersected with the room box (floor, four walls, ceiling); one
   `cv2.remap` samples the baked texture atlas there. This is exact for the flat floor and
   walls and costs a few numpy ops per pixel, instead of rasterising a large textured quad.
2. Distractor boxes: drawn as lit polygons through the lens by `raster.BoxRaster` (default),
   or (mode "pybullet", the slower reference) rendered by PyBullet's TinyRenderer as a pinhole
   image that a remap computed once per episode bends through the same lens, pasted where the
   depth buffer shows a body.

Lens model: a ray at angle theta from the optical axis lands at radius
r = f * ((1 - k) * tan(theta) + k * theta), k = `distortion` (0 pinhole, 1 equidistant fisheye).
Camera frame: x right, y down, z forward.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import pybullet as p

from sim2real.envs.raster import BoxRaster
from sim2real.envs.specular import Highlights
from sim2real.envs.textures import Atlas
from sim2real.envs.world import Distractor

MAX_THETA = np.radians(85.0)  # rays beyond this see nothing new; clamp
PINHOLE_MAX_THETA = np.radians(72.0)  # object pass covers rays up to this angle
# camera axes (x right, y down, z forward) in a level frame (x forward, y left, z up)
CAM_TO_LEVEL = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])


def rotation_matrix(yaw: float, pitch_down: float, roll: float) -> np.ndarray:
    """Camera frame -> world rotation (3, 3) for a camera looking along heading `yaw` rad,
    pitched down by `pitch_down` rad and rolled by `roll` rad (positive = clockwise view)."""
    cr, sr = np.cos(roll), np.sin(roll)
    r_roll = np.array([[1, 0, 0], [0, cr, -sr], [0, sr, cr]])  # about forward axis
    cp, sp = np.cos(pitch_down), np.sin(pitch_down)
    r_pitch = np.array([[cp, 0, sp], [0, 1, 0], [-sp, 0, cp]])  # nose down
    cy, sy = np.cos(yaw), np.sin(yaw)
    r_yaw = np.array([[cy, -sy, 0], [sy, cy, 0], [0, 0, 1]])
    return r_yaw @ r_pitch @ r_roll @ CAM_TO_LEVEL


@dataclass
class Lens:
    """Per-episode lens: output size (H, W), unit rays (3, H*W) float32 in the camera frame,
    and the maps that bend a pinhole render of size `pinhole_size` (H, W) into the output."""

    height: int
    width: int
    rays: np.ndarray
    pinhole_size: tuple[int, int]
    pinhole_vfov_deg: float
    map_x: np.ndarray
    map_y: np.ndarray
    max_theta: float
    focal: float
    distortion: float

    def project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Camera-frame points (..., 3) m (z > 0) -> pixel coordinates u, v (...) float."""
        x, y, z = points[..., 0], points[..., 1], points[..., 2]
        theta = np.arctan2(np.hypot(x, y), z)
        k = self.distortion
        r = self.focal * ((1 - k) * np.tan(theta) + k * theta)
        phi = np.arctan2(y, x)
        return self.width / 2 + r * np.cos(phi), self.height / 2 + r * np.sin(phi)

    @classmethod
    def create(cls, height: int, width: int, hfov_deg: float, distortion: float) -> Lens:
        k = float(distortion)
        half = np.radians(hfov_deg) / 2
        f = (width / 2) / ((1 - k) * np.tan(half) + k * half)
        u, v = np.meshgrid(
            np.arange(width, dtype=np.float64) + 0.5 - width / 2,
            np.arange(height, dtype=np.float64) + 0.5 - height / 2,
        )
        r = np.hypot(u, v) / f
        theta_grid = np.linspace(0, MAX_THETA, 2048)
        r_grid = (1 - k) * np.tan(theta_grid) + k * theta_grid
        theta = np.interp(r, r_grid, theta_grid)
        phi = np.arctan2(v, u)
        st = np.sin(theta)
        rays = np.stack([st * np.cos(phi), st * np.sin(phi), np.cos(theta)]).reshape(3, -1)
        # pinhole render covering rays up to PINHOLE_MAX_THETA, about as many pixels as output
        t = np.tan(np.minimum(theta, PINHOLE_MAX_THETA))
        px, py = t * np.cos(phi), t * np.sin(phi)
        tx, ty = float(np.abs(px).max()), float(np.abs(py).max())
        fp = min((width / 2) / tx, (height / 2) / ty) * 1.2
        pw, ph = int(np.ceil(2 * tx * fp)), int(np.ceil(2 * ty * fp))
        map_x = (px * fp + pw / 2 - 0.5).astype(np.float32)
        map_y = (py * fp + ph / 2 - 0.5).astype(np.float32)
        vfov = float(np.degrees(2 * np.arctan((ph / 2) / fp)))
        return cls(
            height,
            width,
            rays.astype(np.float32),
            (ph, pw),
            vfov,
            map_x,
            map_y,
            float(theta.max()),
            float(f),
            k,
        )


class Renderer:
    """Renders the camera image of one episode's world: the room atlas, then the distractor
    boxes, drawn by `BoxRaster` (mode "raster", the default) or by PyBullet's TinyRenderer from
    the bodies in `client` (mode "pybullet", slower, kept as the reference)."""

    def __init__(
        self,
        lens: Lens,
        atlas: Atlas,
        light: dict,
        boxes: list[Distractor],
        client=None,
        mode: str = "raster",
        mount: np.ndarray | None = None,
        camera_height: float = 0.2,
        highlights: Highlights | None = None,
    ) -> None:
        if mode not in ("raster", "pybullet"):
            raise ValueError(f"renderer mode must be 'raster' or 'pybullet', got {mode!r}")
        if mode == "pybullet" and client is None:
            raise ValueError("renderer mode 'pybullet' needs the BulletClient holding the boxes")
        self.lens = lens
        self.atlas = atlas
        self.light = light
        self.mode = mode
        self.client = client
        self.raster = BoxRaster(boxes, light)
        self.highlights = highlights
        room = atlas.room
        self._lo = np.array([[room.xmin], [room.ymin], [0.0]], np.float32)
        self._hi = np.array([[room.xmax], [room.ymax], [1e4]], np.float32)  # no ceiling plane
        n = lens.height * lens.width
        self._buf = {k: np.empty((3, n), np.float32) for k in ("d", "inv", "a", "b")}
        self._buf.update({k: np.empty(n, np.float32) for k in ("t", "mx", "my", "tmp")})
        self._buf["on"] = np.empty(n, np.float32)
        # a half-resolution atlas for the far rows, where one pixel spans several texels
        self._half = cv2.pyrDown(atlas.image)
        self._split = self._far_rows(mount, camera_height) if mount is not None else 0
        self._out = np.empty((lens.height, lens.width, 3), np.uint8)
        self._proj = p.computeProjectionMatrixFOV(
            lens.pinhole_vfov_deg, lens.pinhole_size[1] / lens.pinhole_size[0], 0.02, 100.0
        )

    def _far_rows(self, mount: np.ndarray, camera_height: float) -> int:
        """Rows [0, split) whose floor footprint (m per pixel, for the level car with this
        camera `mount` rotation and height) exceeds two texels: they sample the half-res atlas
        (a one-level mipmap, so distant dashes do not sparkle)."""
        lens = self.lens
        d = mount @ lens.rays.astype(np.float64)  # (3, N) in the car frame, z up
        down = np.clip(-d[2], 1e-6, None)
        pixel_angle = 1.0 / lens.focal  # rad per pixel near the centre
        footprint = camera_height / down * pixel_angle / down  # stretched along the ground
        per_row = np.median(footprint.reshape(lens.height, lens.width), axis=1)
        far = per_row > 2.0 * self.atlas.floor_texel
        return int(np.flatnonzero(~far)[0]) if (~far).any() else lens.height

    def render(self, position: np.ndarray, rotation: np.ndarray) -> np.ndarray:
        """Image (H, W, 3) uint8 RGB seen from camera `position` (3,) m with camera->world
        `rotation` (3, 3)."""
        image = self._room_pass(position, rotation)
        if self.highlights is not None:
            self.highlights.draw(image, position, rotation, self.lens)
        if self.mode == "raster":
            self.raster.draw(image, position, rotation, self.lens)
        elif self.raster.count:
            boxes = self.raster
            rel = (boxes.box_centres - position) @ rotation  # into the camera frame
            dist = np.linalg.norm(rel, axis=1)
            cos_angle = rel[:, 2] / np.maximum(dist, 1e-6)
            ang_radius = np.arcsin(np.clip(boxes.radii / np.maximum(dist, 1e-6), 0, 1))
            angle = np.arccos(np.clip(cos_angle, -1, 1))
            if np.any(angle - ang_radius < min(self.lens.max_theta, PINHOLE_MAX_THETA)):
                self._object_pass(image, position, rotation)
        return image

    def _room_pass(self, c: np.ndarray, rot: np.ndarray) -> np.ndarray:
        """The room (floor and walls) from camera position `c` (3,) m, rotation `rot` (3, 3):
        ray-box exit points mapped into the box-net atlas, sampled by one remap. Works in
        preallocated float32 buffers: this runs every step."""
        lens, atlas, room, buf = self.lens, self.atlas, self.atlas.room, self._buf
        d, inv, a, b = buf["d"], buf["inv"], buf["a"], buf["b"]
        t, mx, my, tmp = buf["t"], buf["mx"], buf["my"], buf["tmp"]
        on = buf["on"]
        np.matmul(rot.astype(np.float32), lens.rays, out=d)  # (3, N) world ray directions
        c32 = np.asarray(c, np.float32)[:, None]
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            np.reciprocal(d, out=inv)
            # the camera is inside the box: per axis, the exit distance is the positive root
            np.multiply(inv, self._hi - c32, out=a)
            np.multiply(inv, self._lo - c32, out=b)
            np.maximum(a, b, out=a)
        np.min(a, axis=0, out=t)
        np.multiply(d, t, out=b)
        b += c32  # b = exit points (3, N) m
        inv_ft = np.float32(1.0 / atlas.floor_texel)
        inv_wt = np.float32(1.0 / atlas.wall_texel)
        b[2] *= inv_wt  # height above the floor in wall texels
        # u = wall_px + (x - xmin) / ft, plus height on the x walls (outward)
        np.multiply(b[0], inv_ft, out=mx)
        mx += np.float32(atlas.wall_px - room.xmin * inv_ft)
        np.equal(a[0], t, out=on)
        np.copysign(b[2], d[0], out=tmp)
        tmp *= on
        mx += tmp
        # v = wall_px + (ymax - y) / ft, plus height on the y walls (outward)
        np.multiply(b[1], -inv_ft, out=my)
        my += np.float32(atlas.wall_px + room.ymax * inv_ft)
        np.equal(a[1], t, out=on)
        np.copysign(b[2], d[1], out=tmp)
        tmp *= on
        my -= tmp
        shape = (lens.height, lens.width)
        mx, my = mx.reshape(shape), my.reshape(shape)
        out, k = np.empty_like(self._out), self._split
        if k < lens.height:
            cv2.remap(atlas.image, mx[k:], my[k:], cv2.INTER_LINEAR, dst=out[k:],
                      borderMode=cv2.BORDER_REPLICATE)  # fmt: skip
        if k > 0:  # pyrDown: full-res coordinate x lands at x / 2 - 0.25
            hx, hy = mx[:k] * 0.5 - 0.25, my[:k] * 0.5 - 0.25
            cv2.remap(self._half, hx, hy, cv2.INTER_LINEAR, dst=out[:k],
                      borderMode=cv2.BORDER_REPLICATE)  # fmt: skip
        return out

    def _object_pass(self, image: np.ndarray, c: np.ndarray, rot: np.ndarray) -> None:
        lens = self.lens
        forward, down = rot[:, 2], rot[:, 1]
        view = p.computeViewMatrix(c.tolist(), (c + forward).tolist(), (-down).tolist())
        ph, pw = lens.pinhole_size
        light = self.light
        _, _, rgba, depth, _ = self.client.getCameraImage(
            pw,
            ph,
            view,
            self._proj,
            renderer=p.ER_TINY_RENDERER,
            flags=p.ER_NO_SEGMENTATION_MASK,
            shadow=0,
            lightDirection=light["direction"],
            lightAmbientCoeff=light["ambient"],
            lightDiffuseCoeff=light["diffuse"],
            lightSpecularCoeff=0.05,
        )
        rgba = np.asarray(rgba, np.uint8).reshape(ph, pw, 4)
        hit = (np.asarray(depth, np.float32).reshape(ph, pw) < 0.9999).astype(np.uint8)
        hit_out = cv2.remap(hit, lens.map_x, lens.map_y, cv2.INTER_NEAREST)
        if not hit_out.any():
            return
        rgb_out = cv2.remap(rgba[:, :, :3], lens.map_x, lens.map_y, cv2.INTER_LINEAR)
        np.copyto(image, rgb_out, where=hit_out[:, :, None].astype(bool))
