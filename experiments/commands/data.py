"""`sim2real data inspect PATH...`: counts, label statistics, steering histogram, contact sheet."""

from __future__ import annotations

import argparse
from pathlib import Path

from sim2real.common.io import atomic_write_json


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("data", help="inspect driving datasets (tubs, CSV folders)")
    actions = parser.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    inspect = actions.add_parser(
        "inspect",
        help="count records (deleted, missing, unreadable, bad labels, usable), label stats",
    )
    inspect.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="tub or CSV folder")
    inspect.add_argument("--json", type=Path, help="write the summary as JSON here")
    inspect.add_argument(
        "--include-pilot",
        action="store_true",
        help="keep frames the pilot drove (user/mode local, local_angle), skipped by default",
    )
    inspect.add_argument("--sheet", type=Path, help="write a contact sheet of frames (PNG)")
    inspect.add_argument("--hist", type=Path, help="write a steering histogram (PNG)")
    inspect.add_argument(
        "--csv-columns", help="CSV column spec: a preset ('udacity') or a YAML file"
    )
    inspect.add_argument(
        "--video",
        type=Path,
        metavar="OUT",
        help="play the records back into a video (.mp4, or .avi for MJPG) at their recording "
        "rate (20 fps for DonkeyCar), one frame per usable record, labels drawn in",
    )
    inspect.add_argument(
        "--no-decode", action="store_true", help="only check images exist (faster)"
    )
    inspect.set_defaults(func=run_inspect)


def run_inspect(args: argparse.Namespace) -> int:
    from sim2real.transfer.inspection import (
        contact_sheet,
        format_summary,
        inspect_paths,
        steering_histogram,
    )

    if args.video:
        from sim2real.experiments.video import check_video_path

        check_video_path(args.video)  # before reading: a bad name fails fast
    summary, records = inspect_paths(
        args.paths,
        csv_columns=args.csv_columns,
        check_images=not args.no_decode,
        include_pilot=args.include_pilot,
    )
    print(format_summary(summary))
    if args.json:
        atomic_write_json(args.json, summary)
        print(f"summary: {args.json}")
    if records and args.sheet:
        contact_sheet(records, args.sheet)
        print(f"contact sheet: {args.sheet}")
    if records and args.hist:
        steering_histogram(records, args.hist)
        print(f"steering histogram: {args.hist}")
    if not records:
        counts = summary["counts"]
        listed = ", ".join(
            f"{key.replace('_', ' ')} {value}"
            for key, value in counts.items()
            if key not in ("examples", "bad_fraction")
        )
        examples = "".join(f"; e.g. {example}" for example in counts["examples"][:2])
        raise ValueError(
            f"{', '.join(str(p) for p in args.paths)}: no usable records ({listed}){examples}; "
            "repair the data, record more, or undelete records in the tub's manifest"
        )
    if args.video:
        from sim2real.experiments.video import tub_video

        video = tub_video(records, args.video)
        print(
            f"video: {args.video} ({video['frames']} frames at {video['fps']:g} fps, "
            f"{video['codec']})"
        )
    return 0
