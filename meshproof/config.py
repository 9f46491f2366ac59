"""One validated RunConfig from command-line options, MESHPROOF_* environment variables and a profile YAML.

Precedence, lowest first: built-in defaults < profile YAML (`--profile`) < MESHPROOF_* environment <
command line. The same option table feeds argparse (the `meshproof` CLI) and pytest (`parser.addoption`),
so every entry point spells an option the same way and validates it the same way.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

# Istio 1.27.9 is what OSSM 3.2's `v1.27-latest` resolves to on the 3.2 branch head (istio-facts §0).
DEFAULT_ISTIO_VERSION = "1.27.9"
DEFAULT_OSSM_VERSION = "3.2.8"  # the newest tagged OSSM 3.2 release (meshproof.mesh.pins.OSSM_NEWEST_RELEASE)
ENV_PREFIX = "MESHPROOF_"


class ConfigError(Exception):
    """A bad option value. The message is one line naming the option and what is allowed."""


class Feature(StrEnum):
    NFTABLES = "nftables"
    ISTIO_CSR = "istio-csr"
    GIE = "gie"
    MULTICLUSTER = "multicluster"


Provider = Literal["kind", "openshift", "existing"]
Mode = Literal["sidecar", "ambient"]
Installer = Literal["istioctl", "helm", "sail"]
RevisionStrategy = Literal["InPlace", "RevisionBased"]

PROVIDERS: tuple[str, ...] = ("kind", "openshift", "existing")
MODES: tuple[str, ...] = ("sidecar", "ambient")
INSTALLERS: tuple[str, ...] = ("istioctl", "helm", "sail")
REVISION_STRATEGIES: tuple[str, ...] = ("InPlace", "RevisionBased")
_VERSION_RE = re.compile(r"^v?\d+\.\d+\.\d+$")


# A run id names a directory under reports/ and labels cluster objects: no separators, no leading dot.
RUN_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")


def parse_run_id(text: str, name: str = "MESHPROOF_RUN_ID") -> str:
    """`text` when it is a usable run id; else ConfigError in one line (`x/../y` would escape reports/)."""
    if not RUN_ID_RE.fullmatch(text):
        raise ConfigError(
            f"{name}: '{text}' is not a run id: use letters, digits, '.', '_' and '-', "
            "starting with a letter or digit, at most 63 characters"
        )
    return text


def new_run_id(now: datetime | None = None) -> str:
    """A sortable, DNS-label-safe run id: 20261126-064501-a3f9."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-{secrets.token_hex(2)}"


class RunConfig(BaseModel):
    """Everything a run needs to know, validated once."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    provider: Provider = "kind"
    kubeconfig: Path | None = None
    contexts: list[str] = Field(default_factory=list)
    mode: Mode = "ambient"
    installer: Installer = "istioctl"
    revision_strategy: RevisionStrategy = "InPlace"
    istio_version: str = DEFAULT_ISTIO_VERSION
    ossm_version: str = DEFAULT_OSSM_VERSION
    features: frozenset[Feature] = frozenset()
    results_dir: Path = Path("reports")
    reuse_cluster: bool = False
    keep_cluster: bool = False
    keep_on_failure: bool = False
    timeout_scale: float = Field(default=1.0, gt=0)
    run_id: str = Field(default_factory=new_run_id)
    cluster_name: str = "meshproof"
    offline: bool = False
    gateway_api_crds: Path | None = None  # a local file or directory of Gateway API CRDs (no download)
    # install even where an Istio control plane meshproof did not install runs (refused otherwise)
    install_over_existing_mesh: bool = False

    def has(self, feature: Feature | str) -> bool:
        return Feature(feature) in self.features

    def public_dict(self) -> dict[str, Any]:
        """The config as plain data for reports. The kubeconfig is named by path only, never read."""
        data = self.model_dump(mode="json")
        data["features"] = sorted(data["features"])
        return data


# --- the option table ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Option:
    """One user-facing option, shared by the CLI, pytest and the environment."""

    dest: str
    help: str
    choices: tuple[str, ...] | None = None
    flag_kind: Literal["value", "bool", "append"] = "value"
    metavar: str | None = None

    @property
    def flag(self) -> str:
        return "--" + self.dest.replace("_", "-")

    @property
    def env_name(self) -> str:
        return ENV_PREFIX + self.dest.upper()


OPTIONS: tuple[Option, ...] = (
    Option("provider", "where the cluster comes from", PROVIDERS),
    Option("kubeconfig", "kubeconfig file (default: $KUBECONFIG or ~/.kube/config)", metavar="PATH"),
    Option(
        "context",
        "kubeconfig context; repeat for several clusters (multicluster)",
        flag_kind="append",
        metavar="NAME",
    ),
    Option("mode", "mesh data-plane mode under test", MODES),
    Option("installer", "how the mesh is installed", INSTALLERS),
    Option(
        "revision_strategy",
        "Sail update strategy: InPlace, or RevisionBased (revision + `default` tag)",
        REVISION_STRATEGIES,
    ),
    Option("istio_version", f"Istio version (default {DEFAULT_ISTIO_VERSION})", metavar="X.Y.Z"),
    Option("ossm_version", f"OSSM operator version for --installer sail (default {DEFAULT_OSSM_VERSION})"),
    Option("features", "comma list of: " + ", ".join(f.value for f in Feature), metavar="LIST"),
    Option("results_dir", "where results land (default reports/<run-id>)", metavar="DIR"),
    Option("reuse_cluster", "reuse a matching cluster from an earlier run", flag_kind="bool"),
    Option("keep_cluster", "do not delete the cluster at the end", flag_kind="bool"),
    Option("keep_on_failure", "keep the cluster and test objects when a test failed", flag_kind="bool"),
    Option("timeout_scale", "multiply every timeout (slow machines: 2)", metavar="FACTOR"),
    Option("cluster_name", "kind cluster name prefix (default meshproof)", metavar="NAME"),
    Option("profile", "YAML file with option values (keys as the long option names)", metavar="FILE"),
    Option("offline", "never download tools or the Gateway API CRDs", flag_kind="bool"),
    Option(
        "gateway_api_crds",
        "apply the Gateway API CRDs from this file or directory instead of downloading them",
        metavar="PATH",
    ),
    Option(
        "install_over_existing_mesh",
        "install even where an Istio control plane meshproof did not install already runs",
        flag_kind="bool",
    ),
)
_OPTIONS_BY_DEST = {o.dest: o for o in OPTIONS}


def add_argparse_options(parser: argparse.ArgumentParser | Any) -> None:
    """Add the shared options to an argparse parser (or an argparse argument group)."""
    for opt in OPTIONS:
        _add_option(parser.add_argument, opt)


def add_pytest_options(group: Any) -> None:
    """Add the shared options to a pytest option group (`parser.getgroup("meshproof")`)."""
    for opt in OPTIONS:
        _add_option(group.addoption, opt)


def _add_option(add: Callable[..., Any], opt: Option) -> None:
    # Defaults stay None/False so we can tell "not given" from "given" and let env/profile fill in.
    if opt.flag_kind == "bool":
        add(opt.flag, dest=opt.dest, action="store_true", default=None, help=opt.help)
    elif opt.flag_kind == "append":
        add(opt.flag, dest=opt.dest, action="append", default=None, help=opt.help, metavar=opt.metavar)
    else:
        # choices are validated in load_config, so every entry point produces the same one-line error
        metavar = opt.metavar or ("|".join(opt.choices) if opt.choices else None)
        add(opt.flag, dest=opt.dest, default=None, help=opt.help, metavar=metavar)


def config_from_namespace(ns: argparse.Namespace | Any, env: Mapping[str, str] | None = None) -> RunConfig:
    """Build the RunConfig from parsed argparse options (or pytest's `config.option`)."""
    return load_config({opt.dest: getattr(ns, opt.dest, None) for opt in OPTIONS}, env)


# --- loading and validation ------------------------------------------------------------------------


def load_config(cli: Mapping[str, object], env: Mapping[str, str] | None = None) -> RunConfig:
    """Merge defaults, profile, environment and command line into one validated RunConfig.

    `cli` keys are option dests (`istio_version`); `context` may be given as `contexts` too. Values of None
    mean "not given". Raises ConfigError with one line naming the option at fault.
    """
    env = os.environ if env is None else env
    given_cli = {_canonical(k): v for k, v in cli.items() if v is not None}
    from_env = _read_env(env)
    profile_path = given_cli.get("profile", from_env.get("profile"))
    from_profile = _read_profile(Path(str(profile_path))) if profile_path else {}

    merged: dict[str, object] = {**from_profile, **from_env, **given_cli}
    merged.pop("profile", None)
    return _build(merged)


def _canonical(key: str) -> str:
    key = key.replace("-", "_")
    return "context" if key == "contexts" else key


def _read_env(env: Mapping[str, str]) -> dict[str, object]:
    values: dict[str, object] = {}
    for opt in OPTIONS:
        raw = env.get(opt.env_name)
        if raw is None or raw == "":
            continue
        if opt.flag_kind == "bool":
            values[opt.dest] = parse_bool(raw, opt.env_name)
        elif opt.flag_kind == "append":
            values[opt.dest] = [c.strip() for c in raw.split(",") if c.strip()]
        else:
            values[opt.dest] = raw
    if env.get(ENV_PREFIX + "RUN_ID"):
        values["run_id"] = env[ENV_PREFIX + "RUN_ID"]
    return values


def _read_profile(path: Path) -> dict[str, object]:
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"--profile: file {path} does not exist") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"--profile: {path} is not valid YAML ({_first_line(exc)})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"--profile: {path} must hold a mapping of option names to values")
    values: dict[str, object] = {}
    for key, value in data.items():
        dest = _canonical(str(key))
        if dest not in _OPTIONS_BY_DEST or dest == "profile":
            known = ", ".join(o.dest.replace("_", "-") for o in OPTIONS if o.dest != "profile")
            raise ConfigError(f"--profile: {path} has unknown key '{key}'; known keys: {known}")
        values[dest] = value
    return values


def _build(values: dict[str, object]) -> RunConfig:
    fields: dict[str, object] = {}
    for dest, value in values.items():
        if dest == "context":
            fields["contexts"] = _as_list(value, "--context")
        elif dest == "features":
            fields["features"] = parse_features(value)
        elif dest == "timeout_scale":
            fields["timeout_scale"] = _parse_scale(value)
        elif dest in ("istio_version", "ossm_version"):
            fields[dest] = _parse_version(str(value), "--" + dest.replace("_", "-"))
        elif dest in (
            "reuse_cluster",
            "keep_cluster",
            "keep_on_failure",
            "offline",
            "install_over_existing_mesh",
        ):
            fields[dest] = parse_bool(value, "--" + dest.replace("_", "-"))
        elif dest in ("provider", "mode", "installer", "revision_strategy"):
            fields[dest] = _parse_choice(value, _OPTIONS_BY_DEST[dest])
        elif dest in ("kubeconfig", "results_dir"):
            fields[dest] = Path(str(value)).expanduser()
        elif dest == "gateway_api_crds":
            fields[dest] = _parse_existing_path(value, "--gateway-api-crds")
        elif dest == "cluster_name":
            fields[dest] = _parse_cluster_name(str(value))
        elif dest == "run_id":
            fields[dest] = parse_run_id(str(value))
        else:
            fields[dest] = value
    if "istio_version" not in fields and "ossm_version" in fields:
        fields["istio_version"] = _istio_for_ossm(fields)
    run_id = str(fields.get("run_id") or new_run_id())
    fields["run_id"] = run_id
    fields.setdefault("results_dir", Path("reports") / run_id)
    try:
        return RunConfig(**fields)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = "--" + str(err["loc"][0]).replace("_", "-") if err["loc"] else "config"
        raise ConfigError(f"{where}: {err['msg']}") from None


def _istio_for_ossm(fields: Mapping[str, object]) -> str:
    """`--ossm-version` alone: the Istio that OSSM version ships (its newest), where OSSM installs the mesh
    (`--installer sail` on OpenShift); elsewhere the OSSM version is unused and the default stays."""
    if fields.get("installer") != "sail" or fields.get("provider") != "openshift":
        return DEFAULT_ISTIO_VERSION
    from meshproof.mesh.pins import newest_istio_for_ossm  # the mesh package imports this module

    try:
        return newest_istio_for_ossm(str(fields["ossm_version"]))
    except ValueError:
        return DEFAULT_ISTIO_VERSION  # an OSSM release meshproof does not know: refused by the spec


def parse_features(value: object) -> frozenset[Feature]:
    items = value.split(",") if isinstance(value, str) else _as_list(value, "--features")
    allowed = ", ".join(f.value for f in Feature)
    result: set[Feature] = set()
    for item in (str(i).strip() for i in items):
        if not item:
            continue
        try:
            result.add(Feature(item))
        except ValueError:
            raise ConfigError(f"--features: unknown feature '{item}'; allowed: {allowed}") from None
    return frozenset(result)


def _parse_choice(value: object, opt: Option) -> str:
    text = str(value)
    assert opt.choices is not None
    if text not in opt.choices:
        raise ConfigError(f"{opt.flag}: '{text}' is not one of {', '.join(opt.choices)}")
    return text


def _parse_version(text: str, flag: str) -> str:
    if not _VERSION_RE.match(text):
        raise ConfigError(f"{flag}: '{text}' is not a version like 1.27.9")
    return text.removeprefix("v")


def _parse_existing_path(value: object, flag: str) -> Path:
    path = Path(str(value)).expanduser()
    if not path.exists():
        raise ConfigError(f"{flag}: {path} does not exist")
    return path.resolve()


def _parse_scale(value: object) -> float:
    try:
        scale = float(str(value))
    except ValueError:
        raise ConfigError(f"--timeout-scale: '{value}' is not a number") from None
    if not 0 < scale <= 100:
        raise ConfigError(f"--timeout-scale: {scale} is out of range (0, 100]")
    return scale


def parse_bool(value: object, name: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name}: '{value}' is not a boolean (true/false)")


def _parse_cluster_name(text: str) -> str:
    if not re.fullmatch(r"[a-z0-9]([-a-z0-9]{0,30}[a-z0-9])?", text):
        raise ConfigError(f"--cluster-name: '{text}' must be lower-case letters, digits and '-', ≤ 32 chars")
    return text


def _as_list(value: object, flag: str) -> list[str]:
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, Iterable):
        return [str(v) for v in value]
    raise ConfigError(f"{flag}: expected a list, got {value!r}")


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
