"""The `sim2real` console command: a thin layer over library functions.

Subcommands live in `sim2real.experiments.commands`, one module each, discovered at start.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from sim2real.common.config import ConfigError
from sim2real.experiments import commands


class UserError(Exception):
    """A problem with the user's input: printed as one clear message, exit status 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sim2real",
        description="Sim-to-real transfer for vision-based driving.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{commands.__name__}.{module_info.name}")
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (UserError, ConfigError, FileNotFoundError, ValueError) as exc:
        print(f"sim2real {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as exc:
        if exc.name != "pybullet":
            raise
        print(f"sim2real {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"sim2real {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
