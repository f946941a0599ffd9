"""Domain randomization as data: named (low, high) ranges with units and a nominal value.

A spec is validated on load (low <= nominal <= high, each value inside the physically possible
limits of its field) and sampled once per episode with the env's generator into plain floats.
`strength` in [0, 1] scales every range toward its nominal value: 0 gives the nominal world.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any, ClassVar, Literal, get_args

import numpy as np
from pydantic import Field, ValidationInfo, field_validator, model_validator

from sim2real.common.config import StrictModel, load_config, validate_config

DEFAULT_SPEC_FILE = "default_randomization.yaml"

StyleName = Literal["two_lane", "single_lane", "tape", "centre_line", "walls"]
STYLES: tuple[str, ...] = get_args(StyleName)
"""Track layouts: two_lane (verges, asphalt, edge lines, dashed or solid centre line);
single_lane (asphalt between two edge lines); tape (lines taped on the bare floor, one or both
sides); centre_line (one line on the bare floor to follow); walls (a corridor of the floor
between two low boards, no lines)."""


def _draw(
    rng: np.random.Generator, low: float, high: float, nominal: float, strength: float
) -> float:
    """Uniform in [low, high] shrunk toward `nominal`: strength 0 -> nominal, 1 -> [low, high]."""
    lo = nominal + strength * (low - nominal)
    hi = nominal + strength * (high - nominal)
    return float(rng.uniform(lo, hi)) if hi > lo else float(lo)


class Range(StrictModel):
    """A scalar drawn uniformly from [low, high]; `nominal` is the value at strength 0."""

    low: float
    high: float
    nominal: float
    unit: str = ""

    @model_validator(mode="after")
    def _ordered(self) -> Range:
        if self.low > self.high:
            raise ValueError(f"low {self.low} > high {self.high}")
        if not self.low <= self.nominal <= self.high:
            raise ValueError(f"nominal {self.nominal} outside [low {self.low}, high {self.high}]")
        return self

    def sample(self, rng: np.random.Generator, strength: float) -> float:
        return _draw(rng, self.low, self.high, self.nominal, strength)


class ColorRange(StrictModel):
    """An HSV colour: hue in degrees (may exceed 360, wraps), saturation and value in [0, 1]."""

    low: tuple[float, float, float]
    high: tuple[float, float, float]
    nominal: tuple[float, float, float]
    unit: str = "hsv"

    @model_validator(mode="after")
    def _ordered(self) -> ColorRange:
        for i, name in enumerate(("hue", "saturation", "value")):
            lo, hi, nom = self.low[i], self.high[i], self.nominal[i]
            if lo > hi:
                raise ValueError(f"{name}: low {lo} > high {hi}")
            if not lo <= nom <= hi:
                raise ValueError(f"{name}: nominal {nom} outside [{lo}, {hi}]")
            if i > 0 and not (lo >= 0.0 and hi <= 1.0):
                raise ValueError(f"{name}: must lie in [0, 1], got [{lo}, {hi}]")
        return self

    def sample(self, rng: np.random.Generator, strength: float) -> tuple[float, float, float]:
        h, s, v = (
            _draw(rng, lo, hi, nom, strength)
            for lo, hi, nom in zip(self.low, self.high, self.nominal, strict=True)
        )
        return (h % 360.0, s, v)


class StyleChoice(StrictModel):
    """The track style: `nominal` at strength 0; at strength s, with probability s a style
    drawn by `weights` (relative, need not sum to 1), else the nominal one."""

    nominal: StyleName = "two_lane"
    weights: dict[StyleName, float] = Field(default_factory=lambda: {"two_lane": 1.0})
    unit: str = "style"

    @model_validator(mode="after")
    def _weights(self) -> StyleChoice:
        if any(w < 0 for w in self.weights.values()):
            raise ValueError(f"weights must be >= 0, got {self.weights}")
        if sum(self.weights.values()) <= 0:
            raise ValueError("weights must not all be 0")
        return self

    def sample(self, rng: np.random.Generator, strength: float) -> str:
        names = list(self.weights)
        p = np.array([self.weights[n] for n in names], np.float64)
        pick = str(names[int(rng.choice(len(names), p=p / p.sum()))])
        return pick if rng.random() < strength else self.nominal


class _Group(StrictModel):
    """A group of ranges; LIMITS[field] = (min, max) says what values are physically possible."""

    LIMITS: ClassVar[dict[str, tuple[float, float]]] = {}

    @field_validator("*", mode="after")
    @classmethod
    def _within_limits(cls, value: Any, info: ValidationInfo) -> Any:
        limits = cls.LIMITS.get(info.field_name or "")
        if limits is not None and isinstance(value, Range):
            lo_lim, hi_lim = limits
            if value.low < lo_lim or value.high > hi_lim:
                raise ValueError(
                    f"range [{value.low}, {value.high}] {value.unit} is impossible, "
                    f"allowed [{lo_lim}, {hi_lim}]"
                )
        return value

    def sample(self, rng: np.random.Generator, strength: float) -> dict[str, Any]:
        return {name: getattr(self, name).sample(rng, strength) for name in type(self).model_fields}


class TrackRanges(_Group):
    LIMITS: ClassVar[dict[str, tuple[float, float]]] = {
        "length": (6.0, 200.0),
        "road_width": (0.3, 3.0),
        "curviness": (0.0, 1.0),
        "control_points": (4, 40),
    }
    length: Range
    road_width: Range
    curviness: Range
    control_points: Range


class VisualRanges(_Group):
    LIMITS: ClassVar[dict[str, tuple[float, float]]] = {
        "road_grain": (0.0, 1.0),
        "line_width": (0.005, 0.2),
        "edge_inset": (0.0, 0.3),
        "verge_width": (0.0, 5.0),
        "centre_dash": (0.01, 2.0),
        "centre_gap": (0.0, 2.0),
        "verge_marks": (0, 100),
        "glare": (0, 50),
        "glare_strength": (0.0, 1.0),
        "shadow_strength": (0.0, 1.0),
        "light_azimuth": (-360.0, 360.0),
        "light_elevation": (5.0, 90.0),
        "ambient": (0.0, 1.0),
        "diffuse": (0.0, 1.0),
        "distractors": (0, 40),
        "banners": (0, 40),
        "wall_height": (0.1, 10.0),
        "wall_margin": (0.2, 20.0),
        "one_sided": (0.0, 1.0),
        "board_height": (0.02, 1.0),
        "board_thickness": (0.005, 0.2),
        "gloss": (0.0, 1.0),
    }
    style: StyleChoice = Field(default_factory=StyleChoice)
    road_color: ColorRange
    centre_color: ColorRange
    edge_color: ColorRange
    verge_color: ColorRange
    floor_color: ColorRange
    wall_color: ColorRange
    road_grain: Range
    line_width: Range
    edge_inset: Range
    verge_width: Range
    centre_dash: Range
    centre_gap: Range
    verge_marks: Range
    glare: Range
    glare_strength: Range
    shadow_strength: Range
    light_azimuth: Range
    light_elevation: Range
    ambient: Range
    diffuse: Range
    distractors: Range
    banners: Range
    wall_height: Range
    wall_margin: Range
    one_sided: Range = Field(
        default_factory=lambda: Range(low=0.0, high=0.0, nominal=0.0, unit="probability")
    )
    """tape and single_lane styles: probability that only one side's line is there"""
    board_color: ColorRange = Field(
        default_factory=lambda: ColorRange(
            low=(0.0, 0.0, 0.85), high=(0.0, 0.0, 0.85), nominal=(0.0, 0.0, 0.85)
        )
    )
    """walls style: colour of the boards along both sides of the corridor"""
    board_height: Range = Field(
        default_factory=lambda: Range(low=0.2, high=0.2, nominal=0.2, unit="m")
    )
    board_thickness: Range = Field(
        default_factory=lambda: Range(low=0.02, high=0.02, nominal=0.02, unit="m")
    )
    gloss: Range = Field(default_factory=lambda: Range(low=0.0, high=0.0, nominal=0.0, unit="1"))
    """specular highlights of the `glare` ceiling lights on the floor, moving with the camera
    (0 = matte floor, 1 = lights mirrored at full brightness)"""


class CameraRanges(_Group):
    LIMITS: ClassVar[dict[str, tuple[float, float]]] = {
        "height": (0.03, 1.0),
        "pitch": (-10.0, 60.0),
        "yaw": (-30.0, 30.0),
        "roll": (-30.0, 30.0),
        "shake": (0.0, 10.0),
        "hfov": (30.0, 170.0),
        "distortion": (0.0, 1.0),
        "mount_offset": (-0.3, 0.5),
    }
    height: Range
    pitch: Range
    yaw: Range
    roll: Range
    shake: Range
    hfov: Range
    distortion: Range
    mount_offset: Range


class ImageRanges(_Group):
    LIMITS: ClassVar[dict[str, tuple[float, float]]] = {
        "noise": (0.0, 64.0),
        "blur": (0.0, 5.0),
        "motion_blur": (0.0, 20.0),
        "brightness": (0.1, 3.0),
        "contrast": (0.1, 3.0),
        "gamma": (0.2, 5.0),
        "hue": (-180.0, 180.0),
        "saturation": (0.0, 3.0),
        "jpeg_quality": (5.0, 100.0),
        "vignetting": (0.0, 1.0),
        "haze": (0.0, 1.0),
        "sharpen": (0.0, 4.0),
    }
    noise: Range
    blur: Range
    motion_blur: Range
    brightness: Range
    contrast: Range
    gamma: Range
    hue: Range
    saturation: Range
    jpeg_quality: Range
    vignetting: Range
    haze: Range
    haze_color: ColorRange
    sharpen: Range = Field(
        default_factory=lambda: Range(low=0.0, high=0.0, nominal=0.0, unit="unsharp amount")
    )
    """the camera's sharpening, an unsharp mask x + a (x - blur(x)) of radius 1 px: 0 = none.
    Last in the group and 0-wide in the shipped spec, so specs without it draw as before."""


class DynamicsRanges(_Group):
    LIMITS: ClassVar[dict[str, tuple[float, float]]] = {
        "friction": (0.05, 5.0),
        "mass_scale": (0.1, 10.0),
        "steering_gain": (0.1, 3.0),
        "steering_trim": (-0.5, 0.5),
        "motor_force": (0.5, 200.0),
        "top_speed": (0.2, 15.0),
        "latency": (0, 10),
        "action_noise": (0.0, 1.0),
    }
    friction: Range
    mass_scale: Range
    steering_gain: Range
    steering_trim: Range
    motor_force: Range
    top_speed: Range
    latency: Range
    action_noise: Range


class RandomizationSpec(StrictModel):
    """The whole randomization spec; `sample` gives one episode's plain parameters."""

    track: TrackRanges
    visual: VisualRanges
    camera: CameraRanges
    image: ImageRanges
    dynamics: DynamicsRanges

    @classmethod
    def from_yaml(cls, path: str | Path) -> RandomizationSpec:
        """Load and validate a spec; errors name the file and the field."""
        return load_config(cls, path)

    @classmethod
    def default(cls) -> RandomizationSpec:
        """The spec shipped with the package (nominal values resemble usi-track-a)."""
        with resources.as_file(resources.files("sim2real.envs") / DEFAULT_SPEC_FILE) as path:
            return cls.from_yaml(path)

    def with_style(self, style: str) -> RandomizationSpec:
        """A copy that always draws track style `style` (one of STYLES)."""
        if style not in STYLES:
            raise ValueError(f"unknown track style {style!r}; known: {', '.join(STYLES)}")
        choice = StyleChoice(nominal=style, weights={style: 1.0})  # type: ignore[arg-type]
        visual = self.visual.model_copy(update={"style": choice})
        return self.model_copy(update={"visual": visual})

    def sample(self, rng: np.random.Generator, strength: float = 1.0) -> dict[str, dict[str, Any]]:
        """One draw of every parameter: {group: {name: float or (h, s, v)}}."""
        if not 0.0 <= strength <= 1.0:
            raise ValueError(f"strength must lie in [0, 1], got {strength}")
        return {
            group: getattr(self, group).sample(rng, strength)
            for group in ("track", "visual", "camera", "image", "dynamics")
        }


def resolve_spec(randomization: None | RandomizationSpec | str | Path | dict) -> RandomizationSpec:
    """None -> the default spec; a path -> loaded from YAML; a dict -> validated; a spec as is."""
    if randomization is None:
        return RandomizationSpec.default()
    if isinstance(randomization, RandomizationSpec):
        return randomization
    if isinstance(randomization, dict):
        return validate_config(RandomizationSpec, randomization, source="randomization")
    return RandomizationSpec.from_yaml(randomization)
