"""Pinned external CLIs (kind, kubectl, istioctl, helm, fortio): find, check the version, run, install.

- `find_tool(name)` is the one place that says where a tool is: its `MESHPROOF_<NAME>` override (fortio:
  `MESHPROOF_FORTIO`), the checkout's `.cache/bin` (where `scripts/setup.sh --dev` builds fortio), PATH,
  then the tool cache (`$MESHPROOF_CACHE_DIR/bin`, default `~/.cache/meshproof/bin`). `doctor`,
  `tools list` and `bench local` all ask it, so they never disagree.
- `run(args, timeout=...)` runs a command with a deadline, captures its output and logs it (logger
  "meshproof.tools": command, exit code, duration; never stdin, and secret-looking flags are masked).
- `install_tool(name, ...)` downloads the pinned release into the cache. The archive goes to a hidden temp
  file, its SHA-256 is checked *before* anything is extracted, made executable or moved; the binary lands
  with one atomic rename. A wrong sum, a short body or an HTTP error leaves nothing behind.

Where the SHA-256 comes from (`Verification`, shown by `meshproof tools list`):
- `pinned`: copied into this file from a public source that lists it; the source is named next to it.
- `publisher-file`: no citable sum could be pinned, but the tool opts in
  (`ToolSpec.publisher_checksum_suffix`) because its publisher ships `<asset>.sha256` next to each release
  archive. That file is fetched first, parsed strictly, and the archive is checked against it. Weaker than
  a pin: the sum and the archive come from the same origin (or the same `--mirror`), so it catches
  corrupt, truncated or mismatched downloads but not an origin that serves a forged pair. Every such
  install says so.
- anything else is refused, never downloaded unverified.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import io
import logging
import os
import platform as _platform
import re
import shlex
import shutil
import signal
import socket
import subprocess
import tarfile
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import IO, Literal

import filelock

LOG = logging.getLogger("meshproof.tools")

CACHE_ENV = "MESHPROOF_CACHE_DIR"
_CHUNK = 1 << 16


# --- errors: each message is one line saying what is wrong and how to fix it -------------------------------


class ToolError(Exception):
    """Base class for expected failures around external tools."""


class ToolMissing(ToolError):
    def __init__(self, name: str, hint: str) -> None:
        self.name = name
        self.hint = hint
        super().__init__(f"{name} not found ({', '.join(tool_search_places(name))}); {hint}")


class UnsupportedPlatform(ToolError):
    pass


class InstallError(ToolError):
    pass


class NoPinnedDownload(InstallError):
    """No download (or no citable SHA-256) is pinned for this tool on this platform."""


class OfflineRefused(InstallError):
    pass


class DownloadFailed(InstallError):
    pass


class ChecksumMismatch(InstallError):
    pass


class ChecksumUnavailable(InstallError):
    """The publisher's checksum file could not be fetched, so the archive is not downloaded at all."""


class ChecksumFileInvalid(InstallError):
    """The publisher's checksum file is not one `<64 hex> <asset file name>` line."""


@dataclass(frozen=True)
class CommandResult:
    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    duration: float

    @property
    def ok(self) -> bool:
        return self.returncode == 0


class CommandFailed(ToolError):
    def __init__(self, result: CommandResult) -> None:
        self.result = result
        tail = _tail(result.stderr) or _tail(result.stdout) or "no output"
        super().__init__(f"command failed (exit {result.returncode}): {_display(result.args)}: {tail}")


class CommandTimeout(ToolError):
    def __init__(self, args: Sequence[str], timeout: float, stdout: str, stderr: str) -> None:
        self.args_run = tuple(args)
        self.timeout = timeout
        self.stdout = stdout
        self.stderr = stderr
        super().__init__(f"command timed out after {timeout:g}s: {_display(args)}")


# --- platforms ---------------------------------------------------------------------------------------------

OsName = Literal["linux", "darwin"]
ArchName = Literal["amd64", "arm64"]


@dataclass(frozen=True)
class Platform:
    os: OsName
    arch: ArchName

    def __str__(self) -> str:
        return f"{self.os}/{self.arch}"


LINUX_AMD64 = Platform("linux", "amd64")
LINUX_ARM64 = Platform("linux", "arm64")
DARWIN_AMD64 = Platform("darwin", "amd64")
DARWIN_ARM64 = Platform("darwin", "arm64")
ALL_PLATFORMS = (LINUX_AMD64, LINUX_ARM64, DARWIN_AMD64, DARWIN_ARM64)

_OS_NAMES: dict[str, OsName] = {"linux": "linux", "darwin": "darwin"}
_ARCH_NAMES: dict[str, ArchName] = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}


def current_platform(system: str | None = None, machine: str | None = None) -> Platform:
    """The platform this process runs on, in Go's os/arch words (what release assets are named after)."""
    system = (system or _platform.system()).lower()
    machine = (machine or _platform.machine()).lower()
    os_name = _OS_NAMES.get(system)
    arch = _ARCH_NAMES.get(machine)
    if os_name is None or arch is None:
        raise UnsupportedPlatform(
            f"platform {system}/{machine} is not supported; meshproof runs on linux or darwin, amd64 or arm64"
        )
    return Platform(os_name, arch)


# --- versions ----------------------------------------------------------------------------------------------


class VersionPolicy(StrEnum):
    """How close an installed version must be to the wanted one."""

    EXACT = "exact"  # same x.y.z (istioctl installs the control plane of its own version)
    KUBECTL_SKEW = "kubectl-skew"  # kubectl is supported within one minor of the API server
    SAME_MINOR = "same-minor"
    SAME_MAJOR = "same-major"


def parse_semver(text: str) -> tuple[int, int, int] | None:
    match = re.search(r"(\d+)\.(\d+)\.(\d+)", text)
    if match is None:
        return None
    return int(match.group(1)), int(match.group(2)), int(match.group(3))


# A release (`1.27.9`), a pre-release (`1.28.0-beta.1`) or a development build (`1.30-dev`, which istioctl
# built from master prints as `client version: 1.30-dev-b01690e6db7d`): major, minor, optional patch and
# an optional pre-release tag.
_ANY_VERSION = re.compile(r"(\d+)\.(\d+)(?:\.(\d+))?(-[0-9A-Za-z.]+)?")


@dataclass(frozen=True)
class ParsedVersion:
    major: int
    minor: int
    patch: int | None  # None for a development build named by its minor only (`1.30-dev`)
    pre: str  # `-dev`, `-beta.1`, or "" for a release

    @property
    def release(self) -> tuple[int, int, int] | None:
        """(major, minor, patch) of a release; None for pre-release and development builds."""
        return None if self.pre or self.patch is None else (self.major, self.minor, self.patch)


def parse_version_text(text: str) -> ParsedVersion | None:
    """The first version in `text`, releases and pre-releases alike (`v` prefix allowed)."""
    match = _ANY_VERSION.search(text)
    if match is None:
        return None
    patch = match.group(3)
    return ParsedVersion(
        int(match.group(1)), int(match.group(2)), int(patch) if patch else None, match.group(4) or ""
    )


def target_label(wanted: str, policy: VersionPolicy) -> str:
    """What a policy accepts, in words a user reads: `1.27.9`, `1.27.x`, `3.x`, `1.33 ± 1 minor`."""
    want = parse_version_text(wanted)
    if want is None:
        return wanted
    if policy is VersionPolicy.EXACT:
        return wanted.removeprefix("v")
    if policy is VersionPolicy.SAME_MINOR:
        return f"{want.major}.{want.minor}.x"
    if policy is VersionPolicy.SAME_MAJOR:
        return f"{want.major}.x"
    return f"{want.major}.{want.minor} ± 1 minor"


def version_compatible(found: str, wanted: str, policy: VersionPolicy) -> bool:
    """Whether `found` fits `wanted` under `policy`. A pre-release or development build is never the exact
    release asked for, but shares its major and minor with it (`1.27-dev` is a 1.27)."""
    have, want = parse_version_text(found), parse_version_text(wanted)
    if have is None or want is None:
        return False
    if policy is VersionPolicy.EXACT:
        return have.release is not None and have.release == want.release
    if policy is VersionPolicy.SAME_MINOR:
        return (have.major, have.minor) == (want.major, want.minor)
    if policy is VersionPolicy.SAME_MAJOR:
        return have.major == want.major
    # Kubernetes version skew policy: kubectl is supported within one minor version (older or newer)
    # of kube-apiserver.
    return have.major == want.major and abs(have.minor - want.minor) <= 1


# --- pinned tools ------------------------------------------------------------------------------------------

ArchiveKind = Literal["raw", "tar.gz", "zip"]


class Verification(StrEnum):
    """How `install_tool` checks a tool's download on one platform (see the module docstring)."""

    PINNED = "pinned"  # SHA-256 pinned in this file, copied from a cited public source
    PUBLISHER_FILE = "publisher-file"  # SHA-256 read at install time from the publisher's <asset>.sha256
    REFUSED = "refused"  # a release asset exists, but no sum to check it against: never downloaded
    NO_DOWNLOAD = "no-download"  # no release asset for this platform: install it by hand

    @property
    def label(self) -> str:
        return _VERIFICATION_LABELS[self]


_VERIFICATION_LABELS = {
    Verification.PINNED: "pinned sha256",
    Verification.PUBLISHER_FILE: "publisher .sha256 (not pinned)",
    Verification.REFUSED: "refused: no sha256",
    Verification.NO_DOWNLOAD: "manual install",
}


@dataclass(frozen=True)
class Asset:
    """One downloadable release file for one platform."""

    url: str  # upstream URL; `{version}` is filled in from the ToolSpec
    sha256: str | None  # None: no citable published sum, so `install_tool` refuses this platform
    source: str  # where the sum was seen
    archive: ArchiveKind = "raw"
    member: str | None = None  # path of the binary inside the archive (`{version}` allowed)


@dataclass(frozen=True)
class ToolSpec:
    name: str
    version: str
    version_args: tuple[str, ...]
    version_regex: str  # first group is x.y.z
    policy: VersionPolicy
    assets: Mapping[Platform, Asset] = field(default_factory=dict)
    manual_install: str = ""  # how to get it without `meshproof tools install`
    # Opt-in fallback for assets without a pinned sum: the publisher ships `<asset URL><suffix>` holding the
    # archive's SHA-256. None: such assets are refused.
    publisher_checksum_suffix: str | None = None

    def asset_for(self, plat: Platform) -> Asset | None:
        return self.assets.get(plat)

    def url_for(self, plat: Platform, base_url_override: str | None = None) -> str:
        asset = self.assets[plat]
        url = asset.url.format(version=self.version)
        if base_url_override:
            # A mirror keeps the upstream path: https://dl.k8s.io/release/... -> <mirror>/release/...
            url = base_url_override.rstrip("/") + urllib.parse.urlsplit(url).path
        return url

    def member_for(self, plat: Platform) -> str | None:
        member = self.assets[plat].member
        return member.format(version=self.version) if member else None

    def parse_version(self, output: str) -> str | None:
        match = re.search(self.version_regex, output, re.MULTILINE)
        return match.group(1) if match else None

    def asset_file_name(self, plat: Platform) -> str:
        """The release file's own name (what a publisher's checksum file names), e.g. `x-1.2.3.tar.gz`."""
        return urllib.parse.urlsplit(self.url_for(plat)).path.rsplit("/", 1)[-1]

    def checksum_url_for(self, plat: Platform, base_url_override: str | None = None) -> str:
        if not self.publisher_checksum_suffix:
            raise InstallError(f"{self.name} has no publisher checksum file")
        return self.url_for(plat, base_url_override) + self.publisher_checksum_suffix

    def verification_for(self, plat: Platform) -> Verification:
        asset = self.assets.get(plat)
        if asset is None:
            return Verification.NO_DOWNLOAD
        if asset.sha256 is not None:
            return Verification.PINNED  # a pin always wins over the publisher's file
        if self.publisher_checksum_suffix:
            return Verification.PUBLISHER_FILE
        return Verification.REFUSED

    def installable_on(self, plat: Platform) -> bool:
        return self.verification_for(plat) in (Verification.PINNED, Verification.PUBLISHER_FILE)


# Versions. Istio 1.27 supports Kubernetes 1.30-1.33 (Solo's and IBM's support matrices for Istio 1.27), so
# the kind clusters default to a Kubernetes 1.33 node image (meshproof.mesh.pins.KIND_NODE_IMAGES, images
# published for this kind release) and kubectl is of the same minor, which is also within one minor of the
# 1.32 and 1.34 images.
KIND_VERSION = "0.30.0"
KUBECTL_VERSION = "1.33.7"
ISTIOCTL_VERSION = "1.27.9"  # = config.DEFAULT_ISTIO_VERSION; `istioctl install` installs its own version
HELM_VERSION = "3.19.2"
FORTIO_VERSION = "1.75.1"

# Where each sum was read (a public file listing the upstream .sha256 values), with corroboration.
_KIND_SRC = (
    "https://github.com/f110/mono/blob/6f3c9532bf3c553347d0d1ffec89b7b4dc0910fb/build/rules/kind/assets.bzl "
    "(KIND_ASSETS['0.30.0']); the same four sums in a public CI Makefile pinning kind v0.30.0"
)
_KUBECTL_SRC = (
    "https://github.com/cashapp/hermit-packages/blob/0e4549be91d00e65dcc5cdd8acd8ef4e7687ca7f/kubectl.hcl "
    "(sha256sums for dl.k8s.io/release/v1.33.7/...); the same sums in a public Bazel kubectl table"
)
_HELM_SRC = (
    "https://github.com/argoproj/argo-cd/blob/{commit}/hack/installers/checksums/"
    "helm-v3.19.2-{plat}.tar.gz.sha256"
)
_FORTIO_SRC = (
    "https://github.com/praxis-proxy/praxis/blob/00e0b8bdc367f796d3db8c1d3ff2d764a0cdd1e5/Makefile "
    "(FORTIO_VERSION 1.75.1, FORTIO_SHA256_{plat})"
)
_ISTIOCTL_NO_SUM = (
    "no citable public copy of the istioctl 1.27.9 sums was found (searched Homebrew, hermit-packages, "
    "Chocolatey, nixpkgs, aqua, Bazel and CI files: the newest listed was 1.27.3, Windows-only for most); "
    "checked at install time against istio's own <asset>.sha256 (publisher_checksum_suffix)"
)

PINNED: dict[str, ToolSpec] = {
    "kind": ToolSpec(
        name="kind",
        version=KIND_VERSION,
        version_args=("version",),
        version_regex=r"kind v(\d+\.\d+\.\d+)",
        policy=VersionPolicy.SAME_MINOR,
        manual_install="install it as https://kind.sigs.k8s.io/docs/user/quick-start/#installation shows",
        assets={
            LINUX_AMD64: Asset(
                "https://github.com/kubernetes-sigs/kind/releases/download/v{version}/kind-linux-amd64",
                "517ab7fc89ddeed5fa65abf71530d90648d9638ef0c4cde22c2c11f8097b8889",
                _KIND_SRC,
            ),
            LINUX_ARM64: Asset(
                "https://github.com/kubernetes-sigs/kind/releases/download/v{version}/kind-linux-arm64",
                "7ea2de9d2d190022ed4a8a4e3ac0636c8a455e460b9a13ccf19f15d07f4f00eb",
                _KIND_SRC,
            ),
            DARWIN_AMD64: Asset(
                "https://github.com/kubernetes-sigs/kind/releases/download/v{version}/kind-darwin-amd64",
                "4f0b6e3b88bdc66d922c08469f05ef507d4903dd236e6319199bb9c868eed274",
                _KIND_SRC,
            ),
            DARWIN_ARM64: Asset(
                "https://github.com/kubernetes-sigs/kind/releases/download/v{version}/kind-darwin-arm64",
                "ceaf40df1d1551c481fb50e3deb5c3deecad5fd599df5469626b70ddf52a1518",
                _KIND_SRC,
            ),
        },
    ),
    "kubectl": ToolSpec(
        name="kubectl",
        version=KUBECTL_VERSION,
        version_args=("version", "--client"),
        # `Client Version: v1.33.7` (>= 1.28) or `GitVersion:"v1.27.1"` (older clients)
        version_regex=r'(?:Client Version: |GitVersion:")v(\d+\.\d+\.\d+)',
        policy=VersionPolicy.KUBECTL_SKEW,
        manual_install="install it as https://kubernetes.io/docs/tasks/tools/#kubectl shows",
        assets={
            LINUX_AMD64: Asset(
                "https://dl.k8s.io/release/v{version}/bin/linux/amd64/kubectl",
                "471d94e208a89be62eb776700fc8206cbef11116a8de2dc06fc0086b0015375b",
                _KUBECTL_SRC,
            ),
            LINUX_ARM64: Asset(
                "https://dl.k8s.io/release/v{version}/bin/linux/arm64/kubectl",
                "fa7ee98fdb6fba92ae05b5e0cde0abd5972b2d9a4a084f7052a1fd0dce6bc1de",
                _KUBECTL_SRC,
            ),
            DARWIN_AMD64: Asset(
                "https://dl.k8s.io/release/v{version}/bin/darwin/amd64/kubectl",
                "45be3f5293da84d97e86580a541b247fe3cec60196fdd6abd2b811d7dd4d3f1b",
                _KUBECTL_SRC,
            ),
            DARWIN_ARM64: Asset(
                "https://dl.k8s.io/release/v{version}/bin/darwin/arm64/kubectl",
                "2e333f56d115081af83a48b5f31a91fb32852550f8117a0a31cf8bae2e601704",
                _KUBECTL_SRC,
            ),
        },
    ),
    "istioctl": ToolSpec(
        name="istioctl",
        version=ISTIOCTL_VERSION,
        version_args=("version", "--remote=false"),
        # `1.27.9` on older clients, `client version: 1.27.9` on newer ones; a build from master prints
        # `client version: 1.30-dev-b01690e6db7d` (read as `1.30-dev`, the commit left off).
        version_regex=r"^(?:client version: )?(\d+\.\d+(?:\.\d+)?(?:-(?:dev|alpha|beta|rc)[0-9.]*)?)",
        policy=VersionPolicy.EXACT,
        manual_install=(
            "get it with `curl -sL https://istio.io/downloadIstioctl | "
            f"ISTIO_VERSION={ISTIOCTL_VERSION} sh -` "
            "and put ~/.istioctl/bin on PATH (on OpenShift the OSSM 3.2 istioctl also fits)"
        ),
        # No citable sums to pin (see _ISTIOCTL_NO_SUM). Istio's release builder writes `<asset>.sha256` next
        # to every release archive as `fmt.Sprintf("%x %s\n", sha, path.Base(src))`
        # (https://github.com/istio/release-builder/blob/03ecf5aaaab082f6805875b2a47f4eb27852f9ed/pkg/util/files.go
        # CreateSha), so the archive is checked against that file instead; a pin added here wins over it.
        publisher_checksum_suffix=".sha256",
        assets={
            LINUX_AMD64: Asset(
                "https://github.com/istio/istio/releases/download/{version}/istioctl-{version}-linux-amd64.tar.gz",
                None,
                _ISTIOCTL_NO_SUM,
                "tar.gz",
                "istioctl",
            ),
            LINUX_ARM64: Asset(
                "https://github.com/istio/istio/releases/download/{version}/istioctl-{version}-linux-arm64.tar.gz",
                None,
                _ISTIOCTL_NO_SUM,
                "tar.gz",
                "istioctl",
            ),
            DARWIN_AMD64: Asset(
                "https://github.com/istio/istio/releases/download/{version}/istioctl-{version}-osx.tar.gz",
                None,
                _ISTIOCTL_NO_SUM,
                "tar.gz",
                "istioctl",
            ),
            DARWIN_ARM64: Asset(
                "https://github.com/istio/istio/releases/download/{version}/istioctl-{version}-osx-arm64.tar.gz",
                None,
                _ISTIOCTL_NO_SUM,
                "tar.gz",
                "istioctl",
            ),
        },
    ),
    "helm": ToolSpec(
        name="helm",
        version=HELM_VERSION,
        version_args=("version", "--short"),
        version_regex=r"v(\d+\.\d+\.\d+)",
        policy=VersionPolicy.SAME_MAJOR,
        manual_install="install it as https://helm.sh/docs/intro/install/ shows",
        assets={
            LINUX_AMD64: Asset(
                "https://get.helm.sh/helm-v{version}-linux-amd64.tar.gz",
                "2114c9dea2844dce6d0ee2d792a9aae846be8cf53d5b19dc2988b5a0e8fec26e",
                _HELM_SRC.format(commit="052241bba528f71d2a36119a20577a5d3a0719c0", plat="linux-amd64"),
                "tar.gz",
                "linux-amd64/helm",
            ),
            LINUX_ARM64: Asset(
                "https://get.helm.sh/helm-v{version}-linux-arm64.tar.gz",
                "566e9f3a5a83a81e4b03503ae37e368edd52d699619e8a9bb1fdf21561ae0e88",
                _HELM_SRC.format(commit="5e0f5b7acfdd93bf67a78cff988308c6bad90be8", plat="linux-arm64"),
                "tar.gz",
                "linux-arm64/helm",
            ),
            DARWIN_AMD64: Asset(
                "https://get.helm.sh/helm-v{version}-darwin-amd64.tar.gz",
                "7ef4416cdef4c2d78a09e1c8f07a51e945dc0343c883a46b1f628deab52690b7",
                _HELM_SRC.format(commit="39be48d07f5bc1fb3248ae2649a36a5c1e67e37c", plat="darwin-amd64"),
                "tar.gz",
                "darwin-amd64/helm",
            ),
            DARWIN_ARM64: Asset(
                "https://get.helm.sh/helm-v{version}-darwin-arm64.tar.gz",
                "f0847f899479b66a6dd8d9fcd452e8db2562e4cf3f7de28103f9fcf2b824f1d5",
                _HELM_SRC.format(commit="18da01556596081d7eae4107ec3f4ae1d6babd0a", plat="darwin-arm64"),
                "tar.gz",
                "darwin-arm64/helm",
            ),
        },
    ),
    "fortio": ToolSpec(
        name="fortio",
        version=FORTIO_VERSION,
        version_args=("version",),
        version_regex=r"^v?(\d+\.\d+\.\d+)",
        # Any 1.x: the JSON result meshproof parses is unchanged from 1.60 to 1.75 (output-formats §1.1),
        # and CI builds 1.68.2 with `go install` (the newest whose dependencies the CI proxy serves).
        policy=VersionPolicy.SAME_MAJOR,
        manual_install=(
            f"get it with `go install fortio.org/fortio@v{FORTIO_VERSION}` (or `brew install fortio`)"
        ),
        # fortio publishes no darwin archive on GitHub; on a Mac use `go install` or Homebrew.
        assets={
            LINUX_AMD64: Asset(
                "https://github.com/fortio/fortio/releases/download/v{version}/fortio-linux_amd64-{version}.tgz",
                "92da34238dee258191a9dc6691c8bc75305b308951e934e2c3b4e658db0d77d1",
                _FORTIO_SRC.format(plat="linux_amd64"),
                "tar.gz",
                "usr/bin/fortio",
            ),
            LINUX_ARM64: Asset(
                "https://github.com/fortio/fortio/releases/download/v{version}/fortio-linux_arm64-{version}.tgz",
                "f66275a56ef41e9a5afb2ea8181eb53ca36b34c6d19a201b58aec17dbe95a853",
                _FORTIO_SRC.format(plat="linux_arm64"),
                "tar.gz",
                "usr/bin/fortio",
            ),
        },
    ),
}

# Tools meshproof uses but does not pin or download: only found and version-probed.
UNPINNED: dict[str, ToolSpec] = {
    "docker": ToolSpec(
        name="docker",
        version="",
        version_args=("--version",),
        version_regex=r"Docker version (\d+\.\d+\.\d+)",
        policy=VersionPolicy.SAME_MAJOR,
        manual_install="install Docker Engine (https://docs.docker.com/engine/install/) or Docker Desktop",
    ),
    "oc": ToolSpec(
        name="oc",
        version="",
        version_args=("version", "--client"),
        version_regex=r"Client Version: v?(\d+\.\d+\.\d+)",
        policy=VersionPolicy.SAME_MAJOR,
        manual_install=(
            "download oc from your cluster console (? > Command line tools) or mirror.openshift.com"
        ),
    ),
}


def spec_for(name: str) -> ToolSpec | None:
    return PINNED.get(name) or UNPINNED.get(name)


def install_hint(name: str, plat: Platform | None = None) -> str:
    """How to get `name`: our installer when it can verify the download here, else the manual way."""
    spec = spec_for(name)
    if spec is None:
        return f"install {name} and put it on PATH"
    try:
        plat = plat or current_platform()
    except UnsupportedPlatform:
        plat = None
    if name in PINNED and plat is not None and spec.installable_on(plat):
        hint = f"run `meshproof tools install {name}`"
        if spec.verification_for(plat) is Verification.PUBLISHER_FILE:
            # Weaker than a pin: offer the manual route too.
            return f"{hint} (checked against the publisher's checksum file) or {spec.manual_install}"
        if name == "fortio":
            hint += f" or `go install fortio.org/fortio@v{spec.version}`"
        return hint
    return spec.manual_install


# --- finding tools -----------------------------------------------------------------------------------------


def cache_dir() -> Path:
    """Root of the cache: $MESHPROOF_CACHE_DIR, else $XDG_CACHE_HOME/meshproof, else ~/.cache/meshproof.

    Binaries live in `<root>/bin` (see `cache_bin_dir`).
    """
    explicit = os.environ.get(CACHE_ENV)
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "meshproof"


def cache_bin_dir(root: Path | None = None) -> Path:
    return (root or cache_dir()) / "bin"


def _is_executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


# Tools a user can point at one binary with an environment variable (documented in the README).
TOOL_ENV = {"fortio": "MESHPROOF_FORTIO"}


def checkout_bin_dir() -> Path:
    """`.cache/bin` of the meshproof checkout, where `scripts/setup.sh --dev` installs fortio."""
    return Path(__file__).resolve().parents[1] / ".cache" / "bin"


def tool_search_places(name: str) -> list[str]:
    """Where `find_tool` looks, in order, for messages that say so."""
    places = [f"${TOOL_ENV[name]}"] if name in TOOL_ENV else []
    return [*places, str(checkout_bin_dir()), "PATH", str(cache_bin_dir())]


def find_tool(name: str) -> Path:
    """The executable for `name`: its env override, the checkout's .cache/bin, PATH, then the meshproof
    cache. Raises ToolMissing (an env override that is not an executable is an error, not skipped)."""
    if (env_name := TOOL_ENV.get(name)) and (override := os.environ.get(env_name)):
        if not _is_executable(Path(override).expanduser()):
            raise ToolMissing(name, f"${env_name}={override} is not an executable file; fix or unset it")
        return Path(override).expanduser()
    in_checkout = checkout_bin_dir() / name
    if _is_executable(in_checkout):
        return in_checkout
    on_path = shutil.which(name)
    if on_path:
        return Path(on_path)
    cached = cache_bin_dir() / name
    if _is_executable(cached):
        return cached
    raise ToolMissing(name, install_hint(name))


def tool_version(name: str, path: Path | None = None, *, timeout: float = 15.0) -> str:
    """The x.y.z version the installed `name` reports. Raises ToolMissing or ToolError."""
    spec = spec_for(name)
    if spec is None:
        raise ToolError(f"no version probe is known for {name}")
    exe = path or find_tool(name)
    result = run([str(exe), *spec.version_args], timeout=timeout, check=False)
    found = spec.parse_version(result.stdout + "\n" + result.stderr)
    if found is None:
        raise ToolError(
            f"could not read the version of {exe} (`{_display(result.args)}` exit {result.returncode}: "
            f"{_tail(result.stdout + result.stderr) or 'no output'})"
        )
    return found


ToolState = Literal["ok", "missing", "version-mismatch", "unknown-version"]


@dataclass(frozen=True)
class ToolStatus:
    name: str
    pinned: str
    path: Path | None
    found: str | None
    status: ToolState
    detail: str = ""


def inspect_tool(name: str, *, wanted: str | None = None, policy: VersionPolicy | None = None) -> ToolStatus:
    """Where `name` is, what version it is and whether that is close enough to `wanted`.

    `wanted=None` means the pinned version; `wanted=""` means any version (presence only). `policy`
    overrides the tool's own notion of "close enough".
    """
    spec = spec_for(name)
    if spec is None:
        raise ToolError(f"unknown tool {name}")
    want = spec.version if wanted is None else wanted
    rule = policy or spec.policy
    try:
        path = find_tool(name)
    except ToolMissing as exc:
        return ToolStatus(name, want, None, None, "missing", str(exc))
    try:
        found = tool_version(name, path)
    except ToolError as exc:
        return ToolStatus(name, want, path, None, "unknown-version", str(exc))
    if not want or version_compatible(found, want, rule):
        return ToolStatus(name, want, path, found, "ok")
    return ToolStatus(
        name,
        want,
        path,
        found,
        "version-mismatch",
        f"{path}: found {found}, this run targets {target_label(want, rule)} ({rule.value})",
    )


# --- running commands --------------------------------------------------------------------------------------

_SECRET_FLAG = re.compile(r"(?i)^(--?[\w-]*(?:token|password|secret|client-key)[\w-]*)(=.*)?$")


def redact_args(args: Sequence[str]) -> list[str]:
    """Mask values of secret-looking flags (`--token=x`, `--password x`) so logs never carry them."""
    out: list[str] = []
    hide_next = False
    for arg in args:
        if hide_next:
            out.append("***")
            hide_next = False
            continue
        match = _SECRET_FLAG.match(arg)
        if match and match.group(2):
            out.append(match.group(1) + "=***")
        elif match:
            out.append(arg)
            hide_next = True
        else:
            out.append(arg)
    return out


def _display(args: Sequence[str], limit: int = 160) -> str:
    text = shlex.join(redact_args([str(a) for a in args]))
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _tail(text: str, lines: int = 3, limit: int = 300) -> str:
    kept = [ln.strip() for ln in text.strip().splitlines() if ln.strip()][-lines:]
    joined = " | ".join(kept)
    return joined if len(joined) <= limit else "..." + joined[-(limit - 3) :]


def _resolve_executable(program: str) -> str:
    if os.sep in program:
        return program
    found = shutil.which(program)
    if found:
        return found
    cached = cache_bin_dir() / program
    if _is_executable(cached):
        return str(cached)
    raise ToolMissing(program, install_hint(program))


def _kill_group(proc: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        proc.kill()


def run(
    args: Sequence[str],
    *,
    timeout: float,
    input: str | None = None,
    check: bool = True,
    env: Mapping[str, str] | None = None,
) -> CommandResult:
    """Run `args` with a deadline and capture stdout/stderr as text.

    `args[0]` is looked up like `find_tool` (PATH, then the cache). `env` adds to (and overrides) the current
    environment. The command runs in its own process group so a timeout kills its children too.
    Raises ToolMissing, CommandTimeout, or CommandFailed when `check` and the exit code is not 0.
    """
    argv = [str(a) for a in args]
    if not argv:
        raise ValueError("run() needs a command")
    argv[0] = _resolve_executable(argv[0])
    full_env = {**os.environ, **env} if env is not None else None
    started = time.monotonic()
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=full_env,
        start_new_session=True,
    )
    try:
        stdout, stderr = proc.communicate(input, timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        try:
            stdout, stderr = proc.communicate(timeout=5)
        except subprocess.TimeoutExpired:  # something still holds the pipes; give up on the output
            stdout, stderr = "", ""
        duration = time.monotonic() - started
        LOG.info("timeout after %.2fs: %s", duration, _display(argv))
        raise CommandTimeout(argv, timeout, stdout or "", stderr or "") from None
    except BaseException:
        _kill_group(proc)
        proc.wait()
        raise
    duration = time.monotonic() - started
    result = CommandResult(tuple(argv), proc.returncode, stdout or "", stderr or "", duration)
    LOG.info("rc=%d in %.2fs: %s", result.returncode, duration, _display(argv))
    if check and result.returncode != 0:
        raise CommandFailed(result)
    return result


# --- installing --------------------------------------------------------------------------------------------


def _locks_dir(root: Path) -> Path:
    # Lock files live outside bin/ so bin/ only ever holds finished, verified binaries.
    return root / ".locks"


def install_tool(
    name: str,
    *,
    cache_dir: Path,
    offline: bool,
    base_url_override: str | None = None,
    specs: Mapping[str, ToolSpec] | None = None,
    platform: Platform | None = None,
    timeout: float = 120.0,
    lock_timeout: float = 600.0,
    note: Callable[[str], None] | None = None,
) -> Path:
    """Install the pinned `name` into `<cache_dir>/bin` and return its path.

    Already installed at the pinned version: returns at once (also offline). Otherwise the release asset is
    downloaded to a temp file, its SHA-256 checked, the binary extracted to a second temp file, made
    executable and renamed into place. Concurrent installs of the same tool serialise on a file lock.
    For `Verification.PUBLISHER_FILE` the publisher's checksum file is fetched (into memory) before the
    archive, and after the install `note` (and the log) says the sum was not pinned in meshproof.
    """
    table = PINNED if specs is None else specs
    spec = table.get(name)
    if spec is None:
        raise InstallError(f"unknown tool '{name}'; meshproof pins: {', '.join(sorted(table))}")
    plat = platform or current_platform()
    bin_dir = cache_bin_dir(cache_dir)
    target = bin_dir / name

    asset = spec.asset_for(plat)
    verification = spec.verification_for(plat)
    if asset is None or verification is Verification.NO_DOWNLOAD:
        raise NoPinnedDownload(
            f"no pinned download of {name} {spec.version} for {plat}; {spec.manual_install}"
        )
    if verification is Verification.REFUSED:
        raise NoPinnedDownload(
            f"no citable SHA-256 is pinned for {name} {spec.version} on {plat} and its publisher ships no "
            f"checksum file meshproof knows of, so meshproof will not download it unverified; "
            f"{spec.manual_install}"
        )

    bin_dir.mkdir(parents=True, exist_ok=True)
    _locks_dir(cache_dir).mkdir(parents=True, exist_ok=True)
    lock = filelock.FileLock(str(_locks_dir(cache_dir) / f"{name}.lock"), timeout=lock_timeout)
    try:
        with lock:
            if _has_version(target, spec):
                return target
            if offline:
                raise OfflineRefused(
                    f"offline: not downloading {name} {spec.version}; "
                    f"drop --offline, or {spec.manual_install}"
                )
            url = spec.url_for(plat, base_url_override)
            if asset.sha256 is not None:
                wanted, claimed_by = asset.sha256, "pinned"
            else:
                checksum_url = spec.checksum_url_for(plat, base_url_override)
                wanted = _publisher_sha256(spec, plat, checksum_url, timeout=timeout)
                claimed_by = f"the publisher's checksum file {checksum_url} says"
            with _temp_path(bin_dir, f".{name}.download.") as archive:
                _download(url, archive, timeout=timeout)
                _verify_sha256(archive, wanted, name, url, claimed_by=claimed_by)
                with _temp_path(bin_dir, f".{name}.new.") as staged:
                    _extract(archive, asset.archive, spec.member_for(plat), staged, name)
                    staged.chmod(0o755)
                    os.replace(staged, target)
    except filelock.Timeout:
        raise InstallError(
            f"another meshproof is installing {name} (lock {lock.lock_file} held for {lock_timeout:g}s)"
        ) from None
    LOG.info("installed %s %s into %s", name, spec.version, target)
    if verification is Verification.PUBLISHER_FILE:
        message = (
            f"{name} {spec.version}: SHA-256 taken from the publisher's checksum file "
            f"{spec.checksum_url_for(plat, base_url_override)}, not pinned in meshproof "
            "(weaker: the sum and the archive come from the same origin)"
        )
        LOG.warning("%s", message)
        if note is not None:
            note(message)
    return target


def _has_version(path: Path, spec: ToolSpec) -> bool:
    if not _is_executable(path):
        return False
    try:
        result = run([str(path), *spec.version_args], timeout=15, check=False)
    except ToolError:
        return False
    found = spec.parse_version(result.stdout + "\n" + result.stderr)
    return found is not None and parse_semver(found) == parse_semver(spec.version)


@contextlib.contextmanager
def _temp_path(directory: Path, prefix: str) -> Iterator[Path]:
    """A fresh hidden, non-executable file in `directory`, removed on exit unless renamed away."""
    fd, name = tempfile.mkstemp(prefix=prefix, dir=directory)
    os.close(fd)
    path = Path(name)
    try:
        yield path
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


class _TooLarge(DownloadFailed):
    pass


def _download(url: str, dest: Path, *, timeout: float) -> None:
    with dest.open("wb") as out:
        _fetch(url, out, timeout=timeout)


def _fetch(url: str, out: IO[bytes], *, timeout: float, max_bytes: int | None = None) -> None:
    """Stream `url` into `out`. Raises DownloadFailed (one line) on HTTP errors, timeouts, short bodies
    and, with `max_bytes`, on bodies larger than that (`_TooLarge`)."""
    request = urllib.request.Request(url, headers={"User-Agent": "meshproof-tools"})
    received = 0
    expected: int | None = None
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            length = response.headers.get("Content-Length")
            expected = int(length) if length and length.isdigit() else None
            while chunk := response.read(_CHUNK):
                out.write(chunk)
                received += len(chunk)
                if max_bytes is not None and received > max_bytes:
                    raise _TooLarge(f"{url} is larger than {max_bytes} bytes")
    except urllib.error.HTTPError as exc:
        raise DownloadFailed(f"download of {url} failed: HTTP {exc.code} {exc.reason}") from None
    except http.client.IncompleteRead as exc:
        got = received + len(exc.partial)
        raise DownloadFailed(_interrupted(url, got, expected)) from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        if isinstance(reason, socket.timeout | TimeoutError):
            raise DownloadFailed(f"download of {url} timed out after {timeout:g}s") from None
        raise DownloadFailed(f"download of {url} failed: {reason}") from None
    if expected is not None and received != expected:
        raise DownloadFailed(_interrupted(url, received, expected))


def _interrupted(url: str, got: int, expected: int | None) -> str:
    of = f" of {expected}" if expected is not None else ""
    return f"download of {url} was interrupted after {got}{of} bytes; try again"


def _verify_sha256(path: Path, wanted: str, name: str, url: str, *, claimed_by: str = "pinned") -> None:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    got = digest.hexdigest()
    if got != wanted.lower():
        raise ChecksumMismatch(
            f"checksum mismatch for {name} from {url}: got sha256 {got}, {claimed_by} {wanted}; "
            "nothing was installed"
        )


# A checksum file is one short line; anything bigger is not one (an HTML error page, a wrong URL).
CHECKSUM_FILE_MAX_BYTES = 1024
# `<64 hex><sep><name>`: sep is one space (istio's release builder), two spaces (sha256sum text mode) or
# space-star (sha256sum binary mode). Only a bare file name is accepted, no directories.
_CHECKSUM_LINE = re.compile(r"([0-9a-fA-F]{64})(?: \*|  | )([^\s/\\*][^\s/\\]*)")


def _publisher_sha256(spec: ToolSpec, plat: Platform, checksum_url: str, *, timeout: float) -> str:
    """The SHA-256 the publisher's checksum file gives for this platform's asset. Nothing touches the disk."""
    buffer = io.BytesIO()
    try:
        _fetch(checksum_url, buffer, timeout=timeout, max_bytes=CHECKSUM_FILE_MAX_BYTES)
    except _TooLarge:
        raise ChecksumFileInvalid(
            f"the publisher's checksum file for {spec.name} {spec.version} ({checksum_url}) is larger than "
            f"{CHECKSUM_FILE_MAX_BYTES} bytes, so it is not one; nothing was downloaded or installed"
        ) from None
    except DownloadFailed as exc:
        raise ChecksumUnavailable(
            f"could not fetch the publisher's checksum file for {spec.name} {spec.version} ({exc}), so the "
            f"archive is not downloaded unverified; try again, or {spec.manual_install}"
        ) from None
    return parse_checksum_file(buffer.getvalue(), spec.asset_file_name(plat), source=checksum_url)


def parse_checksum_file(data: bytes, expected_name: str, *, source: str) -> str:
    """The lower-case SHA-256 from a one-line `<64 hex> <expected_name>` checksum file.

    Strict on purpose: exactly one line (one trailing newline allowed), 64 hex digits, and the file name
    must be `expected_name`: a checksum file for another asset (wrong platform, wrong version) is refused.
    Raises ChecksumFileInvalid with a one-line message.
    """
    if len(data) > CHECKSUM_FILE_MAX_BYTES:
        raise ChecksumFileInvalid(
            f"the checksum file {source} is larger than {CHECKSUM_FILE_MAX_BYTES} bytes"
        )
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise ChecksumFileInvalid(f"the checksum file {source} is not ASCII text") from None
    line = text[:-2] if text.endswith("\r\n") else text[:-1] if text.endswith("\n") else text
    match = _CHECKSUM_LINE.fullmatch(line)
    if match is None:
        raise ChecksumFileInvalid(
            f"the checksum file {source} is not one '<64 hex digits> {expected_name}' line "
            f"(starts {line[:72]!r}); nothing was downloaded or installed"
        )
    digest, named = match.groups()
    if named != expected_name:
        raise ChecksumFileInvalid(
            f"the checksum file {source} is for {named!r}, not {expected_name!r}; "
            "nothing was downloaded or installed"
        )
    return digest.lower()


def _extract(archive: Path, kind: ArchiveKind, member: str | None, dest: Path, name: str) -> None:
    """Copy the binary out of a verified archive into `dest`. Only the named member is read."""
    if kind == "raw":
        shutil.copyfile(archive, dest)
        return
    if member is None:
        raise InstallError(f"pinned {name} archive has no member path")
    try:
        if kind == "tar.gz":
            with tarfile.open(archive, "r:gz") as tar:
                info = tar.getmember(member)
                if not info.isfile():
                    raise InstallError(f"{member} in the {name} archive is not a regular file")
                source = tar.extractfile(info)
                assert source is not None
                _copy_stream(source, dest)
        else:
            with zipfile.ZipFile(archive) as zf, zf.open(member) as source:
                _copy_stream(source, dest)
    except KeyError:
        raise InstallError(f"the {name} archive has no {member}; the pinned member path is wrong") from None
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as exc:
        raise InstallError(f"could not unpack the {name} archive: {exc}") from None


def _copy_stream(source: IO[bytes] | io.BufferedReader, dest: Path) -> None:
    with dest.open("wb") as out:
        shutil.copyfileobj(source, out, _CHUNK)
