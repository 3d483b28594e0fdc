"""A real multi-node swarm for the tests: this engine as manager, two docker-in-docker workers,
and a real registry through which the workers get the node image.

* The manager is the engine the tests talk to. When it is not in a swarm it is initialised on
  the Docker bridge's gateway address (reachable from the workers, from nothing outside this
  machine) and left again at the end; a swarm found active is used and left as found.
* Each worker is a container of Debian's ``docker.io`` on the project's debootstrapped base
  (``worker/``), with every capability this host lets a container have (``--privileged`` is
  refused where the bounding set lacks one); worker 1 carries the label ``codebolt.gpu=true``,
  worker 2 ``codebolt.zone=b`` and the manager ``codebolt.zone=a`` (removed again at the end),
  so a test can say where each node must run: Swarm balances one service's tasks over the
  machines, but not services created together (its counts lag), so six one-task services may
  share two machines.
* The registry is Debian's ``docker-registry`` (distribution), run by the tests on the bridge's
  gateway with a throwaway CA: the manager pushes the node image to it and every worker pulls
  it from there when a task lands on it. The CA goes to ``/etc/docker/certs.d/<registry>/``
  (read per pull, no daemon restart) and is removed at the end.

One cluster per session, behind a file lock: two test sessions on one engine take turns.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import ipaddress
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import docker.errors
import docker.types

WORKER_DIR = Path(__file__).resolve().parent / "worker"
BASE_IMAGE = "codebolt-base:bookworm-2"  # scripts/build-node-image.sh
WORKER_LABEL = "org.codebolt.test"
WORKER_KIND = "swarm-worker"
#: The manager's zone label (the workers' are set as they join).
MANAGER_ZONE = "codebolt.zone"
LOCK = Path(tempfile.gettempdir()) / "codebolt-swarm-tests.lock"
CERTS_D = Path("/etc/docker/certs.d")
REGISTRY_BIN = "/usr/bin/docker-registry"
#: Capability names by bit (linux/capability.h), to drop those this host does not grant.
CAPABILITIES = [
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
]


def client() -> Any:
    return docker.from_env(timeout=120)


def missing_capabilities() -> list[str]:
    """Capabilities outside this process's bounding set (a container cannot be given them)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapBnd:"):
            bits = int(line.split()[1], 16)
            return [name for bit, name in enumerate(CAPABILITIES) if not bits >> bit & 1]
    return []


def bridge_gateway() -> str:
    """The Docker bridge's gateway: this machine as its containers see it."""
    config = (client().networks.get("bridge").attrs.get("IPAM") or {}).get("Config") or [{}]
    gateway = config[0].get("Gateway")
    if gateway:
        return str(gateway)
    return str(next(ipaddress.ip_network(config[0]["Subnet"]).hosts()))


def free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def worker_image() -> str:
    """The worker image, built once per content of ``worker/``."""
    import hashlib

    digest = hashlib.sha256()
    for path in sorted(WORKER_DIR.iterdir()):
        digest.update(path.name.encode() + path.read_bytes())
    tag = f"codebolt-swarm-worker:{digest.hexdigest()[:12]}"
    try:
        client().images.get(tag)
    except docker.errors.ImageNotFound:
        subprocess.run(
            ["docker", "build", "-q", "--build-arg", f"BASE={BASE_IMAGE}", "-t", tag, "."],
            cwd=WORKER_DIR,
            env={**os.environ, "DOCKER_BUILDKIT": "0"},
            check=True,
            capture_output=True,
            timeout=600,
        )
    return tag


def _self_signed(address: str, directory: Path) -> tuple[Path, Path]:
    """A certificate for ``address`` (its own CA) and its key, as PEM files."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "codebolt test registry")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(address))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "registry.crt", directory / "registry.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    return cert_path, key_path


@dataclass
class Registry:
    """Debian's docker-registry serving ``address:port`` over TLS from ``directory``."""

    address: str
    directory: Path
    port: int = 0
    process: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        return f"{self.address}:{self.port}"

    def start(self) -> None:
        self.port = free_port(self.address)
        cert, key = _self_signed(self.address, self.directory)
        config = self.directory / "config.yml"
        config.write_text(
            "version: 0.1\n"
            f"storage: {{filesystem: {{rootdirectory: {self.directory / 'data'}}}}}\n"
            f"http: {{addr: '{self.host}', tls: {{certificate: {cert}, key: {key}}}}}\n"
            "log: {level: warn}\n"
        )
        trust = CERTS_D / self.host
        trust.mkdir(parents=True, exist_ok=True)
        shutil.copy(cert, trust / "ca.crt")
        with (self.directory / "registry.log").open("wb") as log:
            self.process = subprocess.Popen(
                [REGISTRY_BIN, "serve", str(config)], stdout=log, stderr=log
            )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with (
                contextlib.suppress(OSError),
                socket.create_connection((self.address, self.port), 1),
            ):
                return
            time.sleep(0.1)
        raise RuntimeError(
            f"registry did not listen: {(self.directory / 'registry.log').read_text()}"
        )

    def push(self, image: str) -> str:
        """Push local ``image`` here; the reference every swarm node pulls."""
        repository, tag = image.rsplit(":", 1)
        reference = f"{self.host}/{repository}:{tag}"
        client().images.get(image).tag(f"{self.host}/{repository}", tag)
        for line in client().images.push(
            f"{self.host}/{repository}", tag, stream=True, decode=True
        ):
            if "error" in line:
                raise RuntimeError(f"push of {reference} failed: {line['error']}")
        return reference

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(10)
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(CERTS_D / self.host, ignore_errors=True)


@dataclass
class Worker:
    """One docker-in-docker worker: its container and its swarm node id."""

    name: str
    container: Any
    node_id: str = ""

    def docker(self, *args: str, check: bool = True) -> str:
        """``docker ARGS`` run against the worker's own engine."""
        code, output = self.container.exec_run(["docker", *args])
        text = bytes(output).decode(errors="replace")
        if check and code != 0:
            raise RuntimeError(f"{self.name}: docker {' '.join(args)}: {text}")
        return text


@dataclass
class SwarmCluster:
    """The running cluster: the manager's address, the workers, the node image's reference."""

    gateway: str
    image: str
    registry: Registry
    workers: list[Worker] = field(default_factory=list)
    initialised: bool = False
    manager_labels_before: dict[str, str | None] = field(default_factory=dict)

    def worker(self, name: str) -> Worker:
        return next(w for w in self.workers if w.name == name)

    def node_hostnames(self) -> dict[str, str]:
        """Swarm node id -> hostname."""
        return {n["ID"]: n["Description"]["Hostname"] for n in client().api.nodes()}

    def wait_ready(self, worker: Worker, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            node = client().api.inspect_node(worker.node_id)
            if node["Status"]["State"] == "ready":
                return
            time.sleep(0.5)
        raise RuntimeError(f"{worker.name} did not become ready")

    def start_worker(self, name: str, image: str, labels: dict[str, str]) -> Worker:
        """A new worker joined to the swarm, its node labelled with ``labels``."""
        container = run_engine(
            image,
            ["--mtu", str(_mtu())],
            name=name,
            # Its images and containers on the host's disk, not on a layered root filesystem.
            mounts=[
                docker.types.Mount("/var/lib/docker", None, type="volume"),
                docker.types.Mount(  # the registry's CA (its path holds a colon: no -v)
                    f"/etc/docker/certs.d/{self.registry.host}",
                    str(CERTS_D / self.registry.host),
                    type="bind",
                    read_only=True,
                ),
            ],
        )
        worker = Worker(name=name, container=container)
        deadline = time.monotonic() + 60
        while worker.docker("info", check=False).find("Server Version") < 0:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name}: dockerd did not start: {container.logs()[-2000:]!r}")
            time.sleep(0.3)
        token = client().swarm.attrs["JoinTokens"]["Worker"]
        worker.docker("swarm", "join", "--token", token, f"{self.gateway}:2377")
        worker.node_id = worker.docker("info", "--format", "{{.Swarm.NodeID}}").strip()
        self.wait_ready(worker)
        if labels:
            node = client().nodes.get(worker.node_id)
            spec = dict(node.attrs["Spec"])
            spec["Labels"] = {**(spec.get("Labels") or {}), **labels}
            node.update(spec)
        self.workers.append(worker)
        return worker

    def label_manager(self, labels: dict[str, str | None]) -> dict[str, str | None]:
        """Set (or, with None, remove) labels of the manager's swarm node; returns what they
        were (None: absent), for putting them back."""
        node = client().nodes.get(client().info()["Swarm"]["NodeID"])
        spec = dict(node.attrs["Spec"])
        before = spec.get("Labels") or {}
        merged = {**before, **labels}
        spec["Labels"] = {key: value for key, value in merged.items() if value is not None}
        node.update(spec)
        return {key: before.get(key) for key in labels}

    def set_availability(self, worker: Worker, availability: str) -> None:
        node = client().nodes.get(worker.node_id)
        node.update({**node.attrs["Spec"], "Availability": availability})


def run_engine(image: str, command: list[str], name: str | None = None, **host: Any) -> Any:
    """A started docker-in-docker container of ``image`` (``command``: dockerd's arguments):
    every capability this host grants, no seccomp or AppArmor profile, /proc and /sys unmasked
    (``--security-opt systempaths=unconfined``, which the SDK cannot say), /run on tmpfs so a
    killed engine's pid file does not keep it from starting again."""
    api = client().api
    config = api.create_host_config(
        cap_add=["ALL"],
        cap_drop=missing_capabilities(),
        security_opt=["seccomp=unconfined", "apparmor=unconfined"],
        tmpfs={"/run": ""},
        **host,
    )
    config["MaskedPaths"] = []
    config["ReadonlyPaths"] = []
    created = api.create_container(
        image,
        command,
        name=name,
        hostname=name,
        labels={WORKER_LABEL: WORKER_KIND},
        host_config=config,
    )
    api.start(created["Id"])
    return client().containers.get(created["Id"])


def _mtu() -> int:
    options = client().networks.get("bridge").attrs.get("Options") or {}
    return int(options.get("com.docker.network.driver.mtu", 1500))


def _remove_stale_workers() -> None:
    """Workers a killed session left (its swarm, if any, was left with it)."""
    for container in client().containers.list(
        all=True, filters={"label": f"{WORKER_LABEL}={WORKER_KIND}"}
    ):
        container.remove(force=True, v=True)


def _swarm_state() -> dict[str, Any]:
    return dict(client().info().get("Swarm") or {})


@contextlib.contextmanager
def running_cluster(node_image: str) -> Iterator[SwarmCluster]:
    """The cluster for one test session (see the module docstring); everything it started is
    removed and the manager's swarm state restored when the block ends."""
    LOCK.touch(exist_ok=True)
    with LOCK.open("r+") as lock, tempfile.TemporaryDirectory(prefix="codebolt-swarm-") as tmp:
        fcntl.flock(lock, fcntl.LOCK_EX)
        _remove_stale_workers()
        gateway = bridge_gateway()
        initialised = False
        had_gwbridge = bool(client().networks.list(names=["docker_gwbridge"]))
        if _swarm_state().get("LocalNodeState") != "active":
            client().swarm.init(advertise_addr=gateway, listen_addr=f"{gateway}:2377")
            initialised = True
        registry = Registry(address=gateway, directory=Path(tmp))
        cluster = SwarmCluster(
            gateway=gateway, image="", registry=registry, initialised=initialised
        )
        try:
            registry.start()
            cluster.image = registry.push(node_image)
            image = worker_image()
            cluster.start_worker("codebolt-swarm-w1", image, {"codebolt.gpu": "true"})
            cluster.start_worker("codebolt-swarm-w2", image, {"codebolt.zone": "b"})
            cluster.manager_labels_before = cluster.label_manager({MANAGER_ZONE: "a"})
            yield cluster
        finally:
            _teardown(cluster, had_gwbridge)


def _teardown(cluster: SwarmCluster, had_gwbridge: bool) -> None:
    engine = client()
    if _swarm_state().get("LocalNodeState") == "active":
        with contextlib.suppress(docker.errors.APIError):
            cluster.label_manager(cluster.manager_labels_before)
    for worker in cluster.workers:
        with contextlib.suppress(docker.errors.NotFound):
            worker.container.remove(force=True, v=True)
        with contextlib.suppress(docker.errors.APIError):
            engine.api.remove_node(worker.node_id, force=True)
    if cluster.initialised:
        engine.swarm.leave(force=True)
        if not had_gwbridge:  # swarm init creates it and leaving keeps it
            for network in engine.networks.list(names=["docker_gwbridge"]):
                with contextlib.suppress(docker.errors.APIError):
                    network.remove()
    cluster.registry.stop()
    repository = f"{cluster.registry.host}/"
    for image in engine.images.list():
        for tag in image.tags:
            if tag.startswith(repository):
                engine.images.remove(tag)
