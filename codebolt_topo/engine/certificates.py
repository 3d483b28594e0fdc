"""The certificates ``apply`` issues: the topology's CA, made once, and one identity per node.

Which links run over TLS (docs/architecture.md, "Which links use TLS"): a node's server speaks
TLS when its provider runs it on another machine (``ProviderRules.serves_tls``: cloud-vm), so
every link that reaches it, from the engine or from a peer, leaves this host encrypted and
pinned. Nodes on this machine (local, docker) serve plain WebSocket on loopback or a docker
bridge inside this kernel: TLS there would add ~0.15 ms per hop and protect nothing a local
root could not read anyway (benchmarks/bench_dial.py). Every node still gets its own
certificate, because a node on this machine that opens a link to a TLS node (a sender, or a
receiver that dials) must present one naming it: the far end checks that name against the
token's principal.

The CA lives in the state (``State.ca``), its key sealed with the state key like every token, so
the file backend keeps it in the 0600 state file and PostgreSQL in its sealed row, and
``destroy`` removes it with the rest. A node's key is never stored: it goes once into the node's
launch config (written 0600 by every provider) and a replacement gets a new one. Re-applying
issues nothing, so certificates stay as they are and no node is replaced for them.
"""

from __future__ import annotations

from codebolt_topo.engine.statekey import KEY_ENV, MissingKeyError, is_sealed, sealed_key_id
from codebolt_topo.model.discovery import rules_of
from codebolt_topo.model.state import State, TopologyCa
from codebolt_topo.model.topology import NodeSpec
from codebolt_topo.wire.config import TlsIdentity

__all__ = ["identity_for", "node_serves_tls", "serves_tls", "topology_ca"]


def serves_tls(provider: str) -> bool:
    """Whether nodes of ``provider`` run on another machine, so their server speaks TLS."""
    rules = rules_of(provider)
    return bool(getattr(rules, "serves_tls", False))


def node_serves_tls(spec: NodeSpec, entry: int | None) -> bool:
    """Whether ``spec``'s server speaks TLS. A node with a ``placement:`` list (hybrid) may end
    on any entry from the one the plan forecast (``entry``) onwards, when an earlier one is
    full by then, while its launch config is written before: it serves TLS when any of them
    would."""
    entries = list(getattr(spec, "placement", None) or [])[entry or 0 :]
    if not entries:
        rules = rules_of(spec.provider)
        decide = getattr(rules, "serves_tls_for", None)
        return bool(decide(spec)) if callable(decide) else serves_tls(spec.provider)
    return any(serves_tls(e if isinstance(e, str) else str(e.provider)) for e in entries)


def topology_ca(state: State) -> TopologyCa:
    """The topology's CA, made on first use and kept in ``state`` (the caller saves it)."""
    if state.ca is None:
        from codebolt_topo.wire.pki import issue_ca

        made = issue_ca(state.topology)
        state.ca = TopologyCa(cert=made.cert, key=made.key)
    return state.ca


def identity_for(state: State, node: str, *, serve: bool) -> TlsIdentity:
    """A fresh certificate and key naming ``node``, issued by the topology's CA; ``serve``:
    its server speaks TLS with them (else it only presents them on links it opens)."""
    from codebolt_topo.wire.pki import CertificateAuthority

    ca = topology_ca(state)
    if is_sealed(ca.key):
        raise MissingKeyError(
            f"cannot issue node {node!r} its certificate: the topology CA's key is encrypted "
            f"with state key {sealed_key_id(ca.key)}, which this machine does not have "
            f"(set {KEY_ENV})"
        )
    identity = CertificateAuthority(cert=ca.cert, key=ca.key).issue(node)
    return identity.model_copy(update={"serve": serve})
