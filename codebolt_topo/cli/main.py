"""Entry point: run the typer app, turning project errors into one-line messages and exit codes.

Tracebacks are shown only with ``--debug`` (or ``CODEBOLT_DEBUG=1``): a user who mistyped a node
name should read one line naming the file, line and field, not a stack.
"""

from __future__ import annotations

import os
import sys

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or os.environ.get("CODEBOLT_DEBUG") == "1"
    if "--debug" in args:
        args.remove("--debug")
    from codebolt_topo.cli.app import app
    from codebolt_topo.errors import TopoError

    try:
        app(args=args, prog_name="codebolt")  # standalone: always ends in SystemExit
    except SystemExit as done:
        return done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    except TopoError as error:
        if debug:
            raise
        for line in str(error).splitlines():
            print(f"error: {line}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as error:
        if debug:
            raise
        print(
            f"internal error: {type(error).__name__}: {error} (run with --debug for details)",
            file=sys.stderr,
        )
        return 70
    return 0


if __name__ == "__main__":
    sys.exit(main())
