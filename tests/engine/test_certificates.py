"""The topology's CA and node certificates as apply keeps them (engine/certificates.py).

The CA is made once and kept in the state with its key sealed by the state key, on the file
backend and on a real PostgreSQL; without the state key nothing can be issued, and the error
says which key is missing. Which providers serve TLS comes from their rules.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import psycopg
import pytest
from cryptography import x509
from postgres_server import PostgresServer

from codebolt_topo.engine.backends import open_backend
from codebolt_topo.engine.certificates import (
    identity_for,
    node_serves_tls,
    serves_tls,
    topology_ca,
)
from codebolt_topo.engine.dialing import resolve_edge
from codebolt_topo.engine.statefile import StateBackend, StateFile
from codebolt_topo.engine.statekey import Keyring, MissingKeyError
from codebolt_topo.model.backend import BackendSpec
from codebolt_topo.model.nodes import node_model
from codebolt_topo.model.state import NodeState, State


def _issued_to(pem: str) -> list[str]:
    cert = x509.load_pem_x509_certificate(pem.encode())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return names.get_values_for_type(x509.DNSName)


def _keep_and_reload(backend: StateBackend) -> State:
    state = backend.load()
    made = topology_ca(state)
    assert topology_ca(state) is made, "made once, then kept"
    with backend.locked("apply"):
        backend.save(state)
    again = backend.load()
    assert again.ca == made, "the key opens again with the state key"
    return again


def test_the_ca_is_kept_sealed_in_the_state_file(tmp_path: Path) -> None:
    backend = StateFile(tmp_path, "t")
    state = _keep_and_reload(backend)
    assert state.ca is not None
    stored = backend.path.read_text()
    assert backend.path.stat().st_mode & 0o777 == 0o600
    assert "PRIVATE KEY" not in stored
    assert state.ca.cert in stored.replace("\\n", "\n"), "the certificate itself is public"

    identity = identity_for(state, "a", serve=False)
    assert _issued_to(identity.cert) == ["a"]
    assert identity.ca == state.ca.cert
    assert not identity.serve
    assert identity_for(state, "a", serve=True).cert != identity.cert, "a fresh key each time"

    elsewhere = Keyring(tmp_path / "elsewhere" / "t.key")  # a machine without the state key
    locked_out = StateFile(tmp_path, "t", keyring=elsewhere).load(sealed_ok=True)
    assert locked_out.ca is not None
    assert locked_out.ca.key.startswith("sealed:v1:")
    with pytest.raises(MissingKeyError, match=r"node .b.*state key"):
        identity_for(locked_out, "b", serve=True)


def test_the_ca_is_kept_sealed_in_postgres(
    tmp_path: Path, postgres: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CODEBOLT_PG_DSN", postgres.dsn)
    name = f"t{uuid.uuid4().hex[:10]}"
    backend = open_backend(tmp_path / "topology.yaml", name, BackendSpec(type="postgres"))
    state = _keep_and_reload(backend)
    assert state.ca is not None
    with psycopg.connect(postgres.dsn) as conn:
        stored = conn.execute(
            "SELECT string_agg(document, '') FROM codebolt.state_versions WHERE topology = %s",
            (name,),
        ).fetchone()
    assert stored is not None
    assert "PRIVATE KEY" not in stored[0]
    assert "BEGIN CERTIFICATE" in stored[0]


def test_only_nodes_on_other_hosts_serve_tls() -> None:
    assert serves_tls("cloud-vm")
    assert not serves_tls("local")
    assert not serves_tls("docker")
    assert not serves_tls("no-such-provider")
    spec = node_model()
    assert node_serves_tls(
        spec.model_validate({"provider": "cloud-vm", "ssh": {"host": "h"}}), None
    )
    assert not node_serves_tls(spec.model_validate({}), None)
    hybrid = spec.model_validate(
        {
            "provider": "hybrid",
            "placement": ["local", {"provider": "cloud-vm", "overrides": {"ssh": {"host": "h"}}}],
        }
    )
    assert node_serves_tls(hybrid, 0), "it may end on cloud-vm when local is full"
    assert node_serves_tls(hybrid, 1)
    local_only = spec.model_validate({"provider": "hybrid", "placement": ["local", "docker"]})
    assert not node_serves_tls(local_only, 0)


def test_links_pin_only_ends_that_serve_the_topology_certificate() -> None:
    """A wss:// URL to an e2b node is e2b's proxy, with a public certificate: the link to it
    must not pin the topology's CA, while one to a cloud-vm node must."""

    def node(name: str, provider: str, ca: str | None) -> NodeState:
        return NodeState(
            name=name, provider=provider, admin_token="t", launch_hash="h", pinned_ca=ca
        )

    def url_from(start: NodeState, end: NodeState) -> str:
        return f"wss://{end.name}.example:443"

    here, vm, box = (
        node("here", "local", None),
        node("vm", "cloud-vm", "CA"),
        node("box", "e2b", None),
    )
    to_vm = resolve_edge("sender", here, vm, url_from).peer_link("w")
    to_box = resolve_edge("sender", here, box, url_from).peer_link("w")
    assert to_vm is not None
    assert to_box is not None
    assert to_vm.pinned
    assert not to_box.pinned
    dial_vm = resolve_edge("receiver", vm, here, url_from).dial_out("w")
    dial_box = resolve_edge("receiver", box, here, url_from).dial_out("w")
    assert dial_vm is not None
    assert dial_box is not None
    assert dial_vm.pinned
    assert not dial_box.pinned
