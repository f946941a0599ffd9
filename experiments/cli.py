"""The `sim2real` console command: a thin layer over library functions.

Subcommands live in `sim2real.experiments.commands`, one module each, discovered at start.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import shutil
import sys
from pathlib import Path

from pydantic import ValidationError

from sim2real.common.config import ConfigError, format_validation_error
from sim2real.experiments import commands

STUB_FILES = {"config.yaml", "run.json"}
"""what a run writes before its real work: a folder holding only these is a stub"""


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


def os_error(exc: OSError) -> str:
    """One line for a file the user named that cannot be read or written."""
    target = exc.filename2 or exc.filename  # (os.replace(tmp, target) names both)
    where = f": {target}" if target else ""
    reason = exc.strerror or str(exc)
    return f"{reason}{where}; check the path and its permissions"


def _out_dirs(args: argparse.Namespace) -> list[Path]:
    """The run folders (`--out`) a command would create, when they do not exist yet."""
    out = getattr(args, "out", None)
    return [Path(out)] if isinstance(out, str | Path) and not Path(out).exists() else []


def _remove_stubs(created: list[Path]) -> None:
    """Remove folders this command created that hold nothing but stub config/run records,
    its own or its subfolders' (an ensemble's members): the run failed validation before
    doing any work. A stub left behind would make the corrected rerun a "resume"."""
    for folder in created:
        if not folder.is_dir():
            continue
        files = [p for p in folder.rglob("*") if p.is_file()]
        if all(p.name in STUB_FILES for p in files):
            shutil.rmtree(folder, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return 2
    created = _out_dirs(args)
    message = None
    try:
        return int(args.func(args) or 0)
    except ValidationError as exc:  # (a ValueError too) a config built or changed in code
        # (command-line options reach configs through load_config, which names them)
        message = format_validation_error(exc, exc.title).replace("\n", "; ")
    except (UserError, ConfigError, ValueError) as exc:
        message = str(exc)
    except ModuleNotFoundError as exc:  # (an ImportError) only the optional simulator
        if exc.name != "pybullet":
            raise
        message = str(exc)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError) as exc:
        # the project raises FileNotFoundError(message); the OS raises it with errno set
        message = os_error(exc) if exc.errno is not None else str(exc)
    except KeyboardInterrupt:
        print(f"sim2real {args.command}: interrupted", file=sys.stderr)
        return 130
    _remove_stubs(created)
    print(f"sim2real {args.command}: error: {message}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
