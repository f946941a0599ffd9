"""`sim2real fit-sim --real PATH... --out spec.yaml`: a randomization spec centred on the
user's own track, fitted from unlabeled real frames."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    from sim2real.experiments.config_options import add_set_option, add_shortcut

    parser = subparsers.add_parser(
        "fit-sim",
        help="fit the simulator's randomization spec to real frames (no labels needed)",
        description="Estimate the camera pitch and height, road width, track style, colours "
        "and image statistics of real frames; write a RandomizationSpec whose nominal "
        "(strength 0) is the fitted world, with the fitted values and their confidence in its "
        "comments, and a report picture (real frames beside sim frames at strength 0 and 0.5). "
        "Use it with `sim2real simulate --randomization spec.yaml`.",
    )
    parser.add_argument("--real", nargs="+", required=True, metavar="PATH",
                        help="real tubs, folders of tubs or CSV folders")  # fmt: skip
    parser.add_argument("--out", type=Path, required=True, help="spec YAML to write")
    parser.add_argument("--report", type=Path,
                        help="report PNG (default: beside --out, same name, .png)")  # fmt: skip
    add_shortcut(parser, "--frames", "frames", type=int,
                 help="real frames used at most (default 1000)")  # fmt: skip
    add_shortcut(parser, "--span", "span", convert=_span,
                 help="fraction START:END of each recording (default 0:1)")  # fmt: skip
    add_shortcut(parser, "--range-scale", "range_scale", type=float,
                 help="ranges' half-widths, x the base spec's (default 0.5)")  # fmt: skip
    add_shortcut(parser, "--style-share", "style_share", type=float,
                 help="style weight of the fitted style (default 0.6)")  # fmt: skip
    add_shortcut(parser, "--fit", "fit", choices=["all", "geometry", "geometry+sharpness", "look"],
                 help="fitted values to keep, the rest the base's (default geometry)")  # fmt: skip
    add_shortcut(parser, "--base", "base", help="base spec YAML (default: the shipped spec)")
    add_shortcut(parser, "--seed", "seed", type=int, help="seed (default 0)")
    add_set_option(parser)
    parser.set_defaults(func=run)


def _span(text: str) -> tuple[float, float]:
    try:
        start, end = (float(v) for v in text.split(":"))
    except ValueError:
        raise ValueError(f"--span must look like 0:0.65, got {text!r}") from None
    return start, end


def run(args: argparse.Namespace) -> int:
    import time

    from sim2real.common.io import atomic_write_text
    from sim2real.experiments.config_options import config_from_args
    from sim2real.experiments.fit_sim import FitSimConfig, fit_sim, spec_yaml
    from sim2real.experiments.fit_sim_report import write_fit_report
    from sim2real.transfer.real_frames import load_real_frames

    if args.out.suffix.lower() not in (".yaml", ".yml"):
        raise ValueError(f"--out must name a .yaml file, got {args.out}")
    config = config_from_args(FitSimConfig, args)
    start, cpu = time.perf_counter(), time.process_time()
    frames = load_real_frames(args.real, max_frames=config.frames, span=config.span)
    result = fit_sim(frames, config)
    report = args.report or args.out.with_suffix(".png")
    atomic_write_text(args.out, spec_yaml(result, args.real, config))
    write_fit_report(report, frames, result, config.seed)
    style = result.spec["visual"]["style"]["nominal"]
    cam = result.spec["camera"]
    print(
        f"fitted {len(frames)} frames in {time.perf_counter() - start:.0f} s "
        f"({time.process_time() - cpu:.0f} CPU-s), fit {config.fit}: style {style}, "
        f"camera pitch {cam['pitch']['nominal']:.1f} deg, height {cam['height']['nominal']:.3f} m"
    )
    if result.sharpness is not None:
        sharp = result.sharpness
        print(f"sharpness: blur {sharp.blur:.2f} px, sharpen {sharp.sharpen:.2f}; {sharp.note}")
    for line in result.clipped:
        print(f"  clipped: {line}")
    print(f"spec: {args.out}\nreport: {report}")
    return 0
