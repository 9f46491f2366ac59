"""meshproof.tools: platform selection, version parsing, the pinned table, find_tool and run().

run() and find_tool are exercised with real subprocesses and real executables written to tmp dirs;
nothing is mocked. What these tests cannot prove: that the pinned upstream URLs still serve files with
the pinned sums (this machine cannot reach the download hosts).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import re
import stat
import time
from pathlib import Path

import pytest

from meshproof import tools
from meshproof.tools import (
    ALL_PLATFORMS,
    DARWIN_AMD64,
    DARWIN_ARM64,
    LINUX_AMD64,
    LINUX_ARM64,
    PINNED,
    Verification,
    VersionPolicy,
)


def write_exe(directory: Path, name: str, body: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


@pytest.fixture
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """An empty PATH dir and an empty cache, so only what a test writes can be found."""
    path_dir = tmp_path / "path"
    path_dir.mkdir()
    cache = tmp_path / "cache"
    checkout = tmp_path / "checkout" / ".cache" / "bin"
    monkeypatch.setenv("PATH", str(path_dir))
    monkeypatch.setenv(tools.CACHE_ENV, str(cache))
    monkeypatch.delenv("MESHPROOF_FORTIO", raising=False)
    monkeypatch.setattr(tools, "checkout_bin_dir", lambda: checkout)
    return {"path": path_dir, "cache": cache, "bin": cache / "bin", "checkout": checkout}


# --- platforms ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("system", "machine", "expected"),
    [
        ("Linux", "x86_64", LINUX_AMD64),
        ("Linux", "aarch64", LINUX_ARM64),
        ("Darwin", "x86_64", DARWIN_AMD64),
        ("Darwin", "arm64", DARWIN_ARM64),
    ],
)
def test_current_platform_maps_uname_to_release_names(
    system: str, machine: str, expected: tools.Platform
) -> None:
    assert tools.current_platform(system, machine) == expected


@pytest.mark.parametrize(
    ("system", "machine"), [("Windows", "AMD64"), ("Linux", "riscv64"), ("FreeBSD", "amd64")]
)
def test_current_platform_refuses_what_no_release_covers(system: str, machine: str) -> None:
    with pytest.raises(tools.UnsupportedPlatform, match=f"{system.lower()}/{machine.lower()}"):
        tools.current_platform(system, machine)


def test_this_machine_is_a_supported_platform() -> None:
    assert tools.current_platform() in ALL_PLATFORMS


# --- version parsing ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tool", "output", "expected"),
    [
        ("kind", "kind v0.30.0 go1.24.6 linux/amd64\n", "0.30.0"),
        ("kubectl", "Client Version: v1.33.7\nKustomize Version: v5.6.0\n", "1.33.7"),
        ("kubectl", "Client Version: v1.32.4-dispatcher\nKustomize Version: v5.5.0\n", "1.32.4"),
        (
            "kubectl",
            'Client Version: version.Info{Major:"1", Minor:"27", GitVersion:"v1.27.1", GitCommit:"4c94"}',
            "1.27.1",
        ),
        ("istioctl", "1.27.9\n", "1.27.9"),
        ("istioctl", "client version: 1.27.9\n", "1.27.9"),
        # istioctl built from master (issue 14: the run against istiod 1.30-dev); the commit is left off
        ("istioctl", "client version: 1.30-dev-b01690e6db7d\n", "1.30-dev"),
        ("istioctl", "client version: 1.28.0-beta.1\n", "1.28.0-beta.1"),
        ("helm", "v3.19.2+g8766e71\n", "3.19.2"),
        ("fortio", "1.75.1 h1:abc= go1.24.6 amd64 linux\n", "1.75.1"),
    ],
)
def test_version_regexes_read_real_output_shapes(tool: str, output: str, expected: str) -> None:
    assert PINNED[tool].parse_version(output) == expected


@pytest.mark.parametrize(
    ("tool", "output"),
    [
        ("kind", "bash: kind: command not found"),
        # a Kustomize line must not be read as the kubectl version
        ("kubectl", "Kustomize Version: v5.7.1\n"),
        # istioctl talking about something else before its version is not a version line
        ("istioctl", "Error: unknown flag: --remote 1.2.3"),
        ("helm", "Error: unknown command"),
    ],
)
def test_version_regexes_reject_unrelated_output(tool: str, output: str) -> None:
    assert PINNED[tool].parse_version(output) is None


def test_unpinned_probes_read_docker_and_oc() -> None:
    assert tools.UNPINNED["docker"].parse_version("Docker version 28.2.2, build e6534b4") == "28.2.2"
    assert tools.UNPINNED["oc"].parse_version("Client Version: 4.19.0\nKustomize Version: v5.5.0") == "4.19.0"


@pytest.mark.parametrize(
    ("found", "wanted", "policy", "ok"),
    [
        ("1.27.9", "1.27.9", VersionPolicy.EXACT, True),
        ("1.27.8", "1.27.9", VersionPolicy.EXACT, False),
        ("1.33.1", "1.34.3", VersionPolicy.KUBECTL_SKEW, True),
        ("1.35.0", "1.34.3", VersionPolicy.KUBECTL_SKEW, True),
        ("1.32.4", "1.34.3", VersionPolicy.KUBECTL_SKEW, False),
        ("2.34.0", "1.34.3", VersionPolicy.KUBECTL_SKEW, False),
        ("0.30.1", "0.30.0", VersionPolicy.SAME_MINOR, True),
        ("0.29.0", "0.30.0", VersionPolicy.SAME_MINOR, False),
        ("3.12.0", "3.19.2", VersionPolicy.SAME_MAJOR, True),
        ("4.0.0", "3.19.2", VersionPolicy.SAME_MAJOR, False),
        ("garbage", "3.19.2", VersionPolicy.SAME_MAJOR, False),
        # development and pre-release builds: never the exact release, but of their own minor
        ("1.30-dev", "1.27.9", VersionPolicy.EXACT, False),
        ("1.30-dev", "1.27.9", VersionPolicy.SAME_MINOR, False),
        ("1.27-dev", "1.27.9", VersionPolicy.SAME_MINOR, True),
        ("1.27.9-beta.1", "1.27.9", VersionPolicy.EXACT, False),
    ],
)
def test_version_compatible(found: str, wanted: str, policy: VersionPolicy, ok: bool) -> None:
    assert tools.version_compatible(found, wanted, policy) is ok


# --- the pinned table --------------------------------------------------------------------------------------


def test_every_pinned_sum_is_a_sha256_with_a_named_source() -> None:
    for spec in PINNED.values():
        for plat, asset in spec.assets.items():
            assert plat in ALL_PLATFORMS
            assert asset.source, f"{spec.name} {plat} has no source"
            if asset.sha256 is not None:
                assert re.fullmatch(r"[0-9a-f]{64}", asset.sha256), f"{spec.name} {plat}"
            if asset.archive != "raw":
                assert asset.member, f"{spec.name} {plat} archive without member path"


def test_no_two_assets_share_a_sum() -> None:
    # A copy-paste slip (the same sum for two platforms) would make one platform unverifiable.
    sums = [a.sha256 for s in PINNED.values() for a in s.assets.values() if a.sha256]
    assert len(sums) == len(set(sums))


def test_pinned_versions_match_the_brief() -> None:
    from meshproof.config import DEFAULT_ISTIO_VERSION

    assert PINNED["istioctl"].version == DEFAULT_ISTIO_VERSION  # istioctl installs its own version
    assert PINNED["kind"].version.startswith("0.")
    assert PINNED["kubectl"].version.startswith(("1.33.", "1.34."))
    assert PINNED["helm"].version.startswith("3.")
    assert PINNED["fortio"].version.startswith("1.7")


def test_pinned_kubectl_fits_every_kind_node_image() -> None:
    """kubectl must be within one minor of the clusters kind creates (Kubernetes version skew policy)."""
    from meshproof.mesh import pins

    assert pins.DEFAULT_KIND_KUBERNETES in pins.KIND_NODE_IMAGES
    for minor, image in pins.KIND_NODE_IMAGES.items():
        node = re.search(r":v(\d+\.\d+\.\d+)@sha256:[0-9a-f]{64}$", image)
        assert node is not None and node.group(1).startswith(minor + ".")
        assert tools.version_compatible(PINNED["kubectl"].version, node.group(1), VersionPolicy.KUBECTL_SKEW)
    default = pins.KIND_NODE_IMAGES[pins.DEFAULT_KIND_KUBERNETES]
    assert f":v{PINNED['kubectl'].version.rsplit('.', 1)[0]}." in default  # same minor as the default nodes


def test_verification_kind_per_tool_and_platform() -> None:
    for name in ("kind", "kubectl", "helm"):
        assert {PINNED[name].verification_for(p) for p in ALL_PLATFORMS} == {Verification.PINNED}
    assert PINNED["fortio"].verification_for(LINUX_AMD64) is Verification.PINNED
    assert PINNED["fortio"].verification_for(LINUX_ARM64) is Verification.PINNED
    # fortio ships no darwin archive
    assert PINNED["fortio"].verification_for(DARWIN_ARM64) is Verification.NO_DOWNLOAD
    assert not PINNED["fortio"].installable_on(DARWIN_ARM64)
    # no citable istioctl 1.27.9 sum: istio's own <asset>.sha256 is used, on every platform
    assert {PINNED["istioctl"].verification_for(p) for p in ALL_PLATFORMS} == {Verification.PUBLISHER_FILE}
    assert all(PINNED["istioctl"].installable_on(p) for p in ALL_PLATFORMS)


def test_only_istioctl_relies_on_a_publisher_checksum_file() -> None:
    # The weaker fallback is opt-in: every other pinned tool must keep refusing an asset without a pin.
    opted_in = sorted(n for n, s in PINNED.items() if s.publisher_checksum_suffix)
    assert opted_in == ["istioctl"]


def test_an_asset_without_pin_or_publisher_file_is_refused() -> None:
    asset = tools.Asset("https://example.invalid/x-{version}", None, "no sum anywhere")
    spec = tools.ToolSpec(
        "x", "1.0.0", ("--version",), r"(\d+\.\d+\.\d+)", VersionPolicy.EXACT, {LINUX_AMD64: asset}
    )
    assert spec.verification_for(LINUX_AMD64) is Verification.REFUSED
    assert not spec.installable_on(LINUX_AMD64)
    with_file = dataclasses.replace(spec, publisher_checksum_suffix=".sha256")
    assert with_file.verification_for(LINUX_AMD64) is Verification.PUBLISHER_FILE
    # a pin always wins over the publisher's file
    pinned = dataclasses.replace(with_file, assets={LINUX_AMD64: dataclasses.replace(asset, sha256="0" * 64)})
    assert pinned.verification_for(LINUX_AMD64) is Verification.PINNED


def test_istioctl_checksum_file_sits_next_to_the_archive() -> None:
    istioctl = PINNED["istioctl"]
    assert istioctl.checksum_url_for(DARWIN_ARM64) == (
        "https://github.com/istio/istio/releases/download/1.27.9/istioctl-1.27.9-osx-arm64.tar.gz.sha256"
    )
    assert istioctl.asset_file_name(LINUX_ARM64) == "istioctl-1.27.9-linux-arm64.tar.gz"
    assert istioctl.asset_file_name(DARWIN_AMD64) == "istioctl-1.27.9-osx.tar.gz"
    assert istioctl.checksum_url_for(LINUX_AMD64, "http://127.0.0.1:9/m") == (
        "http://127.0.0.1:9/m/istio/istio/releases/download/1.27.9/istioctl-1.27.9-linux-amd64.tar.gz.sha256"
    )
    with pytest.raises(tools.InstallError, match="kind has no publisher checksum file"):
        PINNED["kind"].checksum_url_for(LINUX_AMD64)


# --- publisher checksum files ------------------------------------------------------------------------------

ASSET = "istioctl-1.27.9-linux-amd64.tar.gz"
HEX = "3f2a" * 16


@pytest.mark.parametrize(
    "content",
    [
        f"{HEX} {ASSET}\n",  # istio's release builder: fmt.Sprintf("%x %s\n", ...)
        f"{HEX}  {ASSET}\n",  # sha256sum text mode
        f"{HEX} *{ASSET}\n",  # sha256sum binary mode
        f"{HEX}  {ASSET}",  # no trailing newline
        f"{HEX}  {ASSET}\r\n",  # written on Windows
        f"{HEX.upper()} {ASSET}\n",  # upper-case hex is the same sum
    ],
)
def test_checksum_file_shapes_that_are_accepted(content: str) -> None:
    assert tools.parse_checksum_file(content.encode(), ASSET, source="s") == HEX


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (f"{HEX[:-1]} {ASSET}\n", "not one '<64 hex digits> istioctl"),  # 63 digits
        (f"{HEX}0 {ASSET}\n", "not one '<64 hex digits>"),  # 65 digits
        (f"{HEX[:-1]}g {ASSET}\n", "not one '<64 hex digits>"),  # not hex
        (f"{HEX}\n", "not one '<64 hex digits>"),  # no file name
        (f"{HEX}   {ASSET}\n", "not one '<64 hex digits>"),  # three spaces: no known tool writes that
        (f"{HEX} {ASSET}\n{HEX} other.tar.gz\n", "not one '<64 hex digits>"),  # more than one line
        (f"{HEX} {ASSET}\n\n", "not one '<64 hex digits>"),
        ("", "not one '<64 hex digits>"),
        ("<!DOCTYPE html><html><body>Not Found</body></html>\n", "starts '<!DOCTYPE html>"),
        (f"{HEX} istioctl-1.27.9-linux-arm64.tar.gz\n", "is for 'istioctl-1.27.9-linux-arm64.tar.gz', not"),
        (f"{HEX} istioctl-1.27.8-linux-amd64.tar.gz\n", "is for 'istioctl-1.27.8-linux-amd64.tar.gz'"),
        (f"{HEX} out/{ASSET}\n", "not one '<64 hex digits>"),  # a path, not the bare file name
    ],
)
def test_checksum_file_shapes_that_are_refused(content: str, why: str) -> None:
    with pytest.raises(tools.ChecksumFileInvalid, match=re.escape(why)) as info:
        tools.parse_checksum_file(content.encode(), ASSET, source="https://x/y.sha256")
    assert "\n" not in str(info.value) and "https://x/y.sha256" in str(info.value)


def test_checksum_file_that_is_not_ascii_or_too_big_is_refused() -> None:
    with pytest.raises(tools.ChecksumFileInvalid, match="not ASCII text"):
        tools.parse_checksum_file(f"{HEX} {ASSET}\u00a0\n".encode(), ASSET, source="s")
    padded = f"{HEX} {ASSET}\n".encode() + b" " * tools.CHECKSUM_FILE_MAX_BYTES
    with pytest.raises(tools.ChecksumFileInvalid, match="larger than 1024 bytes"):
        tools.parse_checksum_file(padded, ASSET, source="s")


def test_urls_are_built_per_platform_and_a_mirror_keeps_the_upstream_path() -> None:
    helm = PINNED["helm"]
    assert helm.url_for(DARWIN_ARM64) == "https://get.helm.sh/helm-v3.19.2-darwin-arm64.tar.gz"
    assert helm.member_for(DARWIN_ARM64) == "darwin-arm64/helm"
    kubectl = PINNED["kubectl"]
    assert kubectl.url_for(LINUX_ARM64, "http://127.0.0.1:8080/mirror/") == (
        "http://127.0.0.1:8080/mirror/release/v1.33.7/bin/linux/arm64/kubectl"
    )


def test_install_hints() -> None:
    assert "meshproof tools install kind" in tools.install_hint("kind", LINUX_AMD64)
    fortio_linux = tools.install_hint("fortio", LINUX_AMD64)
    assert "meshproof tools install fortio" in fortio_linux
    assert "go install fortio.org/fortio@v1.75.1" in fortio_linux
    # no darwin archive: only the go/brew route is offered
    assert tools.install_hint("fortio", DARWIN_ARM64).startswith(
        "get it with `go install fortio.org/fortio@v"
    )
    # istioctl: our installer (with the weaker verification named) and the manual route
    istioctl = tools.install_hint("istioctl", LINUX_AMD64)
    assert (
        "run `meshproof tools install istioctl` (checked against the publisher's checksum file)" in istioctl
    )
    assert "ISTIO_VERSION=1.27.9" in istioctl


# --- find_tool and tool_version ----------------------------------------------------------------------------


def test_find_tool_prefers_path_over_cache(isolated: dict[str, Path]) -> None:
    on_path = write_exe(isolated["path"], "kind", 'echo "kind v0.29.0 go1.24 linux/amd64"')
    write_exe(isolated["bin"], "kind", 'echo "kind v0.30.0 go1.24 linux/amd64"')
    assert tools.find_tool("kind") == on_path
    assert tools.tool_version("kind") == "0.29.0"


def test_find_tool_falls_back_to_the_cache(isolated: dict[str, Path]) -> None:
    cached = write_exe(isolated["bin"], "kind", 'echo "kind v0.30.0 go1.24 linux/amd64"')
    assert tools.find_tool("kind") == cached
    assert tools.tool_version("kind") == "0.30.0"


def test_find_tool_ignores_a_non_executable_cache_file(isolated: dict[str, Path]) -> None:
    isolated["bin"].mkdir(parents=True)
    (isolated["bin"] / "kind").write_text("#!/bin/sh\necho kind v0.30.0\n")  # not chmod +x
    with pytest.raises(tools.ToolMissing):
        tools.find_tool("kind")


FORTIO_1_68 = 'echo "1.68.2 h1:abc= go1.24.4 amd64 linux"'


def test_doctor_tools_list_and_bench_find_fortio_in_the_same_place(
    isolated: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """After `setup.sh --dev` fortio is in the checkout's .cache/bin: every command must find it there
    (doctor and `tools list` said "missing" while `bench local` used it)."""
    from meshproof.bench.fortio import find_fortio
    from meshproof.commands import tools as tools_command
    from meshproof.commands.doctor import check_tool

    built = write_exe(isolated["checkout"], "fortio", FORTIO_1_68)
    write_exe(isolated["bin"], "fortio", 'echo "1.75.1 h1:abc= go1.25 amd64 linux"')

    assert tools.find_tool("fortio") == built == find_fortio()
    doctor = check_tool("fortio", wanted="", required=False)
    assert doctor.ok and doctor.detail == f"{built} 1.68.2"
    tools_command.cmd_list(argparse.Namespace())
    listed = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("fortio "))
    assert str(built) in listed and "1.68.2" in listed


def test_the_fortio_override_wins_and_a_bad_one_is_an_error_not_skipped(
    isolated: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    write_exe(isolated["checkout"], "fortio", FORTIO_1_68)
    mine = write_exe(isolated["path"].parent / "mine", "fortio", FORTIO_1_68)
    monkeypatch.setenv("MESHPROOF_FORTIO", str(mine))
    assert tools.find_tool("fortio") == mine
    monkeypatch.setenv("MESHPROOF_FORTIO", str(mine.parent / "typo"))
    with pytest.raises(tools.ToolMissing, match=r"\$MESHPROOF_FORTIO=.*/typo is not an executable file"):
        tools.find_tool("fortio")


def test_tool_missing_is_one_line_with_how_to_install(isolated: dict[str, Path]) -> None:
    with pytest.raises(tools.ToolMissing) as info:
        tools.find_tool("fortio")
    message = str(info.value)
    assert "\n" not in message
    assert str(isolated["bin"]) in message
    assert "go install fortio.org/fortio@v1.75.1" in message


def test_cache_dir_honours_env_then_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(tools.CACHE_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert tools.cache_bin_dir() == tmp_path / "xdg" / "meshproof" / "bin"
    monkeypatch.setenv(tools.CACHE_ENV, str(tmp_path / "mine"))
    assert tools.cache_bin_dir() == tmp_path / "mine" / "bin"


def test_tool_version_names_the_binary_when_output_is_unreadable(isolated: dict[str, Path]) -> None:
    write_exe(isolated["path"], "helm", 'echo "segfault" >&2; exit 139')
    with pytest.raises(tools.ToolError, match=r"could not read the version of .*helm.*exit 139.*segfault"):
        tools.tool_version("helm")


def test_inspect_tool_statuses(isolated: dict[str, Path]) -> None:
    assert tools.inspect_tool("helm").status == "missing"
    write_exe(isolated["path"], "helm", 'echo "v4.0.0+gabc"')
    mismatch = tools.inspect_tool("helm")
    assert (mismatch.status, mismatch.found) == ("version-mismatch", "4.0.0")
    assert "found 4.0.0, this run targets 3.x (same-major)" in mismatch.detail
    write_exe(isolated["path"], "helm", 'echo "v3.18.6+gabc"')
    assert tools.inspect_tool("helm").status == "ok"
    # wanted="" means presence only
    write_exe(isolated["path"], "helm", 'echo "v4.0.0+gabc"')
    assert tools.inspect_tool("helm", wanted="").status == "ok"


def test_a_development_istioctl_is_read_and_named_not_unreadable(isolated: dict[str, Path]) -> None:
    """Issue 14 item 3: the real `istioctl version --remote=false` of a master build was reported as
    "could not read the version ... exit 0"; it is a version, just not the one this run targets."""
    write_exe(isolated["path"], "istioctl", 'echo "client version: 1.30-dev-b01690e6db7d"')
    exact = tools.inspect_tool("istioctl")
    assert (exact.status, exact.found) == ("version-mismatch", "1.30-dev")
    assert "found 1.30-dev, this run targets 1.27.9" in exact.detail
    assert "could not read" not in exact.detail
    minor = tools.inspect_tool("istioctl", policy=VersionPolicy.SAME_MINOR)
    assert "found 1.30-dev, this run targets 1.27.x" in minor.detail
    # the control: a 1.27 build of the same shape fits the minor
    write_exe(isolated["path"], "istioctl", 'echo "client version: 1.27-dev-b01690e6db7d"')
    assert tools.inspect_tool("istioctl", policy=VersionPolicy.SAME_MINOR).status == "ok"


# --- run() -------------------------------------------------------------------------------------------------


def test_run_captures_stdout_stderr_and_exit_code() -> None:
    result = tools.run(["sh", "-c", "echo out; echo err >&2"], timeout=10)
    assert (result.returncode, result.stdout, result.stderr) == (0, "out\n", "err\n")
    assert result.ok and result.duration >= 0
    assert Path(result.args[0]).name == "sh"


def test_run_raises_command_failed_with_code_and_stderr_tail() -> None:
    script = "echo line1 >&2; echo line2 >&2; echo 'the real reason' >&2; exit 3"
    with pytest.raises(tools.CommandFailed) as info:
        tools.run(["sh", "-c", script], timeout=10)
    message = str(info.value)
    assert "exit 3" in message and "the real reason" in message and "\n" not in message
    assert info.value.result.returncode == 3


def test_run_without_check_returns_the_failure() -> None:
    result = tools.run(["sh", "-c", "exit 7"], timeout=10, check=False)
    assert result.returncode == 7 and not result.ok


def test_run_timeout_kills_the_whole_process_group_quickly() -> None:
    started = time.monotonic()
    # The grandchild `sleep` holds the pipes; only a process-group kill ends this promptly.
    with pytest.raises(tools.CommandTimeout, match=r"timed out after 0.5s"):
        tools.run(["sh", "-c", "sleep 30 & sleep 30"], timeout=0.5)
    assert time.monotonic() - started < 5


def test_run_passes_input_and_extra_env() -> None:
    result = tools.run(
        ["sh", "-c", 'cat; echo "$MP_TEST_VAR"'], timeout=10, input="hello\n", env={"MP_TEST_VAR": "x1"}
    )
    assert result.stdout == "hello\nx1\n"
    # the rest of the environment is kept (PATH is needed to find `cat`)
    assert "PATH" in os.environ


def test_run_missing_program_is_tool_missing(isolated: dict[str, Path]) -> None:
    with pytest.raises(tools.ToolMissing, match="kind not found"):
        tools.run(["kind", "version"], timeout=5)


def test_run_finds_programs_in_the_cache(isolated: dict[str, Path]) -> None:
    write_exe(isolated["bin"], "kind", 'echo "kind v0.30.0"')
    assert tools.run(["kind", "version"], timeout=5).stdout == "kind v0.30.0\n"


def test_run_logs_every_command_without_secrets(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="meshproof.tools")
    tools.run(
        ["sh", "-c", "exit 0", "--token=s3cr3t", "--password", "hunter2"], timeout=10, input="stdin-secret"
    )
    tools.run(["sh", "-c", "exit 4"], timeout=10, check=False)
    records = [r for r in caplog.records if r.name == "meshproof.tools"]
    assert len(records) == 2
    text = "\n".join(r.getMessage() for r in records)
    assert "rc=0 in" in text and "rc=4 in" in text
    for secret in ("s3cr3t", "hunter2", "stdin-secret"):
        assert secret not in text
    assert "--token=***" in text
