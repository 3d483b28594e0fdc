"""``codebolt watch``: run the reconciler (:mod:`codebolt_topo.engine.reconcile`) until Ctrl-C or
SIGTERM, reporting on stderr with the time of day and how long each step took (``--log-json``:
one JSON object per line). As a service: ``--detach`` (pid file, log file, ``--stop``) or
``--install-unit`` (a systemd user unit running the same command); ``--metrics-port`` serves
Prometheus ``/metrics`` and ``/healthz`` on loopback. Two watchers on one shared state elect a
leader through the backend's lease (:mod:`codebolt_topo.engine.leadership`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from codebolt_topo.cli.options import DEFAULT_FILE, FileArg

if TYPE_CHECKING:
    from collections.abc import Callable

    from codebolt_topo.plan.validate import ValidatedTopology

__all__ = ["watch"]

Seconds = Annotated[float | None, typer.Option(metavar="SECONDS")]


def _service_argv(
    file: Path,
    backoff_cap: float,
    sync_interval: float,
    metrics_port: int | None,
    log_json: bool,
    lease_ttl: float | None,
) -> list[str]:
    """The foreground command a detached watcher or a unit runs (same options, no service
    options), with the backend chosen on this command line kept."""
    import os

    backend = os.environ.get("CODEBOLT_BACKEND")
    return [
        *(["--backend", backend] if backend else []),
        "watch",
        str(file.resolve()),
        "--backoff-cap",
        f"{backoff_cap:g}",
        "--sync-interval",
        f"{sync_interval:g}",
        *(["--metrics-port", str(metrics_port)] if metrics_port is not None else []),
        *(["--log-json"] if log_json else []),
        *(["--lease-ttl", f"{lease_ttl:g}"] if lease_ttl is not None else []),
    ]


def _json_reporter(topology: str) -> Callable[[str], None]:
    import json
    import sys
    import time

    def report(message: str) -> None:
        now = time.time()
        stamp = (
            time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z"
        )
        line = {"time": stamp, "topology": topology, "message": message}
        print(json.dumps(line), file=sys.stderr, flush=True)

    return report


def watch(
    file: FileArg = DEFAULT_FILE,
    backoff_cap: Annotated[
        float,
        typer.Option(
            "--backoff-cap", help="Longest wait between restarts of one node.", metavar="SECONDS"
        ),
    ] = 60.0,
    sync_interval: Annotated[
        float,
        typer.Option(
            "--sync-interval",
            help="Seconds between narrative syncs along sync: edges (0 disables).",
            metavar="SECONDS",
        ),
    ] = 60.0,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            "--metrics-port",
            help="Serve Prometheus /metrics and /healthz on 127.0.0.1:PORT (0: any free port).",
            metavar="PORT",
        ),
    ] = None,
    log_json: Annotated[
        bool, typer.Option("--log-json", help="Log one JSON object per line.")
    ] = False,
    lease_ttl: Annotated[
        float | None,
        typer.Option(
            "--lease-ttl",
            help="Seconds the leader's lease lasts unrenewed (default: the heartbeat interval); "
            "a standby takes over within 1.25 times this after the leader dies.",
            metavar="SECONDS",
        ),
    ] = None,
    detach: Annotated[
        bool, typer.Option("--detach", help="Run in the background (pid file, log file).")
    ] = False,
    pid_file: Annotated[
        Path | None,
        typer.Option(
            "--pid-file",
            help="Pid file (default .codebolt/<name>/watch.pid with --detach/--stop).",
            metavar="PATH",
        ),
    ] = None,
    log_file: Annotated[
        Path | None,
        typer.Option(
            "--log-file",
            help="Log of a detached watcher (default .codebolt/<name>/watch.log).",
            metavar="PATH",
        ),
    ] = None,
    stop: Annotated[
        bool, typer.Option("--stop", help="Stop the detached watcher of the pid file.")
    ] = False,
    install_unit: Annotated[
        bool,
        typer.Option(
            "--install-unit", help="Write a systemd user unit running this watch, and exit."
        ),
    ] = False,
    unit_dir: Annotated[
        Path | None,
        typer.Option(
            "--unit-dir",
            help="Where --install-unit writes (default ~/.config/systemd/user).",
            metavar="DIR",
        ),
    ] = None,
) -> None:
    """Keep the topology healthy: heartbeats, restarts by policy, rewiring. Ctrl-C stops; the
    nodes keep running. Several watchers on one state: one leads, the others stand by."""
    from codebolt_topo.engine.statefile import state_dir_for
    from codebolt_topo.plan.validate import validate_file

    validated = validate_file(file)
    name = validated.topology.name
    runtime = state_dir_for(file) / name
    if stop:
        from codebolt_topo.engine.service import stop_detached

        stopped = stop_detached(pid_file or runtime / "watch.pid")
        print(f"stopped the watcher (pid {stopped})" if stopped else "no watcher was running")
        return
    argv = _service_argv(file, backoff_cap, sync_interval, metrics_port, log_json, lease_ttl)
    if install_unit:
        _install_unit(validated, file, argv, unit_dir)
        return
    if detach:
        from codebolt_topo.engine.service import detach as start_detached

        where = pid_file or runtime / "watch.pid"
        log = log_file or runtime / "watch.log"
        started = start_detached([*argv, "--pid-file", str(where.resolve())], where, log)
        print(
            f"watching {file} in the background: pid {started.pid}, pid file {where}, log "
            f"{log} (stop it with codebolt watch --stop)"
        )
        return
    _foreground(
        validated, file, backoff_cap, sync_interval, metrics_port, log_json, lease_ttl, pid_file
    )


def _install_unit(
    validated: ValidatedTopology, file: Path, argv: list[str], unit_dir: Path | None
) -> None:
    from codebolt_topo.engine.service import unit_name, unit_text
    from codebolt_topo.engine.statefile import atomic_write

    name = validated.topology.name
    directory = unit_dir or Path.home() / ".config" / "systemd" / "user"
    environment = Path.home() / ".config" / "codebolt" / f"{name}.env"
    path = directory / unit_name(name)
    atomic_write(path, unit_text(name, file.resolve(), argv, environment).encode(), mode=0o644)
    print(f"Wrote {path}. Put the state's DSN and key in {environment} (never in the unit), then:")
    print(f"  systemctl --user daemon-reload && systemctl --user enable --now {unit_name(name)}")


def _foreground(
    validated: ValidatedTopology,
    file: Path,
    backoff_cap: float,
    sync_interval: float,
    metrics_port: int | None,
    log_json: bool,
    lease_ttl: float | None,
    pid_file: Path | None,
) -> None:
    import asyncio
    import contextlib
    import signal

    from codebolt_topo.cli.progress import StepReporter
    from codebolt_topo.engine.backends import backend_for
    from codebolt_topo.engine.leadership import Leadership
    from codebolt_topo.engine.reconcile import Reconciler
    from codebolt_topo.engine.service import hold_pid_file

    name = validated.topology.name
    ttl = lease_ttl or validated.topology.heartbeat.interval

    async def run(report: Callable[[str], None]) -> None:
        from codebolt_topo.engine.metrics import MetricsServer, WatchMetrics

        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        metrics = server = None
        if metrics_port is not None:
            metrics = WatchMetrics(name)
            server = MetricsServer(metrics, port=metrics_port).start()
            report(f"serving {server.url}/metrics and {server.url}/healthz")
        leases = backend_for(file, validated.topology)
        leadership = Leadership(leases.leases(), ttl, report=report)
        report(f"watching {file} (Ctrl-C to stop)")
        try:
            await Reconciler(
                file,
                report=report,
                backoff_cap=backoff_cap,
                sync_interval=sync_interval or None,
                leadership=leadership,
                metrics=metrics,
            ).run(stop)
        finally:
            leases.close()
            if server is not None:
                server.close()
        report("stopped watching; nodes keep running")

    held = hold_pid_file(pid_file) if pid_file else contextlib.nullcontext()
    with held:
        if log_json:
            asyncio.run(run(_json_reporter(name)))
            return
        with StepReporter(live=False, timestamps=True) as report:
            asyncio.run(run(report))
