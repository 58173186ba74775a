"""The ``molvae`` command: a thin layer over `molvae.runs` and the library.

`parser` declares the verbs and their flags (defaults from the config dataclasses), `commands`
carries them out. Expected failures (bad files, bad names, damaged checkpoints, a full disk) print
one line and exit 2; no stage imports this package.
"""

from __future__ import annotations

import logging
import sys

from molvae.cli.commands import COMMANDS
from molvae.cli.parser import build_parser
from molvae.data import DataError
from molvae.model import CheckpointError
from molvae.train import TrainingDiverged

# OSError: a full disk, a read-only or missing directory; the user's to fix, not a bug
EXPECTED_ERRORS = (DataError, ValueError, OSError, CheckpointError, TrainingDiverged)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``molvae`` command; returns the exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        COMMANDS[args.command](args)
    except EXPECTED_ERRORS as exc:
        if args.verbose:
            raise
        print(f"molvae {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"molvae {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0


__all__ = ["COMMANDS", "EXPECTED_ERRORS", "build_parser", "main"]
