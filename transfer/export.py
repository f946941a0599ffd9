"""Export a checkpoint to ONNX for the car: raw camera frames in, named driving commands out.

The graph takes what the DonkeyCar camera part gives, ``image`` uint8 (N, H_src, W_src, 3) RGB
with a dynamic batch, and does the preprocessing itself (crop rows, resize, /255, normalise)
before the network, so the car needs neither OpenCV nor this package. Each network output is
a separate graph output of shape (N,): ``user/angle`` -> ``steering``, ``user/throttle`` ->
``throttle``, any other label with ``/`` replaced by ``_`` (``sim/cte`` -> ``sim_cte``).

The resize inside the graph is the *same linear operator* as ``cv2.resize(..., INTER_AREA)``
in `Preprocessing.apply`: OpenCV's area and bilinear resizes are separable, so
``out = round(R_y @ crop @ R_x^T)`` where the (H_out, H_in) and (W_out, W_in) matrices are read
off OpenCV itself by resizing unit images once at export time (`resize_matrices`). The matmuls
run in float64 and are rounded the way OpenCV rounds uint8 output (half up on its integer-factor
fast path, half to even otherwise), so the network sees the pixels it was trained on. Measured
with `resize_mismatch` on 100 frames of the shipped usi-track-a sample (120x160): the default
crop 40 + resize 80x160 -> 64x128, an integer factor (120x160 -> 60x80), a non-integer
downscale (90x160 -> 45x100) and a crop without resize all give exactly the pixels of
`Preprocessing.apply` (0 values differ). Upscaling (80x160 -> 66x200, where OpenCV's INTER_AREA
falls back to fixed-point bilinear) is not bit-exact: 9% of values differ, by 1 grey level.

A temporal network (``model.temporal.previous_action``) has a second input,
``previous_action`` float32 (N, 2) [steering, throttle]: the action the car applied at the
previous frame, (0, 0) at the first; the pilot part keeps it between calls (`DonkeyPilot`).
A frame-stacking one (``model.temporal.previous_frame_gap`` k) has ``previous_image`` uint8
(N, H_src, W_src, 3) instead: the camera frame k steps back (the current one for a run's first
k frames), preprocessed in the graph like ``image``; k is in the metadata.

``model.json`` (the model card), the source frame size and the output names are stored in
the ONNX file's metadata_props.
"""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn

from sim2real.agents.checkpoint import ModelCard, override_mirror_average
from sim2real.agents.ensemble import Predictor, load_predictor
from sim2real.agents.preprocessing import Preprocessing
from sim2real.common.io import atomic_write_bytes
from sim2real.transfer.pilot import (  # the names the car's pilot part reads
    INPUT_NAME,
    META_FRAME_GAP,
    META_SOURCE_SIZE,
    PREVIOUS_ACTION_NAME,
    PREVIOUS_IMAGE_NAME,
    STEERING_OUTPUT,
    THROTTLE_OUTPUT,
)

log = logging.getLogger(__name__)

OUTPUT_ALIASES = {"user/angle": STEERING_OUTPUT, "user/throttle": THROTTLE_OUTPUT}
"""ONNX output names of the DonkeyCar labels; other labels get `/` replaced by `_`."""
META_CARD = "sim2real.model_card"
META_OUTPUTS = "sim2real.outputs"
DEFAULT_SOURCE_SIZE = (120, 160)
"""(height, width) of the DonkeyCar camera frames (Raspberry Pi camera at 160x120)"""
PARITY_TOLERANCE = 1e-4


def onnx_output_name(label: str) -> str:
    """The graph output name of label `label` ("user/angle" -> "steering")."""
    return OUTPUT_ALIASES.get(label, label.replace("/", "_"))


def _axis_operator(
    axis: int, source: tuple[int, int], target: tuple[int, int], interpolation: int
) -> np.ndarray:
    """(target[axis], source[axis]) float64 matrix of OpenCV's resize along `axis`.

    Resizes a unit image (one source row, or column, of ones) with the full source and
    target sizes, so OpenCV takes the same code path (area vs its bilinear fallback) as
    for real frames; the other axis's operator has rows summing to 1 and drops out.
    """
    n_in = source[axis]
    matrix = np.empty((target[axis], n_in), np.float64)
    for j in range(n_in):
        unit = np.zeros(source, np.float32)
        if axis == 0:
            unit[j, :] = 1.0
        else:
            unit[:, j] = 1.0
        out = cv2.resize(unit, (target[1], target[0]), interpolation=interpolation)
        matrix[:, j] = out[:, 0] if axis == 0 else out[0, :]
    return matrix


def resize_matrices(
    preprocessing: Preprocessing, source_size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """(R_y (H, H_crop), R_x (W, W_src)) float64 so that resize(crop) = R_y @ crop @ R_x.T."""
    preprocessing.check_source(source_size[0])
    crop = (source_size[0] - preprocessing.crop_top - preprocessing.crop_bottom, source_size[1])
    target = (preprocessing.height, preprocessing.width)
    if crop == target:
        return np.eye(crop[0]), np.eye(crop[1])
    return (
        _axis_operator(0, crop, target, cv2.INTER_AREA),
        _axis_operator(1, crop, target, cv2.INTER_AREA),
    )


def _rounds_half_up(preprocessing: Preprocessing, source_size: tuple[int, int]) -> bool:
    """True where OpenCV takes its integer-factor area fast path (rounds .5 up)."""
    crop_h = source_size[0] - preprocessing.crop_top - preprocessing.crop_bottom
    return (
        crop_h % preprocessing.height == 0
        and source_size[1] % preprocessing.width == 0
        and (crop_h, source_size[1]) != (preprocessing.height, preprocessing.width)
    )


class FramePreprocess(nn.Module):
    """uint8 (N, H_src, W_src, 3) RGB -> float32 (N, 3, H, W) in [0, 1], in the graph.

    Crop rows, resize with OpenCV's operator (see the module doc), round to uint8 levels the
    way OpenCV does, /255: the network's input exactly as `Preprocessing.apply` makes it.
    """

    def __init__(self, preprocessing: Preprocessing, source_size: tuple[int, int]) -> None:
        super().__init__()
        self.source_size = (int(source_size[0]), int(source_size[1]))
        self.crop_top = preprocessing.crop_top
        self.crop_end = self.source_size[0] - preprocessing.crop_bottom
        ry, rx = resize_matrices(preprocessing, self.source_size)
        self.register_buffer("resize_y", torch.from_numpy(ry))
        self.register_buffer("resize_xt", torch.from_numpy(np.ascontiguousarray(rx.T)))
        self.half_up = _rounds_half_up(preprocessing, self.source_size)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        x = frames[:, self.crop_top : self.crop_end].permute(0, 3, 1, 2).to(torch.float64)
        x = torch.matmul(torch.matmul(self.resize_y, x), self.resize_xt)
        x = torch.floor(x + 0.5) if self.half_up else torch.round(x)
        return (x.clamp(0.0, 255.0) / 255.0).to(torch.float32)


class CarInputModel(nn.Module):
    """Raw frames uint8 (N, H_src, W_src, 3) RGB (and, for a temporal network, the previous
    action (N, 2) float32, or the raw frames k steps back) -> one (N,) float32 tensor per
    output.

    `FramePreprocess` then the network (a `DrivingNet`, which normalises with the card's
    mean/std, or an `EnsembleNet` of them).
    """

    def __init__(self, model: Predictor, source_size: tuple[int, int]) -> None:
        super().__init__()
        self.preprocess = FramePreprocess(model.spec.preprocessing, source_size)
        self.source_size = self.preprocess.source_size
        self.model = model.eval()
        self.output_names = [onnx_output_name(name) for name in model.spec.outputs]
        self.frame_gap = model.spec.temporal.previous_frame_gap
        extra = [PREVIOUS_ACTION_NAME] if model.context_names else []
        self.input_names = [INPUT_NAME, *extra, *([PREVIOUS_IMAGE_NAME] if self.frame_gap else [])]

    def forward(
        self, frames: torch.Tensor, extra: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, ...]:
        """`extra`: the previous action, or the earlier raw frames (see the class doc)."""
        x = self.preprocess(frames)
        if self.frame_gap:
            x, extra = torch.cat([x, self.preprocess(extra)], dim=1), None
        out = self.model(x, extra)
        return tuple(out[:, i] for i in range(out.shape[1]))


def rollout_context(wrapper: CarInputModel, frames: np.ndarray) -> np.ndarray:
    """The previous action (N, 2) float32 a pilot would feed over consecutive `frames`
    (N, H, W, 3) uint8: the fallback (0, 0) at the first, then the clipped [steering, throttle]
    torch predicts for the frame before, fed its own previous action (`predict_rollout` on the
    frames as the graph preprocesses them; ValueError for a network without both outputs)."""
    from sim2real.agents.model import STEERING, THROTTLE, predict_rollout

    with torch.no_grad():  # the graph's input, back on its uint8 levels
        images = torch.round(wrapper.preprocess(torch.from_numpy(frames)) * 255.0).to(torch.uint8)
    outputs = predict_rollout(wrapper.model, images, np.arange(len(frames)) == 0)
    names = wrapper.model.spec.outputs
    actions = outputs[:, [names.index(STEERING), names.index(THROTTLE)]]
    context = np.zeros((len(frames), 2), np.float32)
    context[1:] = np.clip(actions[:-1], -1.0, 1.0)
    return context


def earlier_frames(frames: np.ndarray, gap: int) -> np.ndarray:
    """The frames (N, H, W, 3) a pilot feeds as ``previous_image`` over consecutive `frames`:
    frame i - `gap`, or frame i itself for the first `gap`."""
    index = np.arange(len(frames))
    return frames[np.where(index >= gap, index - gap, index)]


def resize_mismatch(preprocessing: Preprocessing, frames: np.ndarray) -> dict[str, int]:
    """How the in-graph resize differs from `Preprocessing.apply` on frames (N, H, W, 3) uint8.

    Returns max_abs (grey levels), n_diff (pixel values that differ) and n_values.
    """
    frames = np.ascontiguousarray(frames, dtype=np.uint8)
    with torch.no_grad():
        ours = FramePreprocess(preprocessing, frames.shape[1:3])(torch.from_numpy(frames))
    ours = np.rint(ours.numpy() * 255.0).astype(np.int16)
    ref = np.stack([preprocessing.apply(f).transpose(2, 0, 1) for f in frames]).astype(np.int16)
    diff = np.abs(ours - ref)
    return {"max_abs": int(diff.max()), "n_diff": int((diff > 0).sum()), "n_values": diff.size}


@dataclass
class ExportResult:
    """What `export_onnx` wrote and how closely onnxruntime matches torch."""

    onnx_path: Path
    output_names: list[str]
    source_size: tuple[int, int]
    max_abs_diff: float | None
    """max |onnxruntime - torch| over the check frames and outputs (None: not checked)"""
    n_check_frames: int
    input_names: tuple[str, ...] = (INPUT_NAME,)
    """graph inputs: ``image``, and ``previous_action`` or ``previous_image`` for a temporal
    network"""


def run_onnx(
    session,
    frames: np.ndarray,
    previous_action: np.ndarray | None = None,
    previous_image: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Run an onnxruntime session on uint8 frames (N, H, W, 3) (and a temporal export's
    previous action (N, 2) float32, or a frame-stacking export's earlier frames (N, H, W, 3)
    uint8); outputs by graph name."""
    names = [o.name for o in session.get_outputs()]
    feeds = {INPUT_NAME: frames}
    if previous_action is not None:
        feeds[PREVIOUS_ACTION_NAME] = np.asarray(previous_action, np.float32)
    if previous_image is not None:
        feeds[PREVIOUS_IMAGE_NAME] = np.asarray(previous_image, np.uint8)
    return dict(zip(names, session.run(names, feeds), strict=True))


def _export_proto(wrapper: CarInputModel, example: tuple[torch.Tensor, ...], dynamo: bool):
    import onnx

    if dynamo:
        batch = torch.export.Dim("batch", min=1)
        shapes = {"frames": {0: batch}}
        if len(example) > 1:
            shapes["extra"] = {0: batch}
        program = torch.onnx.export(
            wrapper,
            example,
            input_names=wrapper.input_names,
            output_names=wrapper.output_names,
            dynamic_shapes=shapes,
            dynamo=True,
            verbose=False,
        )
        return program.model_proto
    fd, name = tempfile.mkstemp(suffix=".onnx")
    os.close(fd)
    try:
        torch.onnx.export(
            wrapper,
            example,
            name,
            input_names=wrapper.input_names,
            output_names=wrapper.output_names,
            dynamic_axes={n: {0: "batch"} for n in [*wrapper.input_names, *wrapper.output_names]},
            dynamo=False,
        )
        return onnx.load(name)
    finally:
        os.unlink(name)


def export_model(
    model: Predictor,
    card: ModelCard,
    onnx_path: str | Path,
    *,
    source_size: tuple[int, int] = DEFAULT_SOURCE_SIZE,
    check_frames: np.ndarray | None = None,
    tolerance: float = PARITY_TOLERANCE,
    dynamo: bool = True,
) -> ExportResult:
    """Write `model` as ONNX (atomically) with its card in the metadata; see `export_onnx`."""
    import onnx
    import onnxruntime as ort

    onnx_path = Path(onnx_path)
    card.check_source_size(tuple(source_size), f"export for {source_size[1]}x{source_size[0]}")
    model = model.to("cpu").eval()
    wrapper = CarInputModel(model, source_size).eval()
    frames = None
    if check_frames is not None:
        frames = np.ascontiguousarray(check_frames, dtype=np.uint8)
        if frames.ndim != 4 or tuple(frames.shape[1:]) != (*wrapper.source_size, 3):
            raise ValueError(
                f"check frames must be (N, {wrapper.source_size[0]}, {wrapper.source_size[1]}, 3)"
                f" uint8, got {frames.shape}"
            )
    example: tuple[torch.Tensor, ...] = (
        torch.zeros((2, *wrapper.source_size, 3), dtype=torch.uint8),
    )
    if model.context_names:
        example = (*example, torch.zeros((2, len(model.context_names)), dtype=torch.float32))
    if wrapper.frame_gap:
        example = (*example, example[0].clone())
    with torch.no_grad():
        proto = _export_proto(wrapper, example, dynamo)
    outputs = {onnx_output_name(n): n for n in model.spec.outputs}
    meta = {
        META_CARD: card.model_dump_json(),
        META_SOURCE_SIZE: json.dumps(list(wrapper.source_size)),
        META_OUTPUTS: json.dumps(outputs),
    }
    if wrapper.frame_gap:
        meta[META_FRAME_GAP] = str(wrapper.frame_gap)
    del proto.metadata_props[:]
    for key, value in meta.items():
        proto.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(proto)
    data = proto.SerializeToString()

    max_diff: float | None = None
    n_check = 0
    if frames is not None:
        session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
        context = rollout_context(wrapper, frames) if model.context_names else None
        earlier = earlier_frames(frames, wrapper.frame_gap) if wrapper.frame_gap else None
        got = run_onnx(session, frames, context, earlier)
        extra = context if earlier is None else earlier
        with torch.no_grad():
            ref = wrapper(
                torch.from_numpy(frames), None if extra is None else torch.from_numpy(extra)
            )
        max_diff = max(
            float(np.max(np.abs(got[name] - r.numpy())))
            for name, r in zip(wrapper.output_names, ref, strict=True)
        )
        n_check = len(frames)
        if not math.isfinite(max_diff) or max_diff > tolerance:
            raise ValueError(
                f"ONNX parity check failed: onnxruntime differs from torch by {max_diff:.3g} "
                f"(> {tolerance:g}) on {n_check} frames; not writing {onnx_path}"
            )
    atomic_write_bytes(onnx_path, data)
    return ExportResult(
        onnx_path,
        wrapper.output_names,
        wrapper.source_size,
        max_diff,
        n_check,
        tuple(wrapper.input_names),
    )


def export_onnx(
    checkpoint_dir: str | Path,
    onnx_path: str | Path,
    *,
    source_size: tuple[int, int] = DEFAULT_SOURCE_SIZE,
    check_frames: np.ndarray | None = None,
    tolerance: float = PARITY_TOLERANCE,
    dynamo: bool = True,
    mirror_average: bool | None = None,
) -> ExportResult:
    """Export checkpoint `checkpoint_dir` to `onnx_path` for frames of `source_size` (H, W),
    which must be the size the network was trained on where its card records one.

    With the card's (or, given, `mirror_average`'s) `ModelSpec.mirror_average` on, the graph
    runs the network on the frame and on its mirror image and averages (steering negated
    back): the car needs nothing else. The card in the metadata says which.

    With `check_frames` (N, H, W, 3) uint8, onnxruntime's outputs are compared with the torch
    wrapper's and the export fails (nothing written) if they differ by more than `tolerance`;
    a temporal network is checked on them as a sequence (`rollout_context`, `earlier_frames`).
    `dynamo`: torch's ``torch.export``-based exporter (default); False uses the older
    TorchScript exporter (faster to run, deprecated upstream).
    """
    model, card = load_predictor(checkpoint_dir)  # one network or an ensemble (one graph)
    if mirror_average is not None:
        override_mirror_average(model, mirror_average, checkpoint_dir)
        card = card.model_copy(update={"spec": model.spec.model_copy()})
    return export_model(
        model,
        card,
        onnx_path,
        source_size=source_size,
        check_frames=check_frames,
        tolerance=tolerance,
        dynamo=dynamo,
    )


def read_metadata(onnx_path: str | Path) -> dict[str, object]:
    """The sim2real metadata of an exported file: card (dict), source_size, outputs."""
    import onnx

    proto = onnx.load(str(onnx_path), load_external_data=False)
    props = {p.key: p.value for p in proto.metadata_props}
    missing = [k for k in (META_CARD, META_SOURCE_SIZE, META_OUTPUTS) if k not in props]
    if missing:
        raise ValueError(f"{onnx_path}: not a sim2real export (metadata {missing} missing)")
    return {
        "card": json.loads(props[META_CARD]),
        "source_size": tuple(json.loads(props[META_SOURCE_SIZE])),
        "outputs": json.loads(props[META_OUTPUTS]),
    }


def load_frames(paths: Sequence[str | Path]) -> np.ndarray:
    """Decode image files into (N, H, W, 3) uint8 RGB (all must share one size)."""
    from sim2real.transfer.records import read_image_rgb

    frames = []
    for path in paths:
        image = read_image_rgb(path)
        if image is None:
            raise ValueError(f"{path}: image missing or not decodable")
        frames.append(image)
    if not frames:
        raise ValueError("no frames given")
    shapes = {f.shape for f in frames}
    if len(shapes) > 1:
        raise ValueError(f"frames have different sizes: {sorted(shapes)}")
    return np.stack(frames)
