"""`sim2real envs preview --out FILE.png [--by-style]`: randomized camera frames beside a
track map, or one row per track style."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("envs", help="the driving simulator (PyBullet track worlds)")
    actions = parser.add_subparsers(dest="envs_command", metavar="ACTION", required=True)
    preview = actions.add_parser(
        "preview", help="contact sheet of randomized camera frames beside a top-down track map"
    )
    preview.add_argument("--out", type=Path, required=True, help="PNG file to write")
    preview.add_argument("--seed", type=int, default=0, help="first episode seed (default 0)")
    preview.add_argument("--n", type=int, default=12, help="number of frames (default 12)")
    preview.add_argument(
        "--strength", type=float, default=1.0, help="randomization strength in [0, 1] (default 1)"
    )
    preview.add_argument(
        "--config", type=Path, help="randomization spec YAML (default: the shipped spec)"
    )
    preview.add_argument(
        "--size", default="120x160", help="camera image HEIGHTxWIDTH (default 120x160)"
    )
    preview.add_argument(
        "--by-style",
        action="store_true",
        help="one row per track style (two_lane, single_lane, tape, centre_line, walls) of "
        "--n frames each",
    )
    preview.set_defaults(func=run_preview)


def run_preview(args: argparse.Namespace) -> int:
    from sim2real.envs.preview import write_preview, write_style_preview

    try:
        height, width = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        raise ValueError(f"--size must look like 120x160, got {args.size!r}") from None
    if args.config is not None and not args.config.is_file():
        raise FileNotFoundError(f"--config: no such file: {args.config}")
    if args.n < 1:
        raise ValueError(f"--n must be >= 1, got {args.n}")
    write = write_style_preview if args.by_style else write_preview
    path = write(
        args.out,
        args.seed,
        args.n,
        strength=args.strength,
        randomization=args.config,
        image_size=(height, width),
    )
    print(f"preview: {path}")
    return 0
