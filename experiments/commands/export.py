"""`sim2real export`: a checkpoint as an ONNX file the car runs (see sim2real.transfer.pilot)."""

from __future__ import annotations

import argparse
from pathlib import Path


def _check_frames(paths: list[str] | None, source_size: tuple[int, int], n: int):
    """Real frames for the parity check: from --check-data, else the shipped sample tub."""
    from sim2real.transfer.datasets import open_records
    from sim2real.transfer.export import load_frames
    from sim2real.transfer.sample_data import sample_path

    if paths:
        records = open_records(paths).records
    else:
        if tuple(source_size) != (120, 160):
            return None  # the sample is 120x160; nothing to check other sizes against
        records = open_records([sample_path()]).records
    step = max(1, len(records) // n)
    frames = load_frames([r.image_path for r in records[::step][:n]])
    if frames.shape[1:3] != tuple(source_size):
        raise ValueError(
            f"--check-data frames are {frames.shape[2]}x{frames.shape[1]}, but --source-size "
            f"is {source_size[1]}x{source_size[0]} (give --source-size H W of the car's camera)"
        )
    return frames


def _check_output(onnx: Path, force: bool) -> None:
    """Refuse an --onnx that is a folder, or an existing file unless --force."""
    if onnx.is_dir():
        raise ValueError(f"--onnx {onnx} is a folder; give a file path, e.g. {onnx / 'pilot.onnx'}")
    if onnx.exists() and not force:
        raise ValueError(f"--onnx {onnx} exists; pass --force to replace it, or give another file")


def handler(args: argparse.Namespace) -> int:
    from sim2real.agents.checkpoint import read_card
    from sim2real.experiments.commands.evaluate import mirror_value
    from sim2real.transfer.export import DEFAULT_SOURCE_SIZE, export_onnx

    card = read_card(args.checkpoint)
    if args.source_size is None:
        source_size = card.source_size or DEFAULT_SOURCE_SIZE
    else:
        source_size = (args.source_size[0], args.source_size[1])
    frames = _check_frames(args.check_data, source_size, args.check_frames)
    _check_output(args.onnx, args.force)
    result = export_onnx(
        args.checkpoint,
        args.onnx,
        source_size=source_size,
        check_frames=frames,
        dynamo=not args.torchscript,
        mirror_average=mirror_value(args.mirror_average),
    )
    print(
        f"wrote {result.onnx_path}: input image uint8 (N, {source_size[0]}, {source_size[1]}, 3) "
        f"RGB, outputs {', '.join(result.output_names)}"
    )
    if card.members:
        print(f"ensemble: one graph runs its {len(card.members)} members and averages them")
    if "previous_image" in result.input_names:
        print(
            "temporal: also input previous_image uint8, the camera frame of an earlier step "
            "(same shape as image); DonkeyPilot keeps the frames between calls"
        )
    elif len(result.input_names) > 1:
        print(
            "temporal: also input previous_action float32 (N, 2) [steering, throttle] the car "
            "applied last frame; DonkeyPilot keeps it between calls"
        )
    if result.max_abs_diff is not None:
        print(
            f"parity: onnxruntime vs torch max |diff| {result.max_abs_diff:.2e} "
            f"on {result.n_check_frames} real frames"
        )
    else:
        print("parity: not checked (no frames of this size; pass --check-data)")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export",
        help="export a checkpoint to ONNX for the car",
        description="Write an ONNX model that takes raw camera frames (uint8 RGB, dynamic "
        "batch) and does crop/resize/normalisation inside the graph; outputs steering, "
        "throttle, ... Checked against torch on real frames before it is written. Drive "
        "it with sim2real.transfer.pilot.DonkeyPilot in the car's manage.py.",
    )
    parser.add_argument(
        "--checkpoint",
        required=True,
        type=Path,
        help="checkpoint folder, or a shipped name (sim2real models)",
    )
    parser.add_argument("--onnx", required=True, type=Path, help="output .onnx file")
    parser.add_argument(
        "--source-size",
        nargs=2,
        type=int,
        metavar=("H", "W"),
        help="camera frame height and width (default: the frame size the network was "
        "trained on, from its card; else 120 160, DonkeyCar's)",
    )
    parser.add_argument(
        "--check-data",
        nargs="+",
        metavar="REAL",
        help="tub(s) whose frames check parity (default: the shipped real sample)",
    )
    parser.add_argument("--check-frames", type=int, default=32, help="frames checked (32)")
    parser.add_argument("--force", action="store_true", help="replace an existing --onnx file")
    parser.add_argument(
        "--torchscript", action="store_true", help="use torch's older TorchScript exporter"
    )
    from sim2real.experiments.commands.evaluate import add_mirror_option

    add_mirror_option(parser, "export")
    parser.set_defaults(func=handler)
