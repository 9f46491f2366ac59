"""Verdicts about an installed mesh, over objects and text already fetched (no cluster access here).

Used by the install suite: components rolled out, CRs Ready, the wiring each feature needs present in
istiod's and the CNI's configuration, workloads enrolled (or not), versions as requested, and no operator
reconcile hot loop.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from meshproof.checks.verdict import Verdict
from meshproof.kube_wait import describe_status, find_condition, rollout_state
from meshproof.tools import parse_version_text

Obj = Mapping[str, Any]

SIDECAR_STATUS_ANNOTATION = "sidecar.istio.io/status"  # istio-facts §2.1
AMBIENT_REDIRECTION_ANNOTATION = "ambient.istio.io/redirection"  # istio-facts §2.2
RECONCILE_DONE = "Reconciliation done"  # the Sail operator's per-reconcile log line (istio-facts §1.4)


def _name(obj: Obj) -> str:
    meta = obj.get("metadata") or {}
    where = f"{meta.get('namespace')}/" if meta.get("namespace") else ""
    return f"{obj.get('kind', 'object')} {where}{meta.get('name', '?')}"


def rolled_out(obj: Obj | None, what: str = "object") -> Verdict:
    """A Deployment/DaemonSet/StatefulSet with every replica updated and available."""
    if obj is None:
        return Verdict.failed(f"{what} does not exist")
    state = rollout_state(obj)
    return Verdict(state.done, f"{_name(obj)}: {state.summary}")


def condition_true(obj: Obj | None, condition: str, what: str = "object") -> Verdict:
    if obj is None:
        return Verdict.failed(f"{what} does not exist")
    cond = find_condition(obj, condition)
    if cond is None:
        return Verdict.failed(f"{_name(obj)} has no {condition} condition ({describe_status(obj)})")
    ok = str(cond.get("status")) == "True"
    detail = cond.get("message") or cond.get("reason") or ""
    return Verdict(ok, f"{_name(obj)} {condition}={cond.get('status')} {detail}".rstrip())


def container_env(workload: Obj, container: str) -> dict[str, str]:
    """Literal env values of a container in a Deployment/DaemonSet pod template (valueFrom skipped)."""
    spec = ((workload.get("spec") or {}).get("template") or {}).get("spec") or {}
    for c in [*(spec.get("containers") or []), *(spec.get("initContainers") or [])]:
        if c.get("name") == container:
            return {str(e["name"]): str(e["value"]) for e in c.get("env") or [] if "value" in e}
    return {}


def env_is(workload: Obj | None, container: str, name: str, value: str | None) -> Verdict:
    """`name` has `value` in the container's env; value None means the variable must be absent."""
    if workload is None:
        return Verdict.failed(f"no workload to read {container} env from")
    env = container_env(workload, container)
    actual = env.get(name)
    if value is None:
        return Verdict(actual is None, f"{_name(workload)} {container} env {name}={actual!r}, want unset")
    return Verdict(actual == value, f"{_name(workload)} {container} env {name}={actual!r}, want {value!r}")


def _proxy_containers(pod: Obj) -> list[str]:
    spec = pod.get("spec") or {}
    # Native sidecars (Kubernetes >= 1.33) put istio-proxy among the initContainers (istio-facts §0 trap 3).
    return [c.get("name", "") for c in [*(spec.get("containers") or []), *(spec.get("initContainers") or [])]]


def sidecar_injected(pod: Obj) -> Verdict:
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    has_status = SIDECAR_STATUS_ANNOTATION in annotations
    has_proxy = "istio-proxy" in _proxy_containers(pod)
    return Verdict(
        has_status and has_proxy,
        f"{_name(pod)}: {SIDECAR_STATUS_ANNOTATION} {'present' if has_status else 'absent'}, "
        f"istio-proxy container {'present' if has_proxy else 'absent'}",
    )


def ambient_redirected(pod: Obj) -> Verdict:
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    value = annotations.get(AMBIENT_REDIRECTION_ANNOTATION)
    return Verdict(value == "enabled", f"{_name(pod)}: {AMBIENT_REDIRECTION_ANNOTATION}={value!r}")


def not_enrolled(pod: Obj) -> Verdict:
    """Neither injected nor redirected: the negative control for an unlabelled namespace."""
    injected, redirected = sidecar_injected(pod), ambient_redirected(pod)
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    enrolled = (
        SIDECAR_STATUS_ANNOTATION in annotations or "istio-proxy" in _proxy_containers(pod) or redirected.ok
    )
    return Verdict(not enrolled, f"{injected.reason}; {redirected.reason}")


_SEMVER = re.compile(r"(\d+)\.(\d+)\.(\d+)")


def version_matches(reported: str, requested: str) -> Verdict:
    """The first x.y.z in `reported` (`pilot-discovery version -s` output, an image tag) is `requested`."""
    found = _SEMVER.search(reported or "")
    if not found:
        other = parse_version_text(reported or "")  # a development build: `1.30-dev`
        if other is not None and other.pre:
            shown = f"{other.major}.{other.minor}{other.pre}"
            return Verdict.failed(f"reported {shown}, requested {requested}")
        return Verdict.failed(f"no version in {reported.strip()[:80]!r}")
    return Verdict(found.group(0) == requested, f"reported {found.group(0)}, requested {requested}")


def image_version(image: str) -> str:
    """The tag of an image reference (`docker.io/istio/pilot:1.27.9-distroless` -> `1.27.9-distroless`)."""
    reference = image.split("@", 1)[0]
    last = reference.rsplit("/", 1)[-1]
    return last.split(":", 1)[1] if ":" in last else ""


def _version_key(text: str) -> tuple[int, int, int, int] | None:
    parsed = parse_version_text(text)
    if parsed is None:
        return None
    # A pre-release sorts below its release (v1.3.0-rc.1 < v1.3.0).
    return parsed.major, parsed.minor, parsed.patch or 0, 0 if parsed.pre else 1


def crds_at_least(crds: Mapping[str, Obj | None], annotation: str, min_version: str) -> Verdict:
    """Every CRD in `crds` (name -> object, None when absent) carries `annotation` >= `min_version`.

    The Gateway API marks each CRD with the release it came from (`gateway.networking.k8s.io/bundle-version`),
    so an older bundle, a missing CRD or one installed without the mark means "install them"."""
    want = _version_key(min_version)
    short: list[str] = []
    versions: set[str] = set()
    for name, crd in sorted(crds.items()):
        if crd is None:
            short.append(f"{name} is not installed")
            continue
        value = str(((crd.get("metadata") or {}).get("annotations") or {}).get(annotation) or "")
        have = _version_key(value) if value else None
        if have is None or want is None:
            short.append(f"{name} has no readable {annotation} ({value or 'unset'})")
        elif have < want:
            short.append(f"{name} is at {value}, below {min_version}")
        else:
            versions.add(value)
    if short:
        return Verdict.failed("; ".join(short))
    return Verdict.passed(f"{len(crds)} CRDs installed at {', '.join(sorted(versions))} (>= {min_version})")


# istiod's CA answers a ztunnel that asks for another identity's certificate without being trusted to with
# this gRPC status message (istio/istio security/pkg/server/ca/server.go, codes.Unauthenticated); ztunnel
# 1.27.9 prints it verbatim inside `signing gRPC error ({code}): {message}` (src/identity.rs), e.g. in
# `certificate fetch failed (...)` (src/identity/manager.rs, debug level) and in connection errors.
IMPERSONATION_FAILURE = "request impersonation authentication failure"
CA_TRUSTED_NODE_ACCOUNTS = "CA_TRUSTED_NODE_ACCOUNTS"  # istiod env: `<ns>/<sa>,...` that may impersonate


def impersonation_failures(log_text: str) -> list[str]:
    """The log lines in which istiod refused ztunnel a certificate for one of its pods."""
    return [line.strip() for line in log_text.splitlines() if IMPERSONATION_FAILURE in line]


def ztunnel_trusted(istiod_env: Mapping[str, str | None], ztunnel_account: str) -> Verdict:
    """Every istiod (name -> its CA_TRUSTED_NODE_ACCOUNTS, None when unset) trusts `ztunnel_account`
    (`<namespace>/<service account>`) to ask for its pods' certificates."""
    if not istiod_env:
        return Verdict.failed(f"no istiod Deployment found to read {CA_TRUSTED_NODE_ACCOUNTS} from")
    missing = []
    for istiod, value in sorted(istiod_env.items()):
        accounts = {a.strip() for a in (value or "").split(",") if a.strip()}
        if ztunnel_account not in accounts:
            missing.append(
                f"{istiod} has {CA_TRUSTED_NODE_ACCOUNTS}={value if value is not None else '(unset)'}"
            )
    if missing:
        return Verdict.failed(f"ztunnel runs as {ztunnel_account} but " + "; ".join(missing))
    return Verdict.passed(f"every istiod trusts ztunnel's {ztunnel_account} ({CA_TRUSTED_NODE_ACCOUNTS})")


def reconcile_rate(log_text: str, *, window_s: float, max_per_minute: float) -> Verdict:
    """Fail when the operator logs 'Reconciliation done' more often than `max_per_minute` in the window:
    a settled mesh reconciles on changes, a hot loop reconciles continuously."""
    count = sum(1 for line in log_text.splitlines() if RECONCILE_DONE in line)
    rate = count * 60.0 / window_s if window_s > 0 else float(count)
    return Verdict(
        rate <= max_per_minute,
        f"{count} reconciles in {window_s:.0f}s ({rate:.1f}/min, limit {max_per_minute:g}/min)",
    )


def all_of(verdicts: Sequence[Verdict]) -> Verdict:
    failed = [v.reason for v in verdicts if not v.ok]
    if failed:
        return Verdict.failed("; ".join(failed))
    return Verdict.passed("; ".join(v.reason for v in verdicts))
