"""install_tool against a real HTTP server on 127.0.0.1 serving archives built here.

The archives hold a tiny shell script standing in for the tool; the test ToolSpecs carry the sums of
those archives (or, for the publisher-checksum fallback, the server serves `<asset>.sha256` next to the
archive), so the full path runs for real: HTTP download, checksum-file parsing, SHA-256 check,
extraction, chmod, atomic rename, file lock. What this cannot prove: that the real upstream hosts still
serve the pinned files or istio's `.sha256` files in the format its release builder writes (no internet
here), or TLS behaviour of those hosts.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import re
import socket
import tarfile
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from fixtures_data.servers import serving_in_background

from meshproof import tools
from meshproof.cli import main as meshproof_main
from meshproof.commands import tools as tools_cmd
from meshproof.tools import LINUX_AMD64, Asset, ToolSpec, VersionPolicy

pytestmark = pytest.mark.local_real

SCRIPT = b'#!/bin/sh\necho "faketool v1.2.3 linux/amd64"\n'
UPSTREAM = "https://downloads.example.invalid/releases/v{version}/faketool-linux-amd64"


@dataclass
class Route:
    body: bytes
    mode: str = "ok"  # ok | truncate


@dataclass
class Server:
    url: str
    routes: dict[str, Route] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)


@pytest.fixture
def server() -> Iterator[Server]:
    state = Server(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.requests.append(self.path)
            route = state.routes.get(self.path)
            if route is None:
                self.send_error(404, "Not Found")
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            if route.mode == "truncate":
                # Promise more than we send, then drop the connection: an interrupted download.
                self.send_header("Content-Length", str(len(route.body) + 4096))
                self.end_headers()
                self.wfile.write(route.body)
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)
                self.close_connection = True
                return
            self.send_header("Content-Length", str(len(route.body)))
            self.end_headers()
            self.wfile.write(route.body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    with serving_in_background(ThreadingHTTPServer(("127.0.0.1", 0), Handler)) as httpd:
        state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
        yield state


def tar_gz(member: str, data: bytes) -> bytes:
    """Byte-for-byte reproducible (gzip mtime 0), so a sum computed later matches what was served."""
    buf = io.BytesIO()
    with (
        gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as gz,
        tarfile.open(fileobj=gz, mode="w") as tar,
    ):
        info = tarfile.TarInfo(member)
        info.size = len(data)
        info.mode = 0o755
        tar.addfile(info, io.BytesIO(data))
        readme = b"not the binary\n"
        extra = tarfile.TarInfo("faketool-1.2.3/README.md")
        extra.size = len(readme)
        tar.addfile(extra, io.BytesIO(readme))
    return buf.getvalue()


def zipped(member: str, data: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        # a fixed timestamp keeps the archive reproducible (writestr with a name uses the current time)
        zf.writestr(zipfile.ZipInfo(member, date_time=(2020, 1, 1, 0, 0, 0)), data)
    return buf.getvalue()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def make_spec(
    kind: str, body: bytes, *, sha256: str | None = None, publisher: bool = False, pinned: bool = True
) -> tuple[dict[str, ToolSpec], str]:
    """A one-tool table serving `body`; returns it and the URL path the installer will request.

    `publisher=True`: no pinned sum, the publisher's `<asset>.sha256` is used. `pinned=False` without
    `publisher`: no sum at all (must be refused).
    """
    suffix = {"raw": "", "tar.gz": ".tar.gz", "zip": ".zip"}[kind]
    member = None if kind == "raw" else "faketool-{version}/bin/faketool"
    pin = None if publisher or not pinned else (sha256 or sha(body))
    spec = ToolSpec(
        name="faketool",
        version="1.2.3",
        version_args=("--version",),
        version_regex=r"faketool v(\d+\.\d+\.\d+)",
        policy=VersionPolicy.EXACT,
        assets={LINUX_AMD64: Asset(UPSTREAM + suffix, pin, "built by this test", kind, member)},  # type: ignore[arg-type]
        manual_install="build it yourself",
        publisher_checksum_suffix=".sha256" if publisher else None,
    )
    path = "/releases/v1.2.3/faketool-linux-amd64" + suffix
    return {"faketool": spec}, path


def archive_for(kind: str) -> bytes:
    if kind == "raw":
        return SCRIPT
    if kind == "tar.gz":
        return tar_gz("faketool-1.2.3/bin/faketool", SCRIPT)
    return zipped("faketool-1.2.3/bin/faketool", SCRIPT)


def leftovers(cache: Path) -> list[str]:
    """Every file under the cache except lock files: must be empty after a failed install."""
    return sorted(
        str(p.relative_to(cache)) for p in cache.rglob("*") if p.is_file() and ".locks" not in p.parts
    )


def install(
    specs: dict[str, ToolSpec],
    cache: Path,
    server: Server,
    *,
    offline: bool = False,
    notes: list[str] | None = None,
) -> Path:
    return tools.install_tool(
        "faketool",
        cache_dir=cache,
        offline=offline,
        base_url_override=server.url,
        specs=specs,
        platform=LINUX_AMD64,
        note=notes.append if notes is not None else None,
    )


@pytest.mark.parametrize("kind", ["raw", "tar.gz", "zip"])
def test_good_archive_installs_an_executable_that_runs(kind: str, server: Server, tmp_path: Path) -> None:
    body = archive_for(kind)
    specs, path = make_spec(kind, body)
    server.routes[path] = Route(body)
    target = install(specs, tmp_path, server)
    assert target == tmp_path / "bin" / "faketool"
    assert tools.run([str(target)], timeout=10).stdout == "faketool v1.2.3 linux/amd64\n"
    assert leftovers(tmp_path) == ["bin/faketool"]  # no temp files next to it
    assert server.requests == [path]


def test_installed_tool_is_found_through_the_cache(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = archive_for("tar.gz")
    specs, path = make_spec("tar.gz", body)
    server.routes[path] = Route(body)
    install(specs, tmp_path, server)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setenv(tools.CACHE_ENV, str(tmp_path))
    assert tools.find_tool("faketool") == tmp_path / "bin" / "faketool"
    assert tools.run(["faketool"], timeout=10).stdout.startswith("faketool v1.2.3")


def test_wrong_checksum_is_refused_and_leaves_nothing(server: Server, tmp_path: Path) -> None:
    body = archive_for("tar.gz")
    specs, path = make_spec("tar.gz", body, sha256=sha(b"what upstream published"))
    server.routes[path] = Route(body)
    with pytest.raises(tools.ChecksumMismatch, match=f"got sha256 {sha(body)}"):
        install(specs, tmp_path, server)
    assert leftovers(tmp_path) == []
    assert server.requests == [path]  # it really downloaded, then refused


def test_truncated_download_is_refused_and_leaves_nothing(server: Server, tmp_path: Path) -> None:
    body = archive_for("tar.gz")
    specs, path = make_spec("tar.gz", body)
    server.routes[path] = Route(body, mode="truncate")
    with pytest.raises(tools.DownloadFailed, match=rf"interrupted after \d+ of {len(body) + 4096} bytes"):
        install(specs, tmp_path, server)
    assert leftovers(tmp_path) == []


def test_http_error_is_reported_with_the_status(server: Server, tmp_path: Path) -> None:
    specs, _ = make_spec("raw", SCRIPT)  # no route: the server answers 404
    with pytest.raises(tools.DownloadFailed, match="HTTP 404"):
        install(specs, tmp_path, server)
    assert leftovers(tmp_path) == []


def test_missing_archive_member_is_refused_and_leaves_nothing(server: Server, tmp_path: Path) -> None:
    body = tar_gz("somewhere/else/faketool", SCRIPT)
    specs, path = make_spec("tar.gz", body)
    server.routes[path] = Route(body)
    with pytest.raises(tools.InstallError, match=re.escape("has no faketool-1.2.3/bin/faketool")):
        install(specs, tmp_path, server)
    assert leftovers(tmp_path) == []


def test_offline_forbids_the_download(server: Server, tmp_path: Path) -> None:
    specs, path = make_spec("raw", SCRIPT)
    server.routes[path] = Route(SCRIPT)
    with pytest.raises(tools.OfflineRefused, match=re.escape("offline: not downloading faketool 1.2.3")):
        install(specs, tmp_path, server, offline=True)
    assert server.requests == []
    assert leftovers(tmp_path) == []


def test_offline_still_accepts_an_installed_pinned_version(server: Server, tmp_path: Path) -> None:
    specs, path = make_spec("raw", SCRIPT)
    server.routes[path] = Route(SCRIPT)
    first = install(specs, tmp_path, server)
    assert install(specs, tmp_path, server, offline=True) == first
    assert server.requests == [path]  # the second call downloaded nothing


def test_a_wrong_version_in_the_cache_is_replaced(server: Server, tmp_path: Path) -> None:
    old = tmp_path / "bin" / "faketool"
    old.parent.mkdir(parents=True)
    old.write_text('#!/bin/sh\necho "faketool v1.0.0"\n')
    old.chmod(0o755)
    specs, path = make_spec("raw", SCRIPT)
    server.routes[path] = Route(SCRIPT)
    install(specs, tmp_path, server)
    assert tools.run([str(old)], timeout=10).stdout.startswith("faketool v1.2.3")


def test_concurrent_installs_download_once(server: Server, tmp_path: Path) -> None:
    body = archive_for("tar.gz")
    specs, path = make_spec("tar.gz", body)
    server.routes[path] = Route(body)
    results: list[Path | BaseException] = []

    def worker() -> None:
        try:
            results.append(install(specs, tmp_path, server))
        except BaseException as exc:  # collected and asserted below
            results.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert results == [tmp_path / "bin" / "faketool"] * 3
    assert server.requests == [path]  # the lock made the others find the finished install


def test_a_tool_without_pin_or_publisher_file_is_never_downloaded(server: Server, tmp_path: Path) -> None:
    specs, path = make_spec("tar.gz", archive_for("tar.gz"), pinned=False)
    server.routes[path] = Route(archive_for("tar.gz"))
    server.routes[path + ".sha256"] = Route(
        f"{sha(archive_for('tar.gz'))} faketool-linux-amd64.tar.gz\n".encode()
    )
    # the checksum file exists on the server, but this tool did not opt in to trusting it
    with pytest.raises(
        tools.NoPinnedDownload, match=re.escape("no citable SHA-256 is pinned for faketool 1.2.3")
    ):
        install(specs, tmp_path, server)
    with pytest.raises(
        tools.NoPinnedDownload, match=re.escape("no pinned download of fortio 1.75.1 for darwin/arm64")
    ):
        tools.install_tool(
            "fortio",
            cache_dir=tmp_path,
            offline=False,
            base_url_override=server.url,
            platform=tools.DARWIN_ARM64,
        )
    assert server.requests == []
    assert leftovers(tmp_path) == []


def test_pinned_kubectl_checksum_is_enforced(server: Server, tmp_path: Path) -> None:
    """The real pinned table: a mirror serving anything but the real kubectl is refused."""
    path = "/release/v1.33.7/bin/linux/amd64/kubectl"
    server.routes[path] = Route(b"#!/bin/sh\necho 'Client Version: v1.33.7'\n")
    with pytest.raises(tools.ChecksumMismatch, match="pinned 471d94e2"):
        tools.install_tool(
            "kubectl", cache_dir=tmp_path, offline=False, base_url_override=server.url, platform=LINUX_AMD64
        )
    assert server.requests == [path]
    assert leftovers(tmp_path) == []


# --- the `meshproof tools install` command ------------------------------------------------------------------


def run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="meshproof")
    tools_cmd.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return int(args.func(args))


def test_cli_install_from_a_mirror_and_list(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    body = archive_for("tar.gz")
    specs, path = make_spec("tar.gz", body)
    server.routes[path] = Route(body)
    monkeypatch.setattr(tools, "PINNED", specs)
    monkeypatch.setattr(tools, "current_platform", lambda *a: LINUX_AMD64)
    monkeypatch.setattr(tools, "spec_for", lambda name: specs.get(name))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setenv(tools.CACHE_ENV, str(tmp_path))
    monkeypatch.delenv("MESHPROOF_OFFLINE", raising=False)

    assert run_cli(["tools", "install", "--offline"]) == 1
    assert "offline: not downloading faketool" in capsys.readouterr().err
    # the environment is read like every other option: a true value forbids, a bad one is a usage error
    monkeypatch.setenv("MESHPROOF_OFFLINE", "yes")
    assert run_cli(["tools", "install"]) == 1
    assert "offline: not downloading faketool" in capsys.readouterr().err
    monkeypatch.setenv("MESHPROOF_OFFLINE", "perhaps")
    assert meshproof_main(["tools", "install"]) == 2
    assert "MESHPROOF_OFFLINE: 'perhaps' is not a boolean" in capsys.readouterr().err
    monkeypatch.delenv("MESHPROOF_OFFLINE")

    assert run_cli(["tools", "install", "--mirror", server.url]) == 0
    out = capsys.readouterr().out
    assert f"faketool 1.2.3: {tmp_path / 'bin' / 'faketool'}" in out

    assert run_cli(["tools", "list"]) == 0
    listing = capsys.readouterr().out
    assert "faketool" in listing and "1.2.3" in listing and " ok" in listing

    assert run_cli(["tools", "install"]) == 0  # nothing missing any more
    assert "nothing to install" in capsys.readouterr().out
    assert server.requests == [path]


def test_cli_install_rejects_unknown_names(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(["tools", "install", "kubeclt"]) == 2
    assert "unknown tool(s) kubeclt" in capsys.readouterr().err


# --- the publisher-checksum fallback (no pinned sum; the publisher's <asset>.sha256 is used) ---------------

PUB_ASSET = "faketool-linux-amd64.tar.gz"


def publisher_setup(server: Server, checksum: bytes | None = None) -> tuple[dict[str, ToolSpec], str, str]:
    """A publisher-checksum tool whose archive is served; the checksum file too unless `checksum` is b""."""
    body = archive_for("tar.gz")
    specs, path = make_spec("tar.gz", body, publisher=True)
    server.routes[path] = Route(body)
    # istio's release builder writes `fmt.Sprintf("%x %s\n", sha, path.Base(src))`: one space
    content = f"{sha(body)} {PUB_ASSET}\n".encode() if checksum is None else checksum
    if content:
        server.routes[path + ".sha256"] = Route(content)
    return specs, path, path + ".sha256"


def test_publisher_checksum_install_succeeds_and_says_the_sum_is_not_pinned(
    server: Server, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    specs, path, checksum_path = publisher_setup(server)
    notes: list[str] = []
    target = install(specs, tmp_path, server, notes=notes)
    assert tools.run([str(target)], timeout=10).stdout == "faketool v1.2.3 linux/amd64\n"
    assert leftovers(tmp_path) == ["bin/faketool"]
    assert server.requests == [checksum_path, path]  # the sum is known before the archive is fetched
    assert len(notes) == 1
    assert f"publisher's checksum file {server.url}{checksum_path}, not pinned in meshproof" in notes[0]
    assert "same origin" in notes[0]
    assert any(
        r.levelname == "WARNING" and "not pinned in meshproof" in r.getMessage() for r in caplog.records
    )
    # already installed: no download, and no note either (nothing was verified this time)
    assert install(specs, tmp_path, server, notes=notes) == target
    assert len(notes) == 1 and server.requests == [checksum_path, path]


def test_publisher_checksum_with_a_wrong_sum_is_refused_and_leaves_nothing(
    server: Server, tmp_path: Path
) -> None:
    forged = f"{sha(b'some other archive')} {PUB_ASSET}\n".encode()
    specs, path, checksum_path = publisher_setup(server, forged)
    notes: list[str] = []
    with pytest.raises(tools.ChecksumMismatch) as info:
        install(specs, tmp_path, server, notes=notes)
    message = str(info.value)
    assert f"got sha256 {sha(archive_for('tar.gz'))}" in message
    assert (
        f"the publisher's checksum file {server.url}{checksum_path} says {sha(b'some other archive')}"
        in message
    )
    assert "\n" not in message
    assert leftovers(tmp_path) == []
    assert server.requests == [checksum_path, path]  # it really downloaded the archive, then refused it
    assert notes == []


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (
            b"not-a-sha256 faketool-linux-amd64.tar.gz\n",
            "is not one '<64 hex digits> faketool-linux-amd64.tar.gz'",
        ),
        # a sum for another platform's asset
        (
            f"{'ab' * 32} faketool-darwin-arm64.tar.gz\n".encode(),
            "is for 'faketool-darwin-arm64.tar.gz', not",
        ),
        (b"<html><body>rate limited</body></html>\n", "starts '<html><body>rate limited"),
        ((f"{'ab' * 32} {PUB_ASSET}\n" * 40).encode(), "larger than 1024 bytes"),
    ],
    ids=["not-hex", "wrong-file-name", "html-page", "oversized"],
)
def test_malformed_publisher_checksum_file_is_refused_before_the_archive(
    content: bytes, why: str, server: Server, tmp_path: Path
) -> None:
    specs, _, checksum_path = publisher_setup(server, content)
    with pytest.raises(tools.ChecksumFileInvalid, match=re.escape(why)) as info:
        install(specs, tmp_path, server)
    assert "\n" not in str(info.value)
    assert server.requests == [checksum_path]  # the archive was never fetched
    assert leftovers(tmp_path) == []


def test_missing_publisher_checksum_file_is_refused_in_one_line(server: Server, tmp_path: Path) -> None:
    specs, _, checksum_path = publisher_setup(server, b"")  # the archive is there, its .sha256 is not
    with pytest.raises(tools.ChecksumUnavailable) as info:
        install(specs, tmp_path, server)
    message = str(info.value)
    assert message == (
        "could not fetch the publisher's checksum file for faketool 1.2.3 (download of "
        f"{server.url}{checksum_path} failed: HTTP 404 Not Found), so the archive is not downloaded "
        "unverified; try again, or build it yourself"
    )
    assert server.requests == [checksum_path]
    assert leftovers(tmp_path) == []


def test_interrupted_publisher_checksum_file_is_refused(server: Server, tmp_path: Path) -> None:
    specs, _, checksum_path = publisher_setup(server)
    server.routes[checksum_path].mode = "truncate"
    with pytest.raises(tools.ChecksumUnavailable, match="was interrupted after"):
        install(specs, tmp_path, server)
    assert server.requests == [checksum_path]
    assert leftovers(tmp_path) == []


def test_publisher_checksum_tool_offline_is_refused_without_any_request(
    server: Server, tmp_path: Path
) -> None:
    specs, _, _ = publisher_setup(server)
    with pytest.raises(tools.OfflineRefused, match=re.escape("offline: not downloading faketool 1.2.3")):
        install(specs, tmp_path, server, offline=True)
    assert server.requests == []
    assert leftovers(tmp_path) == []


# --- the real istioctl entry, served from a local mirror ----------------------------------------------------

ISTIOCTL_PATH = "/istio/istio/releases/download/1.27.9/istioctl-1.27.9-linux-amd64.tar.gz"
FAKE_ISTIOCTL = b'#!/bin/sh\necho "client version: 1.27.9"\n'


def serve_fake_istioctl(server: Server) -> bytes:
    """A stand-in istioctl archive laid out like istio's (binary at the top) plus its .sha256."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo("istioctl")
        info.size = len(FAKE_ISTIOCTL)
        info.mode = 0o755
        tar.addfile(info, io.BytesIO(FAKE_ISTIOCTL))
    body = buf.getvalue()
    server.routes[ISTIOCTL_PATH] = Route(body)
    server.routes[ISTIOCTL_PATH + ".sha256"] = Route(
        f"{sha(body)} istioctl-1.27.9-linux-amd64.tar.gz\n".encode()
    )
    return body


def test_real_istioctl_entry_is_verified_against_the_sha256_next_to_it(
    server: Server, tmp_path: Path
) -> None:
    """The pinned table's istioctl URL, member path and suffix line up with istio's release layout."""
    serve_fake_istioctl(server)
    target = tools.install_tool(
        "istioctl", cache_dir=tmp_path, offline=False, base_url_override=server.url, platform=LINUX_AMD64
    )
    assert tools.PINNED["istioctl"].parse_version(tools.run([str(target)], timeout=10).stdout) == "1.27.9"
    assert server.requests == [ISTIOCTL_PATH + ".sha256", ISTIOCTL_PATH]


def test_real_istioctl_with_a_tampered_archive_is_refused(server: Server, tmp_path: Path) -> None:
    serve_fake_istioctl(server)
    server.routes[ISTIOCTL_PATH] = Route(tar_gz("istioctl", b"#!/bin/sh\necho evil\n"))
    with pytest.raises(tools.ChecksumMismatch, match=r"the publisher's checksum file \S+\.sha256 says"):
        tools.install_tool(
            "istioctl", cache_dir=tmp_path, offline=False, base_url_override=server.url, platform=LINUX_AMD64
        )
    assert leftovers(tmp_path) == []


def test_cli_installs_istioctl_from_a_mirror_with_a_note_and_lists_the_verification(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    serve_fake_istioctl(server)
    monkeypatch.setattr(tools, "current_platform", lambda *a: LINUX_AMD64)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setenv(tools.CACHE_ENV, str(tmp_path))
    monkeypatch.delenv("MESHPROOF_OFFLINE", raising=False)

    assert run_cli(["tools", "install", "istioctl", "--mirror", server.url]) == 0
    captured = capsys.readouterr()
    assert f"istioctl 1.27.9: {tmp_path / 'bin' / 'istioctl'}" in captured.out
    assert "note: istioctl 1.27.9: SHA-256 taken from the publisher's checksum file" in captured.err
    assert "not pinned in meshproof" in captured.err

    assert run_cli(["tools", "list"]) == 0
    listing = capsys.readouterr().out.splitlines()
    cells = {row[0]: row for row in (re.split(r"\s{2,}", line.strip()) for line in listing)}
    assert cells["istioctl"][-2:] == ["ok", "publisher .sha256 (not pinned)"]
    assert cells["kubectl"][-2:] == ["missing", "pinned sha256"]
    assert cells["fortio"][-1] == "pinned sha256"  # linux/amd64 has a pinned fortio archive
    assert any(
        line.startswith("publisher .sha256 (not pinned): the SHA-256 is read at install") for line in listing
    )
