"""The sandbox egress rules, read as data (the docker tests check them against real traffic)."""

from __future__ import annotations

import pytest

from codebolt_topo.providers.docker.firewall import egress_rules, egress_script


def test_rules_allow_replies_and_the_network_but_not_the_gateway() -> None:
    rules = [" ".join(rule) for rule in egress_rules("172.30.0.1", "172.30.0.7/16")]
    v4 = [rule for rule in rules if rule.startswith("iptables ")]
    assert v4 == [
        "iptables -w -A OUTPUT -o lo -j ACCEPT",
        "iptables -w -A OUTPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT",
        "iptables -w -A OUTPUT -d 172.30.0.1/32 -j DROP",
        "iptables -w -A OUTPUT -d 172.30.0.0/16 -j ACCEPT",
        "iptables -w -P OUTPUT DROP",
    ]
    # The gateway's drop comes before the network's accept: order is the whole point.
    assert rules.index("iptables -w -A OUTPUT -d 172.30.0.1/32 -j DROP") < rules.index(
        "iptables -w -A OUTPUT -d 172.30.0.0/16 -j ACCEPT"
    )
    assert rules[-1] == "ip6tables -w -P OUTPUT DROP"
    assert not any("ip6tables" in rule and "-d " in rule for rule in rules)


def test_script_stops_at_the_first_iptables_failure() -> None:
    script = egress_script("10.0.0.1", "10.0.0.0/24")
    assert script.startswith("set -e\n")
    assert "iptables -w -P OUTPUT DROP\n" in script
    for line in script.splitlines():
        if line.startswith("iptables "):
            assert "||" not in line


@pytest.mark.parametrize(("gateway", "subnet"), [("not-an-ip", "10.0.0.0/8"), ("10.0.0.1", "x")])
def test_malformed_addresses_are_refused(gateway: str, subnet: str) -> None:
    with pytest.raises(ValueError, match="does not appear to be an IPv4 or IPv6"):
        egress_rules(gateway, subnet)
