"""The egress firewall of a sandbox container: what its code may open connections to.

An internal Docker network has no route off the host, but the host itself sits on it: the bridge
carries the network's gateway address, so code in a sandbox could reach every service of the host
that listens on all interfaces (sshd, a database, another topology's node daemon). Docker (before
28's isolated gateway mode, which would also cut the orchestrator off) offers nothing against
that, and a rule in the host's INPUT chain would need root on the host and outlive a crash.

So the rules live in the sandbox's *own* network namespace, set once by a short-lived helper
container that shares that namespace and holds ``NET_ADMIN`` (the sandbox never does: it drops
every capability, so its code cannot undo them). They die with the container. Only outbound
*new* connections are filtered; replies to connections others open to the sandbox (the
orchestrator through the gateway, a parent container) pass as ``ESTABLISHED``:

- loopback and replies: allowed;
- the gateway (the host): dropped;
- the rest of the sandbox network (the topology's containers, each still demanding a token):
  allowed;
- everything else, IPv4 and IPv6: dropped.

Building the rules is pure (:func:`egress_script`); :func:`seal` runs them. When the helper fails
(an image without iptables, a kernel without netfilter) the sandbox is not started: fail closed.
"""

from __future__ import annotations

import ipaddress
import shlex

from codebolt_topo.errors import ProviderError
from codebolt_topo.providers.docker.engine import DockerEngine, in_thread

__all__ = ["egress_rules", "egress_script", "seal"]


def egress_rules(gateway: str, subnet: str) -> list[list[str]]:
    """The iptables and ip6tables invocations, in order, as argument lists."""
    gateway = str(ipaddress.ip_address(gateway))
    subnet = str(ipaddress.ip_network(subnet, strict=False))
    rules: list[list[str]] = []
    for tool in ("iptables", "ip6tables"):
        rules += [
            [tool, "-w", "-A", "OUTPUT", "-o", "lo", "-j", "ACCEPT"],
            [
                tool,
                "-w",
                "-A",
                "OUTPUT",
                "-m",
                "conntrack",
                "--ctstate",
                "ESTABLISHED,RELATED",
                "-j",
                "ACCEPT",
            ],
        ]
        if tool == "iptables":
            rules += [
                [tool, "-w", "-A", "OUTPUT", "-d", f"{gateway}/32", "-j", "DROP"],
                [tool, "-w", "-A", "OUTPUT", "-d", subnet, "-j", "ACCEPT"],
            ]
        rules.append([tool, "-w", "-P", "OUTPUT", "DROP"])
    return rules


def egress_script(gateway: str, subnet: str) -> str:
    """The rules as one ``sh -c`` script that stops at the first failure.

    ip6tables may find no IPv6 in the namespace (disabled by sysctl): then there is nothing to
    filter and its failure is ignored; an iptables failure is not.
    """
    lines = ["set -e"]
    for rule in egress_rules(gateway, subnet):
        command = shlex.join(rule)
        if rule[0] == "ip6tables":
            command += " 2>/dev/null || [ ! -e /proc/net/if_inet6 ]"
        lines.append(command)
    return "\n".join(lines)


async def seal(
    engine: DockerEngine,
    container_id: str,
    image: str,
    network: str,
    node: str,
    labels: dict[str, str],
) -> None:
    """Install the egress rules in the network namespace of ``container_id``."""
    attrs = await in_thread(engine.attrs, container_id) or {}
    endpoint = attrs.get("NetworkSettings", {}).get("Networks", {}).get(network, {})
    gateway, address, prefix = (
        endpoint.get("Gateway"),
        endpoint.get("IPAddress"),
        endpoint.get("IPPrefixLen"),
    )
    if not (gateway and address and prefix):
        raise ProviderError(f"sandbox node {node!r}: no address on network {network}")
    script = egress_script(gateway, f"{address}/{prefix}")
    code, output = await in_thread(
        engine.run_in_namespace_of, container_id, image, ["sh", "-c", script], labels
    )
    if code != 0:
        raise ProviderError(
            f"sandbox node {node!r}: could not install its egress firewall (exit {code}): "
            f"{output.strip()[-400:] or 'no output'}; the image needs iptables "
            "(the project's Dockerfile installs it)"
        )
