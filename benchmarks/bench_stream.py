"""Streaming a big stdout back through 0 and 3 hops, MB/s, next to ssh and raw loopback TCP.

Run: ``python benchmarks/bench_stream.py [--mib 500] [--repeat 3]``. Four node daemons wired
a -> b -> c -> d (``codebolt_topo.testing.Cluster``: the same daemons apply starts) run
``head -c N /dev/zero``; the Python client, connected to a, counts every byte it iterates. For
each run it also prints the CPU each process spent per GB (who pays for the bytes) and, at the
end, the peak RSS of every daemon: a forwarding hop's memory must not grow with the stream.

Peers: ``ssh`` running the same command over a persistent connection (0 jumps) and through 3
ProxyJump hosts, real sshd servers on loopback; raw TCP over loopback (1 MiB ``sendall`` into
``recv_into``) as the ceiling any user-space relay sits under. It asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import cpu_seconds, load_note, peak_rss_mib, self_cpu, summary
from sshpeer import ssh_available, ssh_peers

from codebolt_topo.client import Output
from codebolt_topo.testing import Cluster

CHAIN = [("a", "b"), ("b", "c"), ("c", "d")]
TARGETS = {0: "a", 3: "d"}


async def _ours(cluster: Cluster, size: int, repeat: int) -> dict[int, list[float]]:
    rates: dict[int, list[float]] = {0: [], 3: []}
    async with cluster.client("a") as client:
        for hops, target in TARGETS.items():
            for _ in range(repeat):
                before = {node: cpu_seconds(pid) for node, pid in cluster.pids.items()}
                mine = self_cpu()
                start = time.perf_counter()
                handle = await client.exec(target, argv=["head", "-c", str(size), "/dev/zero"])
                received = 0
                async for event in handle:
                    if isinstance(event, Output):
                        received += len(event.data)
                elapsed = time.perf_counter() - start
                if received != size:
                    raise SystemExit(f"{hops} hops: received {received} of {size} bytes")
                rates[hops].append(size / elapsed / 1e6)
                cpu = {node: cpu_seconds(pid) - before[node] for node, pid in cluster.pids.items()}
                cpu["client"] = self_cpu() - mine
                per_gb = "  ".join(
                    f"{node} {seconds / size * 1e9:.2f}"
                    for node, seconds in cpu.items()
                    if seconds > 0.005
                )
                print(
                    f"    {hops} hops: {size / elapsed / 1e6:7.1f} MB/s   CPU s/GB: {per_gb}",
                    flush=True,
                )
    return rates


def _tcp_ceiling(size: int) -> float:
    """Raw loopback TCP, one sender thread and one receiver, 1 MiB buffers."""
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    block = memoryview(bytes(1024 * 1024))

    def send() -> None:
        conn, _ = server.accept()
        with conn:
            left = size
            while left:
                n = min(left, len(block))
                conn.sendall(block[:n])
                left -= n

    sender = threading.Thread(target=send)
    sender.start()
    buffer = bytearray(1024 * 1024)
    start = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port)) as sock:
        got = 0
        while (n := sock.recv_into(buffer)) > 0:
            got += n
    elapsed = time.perf_counter() - start
    sender.join()
    server.close()
    return size / elapsed / 1e6


def _ssh_rates(size: int, repeat: int) -> dict[str, list[float]]:
    rates: dict[str, list[float]] = {"persistent 0": [], "proxyjump 3": []}
    with ssh_peers(4) as peers:
        command = ["head", "-c", str(size), "/dev/zero"]
        persistent = peers.persistent(0, command)
        subprocess.run(persistent, check=True, stdout=subprocess.DEVNULL)  # opens the master
        for label, argv, hops in (
            ("persistent 0", persistent, 0),
            ("proxyjump 3", peers.proxyjump(3, command), 3),
        ):
            for _ in range(repeat):
                start = time.perf_counter()
                proc = subprocess.Popen(argv, stdout=subprocess.PIPE)
                assert proc.stdout is not None
                received = 0
                while chunk := proc.stdout.read(1 << 20):
                    received += len(chunk)
                proc.wait()
                elapsed = time.perf_counter() - start
                if received != size:
                    raise SystemExit(f"ssh {label}: received {received} of {size} bytes")
                rates[label].append(size / elapsed / 1e6)
                print(
                    f"    ssh {hops} jumps ({label.split()[0]}): {size / elapsed / 1e6:7.1f} MB/s",
                    flush=True,
                )
        stop = peers.persistent(0, [])
        stop[-1:-1] = ["-O", "exit"]
        subprocess.run(stop, capture_output=True)
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    size = args.mib * 1024 * 1024
    print(f"stream {args.mib} MiB of stdout, {load_note()}")
    with tempfile.TemporaryDirectory(prefix="codebolt-bench-stream-") as tmp:
        cluster = Cluster(Path(tmp), CHAIN).start()
        try:
            asyncio.run(cluster.configure())
            ours = asyncio.run(_ours(cluster, size, args.repeat))
            rss = {node: peak_rss_mib(pid) for node, pid in cluster.pids.items()}
        finally:
            cluster.stop()
    tcp = [_tcp_ceiling(size) for _ in range(args.repeat)]
    ssh = _ssh_rates(size, args.repeat) if ssh_available() else None
    print(
        f"\nstream {args.mib} MiB, median of {args.repeat} (min-max), MB/s "
        "(ratio = codebolt / peer)"
    )
    ceiling = summary(tcp)[0]
    for hops in (0, 3):
        median, low, high = summary(ours[hops])
        line = f"  {hops} hops: codebolt {median:7.1f} ({low:.0f}-{high:.0f})"
        if ssh is not None:
            peer = summary(ssh["persistent 0" if hops == 0 else "proxyjump 3"])[0]
            line += f"   ssh {peer:7.1f} ({median / peer:4.2f}x)"
        line += f"   raw TCP {ceiling:7.1f} ({median / ceiling:4.2f}x)"
        target = 700 if hops == 0 else 500  # issue 18 (issue 7 asked 600 and 250)
        print(f"{line}   target >= {target}")
    print(
        "  peak RSS per daemon (MiB), a..c forward, a and d also execute: "
        + "  ".join(f"{node} {mib:.1f}" for node, mib in rss.items())
    )
    if ssh is None:
        print("  ssh peer skipped: sshd/ssh/ssh-keygen not installed")


if __name__ == "__main__":
    main()
