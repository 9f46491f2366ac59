"""PeerAuthentication and AuthorizationPolicy objects for the suites, attached per enforcement point.

The one rule that a naive suite gets wrong (istio-facts §0 trap 6): a policy is read by exactly one
kind of proxy. Sidecars and ztunnel read `selector` (or namespace-wide) policies and ignore `targetRefs`;
waypoints read `targetRefs` and ignore `selector`. So the attachment follows from where the policy is
meant to be enforced, and `authorization_policy` derives it from the workload class of the target.

Rendering only; applying is the caller's (fixtures/traffic.py `policies`).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

import jinja2
import yaml

from meshproof.checks import responses
from meshproof.checks.ambient import PolicyRejection
from meshproof.checks.responses import Check, describe
from meshproof.checks.verdict import Verdict
from meshproof.kube_api import ObjectApplier, ObjectDeleter
from meshproof.traffic import Response, Scheme, TransportError
from meshproof.workloads import HTTP_PORT, TCP_PORT, Workload, WorkloadClass, exclusive

MANIFESTS_DIR = Path(__file__).resolve().parent.parent / "manifests" / "policies"


class EnforcementPoint(StrEnum):
    SIDECAR = "sidecar"  # the server's Envoy sidecar: L4 and L7, reads selector policies
    ZTUNNEL = "ztunnel"  # the destination node's ztunnel: L4 only, reads selector policies
    WAYPOINT = "waypoint"  # the service waypoint (Envoy): L4 and L7, reads targetRefs policies

    @property
    def reads_target_refs(self) -> bool:
        return self is EnforcementPoint.WAYPOINT

    @property
    def enforces_l7(self) -> bool:
        return self is not EnforcementPoint.ZTUNNEL

    @property
    def supported_actions(self) -> frozenset[str]:
        # ztunnel applies only ALLOW and DENY (istio-facts §0 trap 8).
        if self is EnforcementPoint.ZTUNNEL:
            return frozenset({"ALLOW", "DENY"})
        return frozenset({"ALLOW", "DENY", "AUDIT", "CUSTOM"})


def enforcement_point(workload_class: WorkloadClass) -> EnforcementPoint:
    """Where policy for a server of this class is enforced."""
    points = {
        WorkloadClass.SIDECAR: EnforcementPoint.SIDECAR,
        WorkloadClass.AMBIENT: EnforcementPoint.ZTUNNEL,
        WorkloadClass.WAYPOINT: EnforcementPoint.WAYPOINT,
    }
    if workload_class not in points:
        raise ValueError(f"{workload_class.value} workloads have no proxy to enforce policy")
    return points[workload_class]


@dataclass(frozen=True)
class Rule:
    """One AuthorizationPolicy rule; empty fields are left out. `Rule()` matches every request."""

    principals: tuple[str, ...] = ()
    namespaces: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()
    methods: tuple[str, ...] = ()
    ports: tuple[int, ...] = ()

    @property
    def l7_fields(self) -> list[str]:
        """HTTP attributes in the rule; ztunnel cannot evaluate them (istio-facts §4, §0 trap 7)."""
        return [name for name in ("paths", "methods") if getattr(self, name)]

    def as_spec(self) -> dict[str, Any]:
        spec: dict[str, Any] = {}
        source = {
            k: list(v) for k, v in (("principals", self.principals), ("namespaces", self.namespaces)) if v
        }
        if source:
            spec["from"] = [{"source": source}]
        operation: dict[str, list[str]] = {}
        if self.paths:
            operation["paths"] = list(self.paths)
        if self.methods:
            operation["methods"] = list(self.methods)
        if self.ports:
            operation["ports"] = [str(p) for p in self.ports]
        if operation:
            spec["to"] = [{"operation": operation}]
        return spec


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(MANIFESTS_DIR)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )


def authorization_policy(
    name: str,
    target: Workload,
    action: str,
    rules: Sequence[Rule] | None,
    *,
    enforced_by: EnforcementPoint | None = None,
    provider: str | None = None,
) -> dict[str, Any]:
    """An AuthorizationPolicy on `target`, attached so that `enforced_by` (default: the point for the
    target's class) reads it.

    `rules=None` or `[]` renders no rules: for ALLOW that is allow-nothing (deny all), for DENY it
    matches nothing (istio-facts §4). `[Rule()]` matches everything.
    """
    action = action.upper()
    if action not in {"ALLOW", "DENY", "AUDIT", "CUSTOM"}:
        raise ValueError(f"unknown AuthorizationPolicy action {action!r}")
    if (action == "CUSTOM") != bool(provider):
        raise ValueError("a CUSTOM policy needs a provider name, and only CUSTOM takes one")
    if action == "CUSTOM":
        _refuse_custom_source_rules(rules or ())
    point = enforced_by or enforcement_point(target.workload_class)
    target_ref = {"kind": "Service", "group": "", "name": target.name} if point.reads_target_refs else None
    text = (
        _environment()
        .get_template("authorization-policy.yaml.j2")
        .render(
            name=name,
            namespace=target.namespace,
            target_ref=target_ref,
            selector={"app": target.name},
            action=action,
            provider=provider,
            rules=[rule.as_spec() for rule in rules or ()],
        )
    )
    return _single_document(text)


def _refuse_custom_source_rules(rules: Sequence[Rule]) -> None:
    """istiod's validation refuses a CUSTOM policy whose rules name sources: `From.Principals is
    currently not supported with CUSTOM action` (likewise namespaces, service accounts, request
    principals; istio/istio@1.27.9 pkg/config/validation/validation.go ValidateAuthorizationPolicy).
    CUSTOM rules may match ports, IP blocks, hosts, paths, methods, or everything (`Rule()`)."""
    for rule in rules:
        named = [
            f for f, v in (("From.Principals", rule.principals), ("From.Namespaces", rule.namespaces)) if v
        ]
        if named:
            raise ValueError(
                f"{named[0]} is not supported with CUSTOM action (Istio 1.27 validation refuses it); "
                "match the CUSTOM policy on ports or operations instead"
            )


def peer_authentication(name: str, namespace: str, mode: str) -> dict[str, Any]:
    mode = mode.upper()
    if mode not in {"STRICT", "PERMISSIVE", "DISABLE", "UNSET"}:
        raise ValueError(f"unknown PeerAuthentication mode {mode!r}")
    text = (
        _environment()
        .get_template("peer-authentication.yaml.j2")
        .render(name=name, namespace=namespace, mode=mode)
    )
    return _single_document(text)


def _single_document(text: str) -> dict[str, Any]:
    doc = yaml.safe_load(text)
    if not isinstance(doc, dict):
        raise ValueError("policy template did not render one mapping")
    return doc


# --- the enforcement paths the authz suite walks -----------------------------------------------------


def tcp_echoed() -> Check:
    """A plain-TCP exchange completed: the server echoed the payload back (traffic.parse_fortio_tcp)."""

    def judge(response: Response) -> Verdict:
        if response.scheme != "tcp":
            return Verdict.failed(f"not a TCP exchange ({describe(response)})")
        if response.transport_error is TransportError.NONE and response.body:
            return Verdict.passed(f"TCP echo of {len(response.body)} bytes")
        return Verdict.failed(f"expected the TCP echo, got {describe(response)}")

    return Check("tcp_echoed", judge)


@dataclass(frozen=True)
class AuthzPath:
    """Traffic from a class's client to its server on one port, and how its proxy allows and denies.

    The deny signal follows the enforcement point (istio-facts §4, output-formats §5.2/5.3): an Envoy
    (sidecar, waypoint) answers HTTP with 403 `RBAC: access denied`; ztunnel, and any proxy on plain
    TCP, closes the connection (reset or EOF).
    """

    workload_class: WorkloadClass
    scheme: Scheme

    @property
    def id(self) -> str:
        return f"{self.workload_class.label}/{self.scheme}"

    @property
    def port(self) -> int:
        return HTTP_PORT if self.scheme == "http" else TCP_PORT

    @property
    def enforced_by(self) -> EnforcementPoint:
        return enforcement_point(self.workload_class)

    @property
    def denies_with_403(self) -> bool:
        return self.scheme == "http" and self.enforced_by.enforces_l7

    def allowed(self) -> Check:
        return responses.ok() if self.scheme == "http" else tcp_echoed()

    def denied(self, rejection: PolicyRejection) -> Denial:
        """A deny on this path for `rejection` (the policy the test applied, or an ALLOW miss).

        The client's view alone proves nothing on a ztunnel path: a deny, an ALLOW miss, plaintext into
        STRICT and a closed port all close after connect (captures/ztunnel-1.27.9). So where ztunnel
        enforces, the denial carries the rejection its destination ztunnel must log; an Envoy's deny
        (sidecar, waypoint) is its own evidence: 403 `RBAC: access denied` on HTTP.
        """
        check = responses.denied_l7() if self.denies_with_403 else responses.denied_l4()
        attributed = rejection if self.enforced_by is EnforcementPoint.ZTUNNEL else None
        return Denial(check, attributed)


@dataclass(frozen=True)
class Denial:
    """What a denied call must show: the client's view (`check`) and, when ztunnel enforces, the
    rejection the destination ztunnel must log for it (`ztunnel_rejection`)."""

    check: Check
    ztunnel_rejection: PolicyRejection | None


# --- applying policies for one test --------------------------------------------------------------------


class PolicyCluster(ObjectApplier, ObjectDeleter, Protocol):
    """What applying and removing a test's policies needs of meshproof.kube.Cluster."""


@dataclass(frozen=True)
class _Ref:
    api_version: str
    kind: str
    namespace: str
    name: str


class AppliedPolicies:
    """The policies one test applied: labelled with its test id, removed by `remove_all` (its finalizer).

    While a test holds policies in a namespace it holds that namespace's lock (a file lock in the run's
    state dir), so xdist workers never overlay two tests' policies on the same server.
    """

    def __init__(self, cluster: PolicyCluster, test_id: str, lock_dir: Path, *, lock_timeout: float = 900.0):
        self._cluster = cluster
        self._test_id = test_id
        self._lock_dir = lock_dir
        self._lock_timeout = lock_timeout
        self._applied: dict[_Ref, None] = {}  # insertion-ordered set
        self._locks: dict[str, None] = {}  # namespaces held
        self._held = ExitStack()

    @property
    def applied(self) -> list[str]:
        return [f"{r.kind} {r.namespace}/{r.name}" for r in self._applied]

    def apply(self, *docs: dict[str, Any]) -> None:
        """Apply (create or replace by name) these policies."""
        refs = [self._ref(doc) for doc in docs]
        for ref in refs:
            self._lock(ref.namespace)
        self._cluster.apply(list(docs), test_id=self._test_id)
        for ref in refs:
            self._applied[ref] = None

    def remove(self, *docs: dict[str, Any]) -> None:
        for doc in docs:
            ref = self._ref(doc)
            self._cluster.delete(ref.api_version, ref.kind, ref.name, ref.namespace)
            self._applied.pop(ref, None)

    def remove_all(self) -> None:
        """Delete everything still applied (newest first); the namespace locks stay held until `close`.

        Every delete is attempted even if one fails; the failures are raised together at the end.
        """
        failures: list[str] = []
        for ref in reversed(list(self._applied)):
            try:
                self._cluster.delete(ref.api_version, ref.kind, ref.name, ref.namespace)
            except Exception as exc:  # keep deleting the rest; report after
                failures.append(f"{ref.kind} {ref.namespace}/{ref.name}: {exc}")
            else:
                self._applied.pop(ref, None)
        if failures:
            raise PolicyCleanupError("could not remove " + "; ".join(failures))

    def close(self) -> None:
        """The test is over: remove what is left, then let other tests use the namespaces."""
        try:
            self.remove_all()
        finally:
            self._held.close()
            self._locks.clear()

    def _lock(self, namespace: str) -> None:
        if namespace in self._locks:
            return
        self._held.enter_context(
            exclusive(self._lock_dir, f"policies-{namespace}", timeout=self._lock_timeout)
        )
        self._locks[namespace] = None

    @staticmethod
    def _ref(doc: dict[str, Any]) -> _Ref:
        meta = doc.get("metadata") or {}
        if not meta.get("namespace") or not meta.get("name"):
            raise ValueError("a policy needs metadata.name and metadata.namespace")
        return _Ref(str(doc["apiVersion"]), str(doc["kind"]), str(meta["namespace"]), str(meta["name"]))


class PolicyCleanupError(RuntimeError):
    """A test's policy could not be removed; later tests on the same server would see it."""
