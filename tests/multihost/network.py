"""A small internet in network namespaces, made and torn down by the tests.

::

    root ns (the test: an operator's client)  10.A.B.254 ─┐
    hub  (a host with a public address)       10.A.B.1  ──┤ bridge br0 in ns "inet"
    nat  (a home router: MASQUERADE)          10.A.B.2  ──┤   (stands in for the internet)
      └── 192.168.C.1 ── lap (a laptop behind the NAT) 192.168.C.2
    nat2 (another home, with ``laptops=2``)   10.A.B.3  ──┤
      └── 192.168.C'.1 ── lap2 (a second laptop)        192.168.C'.2
    srvN (servers, with ``servers=N``)        10.A.B.1N ──┘

Every address lives inside these namespaces: nothing leaves the machine. Names carry a
per-run suffix and the subnet is drawn per run, so two runs do not collide; :meth:`Lab.close`
deletes every namespace (their veths go with them) and the root end of the root veth.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import subprocess
from dataclasses import dataclass, field

import pytest

__all__ = ["PROBE", "Lab", "require_netns"]

PROBE = (  # run with the address and port: exits 1, naming the error, when it cannot connect
    "import socket, sys\n"
    "try:\n"
    "    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3).close()\n"
    "except OSError as exc:\n"
    "    print(type(exc).__name__, exc); sys.exit(1)\n"
)


def require_netns() -> None:
    """Skip (or, with ``CODEBOLT_REQUIRE_NETNS=1``, fail) where namespaces cannot be made."""
    missing = [tool for tool in ("ip", "iptables") if shutil.which(tool) is None]
    reason = (
        f"missing {', '.join(missing)}"
        if missing
        else "network namespaces need root"
        if os.geteuid() != 0
        else ""
    )
    if reason:
        if os.environ.get("CODEBOLT_REQUIRE_NETNS") == "1":
            pytest.fail(f"{reason} but CODEBOLT_REQUIRE_NETNS=1", pytrace=False)
        pytest.skip(reason)


def sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run a command (ip, iptables), its output captured; raise with stderr on failure."""
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {done.stderr.strip()}")
    return done


@dataclass
class Lab:
    """The namespaces above; :attr:`ns` maps a role (hub, nat, lap, inet) to its netns name."""

    tag: str = field(default_factory=lambda: f"{os.getpid() % 100000}{random.randrange(100)}")
    net: str = field(
        default_factory=lambda: f"10.{random.randrange(64, 127)}.{random.randrange(256)}"
    )
    home: str = field(default_factory=lambda: f"192.168.{random.randrange(256)}")
    laptops: int = 1
    servers: int = 0
    ns: dict[str, str] = field(default_factory=dict)
    root_veth: str = ""

    @property
    def hub(self) -> str:
        return f"{self.net}.1"

    @property
    def nat_public(self) -> str:
        return f"{self.net}.2"

    @property
    def lap(self) -> str:
        return f"{self.home}.2"

    def server(self, role: str) -> str:
        """The address of server ``role`` (``srv1``, ``srv2``: hosts with public addresses)."""
        return f"{self.net}.{10 + int(role.removeprefix('srv'))}"

    def nat_public_of(self, laptop: str) -> str:
        """The public address of ``laptop``'s home router (``lap``, ``lap2``)."""
        return f"{self.net}.{2 + self._index(laptop)}"

    def address_of(self, laptop: str) -> str:
        """``laptop``'s own address, behind its router."""
        return f"{self._home(self._index(laptop))}.2"

    @staticmethod
    def _index(laptop: str) -> int:
        return int(laptop.removeprefix("lap") or "1") - 1

    def _home(self, index: int) -> str:
        first, second, third = self.home.split(".")
        return f"{first}.{second}.{(int(third) + index) % 256}"

    def up(self) -> Lab:
        try:
            self._build()
        except BaseException:
            self.close()
            raise
        return self

    def _build(self) -> None:
        homes = [("nat", "lap")][: self.laptops] + [
            (f"nat{i}", f"lap{i}") for i in range(2, self.laptops + 1)
        ]
        servers = [f"srv{i}" for i in range(1, self.servers + 1)]
        for role in ("inet", "hub", *(r for home in homes for r in home), *servers):
            self.ns[role] = f"cb{role}{self.tag}"
            sh("ip", "netns", "add", self.ns[role])
            self.run(role, "ip", "link", "set", "lo", "up")
        self.run("inet", "ip", "link", "add", "br0", "type", "bridge")
        self.run("inet", "ip", "link", "set", "br0", "up")
        self._wire("hub", f"{self.hub}/24", "h")
        for server in servers:
            self._wire(server, f"{self.server(server)}/24", server)
        self.root_veth = f"cbr{self.tag}"[:15]
        sh(
            "ip",
            "link",
            "add",
            self.root_veth,
            "type",
            "veth",
            "peer",
            "name",
            "cbrp",
            "netns",
            self.ns["inet"],
        )
        self.run("inet", "ip", "link", "set", "cbrp", "master", "br0", "up")
        sh("ip", "addr", "add", f"{self.net}.254/24", "dev", self.root_veth)
        sh("ip", "link", "set", self.root_veth, "up")
        for nat, lap in homes:
            self._wire(nat, f"{self.nat_public_of(lap)}/24", nat.removeprefix("nat") or "n")
            self._home_network(nat, lap, self._home(self._index(lap)))

    def _home_network(self, nat: str, lap: str, home: str) -> None:
        """The laptop's side of its home router, and the router's NAT out to the "internet"."""
        self.run(
            lap,
            "ip",
            "link",
            "add",
            "eth0",
            "type",
            "veth",
            "peer",
            "name",
            "home",
            "netns",
            self.ns[nat],
        )
        self.run(lap, "ip", "addr", "add", f"{home}.2/24", "dev", "eth0")
        self.run(lap, "ip", "link", "set", "eth0", "up")
        self.run(lap, "ip", "route", "add", "default", "via", f"{home}.1")
        self.run(nat, "ip", "addr", "add", f"{home}.1/24", "dev", "home")
        self.run(nat, "ip", "link", "set", "home", "up")
        self.run(nat, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        self.run(
            nat, "iptables", "-t", "nat", "-A", "POSTROUTING", "-o", "eth0", "-j", "MASQUERADE"
        )

    def _wire(self, role: str, address: str, side: str) -> None:
        """A veth from ``role``'s namespace (eth0, ``address``) to the bridge."""
        port = f"br{side}"
        self.run(
            role,
            "ip",
            "link",
            "add",
            "eth0",
            "type",
            "veth",
            "peer",
            "name",
            port,
            "netns",
            self.ns["inet"],
        )
        self.run("inet", "ip", "link", "set", port, "master", "br0", "up")
        self.run(role, "ip", "addr", "add", address, "dev", "eth0")
        self.run(role, "ip", "link", "set", "eth0", "up")

    def run(self, role: str, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` inside ``role``'s namespace."""
        return sh("ip", "netns", "exec", self.ns[role], *argv, check=check)

    def prefix(self, role: str) -> list[str]:
        """The command prefix that starts a program inside ``role``'s namespace."""
        return ["ip", "netns", "exec", self.ns[role]]

    def close(self) -> None:
        if self.root_veth:
            sh("ip", "link", "del", self.root_veth, check=False)
        for name in self.ns.values():
            with contextlib.suppress(RuntimeError):
                sh("ip", "netns", "del", name)
        self.ns.clear()
