"""`sim2real models`: the pretrained networks shipped with the package, usable by name."""

from __future__ import annotations

import argparse
import json


def _size(size: tuple[int, int] | None) -> str:
    return "unknown" if size is None else f"{size[1]}x{size[0]}"


def handler(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from sim2real.agents.shipped import describe_shipped, pretrained_dir

    models = describe_shipped()
    if args.json:
        rows = [{**asdict(m), "path": str(m.path)} for m in models]
        print(json.dumps(rows, indent=2))
        return 0
    if not models:
        print(f"no pretrained networks ship with this installation ({pretrained_dir()} is empty)")
        return 0
    print(f"{len(models)} shipped network(s); use a name wherever --checkpoint takes a folder:")
    for m in models:
        frames = "unknown" if m.frames is None else f"{m.frames:,}"
        print(f"\n{m.name}")
        print(f"  architecture {m.architecture}, input {m.input_shape[2]}x{m.input_shape[1]}")
        print(f"  camera frames {_size(m.source_size)} (WxH), trained on {frames} frames")
        print(f"  outputs {', '.join(m.outputs)}")
        if m.purpose:
            print(f"  {m.purpose}")
        print(f"  card {m.path / 'README.md'}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "models",
        help="list the pretrained networks shipped with sim2real",
        description="List the sim-pretrained checkpoints inside the package (no download): "
        "name, architecture, input, outputs, training frames and what each is for. Give a "
        "name to --checkpoint (finetune, evaluate, export, gap, ...) instead of a folder; "
        "each card README lists the commands that reproduce it.",
    )
    parser.add_argument("--json", action="store_true", help="print the list as JSON")
    parser.set_defaults(func=handler)
