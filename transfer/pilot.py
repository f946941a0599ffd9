"""A DonkeyCar pilot part that drives with an exported sim2real ONNX model.

Self-contained: this one file needs only numpy and onnxruntime >= 1.18 (the export is ONNX
IR version 10, opset 20, which older onnxruntime cannot read) and no sim2real install, no
torch, no OpenCV: the crop/resize/normalisation is inside the graph (`sim2real export`).

On the car (DonkeyCar 5.4, Python >= 3.12)::

    pip install "onnxruntime>=1.18"
    cp transfer/pilot.py ~/mycar/sim2real_pilot.py   # this file, next to manage.py
    cp pilot.onnx ~/mycar/models/pilot.onnx          # from `sim2real export --onnx pilot.onnx`

(``transfer/pilot.py`` of a sim2real checkout; where sim2real is installed, ``python -c
"import sim2real.transfer.pilot as m; print(m.__file__)"`` prints its path.)

In ``manage.py``, ``drive()``: add the part *unconditionally*, after the ``if model_path:``
block (at that ``if``'s indentation, not inside it: that block only runs for Keras/TFLite/
PyTorch model files given with ``--model``) and before ``DriveMode`` is added (parts run in
the order they are added)::

    from sim2real_pilot import DonkeyPilot

    pilot = DonkeyPilot("models/pilot.onnx", image_size=(cfg.IMAGE_H, cfg.IMAGE_W))
    V.add(
        pilot,
        inputs=["cam/image_array"],
        outputs=["pilot/angle", "pilot/throttle"],
        run_condition="run_pilot",
    )

Start the car *without* ``--model`` (``python manage.py drive``) and switch the web UI or
joystick to a pilot mode. ``image_size`` makes a camera whose frame size differs from the
export's fail at once, when the part is built, not on the first autopilot frame.

Throttle: set ``AI_THROTTLE_MULT = 0.7`` in ``myconfig.py`` to start with. DonkeyCar's
``DriveMode`` multiplies the pilot's throttle by it. In the simulator, the closed-loop recipe
network lapped 91% of held-out tracks at 0.7, against 87% at 1.0 (full speed).

The part's ``run(img_arr)`` takes the camera frame (H, W, 3) uint8 RGB as the camera part
emits it and returns (angle, throttle) in [-1, 1] (-1 = full left). For a model without a
throttle output, give ``throttle=`` a constant. ``load(path)`` swaps in another export (what
DonkeyCar's model reload calls). If sim2real is installed on the car, ``from
sim2real.transfer.pilot import DonkeyPilot`` is the same class.

A mirror-averaged export (``model.mirror_average``, ``sim2real export --mirror-average on``)
runs the network on the frame and on its left-right mirror inside the graph and averages
(steering negated back): nothing changes here but the cost, about 2x (1.9 against 1.1 ms of
one x86 core per frame for the shipped network).

A temporal export (a network trained with ``model.temporal.previous_action``) also takes the
action the car applied at the previous frame. The part keeps it between calls: what it
returned last, its throttle times ``throttle_mult`` (give it ``cfg.AI_THROTTLE_MULT``: the
drive loop applies that after this part). It starts from (0, 0), a car at rest, and goes
back to it after ``reset()``, a new model, a non-finite output, or a pause of more than
``max_pause_s`` between calls (the pilot was switched off and a person drove).

A frame-stacking export (``model.temporal.previous_frame_gap`` k) takes the camera frame of k
calls back as ``previous_image``: the part keeps the last k frames, and feeds the current
frame itself until it has k of them (after load, ``reset()``, a non-finite output or a pause
of more than ``max_pause_s``), as in training.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections import deque
from pathlib import Path

import numpy as np

INPUT_NAME = "image"
PREVIOUS_ACTION_NAME = "previous_action"
"""a temporal export's second input: float32 (N, 2) [steering, throttle] applied last frame"""
PREVIOUS_IMAGE_NAME = "previous_image"
"""a frame-stacking export's second input: uint8 (N, H, W, 3), the frame k calls back"""
META_FRAME_GAP = "sim2real.previous_frame_gap"
"""metadata of a frame-stacking export: k, how many frames back `PREVIOUS_IMAGE_NAME` is"""
STEERING_OUTPUT = "steering"
THROTTLE_OUTPUT = "throttle"
META_SOURCE_SIZE = "sim2real.source_size"
MIN_ONNXRUNTIME = (1, 18)
"""onnxruntime 1.18 is the first that reads ONNX IR version 10 (opset 20), what export writes"""


def _version_tuple(text: str) -> tuple[int, ...]:
    """Version string as a tuple: 1.18.1 -> (1, 18, 1), 1.20.0.dev1 -> (1, 20, 0)."""
    return tuple(int(part) for part in re.findall(r"\d+", text)[:3])


class DonkeyPilot:
    """DonkeyCar part: ``run(img_arr) -> (angle, throttle)`` from an exported ONNX model."""

    def __init__(
        self,
        onnx_path: str | Path,
        *,
        image_size: tuple[int, int] | None = None,
        throttle: float | None = None,
        num_threads: int = 1,
        throttle_mult: float = 1.0,
        max_pause_s: float = 0.5,
    ) -> None:
        """`image_size`: the camera's (height, width) px, e.g. ``(cfg.IMAGE_H, cfg.IMAGE_W)``;
        checked against the export's frame size now (ValueError with both sizes).

        `throttle`: a constant throttle, overriding (or standing in for) the model's.
        `num_threads`: onnxruntime intra-op threads (1 leaves the Pi's other cores to the
        camera and the drive loop). `throttle_mult` and `max_pause_s` (seconds): a temporal
        export's state (see the module doc); a single-frame export ignores them.
        """
        if throttle is not None and not -1.0 <= throttle <= 1.0:
            raise ValueError(f"throttle must be in [-1, 1], got {throttle}")
        if not 0.0 < throttle_mult <= 2.0:
            raise ValueError(f"throttle_mult must be in (0, 2], got {throttle_mult}")
        if not max_pause_s > 0.0:
            raise ValueError(f"max_pause_s must be > 0, got {max_pause_s}")
        self.throttle_mult = float(throttle_mult)
        self.max_pause_s = float(max_pause_s)
        self.temporal = False
        self.previous_action = np.zeros((1, 2), np.float32)
        self.frame_gap = 0
        self.frames: deque[np.ndarray] = deque(maxlen=1)
        """the last `frame_gap` camera frames, oldest first (a frame-stacking export)"""
        self._last_run: float | None = None
        self.image_size = None if image_size is None else (int(image_size[0]), int(image_size[1]))
        self.constant_throttle = throttle
        self.num_threads = num_threads
        self.session = None
        self.load(onnx_path)

    def load(self, model_path: str | Path) -> None:
        """Open export `model_path` (replacing the current one, as DonkeyCar's model reload
        does); checks its inputs, outputs and frame size before anything is replaced."""
        import onnxruntime as ort

        if _version_tuple(ort.__version__) < MIN_ONNXRUNTIME:
            raise RuntimeError(
                f"onnxruntime {ort.__version__} cannot read sim2real exports (ONNX IR 10, "
                'opset 20); pip install "onnxruntime>=1.18"'
            )
        path = Path(model_path)
        if not path.is_file():
            raise FileNotFoundError(f"pilot model {path} not found")
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.num_threads
        options.inter_op_num_threads = 1
        try:
            session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ValueError(f"{path}: not a loadable ONNX model: {exc}") from None
        inputs = session.get_inputs()
        outputs = [o.name for o in session.get_outputs()]
        names = [i.name for i in inputs]
        known = (
            [INPUT_NAME],
            [INPUT_NAME, PREVIOUS_ACTION_NAME],
            [INPUT_NAME, PREVIOUS_IMAGE_NAME],
        )
        if names not in known or (STEERING_OUTPUT not in outputs):
            raise ValueError(
                f"{path}: not a sim2real pilot export (inputs {names}, "
                f"outputs {outputs}); make one with `sim2real export`"
            )
        meta = session.get_modelmeta().custom_metadata_map
        shape = inputs[0].shape  # ["batch", H, W, 3]
        if META_SOURCE_SIZE in meta:
            source_size = tuple(int(v) for v in json.loads(meta[META_SOURCE_SIZE]))
        else:
            source_size = (int(shape[1]), int(shape[2]))
        if self.image_size is not None and self.image_size != source_size:
            raise ValueError(
                f"camera frames are {self.image_size[1]}x{self.image_size[0]} (WxH, IMAGE_W x "
                f"IMAGE_H) but {path.name} was exported for {source_size[1]}x{source_size[0]} "
                f"frames: set IMAGE_W = {source_size[1]}, IMAGE_H = {source_size[0]} in "
                f"myconfig.py, or re-export with `sim2real export --source-size "
                f"{self.image_size[0]} {self.image_size[1]}`"
            )
        if self.constant_throttle is None and THROTTLE_OUTPUT not in outputs:
            raise ValueError(
                f"{path}: the model predicts no throttle (outputs {outputs}); "
                "pass a constant throttle=..."
            )
        self.session = session
        self.source_size = source_size
        self.path = path
        self.temporal = names[-1] == PREVIOUS_ACTION_NAME
        self.frame_gap = _frame_gap(path, meta) if names[-1] == PREVIOUS_IMAGE_NAME else 0
        self.frames = deque(maxlen=max(self.frame_gap, 1))
        self.reset()
        self._outputs = [STEERING_OUTPUT] + (
            [THROTTLE_OUTPUT] if self.constant_throttle is None else []
        )

    def run(self, img_arr: np.ndarray | None) -> tuple[float, float]:
        """Camera frame (H, W, 3) uint8 RGB -> (angle, throttle), each clipped to [-1, 1].

        No frame yet (None, as at start-up) gives (0.0, 0.0); so does a non-finite output.
        """
        if img_arr is None:
            return 0.0, 0.0
        if self.session is None:
            raise RuntimeError("DonkeyPilot.run called after shutdown()")
        frame = np.asarray(img_arr)
        if frame.shape != (*self.source_size, 3):
            raise ValueError(
                f"camera frame is {frame.shape} (H, W, C); {self.path.name} was exported for "
                f"{self.source_size[1]}x{self.source_size[0]} RGB frames, shape "
                f"{(*self.source_size, 3)} (set IMAGE_W/IMAGE_H in myconfig.py, or re-export "
                "with --source-size)"
            )
        if frame.dtype != np.uint8:
            frame = np.clip(frame, 0, 255).astype(np.uint8)
        feeds = {INPUT_NAME: frame[None]}
        if self.temporal or self.frame_gap:
            now = time.monotonic()
            if self._last_run is not None and now - self._last_run > self.max_pause_s:
                self.reset()  # the pilot was off: what it returned last is not what the car did
            self._last_run = now
        if self.temporal:
            feeds[PREVIOUS_ACTION_NAME] = self.previous_action
        if self.frame_gap:  # the frame `frame_gap` calls back; this one until there is one
            earlier = self.frames[0] if len(self.frames) == self.frame_gap else frame
            self.frames.append(frame.copy())  # (the camera may reuse its buffer)
            feeds[PREVIOUS_IMAGE_NAME] = earlier[None]
        results = self.session.run(self._outputs, feeds)
        angle = float(results[0][0])
        throttle = (
            float(results[1][0]) if self.constant_throttle is None else self.constant_throttle
        )
        if not (math.isfinite(angle) and math.isfinite(throttle)):
            self.reset()
            return 0.0, 0.0
        angle, throttle = float(np.clip(angle, -1.0, 1.0)), float(np.clip(throttle, -1.0, 1.0))
        applied = float(np.clip(throttle * self.throttle_mult, -1.0, 1.0))
        self.previous_action = np.array([[angle, applied]], np.float32)
        return angle, throttle

    def reset(self) -> None:
        """Forget the previous action (a temporal export starts again from (0, 0)) and the
        kept frames (a frame-stacking export starts again from the current frame)."""
        self.previous_action = np.zeros((1, 2), np.float32)
        self.frames.clear()
        self._last_run = None

    def run_threaded(self, img_arr: np.ndarray | None) -> tuple[float, float]:
        """Same as `run` (inference is quick; DonkeyCar calls this for threaded parts)."""
        return self.run(img_arr)

    def update(self) -> None:
        """Threaded parts' background loop: nothing to do, inference happens in `run`."""

    def shutdown(self) -> None:
        """Release the onnxruntime session (DonkeyCar calls this when the vehicle stops)."""
        self.session = None


def _frame_gap(path: Path, meta: dict[str, str]) -> int:
    """How many frames back the model's ``previous_image`` input is, from its metadata (a
    positive integer; a model exported before the field was recorded is 1)."""
    text = meta.get(META_FRAME_GAP, "1")
    try:
        gap = int(text)
    except ValueError:
        gap = 0
    if gap < 1:
        raise ValueError(
            f"{path}: metadata {META_FRAME_GAP} = {text!r} is not a positive whole number of "
            "frames; re-export the model with `sim2real export`"
        )
    return gap
