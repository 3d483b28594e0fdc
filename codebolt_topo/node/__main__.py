"""``python -m codebolt_topo.node --config PATH [--ready-fd N]``: run a node without the CLI."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from codebolt_topo.node.daemon import run_daemon

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Parse arguments and run the daemon; returns its exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m codebolt_topo.node", description="Run one codebolt-topo node daemon."
    )
    parser.add_argument("--config", type=Path, required=True, help="LaunchConfig JSON file")
    parser.add_argument(
        "--ready-fd",
        type=int,
        default=None,
        help='write {"port": N, "pid": P} to this fd once listening',
    )
    args = parser.parse_args(argv)
    return run_daemon(args.config, args.ready_fd)


if __name__ == "__main__":
    sys.exit(main())
