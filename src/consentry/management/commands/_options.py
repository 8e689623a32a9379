"""Option types the commands share (a module whose name starts with ``_`` is not a command)."""

from __future__ import annotations

import argparse


def port(value: str) -> int:
    """A TCP port, 1 to 65535; 0 asks the system for a free one (the command prints which)."""
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a port number") from None
    if not 0 <= number <= 65535:
        raise argparse.ArgumentTypeError(f"{number} is not a port: use 1 to 65535 (or 0 for any free port)")
    return number
