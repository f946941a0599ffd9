"""Keep pybullet's C-level banner lines off the terminal.

Importing pybullet writes "pybullet build time: ..." to stderr and every DIRECT connect
writes "argv[0]=" to stdout, both from C, below Python's sys.stdout/sys.stderr: only
redirecting the file descriptors hides them. Python's own buffered output is flushed first,
and C's stdio buffers before the descriptors are restored. Exceptions still propagate and
are printed after the block, with the descriptors back in place.
"""

from __future__ import annotations

import ctypes
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress


@contextmanager
def silenced_output() -> Iterator[None]:
    """Point file descriptors 1 and 2 at /dev/null inside the block."""
    for stream in (sys.stdout, sys.stderr):
        with suppress(ValueError, AttributeError):
            stream.flush()
    try:
        saved = [os.dup(1), os.dup(2)]
    except OSError:  # no descriptors to redirect (embedded interpreters)
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        yield
    finally:
        with suppress(OSError, AttributeError):
            ctypes.CDLL(None).fflush(None)
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, devnull):
            os.close(fd)
