"""A DonkeyCar pilot part that drives with an exported sim2real ONNX model.

Needs only numpy and onnxruntime on the car (no torch, no OpenCV: the preprocessing is inside
the graph, see `sim2real.transfer.export`). Copy this file next to the car's ``manage.py`` or
install sim2real, then in ``manage.py`` (DonkeyCar 4.x/5.x, ``drive()``), in place of the
Keras/TFLite pilot::

    from sim2real.transfer.pilot import DonkeyPilot

    pilot = DonkeyPilot("models/pilot.onnx")
    V.add(
        pilot,
        inputs=["cam/image_array"],
        outputs=["pilot/angle", "pilot/throttle"],
        run_condition="run_pilot",
    )

The part's ``run(img_arr)`` takes the camera frame (H, W, 3) uint8 RGB as the camera part
emits it and returns (angle, throttle) in [-1, 1] (-1 = full left). The DriveMode part then
picks user or pilot commands as usual. For a model without a throttle output, give
``throttle=`` a constant (DonkeyCar's ``AI_THROTTLE_MULT`` still applies downstream).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

INPUT_NAME = "image"
STEERING_OUTPUT = "steering"
THROTTLE_OUTPUT = "throttle"
META_SOURCE_SIZE = "sim2real.source_size"


class DonkeyPilot:
    """DonkeyCar part: ``run(img_arr) -> (angle, throttle)`` from an exported ONNX model."""

    def __init__(
        self,
        onnx_path: str | Path,
        *,
        throttle: float | None = None,
        num_threads: int = 1,
    ) -> None:
        """`throttle`: a constant throttle, overriding (or standing in for) the model's.

        `num_threads`: onnxruntime intra-op threads (1 leaves the Pi's other cores to the
        camera and the drive loop).
        """
        import onnxruntime as ort

        path = Path(onnx_path)
        if not path.is_file():
            raise FileNotFoundError(f"pilot model {path} not found")
        options = ort.SessionOptions()
        options.intra_op_num_threads = num_threads
        options.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(
                str(path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ValueError(f"{path}: not a loadable ONNX model: {exc}") from None
        inputs = self.session.get_inputs()
        outputs = [o.name for o in self.session.get_outputs()]
        if [i.name for i in inputs] != [INPUT_NAME] or STEERING_OUTPUT not in outputs:
            raise ValueError(
                f"{path}: not a sim2real pilot export (inputs {[i.name for i in inputs]}, "
                f"outputs {outputs}); make one with `sim2real export`"
            )
        meta = self.session.get_modelmeta().custom_metadata_map
        shape = inputs[0].shape  # ["batch", H, W, 3]
        if META_SOURCE_SIZE in meta:
            self.source_size = tuple(json.loads(meta[META_SOURCE_SIZE]))
        else:
            self.source_size = (int(shape[1]), int(shape[2]))
        if throttle is None and THROTTLE_OUTPUT not in outputs:
            raise ValueError(
                f"{path}: the model predicts no throttle (outputs {outputs}); "
                "pass a constant throttle=..."
            )
        if throttle is not None and not -1.0 <= throttle <= 1.0:
            raise ValueError(f"throttle must be in [-1, 1], got {throttle}")
        self.constant_throttle = throttle
        self.path = path
        self._outputs = [STEERING_OUTPUT] + ([THROTTLE_OUTPUT] if throttle is None else [])

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
                f"camera frame is {frame.shape}; {self.path.name} was exported for "
                f"{self.source_size[0]}x{self.source_size[1]} RGB frames "
                "(set IMAGE_H/IMAGE_W in myconfig.py or re-export with --source-size)"
            )
        if frame.dtype != np.uint8:
            frame = np.clip(frame, 0, 255).astype(np.uint8)
        results = self.session.run(self._outputs, {INPUT_NAME: frame[None]})
        angle = float(results[0][0])
        throttle = (
            float(results[1][0]) if self.constant_throttle is None else self.constant_throttle
        )
        if not (math.isfinite(angle) and math.isfinite(throttle)):
            return 0.0, 0.0
        return float(np.clip(angle, -1.0, 1.0)), float(np.clip(throttle, -1.0, 1.0))

    def run_threaded(self, img_arr: np.ndarray | None) -> tuple[float, float]:
        """Same as `run` (inference is quick; DonkeyCar calls this for threaded parts)."""
        return self.run(img_arr)

    def update(self) -> None:
        """Threaded parts' background loop: nothing to do, inference happens in `run`."""

    def shutdown(self) -> None:
        """Release the onnxruntime session (DonkeyCar calls this when the vehicle stops)."""
        self.session = None
