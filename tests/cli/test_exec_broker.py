"""``codebolt exec`` through the topology's warm broker (cli/broker_client.py, cli/broker.py).

Every other CLI test that runs ``exec`` twice on one topology already goes through the broker
the second time, so the output, prefixes and exit codes they assert hold for both paths. Here:
that a warm exec imports only the standard library, that the broker serves what it should and
refuses what it must, that Ctrl-C and a killed caller cancel the job, that a slow reader stalls
only its own request, and that the broker goes away with the topology.
"""

from __future__ import annotations

import array
import fcntl
import json
import os
import pty
import re
import select
import signal
import socket
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_helpers import applied_through_the_cli, codebolt

from codebolt_topo.cli import broker_client, broker_wire
from codebolt_topo.cli.broker_client import broker_dir, broker_socket
from codebolt_topo.cli.output import TERMINAL_ENV

pytestmark = pytest.mark.slow

TOPOLOGY = """\
name: brokered
nodes: {a: {}, b: {}, c: {}}
edges: [a -> b -> c]
"""

MODULES = """
import json, sys
from codebolt_topo.cli.main import main
code = main(sys.argv[1:])
print(json.dumps({"code": code, "modules": sorted(sys.modules)}), file=sys.stderr)
"""


def broker_of(directory: Path) -> Path:
    return Path(broker_socket(str(directory / "topology.yaml")))


def warm(directory: Path) -> None:
    """Run one exec (it starts the broker) and wait until the broker answers."""
    codebolt("exec", "a", "--", "true", cwd=directory)
    deadline = time.monotonic() + 30
    while not broker_of(directory).exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert broker_of(directory).exists(), "no broker started"


@pytest.fixture(scope="module")
def applied(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    with applied_through_the_cli(tmp_path_factory, "brokered", TOPOLOGY) as directory:
        warm(directory)
        yield directory


def run_with_modules(directory: Path, *args: str) -> tuple[int, list[str], str]:
    done = subprocess.run(
        [sys.executable, "-c", MODULES, *args],
        cwd=directory,
        capture_output=True,
        text=True,
        timeout=60,
        input="",
    )
    report = json.loads(done.stderr.strip().splitlines()[-1])
    return report["code"], report["modules"], done.stdout


def test_a_warm_exec_imports_only_the_standard_library(applied: Path) -> None:
    code, modules, stdout = run_with_modules(applied, "exec", "c", "--", "echo", "hi")
    assert (code, stdout) == (0, "hi\n")
    ours = sorted(m for m in modules if m.startswith("codebolt_topo"))
    assert ours == [
        "codebolt_topo",
        "codebolt_topo.cli",
        "codebolt_topo.cli.broker_client",
        "codebolt_topo.cli.broker_wire",
        "codebolt_topo.cli.main",
        "codebolt_topo.rundir",
    ]
    heavy = {
        "typer",
        "click",
        "pydantic",
        "pydantic_core",
        "asyncio",
        "websockets",
        "rich",
        "ruamel",
        "networkx",
        "subprocess",
    }
    assert heavy.isdisjoint(m.split(".")[0] for m in modules)


def test_what_the_broker_cannot_serve_takes_the_full_path(applied: Path) -> None:
    code, modules, _ = run_with_modules(applied, "exec", "--requires", "python", "--", "true")
    assert code == 0
    assert "typer" in modules  # --requires asks the nodes: the full path's job
    code, modules, _ = run_with_modules(applied, "exec", "--no-broker", "c", "--", "true")
    assert (code, "typer" in modules) == (0, True)


CASES = [
    ("b,c", "--", "sh", "-c", "echo at $CODEBOLT_NODE"),
    ("c", "--", "sh", "-c", "echo out; echo err >&2; exit 7"),
    ("zz", "--", "true"),
    ("--from", "b", "a", "--", "true"),
    ("--timeout", "0.3", "c", "--", "sleep", "30"),
    ("--all", "--shell", "--", "echo all on $CODEBOLT_NODE"),
    ("c", "--", "definitely-not-a-command"),
    ("c", "--", "printf", "%s", os.fsdecode(b"\xff\xfe-not-utf-8")),  # argv bytes, not text
]


@pytest.mark.parametrize("args", CASES, ids=[" ".join(case) for case in CASES])
def test_the_broker_answers_like_the_full_path(applied: Path, args: tuple[str, ...]) -> None:
    def outcome(env: dict[str, str]) -> tuple[int, list[str], list[str]]:
        done = codebolt("exec", *args, cwd=applied, env=env)
        errors = re.sub(r"pid \d+", "pid N", done.stderr)  # each run starts new processes
        return done.returncode, sorted(done.stdout.splitlines()), sorted(errors.splitlines())

    assert outcome({}) == outcome({"CODEBOLT_BROKER": "0"})


def test_a_command_word_that_is_not_utf8_is_refused_naming_it(applied: Path) -> None:
    """A request carries its command as text: a byte the shell passed that is no UTF-8 is
    refused before anything is sent, saying which word and what to do instead (it was an
    internal error, and through the broker a broker gone away)."""
    word = os.fsdecode(b"\xff\xfe-not-utf-8")
    for env in ({}, {"CODEBOLT_BROKER": "0"}):
        done = codebolt("exec", "c", "--", "printf", "%s", word, cwd=applied, env=env)
        assert done.returncode not in (0, 70, 255), done.stderr
        assert "word 3 of the command" in done.stderr, done.stderr
        assert "--stdin" in done.stderr
        assert "internal error" not in done.stderr


def test_stdin_reaches_the_command_through_the_broker(applied: Path) -> None:
    piped = subprocess.run(
        [sys.executable, "-m", "codebolt_topo.cli.main", "exec", "--stdin", "c", "--", "wc", "-c"],
        cwd=applied,
        input=b"x" * 100_000,
        capture_output=True,
        timeout=60,
    )
    assert piped.stdout.strip() == b"100000"


def _running(directory: Path, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "codebolt_topo.cli.main", "exec", *args],
        cwd=directory,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )


def _marker_alive(marker: str) -> bool:
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if marker.encode() in Path(f"/proc/{entry}/cmdline").read_bytes():
                    return True
            except OSError:
                continue
    return False


def _gone(marker: str, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while _marker_alive(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not _marker_alive(marker)


def test_ctrl_c_and_a_killed_caller_cancel_the_job(applied: Path) -> None:
    with _running(applied, "c", "--", "sh", "-c", "echo up; sleep 31.5") as interrupted:
        assert interrupted.stdout is not None
        assert interrupted.stdout.readline() == b"up\n"
        interrupted.send_signal(signal.SIGINT)
        assert interrupted.wait(20) == 128 + signal.SIGTERM
    assert _gone("sleep 31.5")

    with _running(applied, "c", "--", "sh", "-c", "echo up; sleep 32.5") as killed:
        assert killed.stdout is not None
        assert killed.stdout.readline() == b"up\n"
        killed.kill()
        killed.wait()
    assert _gone("sleep 32.5")


def test_a_slow_reader_stalls_only_its_own_request(applied: Path) -> None:
    with _running(applied, "c", "--", "sh", "-c", "yes flood | head -c 200000000") as flood:
        try:
            time.sleep(1.0)  # its pipe to us is full: nobody reads it
            started = time.monotonic()
            other = codebolt("exec", "b", "--", "echo", "still served", cwd=applied)
            assert other.stdout == "still served\n"
            assert time.monotonic() - started < 30  # a bound on a hang, not a speed figure
        finally:
            flood.kill()


def test_the_socket_directory_must_be_private(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime = tmp_path / "runtime"
    (runtime / "codebolt").mkdir(parents=True)
    (runtime / "codebolt").chmod(0o755)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    with pytest.raises(PermissionError, match="not a private directory"):
        broker_dir()


def test_apply_leaves_the_broker_warm_for_the_first_exec(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """As ssh's ControlPersist keeps a master, apply starts the topology's broker: the first
    exec after it already takes the fast path."""
    with applied_through_the_cli(tmp_path_factory, "warmed", TOPOLOGY) as directory:
        deadline = time.monotonic() + 30
        while not broker_of(directory).exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert broker_of(directory).exists(), "apply started no broker"
        code, modules, stdout = run_with_modules(directory, "exec", "c", "--", "echo", "hi")
        assert (code, stdout) == (0, "hi\n")
        assert "typer" not in modules


def test_destroy_stops_the_broker(tmp_path_factory: pytest.TempPathFactory) -> None:
    with applied_through_the_cli(tmp_path_factory, "short-lived", TOPOLOGY) as directory:
        warm(directory)
        socket_path = broker_of(directory)
    deadline = time.monotonic() + 10
    while socket_path.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not socket_path.exists()


def _comparable(text: str) -> str:
    """A status table with what changes between two looks (heartbeat, age, widths) left out."""
    text = re.sub(r"\d+\.\d ms|\d+(?:\.\d)?[smh] ago", "T", text)
    return "\n".join(
        " ".join(re.split(r"[\s│┃┏┓┗┛┡┩└┘┳╇┴━─]+", line)) for line in text.splitlines()
    )


def test_a_warm_status_shows_what_the_full_path_does_importing_the_standard_library(
    applied: Path,
) -> None:
    """Off a terminal, status goes through the broker, which keeps its heartbeat connections
    open between calls; the table is the full path's, and the caller imports nothing else."""
    code, modules, through_broker = run_with_modules(applied, "status")
    assert code == 0
    ours = sorted(m for m in modules if m.startswith("codebolt_topo"))
    assert ours == [
        "codebolt_topo",
        "codebolt_topo.cli",
        "codebolt_topo.cli.broker_client",
        "codebolt_topo.cli.broker_wire",
        "codebolt_topo.cli.main",
        "codebolt_topo.rundir",
    ]
    assert {"typer", "pydantic", "asyncio", "websockets", "rich"}.isdisjoint(
        m.split(".")[0] for m in modules
    )
    full = codebolt("status", cwd=applied, env={"CODEBOLT_BROKER": "0"})
    assert full.returncode == 0, full.stderr
    assert _comparable(through_broker) == _comparable(full.stdout)
    assert "RUNNING" in through_broker
    assert " c " in _comparable(through_broker)


def test_status_with_an_option_takes_the_full_path(applied: Path) -> None:
    code, modules, stdout = run_with_modules(applied, "status", "--json")
    assert (code, "typer" in modules) == (0, True)
    assert {node["name"] for node in json.loads(stdout)["nodes"]} == {"a", "b", "c"}


#: Runs the CLI on a terminal and reports, in the file MODULES_REPORT names, what it imported.
ON_A_TERMINAL = """
import json, os, sys
from codebolt_topo.cli.main import main
code = main(sys.argv[1:])
with open(os.environ["MODULES_REPORT"], "w") as report:
    json.dump({"code": code, "modules": sorted(sys.modules)}, report)
"""


def on_a_terminal(
    directory: Path, env: dict[str, str], *args: str, columns: int = 100
) -> tuple[str, list[str]]:
    """Output of ``codebolt ARGS`` whose stdout and stderr are a terminal ``columns`` wide,
    and the modules it imported."""
    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    report = directory / "modules.json"
    child = subprocess.Popen(
        [sys.executable, "-c", ON_A_TERMINAL, *args],
        cwd=directory,
        stdin=subprocess.DEVNULL,
        stdout=terminal,
        stderr=terminal,
        env={**env, "MODULES_REPORT": str(report)},
    )
    os.close(terminal)
    output = b""
    while True:
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # EIO: the terminal's last writer is gone
            break
        if not chunk:
            break
        output += chunk
    os.close(controller)
    assert child.wait(timeout=60) == 0, output
    modules = json.loads(report.read_text())["modules"]
    report.unlink()
    return output.decode().replace("\r\n", "\n"), modules


def _terminal_env(**settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in TERMINAL_ENV}
    return {**env, "TERM": "xterm-256color", **settings}


def _visible(text: str) -> list[str]:
    return re.sub(r"\x1b\[[0-9;]*m", "", text).splitlines()


@pytest.mark.parametrize("settings", [{}, {"NO_COLOR": "1"}])
def test_status_on_a_terminal_is_drawn_by_the_broker_as_the_full_path_draws_it(
    applied: Path, settings: dict[str, str]
) -> None:
    """On a terminal the broker draws the table for the caller's terminal, with the colours
    the caller's environment asks for, as the full path does."""
    through_broker, modules = on_a_terminal(applied, _terminal_env(**settings), "status")
    assert "typer" not in modules
    assert "codebolt_topo.cli.broker_client" in modules
    full, modules = on_a_terminal(applied, _terminal_env(CODEBOLT_BROKER="0", **settings), "status")
    assert "typer" in modules
    assert _comparable(through_broker) == _comparable(full)
    coloured = re.search(r"\x1b\[3[0-9]m", through_broker) is not None  # a colour, not bold
    assert coloured == ("NO_COLOR" not in settings), through_broker
    assert "RUNNING" in "\n".join(_visible(through_broker))


def test_status_on_a_narrow_terminal_folds_to_its_width(applied: Path) -> None:
    """The table fits the caller's terminal (its COLUMNS first), folding cells, as the full
    path's does; drawn wide, it would not fit."""
    wide, _ = on_a_terminal(applied, _terminal_env(), "status", columns=200)
    assert max(map(len, _visible(wide))) > 70
    for broker in ("1", "0"):
        env = _terminal_env(COLUMNS="70", CODEBOLT_BROKER=broker)
        narrow, modules = on_a_terminal(applied, env, "status", columns=200)
        assert ("typer" in modules) == (broker == "0")
        assert max(map(len, _visible(narrow))) <= 70, narrow
        assert len(_visible(narrow)) > len(_visible(wide))


def test_the_caller_sends_what_the_terminal_needs() -> None:
    """The fast path cannot import cli/output.py: its own list must be the same."""
    assert broker_client._TERMINAL_ENV == TERMINAL_ENV


@pytest.mark.parametrize(
    "request_frame",
    [
        broker_wire.frame("exec", "too", "few"),  # malformed fields
        broker_wire.frame("exec", "/elsewhere.yaml", "/", "", "", "", "a", "--", "true"),
        broker_wire.frame("bogus"),  # unknown kind
        (9).to_bytes(4, "big") + b"notmagic!",  # another format
    ],
)
def test_a_refused_request_leaves_no_descriptor_in_the_broker(
    applied: Path, request_frame: bytes
) -> None:
    """Whatever the broker refuses, it closes the descriptors that came with the request: the
    caller's pipe sees its end once the caller's own copy is closed."""
    read_end, write_end = os.pipe()
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.connect(str(broker_of(applied)))
        fds = array.array("i", [write_end] * 3)
        conn.sendmsg([request_frame], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds)])
        os.close(write_end)
        conn.settimeout(10)
        assert conn.recv(64) == b""  # refused: closed without an answer
        ready, _, _ = select.select([read_end], [], [], 10)
        assert ready, "the broker still holds the caller's descriptors"
        assert os.read(read_end, 1) == b""
    finally:
        conn.close()
        os.close(read_end)
