"""`meshproof doctor`: is this machine ready for a run with these options?

Each check is a small function returning a `CheckResult`; `preflight(cfg)` runs the ones the chosen
provider, installer and features need. The pytest plugin calls `preflight` to stop a run before the first
test with one message (`summarize`). Everything here is bounded by short timeouts so a machine without
docker or a cluster gets its answer in seconds. Credentials from the kubeconfig are used to call the API
server but never printed.
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from meshproof import tools
from meshproof.commands.tools import render_table
from meshproof.config import ConfigError, Feature, RunConfig, add_argparse_options, config_from_namespace

if TYPE_CHECKING:  # the plan machinery loads on first use, not for `meshproof --help`
    from meshproof.mesh.model import PlanStep
    from meshproof.mesh.will_run import ClusterFactory, PlannedSteps

DOCKER_INFO_TIMEOUT = 5.0
API_TIMEOUT = 3.0
_DETAIL_LIMIT = 160


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    required: bool = True

    @property
    def status(self) -> str:
        if self.ok:
            return "ok"
        return "FAIL" if self.required else "warn"


# --- tools -------------------------------------------------------------------------------------------------


def check_tool(
    name: str,
    *,
    wanted: str | None = None,
    policy: tools.VersionPolicy | None = None,
    required: bool = True,
    purpose: str = "",
) -> CheckResult:
    """Is `name` installed, and is its version close enough to `wanted` (default: the pinned one)?"""
    label = f"tool {name}" + (f" ({purpose})" if purpose else "")
    st = tools.inspect_tool(name, wanted=wanted, policy=policy)
    if st.status == "ok":
        version = f" {st.found}" if st.found else ""
        return CheckResult(label, True, f"{st.path}{version}", required=required)
    if st.status == "missing":
        return CheckResult(
            label,
            False,
            f"not found ({', '.join(tools.tool_search_places(name))})",
            tools.install_hint(name),
            required,
        )
    if st.status == "version-mismatch":
        fix = f"install a {name} that fits {st.pinned}: {tools.install_hint(name)}"
        if st.path is not None and st.path.parent != tools.cache_bin_dir():
            fix += f"; put {tools.cache_bin_dir()} before {st.path.parent} on PATH"
        return CheckResult(label, False, st.detail, fix, required)
    return CheckResult(label, False, st.detail, f"reinstall {name}: {tools.install_hint(name)}", required)


def check_any_tool(names: Sequence[str], *, purpose: str) -> CheckResult:
    """At least one of `names` is installed (e.g. oc or kubectl)."""
    for name in names:
        st = tools.inspect_tool(name, wanted="")
        if st.path is not None:
            return CheckResult(f"tool {' or '.join(names)}", True, f"{st.path} {st.found or ''}".strip())
    hints = "; ".join(f"{n}: {tools.install_hint(n)}" for n in names)
    return CheckResult(
        f"tool {' or '.join(names)}", False, f"none of {', '.join(names)} found ({purpose})", hints
    )


# What istioctl is needed for besides install steps: the suites read these through it (fixtures/traffic.py
# MeshEvidence, meshproof/evidence/collect.py), resolved on first use, so a missing istioctl fails exactly
# the tests that read them.
ISTIOCTL_EVIDENCE = (
    "ztunnel-config workloads/certificates (ambient HBONE and certificate-chain checks) and "
    "proxy-config secret (sidecar certificate-chain check)"
)


def check_istioctl(cfg: RunConfig, step: PlanStep | None = None) -> CheckResult:
    """istioctl for the steps that will run, else only for evidence.

    As the installer it must be exactly the Istio version under test, because `istioctl install` installs
    its own version. For other steps (remote secrets) the same minor will do. When no step runs it (the
    mesh is installed another way, or reused), the suites still read evidence with it; those reads fail
    their tests without it, so it is a warning here, never a reason to stop a run that installs nothing
    with it.
    """
    if step is not None and (step.command or [])[:2] == ["istioctl", "install"]:
        return check_tool("istioctl", wanted=cfg.istio_version, purpose="installer")
    if step is not None:
        return check_tool(
            "istioctl",
            wanted=cfg.istio_version,
            policy=tools.VersionPolicy.SAME_MINOR,
            purpose=f"step '{step.title}'",
        )
    result = check_tool(
        "istioctl",
        wanted=cfg.istio_version,
        policy=tools.VersionPolicy.SAME_MINOR,
        required=False,
        purpose="evidence",
    )
    if result.ok:
        return result
    return replace(
        result,
        detail=f"{result.detail}; no step of this run calls it",
        fix=f"only evidence reads use it: {ISTIOCTL_EVIDENCE}; their tests fail without it. {result.fix}",
    )


def check_kubectl_skew(server_version: str) -> CheckResult:
    """kubectl within one minor of the API server (Kubernetes version skew policy)."""
    return check_tool("kubectl", wanted=server_version, purpose=f"cluster is {server_version}")


# --- docker ------------------------------------------------------------------------------------------------


def check_docker_daemon(timeout: float = DOCKER_INFO_TIMEOUT) -> CheckResult:
    """kind runs its nodes as docker containers, so the docker daemon must answer."""
    try:
        result = tools.run(["docker", "info", "--format", "{{.ServerVersion}}"], timeout=timeout, check=False)
    except tools.ToolMissing:
        return CheckResult("docker daemon", False, "docker CLI not found", tools.install_hint("docker"))
    except tools.CommandTimeout:
        return CheckResult(
            "docker daemon",
            False,
            f"`docker info` did not answer within {timeout:g}s",
            "check the docker daemon",
        )
    server = result.stdout.strip()
    if result.ok and server:
        return CheckResult("docker daemon", True, f"docker server {server}")
    reason = _last_line(result.stderr) or _last_line(result.stdout) or f"exit {result.returncode}"
    return CheckResult(
        "docker daemon",
        False,
        reason,
        "start the docker daemon (`sudo systemctl start docker`, or Docker Desktop) and make sure your user "
        "may use it (`docker info` must work)",
    )


def check_kind_resources(cluster_count: int, timeout: float = DOCKER_INFO_TIMEOUT) -> CheckResult:
    """Docker has the CPUs and memory `cluster_count` kind clusters need (meshproof.clusters.kind)."""
    from meshproof.clusters import kind

    needed = kind.resources_needed(cluster_count)
    name = f"docker resources for {cluster_count} kind cluster{'s' if cluster_count > 1 else ''}"
    try:
        result = tools.run(
            ["docker", "info", "--format", kind.DOCKER_RESOURCES_FORMAT], timeout=timeout, check=False
        )
        cpus, memory = kind.parse_docker_resources(result.stdout)
    except (tools.ToolMissing, tools.CommandTimeout, ValueError) as exc:
        return CheckResult(name, False, f"cannot read docker's CPUs and memory: {exc}", "check `docker info`")
    short = kind.resource_shortfall(cpus, memory, needed)
    if short:
        return CheckResult(
            name,
            False,
            f"need {needed.describe()}, docker has {short}",
            "give Docker more CPUs/memory (Docker Desktop: Settings > Resources) or run on a bigger machine",
        )
    return CheckResult(name, True, f"{cpus} CPUs, {memory / kind.GIB:.1f} GiB (need {needed.describe()})")


# --- cluster access ----------------------------------------------------------------------------------------


def kubeconfig_paths(cfg: RunConfig, env: Mapping[str, str] | None = None) -> list[Path]:
    """The kubeconfig files kubectl would read.

    --kubeconfig, else $KUBECONFIG (a path list), else ~/.kube/config.
    """
    env = os.environ if env is None else env
    if cfg.kubeconfig is not None:
        return [cfg.kubeconfig.expanduser()]
    raw = env.get("KUBECONFIG", "")
    if raw:
        return [Path(p).expanduser() for p in raw.split(os.pathsep) if p]
    return [Path.home() / ".kube" / "config"]


@dataclass(frozen=True)
class Kubeconfig:
    config_file: str  # os.pathsep-joined list, as the kubernetes client merges it
    contexts: tuple[str, ...]
    current: str | None


def check_kubeconfig(
    cfg: RunConfig, env: Mapping[str, str] | None = None
) -> tuple[CheckResult, Kubeconfig | None]:
    """The kubeconfig exists and parses. Its contents are never printed.

    Read like kubectl merges a KUBECONFIG list: the first file naming a context or a current-context wins.
    """
    paths = kubeconfig_paths(cfg, env)
    existing = [p for p in paths if p.is_file()]
    shown = ", ".join(str(p) for p in paths)
    if not existing:
        fix = "pass --kubeconfig PATH or set KUBECONFIG" + (
            " (for OpenShift: `oc login` writes ~/.kube/config)" if cfg.provider == "openshift" else ""
        )
        return CheckResult("kubeconfig", False, f"{shown} does not exist", fix), None
    names: list[str] = []
    current: str | None = None
    for path in existing:
        try:
            data = yaml.safe_load(path.read_text())
            if data is None:
                continue
            if not isinstance(data, dict) or not isinstance(data.get("contexts") or [], list):
                raise ValueError("not a kubeconfig mapping with a contexts list")
        except (OSError, ValueError, yaml.YAMLError) as exc:
            return (
                CheckResult(
                    "kubeconfig",
                    False,
                    f"{path} is not a usable kubeconfig: {_safe_error(exc)}",
                    "fix or regenerate it (`kind export kubeconfig`, `oc login`, ...)",
                ),
                None,
            )
        for entry in data.get("contexts") or []:
            name = entry.get("name") if isinstance(entry, dict) else None
            if name and str(name) not in names:
                names.append(str(name))
        current = current or (str(data["current-context"]) if data.get("current-context") else None)
    if not names:
        return CheckResult(
            "kubeconfig", False, f"{shown} has no contexts", "log in to the cluster first"
        ), None
    config_file = os.pathsep.join(str(p) for p in existing)
    return (
        CheckResult("kubeconfig", True, f"{shown} ({len(names)} context(s), current: {current or 'none'})"),
        Kubeconfig(config_file, tuple(names), current),
    )


def wanted_contexts(cfg: RunConfig, kubeconfig: Kubeconfig) -> tuple[list[str], CheckResult | None]:
    """The contexts this run will use, or a failed check saying why they cannot be used."""
    if cfg.contexts:
        unknown = [c for c in cfg.contexts if c not in kubeconfig.contexts]
        if unknown:
            return [], CheckResult(
                "kubeconfig contexts",
                False,
                f"context(s) {', '.join(unknown)} not in the kubeconfig "
                f"(known: {', '.join(kubeconfig.contexts)})",
                "pass --context with one of the known names",
            )
        return list(cfg.contexts), None
    if kubeconfig.current is None:
        return [], CheckResult(
            "kubeconfig contexts",
            False,
            f"no current-context set (known: {', '.join(kubeconfig.contexts)})",
            "pass --context NAME or run `kubectl config use-context NAME`",
        )
    return [kubeconfig.current], None


def check_api_server(
    config_file: str, context: str, *, timeout: float = API_TIMEOUT
) -> tuple[CheckResult, str | None]:
    """The API server of `context` answers GET /version within `timeout` seconds. Returns its git version."""
    from kubernetes import client as kube_client
    from kubernetes import config as kube_config
    from kubernetes.client.rest import ApiException

    name = f"cluster {context}"
    configuration = kube_client.Configuration()
    try:
        kube_config.load_kube_config(
            config_file=config_file, context=context, client_configuration=configuration, persist_config=False
        )
    except Exception as exc:
        return CheckResult(
            name, False, f"cannot use context: {_safe_error(exc)}", "fix the kubeconfig entry"
        ), None
    configuration.retries = 0  # one attempt: doctor answers in seconds, it does not wait for a cluster
    host = configuration.host
    try:
        with kube_client.ApiClient(configuration) as api:
            info = kube_client.VersionApi(api).get_code(_request_timeout=(timeout, timeout))
    except ApiException as exc:
        fix = (
            "log in again (`oc login`, refresh the token)"
            if exc.status in (401, 403)
            else "check the API server"
        )
        return CheckResult(
            name, False, f"{host} answered /version with HTTP {exc.status} {exc.reason}", fix
        ), None
    except Exception as exc:  # urllib3 connection errors, timeouts, TLS errors
        return (
            CheckResult(
                name,
                False,
                f"API server {host} did not answer /version: {_safe_error(exc)}",
                "start the cluster or fix the server address / VPN; check with `kubectl --context "
                f"{context} version`",
            ),
            None,
        )
    version = str(getattr(info, "git_version", "") or "")
    return CheckResult(name, True, f"{host} answered /version: {version or 'unknown'}"), (version or None)


# KWOK (sigs.k8s.io/kwok) fakes nodes: it marks the ones it manages with this annotation (its documented
# selector is `kwok.x-k8s.io/node=fake`) and reports `kwok-<version>` as the kubelet version. Pods there are
# Ready without running a container, so no traffic, proxy or netns evidence from them is real.
KWOK_NODE_ANNOTATION = "kwok.x-k8s.io/node"


def fake_nodes(nodes: Sequence[Mapping[str, Any]]) -> list[str]:
    """Names of the nodes KWOK simulates, each with the mark that gave it away."""
    found = []
    for node in nodes:
        meta = node.get("metadata") or {}
        kubelet = str(((node.get("status") or {}).get("nodeInfo") or {}).get("kubeletVersion") or "")
        annotation = (meta.get("annotations") or {}).get(KWOK_NODE_ANNOTATION)
        if annotation is not None:
            found.append(f"{meta.get('name')} ({KWOK_NODE_ANNOTATION}={annotation})")
        elif kubelet.startswith("kwok-"):
            found.append(f"{meta.get('name')} (kubelet {kubelet})")
    return found


def check_real_nodes(config_file: str, context: str, *, timeout: float = API_TIMEOUT) -> CheckResult:
    """The cluster's nodes are real: a data-plane verdict earned on KWOK's fake nodes certifies nothing."""
    from kubernetes import client as kube_client
    from kubernetes import config as kube_config

    name = f"nodes of {context}"
    try:
        with kube_config.new_client_from_config(
            config_file=config_file, context=context, persist_config=False
        ) as api:
            api.configuration.retries = 0
            listed = kube_client.CoreV1Api(api).list_node(_request_timeout=(timeout, timeout))
            items = api.sanitize_for_serialization(listed).get("items") or []
    except Exception as exc:
        # Not fatal by itself: the API check above already decides reachability; this one only refuses KWOK.
        return CheckResult(
            name, False, f"cannot list nodes: {_safe_error(exc)}", "grant list on nodes", required=False
        )
    fake = fake_nodes(items)
    if fake:
        return CheckResult(
            name,
            False,
            f"KWOK fake nodes, no data plane: {', '.join(fake)}; refusing to certify data-plane claims",
            "run against a cluster with real nodes (kind, OpenShift); KWOK pods carry no traffic",
        )
    return CheckResult(name, True, f"{len(items)} node(s), none simulated by KWOK")


def check_cluster_access(
    cfg: RunConfig, env: Mapping[str, str] | None = None
) -> tuple[list[CheckResult], str | None]:
    """Kubeconfig, contexts and API server reachability for providers that use an existing cluster."""
    kc_result, kubeconfig = check_kubeconfig(cfg, env)
    results = [kc_result]
    if kubeconfig is None:
        return results, None
    contexts, problem = wanted_contexts(cfg, kubeconfig)
    if problem is not None:
        return [*results, problem], None
    if cfg.has(Feature.MULTICLUSTER) and len(contexts) < 2:
        results.append(
            CheckResult(
                "kubeconfig contexts",
                False,
                f"feature multicluster needs two or more clusters, got {len(contexts)}",
                "pass --context once per cluster",
            )
        )
    server_version: str | None = None
    timeout = API_TIMEOUT * cfg.timeout_scale
    for context in contexts:
        result, version = check_api_server(kubeconfig.config_file, context, timeout=timeout)
        results.append(result)
        if result.ok:
            results.append(check_real_nodes(kubeconfig.config_file, context, timeout=timeout))
        server_version = server_version or version
    return results, server_version


# --- the whole preflight -----------------------------------------------------------------------------------


def preflight(
    cfg: RunConfig,
    env: Mapping[str, str] | None = None,
    *,
    cluster_factory: ClusterFactory | None = None,
) -> list[CheckResult]:
    """Every check the chosen provider needs, then the tools of the plan steps that will run, in the order a
    user fixes them.

    Which steps run is read from reachable existing clusters (openshift, existing): a mesh whose install
    record matches is reused (no install step runs), and Gateway API CRDs already at the pinned version are
    not applied. kind clusters are new, so every step counts.
    """
    results: list[CheckResult] = []
    if cfg.provider == "kind":
        results.append(check_tool("docker", wanted=""))
        if results[-1].ok:
            results.append(check_docker_daemon(DOCKER_INFO_TIMEOUT * cfg.timeout_scale))
            if results[-1].ok and cfg.has(Feature.MULTICLUSTER):
                results.append(check_kind_resources(2, DOCKER_INFO_TIMEOUT * cfg.timeout_scale))
        results.append(check_tool("kind"))
        # kind clusters default to Kubernetes 1.33 (mesh.pins); the pinned kubectl 1.33 is within the skew.
        results.append(check_tool("kubectl"))
    else:
        access, server_version = check_cluster_access(cfg, env)
        results.append(
            check_any_tool(("oc", "kubectl"), purpose="cluster CLI for debugging and kubectl exec")
        )
        if server_version is not None and tools.inspect_tool("kubectl", wanted="").path is not None:
            results.append(check_kubectl_skew(server_version))
        results.extend(access)

    planned = planned_steps(cfg, reachable=not failures(results), factory=cluster_factory)
    if planned is None:
        # the options make no plan (the run refuses them first): check by the options alone
        results.append(check_tool("istioctl", wanted=cfg.istio_version, purpose="installer"))
        if cfg.installer == "helm":
            results.append(check_tool("helm", purpose="installer"))
    else:
        results.append(CheckResult("plan", True, _clip(planned.note, 2 * _DETAIL_LIMIT), required=False))
        results.append(check_istioctl(cfg, planned.first_step("istioctl")))
        helm_step = planned.first_step("helm")
        if helm_step is not None:
            results.append(check_tool("helm", purpose=f"step '{helm_step.title}'"))
        kubectl_step = planned.first_step("kubectl")
        if cfg.provider != "kind" and kubectl_step is not None:  # oc does not do for a kubectl step
            results.append(check_tool("kubectl", wanted="", purpose=f"step '{kubectl_step.title}'"))
    results.append(check_tool("fortio", required=False, purpose="local benchmarks only"))
    return results


def planned_steps(
    cfg: RunConfig, *, reachable: bool, factory: ClusterFactory | None = None
) -> PlannedSteps | None:
    """The plan steps this run will execute (meshproof.mesh.will_run), or None when the options make no
    plan (the run refuses them before any tool matters)."""
    from meshproof.mesh import will_run
    from meshproof.mesh.plan import build_plan

    try:
        plan = build_plan(cfg)
    except ConfigError:
        return None
    if cfg.provider == "kind":
        return will_run.every_step(plan, "kind clusters are created, so every step runs")
    if not reachable:
        return will_run.every_step(plan, "the clusters could not be read, so every step counts")
    timeout = API_TIMEOUT * cfg.timeout_scale
    return will_run.steps_on_clusters(
        plan, factory or will_run.cluster_factory(cfg.kubeconfig, cfg.run_id, timeout=timeout)
    )


def failures(results: Sequence[CheckResult]) -> list[CheckResult]:
    return [r for r in results if r.required and not r.ok]


def summarize(results: Sequence[CheckResult]) -> str:
    """One line naming every failed required check and its fix (empty when ready)."""
    failed = failures(results)
    if not failed:
        return ""
    parts = [f"{r.name}: {r.detail}" + (f" (fix: {r.fix})" if r.fix else "") for r in failed]
    return "not ready: " + "; ".join(parts) + " — run `meshproof doctor` for the full table"


def render(results: Sequence[CheckResult]) -> str:
    rows = [[r.name, r.status, _clip(r.detail), r.fix if not r.ok else ""] for r in results]
    return render_table(["check", "status", "detail", "how to fix"], rows)


# --- command -----------------------------------------------------------------------------------------------


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "doctor",
        help="check tools, docker and cluster access for the chosen provider; exit 0 only when ready",
        description="Check that this machine can run meshproof with the given options.",
    )
    add_argparse_options(parser)
    parser.set_defaults(func=cmd_doctor)


def cmd_doctor(args: argparse.Namespace) -> int:
    cfg = config_from_namespace(args)
    results = preflight(cfg)
    if not failures(results):  # the cluster answers: look at the ambient mesh already on it
        from meshproof.commands.doctor_ambient import existing_mesh_checks

        results.extend(existing_mesh_checks(cfg))
    print(f"meshproof doctor: provider {cfg.provider}, installer {cfg.installer}, mode {cfg.mode}")
    print(render(results))
    failed = failures(results)
    if failed:
        print(f"not ready: {len(failed)} required check(s) failed: {', '.join(r.name for r in failed)}")
        return 1
    print("ready")
    return 0


# --- helpers -----------------------------------------------------------------------------------------------

# urllib3 prefixes reasons with the connection object ("HTTPConnection(host=..., port=...): ..."); the
# host is already in our message.
_OBJECT_REPR = re.compile(r"<[\w.]+ object at 0x[0-9a-f]+>:?\s*|^\w*Connection(?:Pool)?\([^)]*\):\s*")
_SECRETISH = re.compile(r"(?i)(bearer\s+|token[\"'=:\s]+|password[\"'=:\s]+)[^\s\"',]+")


def _safe_error(exc: BaseException) -> str:
    """First line of an error, without object reprs or anything that looks like a credential."""
    reason = getattr(exc, "reason", None)
    text = str(reason if isinstance(reason, BaseException) else exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    line = _OBJECT_REPR.sub("", line)
    line = _SECRETISH.sub(lambda m: m.group(1) + "***", line)
    return _clip(line)


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else ""


def _clip(text: str, limit: int = _DETAIL_LIMIT) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
