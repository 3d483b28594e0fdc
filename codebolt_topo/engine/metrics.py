"""What a standing ``watch`` tells the tools a team watches: Prometheus ``/metrics`` and
``/healthz``, served on loopback.

Why its own registry and server: the process-wide default registry would also export Python's
and the process's collectors under names a team did not ask for, and tests run several
watchers in one process. The server is the standard library's threading HTTP server in a
daemon thread: it answers while the reconciler's event loop is busy applying, which is exactly
when a health check must still get a reply (a stalled loop is reported, not hidden).

``/healthz`` answers 200 with ``{"status": "ok", "role": "leader"|"standby", ...}`` while the
watch loop turned within the last ``stall_after`` seconds, else 503 with ``"status":
"stalled"``.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from codebolt_topo.model.state import Lifecycle

__all__ = ["MetricsServer", "WatchMetrics"]

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_PASS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class WatchMetrics:
    """The watch's figures, in a registry of its own."""

    def __init__(self, topology: str, *, stall_after: float = 30.0) -> None:
        self.topology = topology
        self.stall_after = stall_after
        self.registry = CollectorRegistry()
        r = self.registry
        self.nodes = Gauge(
            "codebolt_nodes",
            "Nodes by lifecycle, as the state records them.",
            ["lifecycle"],
            registry=r,
        )
        self.heartbeat_latency = Histogram(
            "codebolt_heartbeat_latency_seconds",
            "Round trip of heartbeats that were answered.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.heartbeat_failures = Counter(
            "codebolt_heartbeat_failures", "Heartbeats not answered in time.", registry=r
        )
        self.restarts = Counter(
            "codebolt_restarts",
            "Nodes the watch replaced (crashed, hung or vanished).",
            ["node"],
            registry=r,
        )
        self.pass_seconds = Histogram(
            "codebolt_reconcile_pass_seconds",
            "Time of one reconciler pass (observe, heartbeats, apply).",
            buckets=_PASS_BUCKETS,
            registry=r,
        )
        self.pass_failures = Counter(
            "codebolt_reconcile_pass_failures", "Passes that failed or were skipped.", registry=r
        )
        self.synced_bytes = Counter(
            "codebolt_synced_bytes", "Narrative bytes moved along sync: edges.", registry=r
        )
        self.leader = Gauge(
            "codebolt_watch_leader", "1 while this watcher holds the lease and acts.", registry=r
        )
        self.lease_term = Gauge(
            "codebolt_watch_lease_term", "Term of the lease this watcher last held.", registry=r
        )
        for lifecycle in Lifecycle:
            self.nodes.labels(lifecycle.value).set(0)
        self._turned = time.monotonic()
        self._role = "starting"

    def lead(self, leading: bool) -> None:
        """Leadership was decided (the lease taken, renewed or lost): the role changes now,
        not at the end of the next pass, which may take a while ("leading the watch" is said
        as soon as the lease is taken, and /healthz must agree with it)."""
        self._role = "leader" if leading else "standby"
        self.leader.set(1 if leading else 0)

    def turned(self, role: str) -> None:
        """The watch loop went round (as ``leader`` or ``standby``)."""
        self._turned = time.monotonic()
        self._role = role
        self.leader.set(1 if role == "leader" else 0)

    def count_nodes(self, lifecycles: Iterable[Lifecycle]) -> None:
        counts = {lifecycle: 0 for lifecycle in Lifecycle}
        for lifecycle in lifecycles:
            counts[lifecycle] += 1
        for lifecycle, count in counts.items():
            self.nodes.labels(lifecycle.value).set(count)

    def health(self) -> tuple[int, dict[str, Any]]:
        """The ``/healthz`` status code and document."""
        age = time.monotonic() - self._turned
        stalled = age > self.stall_after
        return (503 if stalled else 200), {
            "status": "stalled" if stalled else "ok",
            "role": self._role,
            "topology": self.topology,
            "last_turn_seconds_ago": round(age, 3),
        }

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class MetricsServer:
    """``/metrics`` and ``/healthz`` of one :class:`WatchMetrics` on ``host:port`` (0: any)."""

    def __init__(self, metrics: WatchMetrics, host: str = "127.0.0.1", port: int = 0) -> None:
        owner = metrics

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    self._send(200, owner.exposition(), CONTENT_TYPE_LATEST)
                elif path == "/healthz":
                    code, document = owner.health()
                    self._send(code, json.dumps(document).encode(), "application/json")
                else:
                    self._send(404, b"not found: /metrics or /healthz\n", "text/plain")

            def _send(self, code: int, body: bytes, content_type: str) -> None:
                self.send_response(code)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return  # scrapes every few seconds would drown the watch's own log

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> MetricsServer:
        self.thread.start()
        return self

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
