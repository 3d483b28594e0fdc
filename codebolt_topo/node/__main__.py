"""``python -m codebolt_topo.node --config PATH [--ready-fd N]``: run a node without the CLI."""

from __future__ import annotations

import argparse
import gc
import sys
from pathlib import Path

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
    # The daemon's modules build some 60,000 tracked objects that live as long as it does. With the
    # collector off while they are built, and frozen after, no pass traverses them again: 36 ms
    # of a 218 ms cold start (a docker node's, a cloud VM's), and less per request later. A
    # forked local daemon inherits this from its zygote (providers/local/zygote.py).
    gc.disable()
    try:
        from codebolt_topo.node.daemon import run_daemon
    finally:
        gc.freeze()
        gc.enable()
    return run_daemon(args.config, args.ready_fd)


if __name__ == "__main__":
    sys.exit(main())
