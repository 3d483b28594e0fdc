"""Code we do not trust: it does its job, then tries what a sandbox must stop.

Sent to the sandbox with ``codebolt exec sandbox --stdin -- python3 - < untrusted.py``: the
script travels with the request, so nothing of this machine is mounted into the sandbox.
"""

import os
import socket


def attempt(what, action):
    try:
        action()
    except OSError as error:
        print(f"{what}: blocked ({type(error).__name__})", flush=True)
    else:
        print(f"{what}: ALLOWED", flush=True)


def write(path):
    with open(path, "a") as handle:
        handle.write("pwned\n")


print(f"running on {os.environ.get('CODEBOLT_NODE')} as uid {os.getuid()}", flush=True)
print(f"result: {sum(i * i for i in range(1000))}", flush=True)
write("scratch.txt")  # the workspace is writable (a tmpfs that goes with the container)
print("wrote scratch.txt in the workspace", flush=True)
attempt("connect to 1.1.1.1:53", lambda: socket.create_connection(("1.1.1.1", 53), 2).close())
attempt("resolve example.com", lambda: socket.getaddrinfo("example.com", 443))
attempt("write /etc/passwd", lambda: write("/etc/passwd"))
attempt("write /usr/bin/evil", lambda: write("/usr/bin/evil"))
