"""Issue 14, item 1: links that leave a host are TLS with certificates the topology issues, and
each end pins (the topology's CA only, and the node name it expects).

Real daemons serving ``wss://`` with certificates from :mod:`codebolt_topo.wire.pki`: work runs
over sender- and receiver-dialed links; a certificate from another topology's CA, or one of this
topology naming another node, opens nothing; a client that expects another node refuses the
far end; a plain connection to a TLS node gets no answer.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidMessage, InvalidStatus

from codebolt_topo.client import ExecResult, NodeClient
from codebolt_topo.errors import ExecError
from codebolt_topo.testing import Cluster
from codebolt_topo.wire.config import DialOut
from codebolt_topo.wire.dialing import new_nonce
from codebolt_topo.wire.handshake import CLOCK_HEADER, DIAL_HEADER, NONCE_HEADER, SUBPROTOCOL
from codebolt_topo.wire.pki import CertificateAuthority, issue_ca
from codebolt_topo.wire.tls import client_context

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ca() -> CertificateAuthority:
    return issue_ca("tls-test")


@pytest.fixture
def secured(tmp_path: Path, ca: CertificateAuthority) -> Iterator[Cluster]:
    """a -> b opened by b, b -> c opened by b: every link and client over pinned TLS."""
    cluster = Cluster(
        tmp_path,
        [("a", "b"), ("b", "c")],
        dial={("a", "b")},
        tls={node: ca.issue(node) for node in ("a", "b", "c")},
    )
    cluster.start()
    try:
        asyncio.run(cluster.configure())
        yield cluster
    finally:
        cluster.stop()


def test_work_runs_over_pinned_tls_links_both_ways_of_dialing(secured: Cluster) -> None:
    async def main() -> ExecResult:
        async with secured.client("a") as client:
            return await (await client.exec(["b", "c"], shell="echo $CODEBOLT_NODE")).result()

    result = asyncio.run(main())
    assert result.failures == []
    assert (result["b"].stdout, result["c"].stdout) == (b"b\n", b"c\n")
    assert secured.url("a").startswith("wss://")


@pytest.mark.parametrize("who", ["foreign-ca", "other-node"])
def test_a_dialer_without_the_topologys_certificate_for_its_name_is_refused(
    secured: Cluster, ca: CertificateAuthority, who: str
) -> None:
    """b's valid dial token, presented with a certificate of another topology (the TLS
    handshake fails) or with this topology's certificate for c (403: the token names b)."""
    identity = issue_ca("elsewhere").issue("b") if who == "foreign-ca" else ca.issue("c")
    context = client_context(ca.cert, identity)

    async def main() -> str:
        try:
            async with connect(
                secured.url("a"),
                ssl=context,
                server_hostname="a",
                additional_headers={
                    "Authorization": "Bearer " + secured.dial_token("a", "b"),
                    DIAL_HEADER: "b",
                    NONCE_HEADER: new_nonce(),
                    CLOCK_HEADER: "0" * 16 + " 0.0",
                },
                subprotocols=[SUBPROTOCOL],  # type: ignore[list-item]
            ):
                return "101"
        except InvalidStatus as exc:
            return str(exc.response.status_code)
        except (ssl.SSLError, OSError, EOFError, InvalidMessage) as exc:
            # TLS 1.3: the server checks the client's certificate after the client finished its
            # half of the handshake, so the refusal shows as a connection that ends unanswered.
            return f"tls: {type(exc).__name__}"

    outcome = asyncio.run(main())
    if who == "foreign-ca":
        assert outcome.startswith("tls"), outcome
    else:
        assert outcome == "403"


def test_a_client_pins_the_node_name_it_expects(secured: Cluster, ca: CertificateAuthority) -> None:
    async def main() -> ExecError:
        with pytest.raises(ExecError) as caught:
            async with NodeClient.connect(
                secured.url("a"), secured.admin_token, name="b", tls=client_context(ca.cert)
            ):
                pass
        return caught.value

    error = asyncio.run(main())
    assert error.code == "unreachable"
    assert "certificate" in str(error)


def test_a_client_trusting_another_ca_refuses_the_node(secured: Cluster) -> None:
    other = client_context(issue_ca("elsewhere").cert)

    async def main() -> ExecError:
        with pytest.raises(ExecError) as caught:
            async with NodeClient.connect(
                secured.url("a"), secured.admin_token, name="a", tls=other
            ):
                pass
        return caught.value

    assert "certificate" in str(asyncio.run(main()))


def test_plain_websocket_to_a_tls_node_gets_nowhere(secured: Cluster) -> None:
    plain = secured.url("a").replace("wss://", "ws://")

    async def main() -> ExecError:
        with pytest.raises(ExecError) as caught:
            async with NodeClient.connect(plain, secured.admin_token, name="a"):
                pass
        return caught.value

    assert asyncio.run(main()).code == "unreachable"


def test_a_dialing_receiver_pins_its_sender(tmp_path: Path, ca: CertificateAuthority) -> None:
    """b is told to dial a, but the address leads to c (same topology, a valid certificate, but
    for c): b's TLS handshake fails on the name, b dials nothing else, and c gets no link."""
    cluster = Cluster(
        tmp_path,
        [("a", "b")],
        nodes=["a", "b", "c"],
        dial={("a", "b")},
        tls={node: ca.issue(node) for node in ("a", "b", "c")},
    )
    cluster.start()
    try:

        async def main() -> None:
            spoofed = {"a": DialOut(url=cluster.url("c"), token=cluster.dial_token("a", "b"))}
            await cluster.configure(b={"dial": spoofed})
            await asyncio.sleep(1.5)  # b has tried (and backed off) a few times by now

        asyncio.run(main())
    finally:
        cluster.stop()
    b_log = (tmp_path / "b" / "daemon.log").read_text()
    assert "certificate is not the topology's for this node" in b_log
    assert "Hostname mismatch" in b_log
    assert "open (dialed by b)" not in b_log
    assert "dialed by" not in (tmp_path / "c" / "daemon.log").read_text()
