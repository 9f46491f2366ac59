"""Network namespaces the local-real tier creates for itself: real nft rulesets and real TCP inside them.

Every namespace gets a unique name (`mp-<pid>-<random>`) and is deleted when its context ends, pass or
fail; a veth pair lives and dies with its namespaces. Listeners run as child processes inside a namespace
(`ip netns exec`), answer each connection with the port they are bound to, and are stopped by their own
pid. Every call is bounded by a timeout. Needs root, `ip` (iproute2) and `nft` (nftables): `require_netns`
skips with the reason elsewhere, and fails under MESHPROOF_REQUIRE_REAL_TOOLS=1 (CI).
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from fixtures_data.real_tools import REQUIRE_ENV, real_tool

TIMEOUT_S = 10.0

# Runs inside a namespace: one dual-stack listener per port; each connection gets "<port>\n".
_LISTENER = r"""
import socket, sys, threading
ports = [int(p) for p in sys.argv[1:]]
def serve(port):
    s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.bind(("::", port)); s.listen(16)
    return s
listeners = [serve(p) for p in ports]
def loop(s, port):
    while True:
        conn, _ = s.accept()
        with conn:
            conn.sendall(f"{port}\n".encode())
for s, p in zip(listeners, ports):
    threading.Thread(target=loop, args=(s, p), daemon=True).start()
print("ready", flush=True)
sys.stdin.read()  # until the test closes our stdin
"""

# Runs inside a namespace: connect once, print what the answering listener said, or the error.
_CONNECT = r"""
import socket, sys
host, port, timeout = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
try:
    with socket.create_connection((host, port), timeout=timeout) as s:
        print(s.recv(64).decode().strip() or "empty")
except OSError as exc:
    print(f"error: {exc.__class__.__name__}: {exc}")
"""


def require_netns() -> None:
    """Skip (locally) or fail (CI) unless this process can create namespaces and run nft in them."""
    real_tool("ip")
    real_tool("nft")
    if os.geteuid() != 0:
        message = "creating network namespaces and loading nft rules needs root"
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(f"{message} ({REQUIRE_ENV}=1: the local-real tier needs it)", pytrace=False)
        pytest.skip(message)


def run(
    args: Sequence[str], *, stdin: str | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(args), input=stdin, capture_output=True, text=True, timeout=TIMEOUT_S, check=check
    )


@dataclass(frozen=True)
class NetNs:
    name: str

    def exec(
        self, *args: str, stdin: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        return run(["ip", "netns", "exec", self.name, *args], stdin=stdin, check=check)

    def nft_apply(self, ruleset_text: str) -> subprocess.CompletedProcess[str]:
        """`nft -f -` inside the namespace (as Istio applies it, via knftables); the caller checks it."""
        return self.exec("nft", "-f", "-", stdin=ruleset_text, check=False)

    def nft_json(self) -> str:
        return self.exec("nft", "-j", "list", "ruleset").stdout

    def connect(self, host: str, port: int, timeout: float = 3.0) -> str:
        """Which listener answered a TCP connection from inside this namespace (`<port>`), or the error."""
        result = self.exec(sys.executable, "-c", _CONNECT, host, str(port), str(timeout))
        return result.stdout.strip()

    @contextmanager
    def listeners(self, ports: Sequence[int]) -> Iterator[None]:
        process = subprocess.Popen(
            ["ip", "netns", "exec", self.name, sys.executable, "-c", _LISTENER, *map(str, ports)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert process.stdout is not None
            line = process.stdout.readline()  # bounded: the listener prints "ready" or exits
            if line.strip() != "ready":
                process.kill()
                _, err = process.communicate(timeout=TIMEOUT_S)
                raise RuntimeError(f"listeners on {list(ports)} in {self.name} did not start: {err.strip()}")
            yield
        finally:
            if process.poll() is None:
                process.kill()
            process.communicate(timeout=TIMEOUT_S)


@contextmanager
def netns(label: str = "ns") -> Iterator[NetNs]:
    """A fresh network namespace with loopback up; deleted afterwards."""
    name = f"mp-{os.getpid()}-{label}-{secrets.token_hex(3)}"[:40]
    run(["ip", "netns", "add", name])
    try:
        namespace = NetNs(name)
        namespace.exec("ip", "link", "set", "lo", "up")
        yield namespace
    finally:
        run(["ip", "netns", "del", name], check=False)


@dataclass(frozen=True)
class Link:
    """Addresses of a veth pair joining a `pod` and a `peer` namespace."""

    pod_v4: str = "10.213.7.2"
    peer_v4: str = "10.213.7.1"
    pod_v6: str = "2001:db8:7::2"  # inside 2001:db8::/32, the outbound range of the Istio goldens
    peer_v6: str = "2001:db8:7::1"


def link(pod: NetNs, peer: NetNs, addresses: Link = Link()) -> Link:
    """Join two namespaces with a veth pair (eth0 in the pod, as in a Kubernetes pod; peer0 in the peer)."""
    tag = secrets.token_hex(3)
    run(["ip", "link", "add", f"mpp{tag}", "type", "veth", "peer", "name", f"mpq{tag}"])
    run(["ip", "link", "set", f"mpp{tag}", "netns", pod.name])
    run(["ip", "link", "set", f"mpq{tag}", "netns", peer.name])
    for ns, old, new, v4, v6 in (
        (pod, f"mpp{tag}", "eth0", addresses.pod_v4, addresses.pod_v6),
        (peer, f"mpq{tag}", "peer0", addresses.peer_v4, addresses.peer_v6),
    ):
        ns.exec("ip", "link", "set", old, "name", new)
        ns.exec("ip", "addr", "add", f"{v4}/24", "dev", new)
        ns.exec("ip", "-6", "addr", "add", f"{v6}/64", "dev", new, "nodad")
        ns.exec("ip", "link", "set", new, "up")
    return addresses


def cgroup2_root() -> Path:
    """Where cgroup v2 is mounted (the unified hierarchy), to give a test process a container-like cgroup."""
    for line in Path("/proc/mounts").read_text().splitlines():
        fields = line.split()
        if len(fields) > 2 and fields[2] == "cgroup2":
            return Path(fields[1])
    message = "no cgroup2 mount: cannot give a process a container-like cgroup"
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{message} ({REQUIRE_ENV}=1)", pytrace=False)
    pytest.skip(message)


@contextmanager
def container_process(namespace: NetNs, container_id: str) -> Iterator[int]:
    """A process inside `namespace` whose cgroup path names `container_id`, as a pod container's does
    (containerd: `.../cri-containerd-<id>.scope`, CRI-O: `.../crio-<id>.scope`). Yields its pid."""
    group = cgroup2_root() / f"meshproof-cri-{container_id}"
    group.mkdir()
    process = subprocess.Popen(["ip", "netns", "exec", namespace.name, "sleep", "60"])
    try:
        (group / "cgroup.procs").write_text(str(process.pid))
        yield process.pid
    finally:
        process.kill()
        process.wait(timeout=TIMEOUT_S)
        group.rmdir()
