"""Entry point: run the CLI, turning project errors into one-line messages and exit codes.

Tracebacks are shown only with ``--debug`` (or ``CODEBOLT_DEBUG=1``): a user who mistyped a node
name should read one line naming the file, line and field, not a stack. A command run with
``--json`` reports its error as JSON on stdout too (:mod:`codebolt_topo.cli.output`).
"""

from __future__ import annotations

import gc
import os
import sys

__all__ = ["main"]

INTERNAL_ERROR = 70  # EX_SOFTWARE


class InternalError(Exception):
    """A bug: an exception that is not one of the project's own (errors.TopoError)."""


#: Commands whose process, run as ``codebolt``, ends without the interpreter's finalization
#: once its output is flushed: ``codebolt logs`` of an e2b node was seen to end in SIGABRT
#: after printing everything it had to (3 times in many full CI runs, under load; never in 16
#: loops here, loaded or not), with nothing on stderr: an abort during finalization, whose
#: message glibc writes to the terminal. A log reader has nothing left to finalize.
EXIT_AT_ONCE = frozenset({"logs"})


#: Allocations of tracked objects between two young collections in a ``codebolt`` process
#: (Python's default: 700). Starting up builds 35,000-50,000 tracked objects that all live to
#: the end (typer's commands, pydantic's schemas): at 700 the collector traversed them again
#: and again, 10-18 ms of a cold ``status`` or ``validate``. Long runs (``watch``, a ``join``ed
#: node) still collect, in fewer and larger passes.
_YOUNG_THRESHOLD = 50_000


def main(argv: list[str] | None = None) -> int:
    """Run the CLI on ``argv`` (a process's own: ``sys.argv``) and return its exit status.

    As a process (``argv`` None) it tunes the collector for a short run of long-lived objects:
    fewer young collections, and everything frozen at the end, so that the interpreter's final
    collection does not traverse what no one will free (20-60 ms of a cold ``validate`` or
    ``status``). Finalization itself still runs: atexit handlers, streams, threads."""
    if argv is not None:
        return _main(argv)
    gc.set_threshold(_YOUNG_THRESHOLD, *gc.get_threshold()[1:])
    code = _main(None)
    gc.freeze()
    if _answered_by_broker or (sys.argv[1:2] and sys.argv[1] in EXIT_AT_ONCE):
        for stream in (sys.stdout, sys.stderr):
            try:  # noqa: SIM105 - not contextlib.suppress: its import is 1 ms of a broker's exec
                stream.flush()
            except (OSError, ValueError):  # a closed pipe: nothing to say
                pass
        os._exit(code)
    return code


#: Set when the broker ran the command: the process imported a handful of modules and wrote
#: nothing itself, so it ends without the interpreter's finalization (1.7 ms of a 17 ms exec).
_answered_by_broker = False


def _main(argv: list[str] | None) -> int:
    global _answered_by_broker
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or os.environ.get("CODEBOLT_DEBUG") == "1"
    if "--debug" in args:
        args.remove("--debug")
    if args[:1] == ["exec"]:  # the fast path: a warm broker, before typer is even imported
        from codebolt_topo.cli.broker_client import exec_via_broker

        code = exec_via_broker(args[1:])
        if code is not None:
            _answered_by_broker = True
            return code
    if args[:1] == ["status"]:  # a plain status: the broker's open heartbeat connections
        from codebolt_topo.cli.broker_client import status_via_broker

        code = status_via_broker(args[1:])
        if code is not None:
            _answered_by_broker = True
            return code
    from codebolt_topo.cli.output import report_error, reset_output
    from codebolt_topo.cli.toplevel import app_for
    from codebolt_topo.errors import TopoError

    reset_output()  # main may run more than once in a process (tests, tools)
    if "codebolt_topo.cli.template_vars" in sys.modules:
        sys.modules["codebolt_topo.cli.template_vars"].reset_template_vars()

    try:
        app = app_for(args)  # the command named alone when it can be (cli/toplevel.py)
        app(args=args, prog_name="codebolt")  # standalone: always ends in SystemExit
    except SystemExit as done:
        return done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    except TopoError as error:
        if debug:
            raise
        report_error(error, error.exit_code)
        return error.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as error:
        if debug:
            raise
        report_error(
            InternalError(f"{type(error).__name__}: {error} (run with --debug for details)"),
            INTERNAL_ERROR,
            prefix="internal error",
        )
        return INTERNAL_ERROR
    return 0


if __name__ == "__main__":
    sys.exit(main())
