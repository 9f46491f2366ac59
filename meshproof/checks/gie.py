"""Verdicts for the inference extension: which pod served, what istiod wrote in status, what the gateway
proxy was programmed with. Pure: inputs come from meshproof.evidence.gie and meshproof.traffic.

Sources of each shape:
- reply: llm-d-inference-sim v0.4.0 sets `x-inference-pod` from POD_NAME on non-streaming replies and
  answers an unknown model with 404 `The model \\`<name>\\` does not exist.` (llm-d-sim@v0.4.0
  pkg/llm-d-inference-sim/simulator.go; istio-facts §7.4);
- status: HTTPRoute `status.parents[].conditions` (Gateway API v1.3.0); InferencePool `status.parents[]`
  (v1) or `status.parent[]` (v1alpha2), each `{parentRef, conditions}` (the GIE CRDs in ../shared/upstream);
- gateway config: Istio 1.27.9 programs a route to a pool with `typed_per_filter_config
  ["envoy.filters.http.ext_proc"]`, an ExtProcPerRoute whose `overrides.grpc_service.envoy_grpc.cluster_name`
  is the EPP's `outbound|<port>||<fqdn>` cluster and `failure_mode_allow` the pool's failure mode
  (istio@1.27.9 pilot/pkg/networking/core/route/route.go).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from meshproof.checks.responses import Check
from meshproof.checks.verdict import Verdict
from meshproof.evidence.gie import completion_reply
from meshproof.traffic import Response

EXT_PROC_FILTER = "envoy.filters.http.ext_proc"
SIM_UNKNOWN_MODEL = re.compile(r"The model `(?P<model>[^`]*)` does not exist\.")


# --- replies -----------------------------------------------------------------------------------------


def served_by(pods: Iterable[str], model: str | None = None) -> Check:
    """200 from a model server whose `x-inference-pod` is one of `pods` (and, if given, for `model`)."""
    allowed = frozenset(pods)

    def judge(response: Response) -> Verdict:
        reply = completion_reply(response)
        if reply.status != 200:
            return Verdict.failed(
                f"status {reply.status} ({reply.error or response.error_message or 'no reply'})"
            )
        if reply.pod is None:
            return Verdict.failed("200 without x-inference-pod: no model server of the set-up answered")
        if reply.pod not in allowed:
            return Verdict.failed(f"served by {reply.pod}, expected one of {sorted(allowed)}")
        if model is not None and reply.model != model:
            return Verdict.failed(f"served by {reply.pod} but for model {reply.model!r}, expected {model!r}")
        return Verdict.passed(f"served by {reply.pod}" + (f" for {model}" if model else ""))

    return Check(f"served by one of {sorted(allowed)}", judge)


def unknown_model_refused(model: str) -> Check:
    """The pool refused the model: a 404 naming it, from a model server (not the gateway's own reply)."""

    def judge(response: Response) -> Verdict:
        reply = completion_reply(response)
        if reply.status != 404:
            return Verdict.failed(f"status {reply.status}, expected 404 for unknown model {model!r}")
        match = SIM_UNKNOWN_MODEL.search(reply.error or "")
        if not match or match.group("model") != model:
            return Verdict.failed(f"404 without the model server's unknown-model error: {reply.error!r}")
        where = f" by {reply.pod}" if reply.pod else ""
        return Verdict.passed(f"404 {match.group(0)}{where}")

    return Check(f"unknown model {model} refused", judge)


def fails_closed() -> Check:
    """A 5xx from the gateway and no model server reply: the route failed closed."""

    def judge(response: Response) -> Verdict:
        reply = completion_reply(response)
        if reply.status is None or not 500 <= reply.status <= 599:
            return Verdict.failed(f"status {reply.status}, expected a 5xx")
        if reply.pod is not None:
            return Verdict.failed(
                f"{reply.status} but a model server ({reply.pod}) answered: not failed closed"
            )
        return Verdict.passed(f"{reply.status} from the gateway, no model server reached")

    return Check("fails closed (5xx, no model server)", judge)


def serving_pods(responses: Sequence[Response]) -> Counter[str]:
    """How many replies each pod served (replies without a pod name are not counted)."""
    return Counter(r.pod for r in (completion_reply(x) for x in responses) if r.pod is not None)


def spread_over(responses: Sequence[Response], pods: Iterable[str]) -> Verdict:
    """Every pod in `pods` served at least one reply: the balancer did not avoid any of them."""
    served = serving_pods(responses)
    missing = sorted(set(pods) - set(served))
    if missing:
        return Verdict.failed(
            f"no reply from {missing} in {len(responses)} requests (served: {dict(served)})"
        )
    return Verdict.passed(f"replies from every pod: {dict(sorted(served.items()))}")


def avoided(responses: Sequence[Response], pod: str) -> Verdict:
    """All replies served, none by `pod`."""
    served = serving_pods(responses)
    if sum(served.values()) != len(responses):
        return Verdict.failed(
            f"{len(responses) - sum(served.values())} of {len(responses)} requests not served"
        )
    if served.get(pod):
        return Verdict.failed(f"{pod} served {served[pod]} of {len(responses)} requests")
    return Verdict.passed(f"{pod} served none of {len(responses)} requests: {dict(sorted(served.items()))}")


def refused_somewhere(responses: Sequence[Response], model: str) -> Verdict:
    """At least one reply is a model server refusing `model` (a pod that does not serve it was reached)."""
    refusal = unknown_model_refused(model)
    refused = [r for r in responses if refusal(r)]
    if not refused:
        statuses = Counter(r.status for r in responses)
        return Verdict.failed(
            f"no reply refused {model} in {len(responses)} requests (statuses {dict(statuses)})"
        )
    return Verdict.passed(
        f"{len(refused)} of {len(responses)} requests for {model} refused by a pod without it"
    )


# --- status ------------------------------------------------------------------------------------------


def _conditions(entry: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    return {str(c.get("type")): c for c in entry.get("conditions") or [] if isinstance(c, Mapping)}


def _parent_entries(obj: Mapping[str, Any] | None) -> list[Mapping[str, Any]]:
    status = (obj or {}).get("status") or {}
    # HTTPRoute and v1 InferencePool: `parents`; v1alpha2 InferencePool: `parent` (singular).
    entries = status.get("parents") if "parents" in status else status.get("parent")
    return [e for e in entries or [] if isinstance(e, Mapping)]


def _entry_for(obj: Mapping[str, Any] | None, gateway: str) -> Mapping[str, Any] | None:
    for entry in _parent_entries(obj):
        if (entry.get("parentRef") or {}).get("name") == gateway:
            return entry
    return None


def _describe(cond: Mapping[str, Any]) -> str:
    return f"{cond.get('type')}={cond.get('status')} ({cond.get('reason')}: {cond.get('message', '')})"


def _parent_condition(
    obj: Mapping[str, Any] | None, gateway: str, kind: str, ctype: str, want: bool
) -> Verdict:
    """The status entry `obj` has for Gateway `gateway` carries condition `ctype` with status `want`."""
    name = ((obj or {}).get("metadata") or {}).get("name", "?")
    what = f"{kind} {name}"
    if obj is None:
        return Verdict.failed(f"{what} does not exist")
    entry = _entry_for(obj, gateway)
    if entry is None:
        parents = [(e.get("parentRef") or {}).get("name") for e in _parent_entries(obj)]
        return Verdict.failed(f"{what} has no status for Gateway {gateway} (parents: {parents})")
    cond = _conditions(entry).get(ctype)
    if cond is None:
        return Verdict.failed(f"{what} has no {ctype} condition for Gateway {gateway}")
    expected = "True" if want else "False"
    if str(cond.get("status")) == expected:
        return Verdict.passed(f"{what}, Gateway {gateway}: {_describe(cond)}")
    return Verdict.failed(f"{what}, Gateway {gateway}: {_describe(cond)}, expected {ctype}={expected}")


def route_refs_resolved(route: Mapping[str, Any] | None, gateway: str) -> Verdict:
    """The route's parent status for `gateway` says ResolvedRefs=True: its backend (the pool) resolved."""
    return _parent_condition(route, gateway, "HTTPRoute", "ResolvedRefs", want=True)


def route_refs_unresolved(route: Mapping[str, Any] | None, gateway: str) -> Verdict:
    """The route's parent status for `gateway` says ResolvedRefs=False, as for a backend istiod ignores."""
    return _parent_condition(route, gateway, "HTTPRoute", "ResolvedRefs", want=False)


def pool_accepted_by(pool: Mapping[str, Any] | None, gateway: str) -> Verdict:
    """The InferencePool's status names `gateway` as a parent with Accepted=True."""
    return _parent_condition(pool, gateway, "InferencePool", "Accepted", want=True)


# --- gateway proxy configuration ---------------------------------------------------------------------


def _snake(key: str) -> str:
    # istioctl and Envoy's admin API print proto JSON in either spelling; compare in snake_case.
    return re.sub(r"(?<!^)(?=[A-Z])", "_", key).lower() if not key.startswith("@") else key


def _get(obj: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(obj, Mapping):
            return None
        obj = next((v for k, v in obj.items() if _snake(str(k)) == key), None)
    return obj


def _routes(route_dump: Any) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """(virtual host domains, route) for every route of every route configuration anywhere in the dump:
    `istioctl proxy-config route -o json` prints a list of RouteConfigurations, Envoy's /config_dump nests
    them under `configs[].dynamic_route_configs[].route_config`; both are walked."""
    if isinstance(route_dump, list):
        for item in route_dump:
            yield from _routes(item)
        return
    if not isinstance(route_dump, Mapping):
        return
    vhosts = _get(route_dump, "virtual_hosts")
    if isinstance(vhosts, list):
        for vhost in vhosts:
            domains = ",".join(str(d) for d in _get(vhost, "domains") or [])
            for route in _get(vhost, "routes") or []:
                if isinstance(route, Mapping):
                    yield domains, route
        return
    for value in route_dump.values():
        if isinstance(value, (list, Mapping)):
            yield from _routes(value)


def _ext_proc(route: Mapping[str, Any]) -> Mapping[str, Any] | None:
    config = _get(route, "typed_per_filter_config") or {}
    found = config.get(EXT_PROC_FILTER) if isinstance(config, Mapping) else None
    return found if isinstance(found, Mapping) else None


def _host_routes(route_dump: Any, host: str) -> list[Mapping[str, Any]]:
    return [route for domains, route in _routes(route_dump) if host in domains.split(",")]


def ext_proc_calls(route_dump: Any, host: str, epp_cluster: str, *, fail_closed: bool = True) -> Verdict:
    """The gateway's routes for `host` carry the ext_proc override calling the EPP's cluster."""
    routes = _host_routes(route_dump, host)
    if not routes:
        return Verdict.failed(f"the gateway has no route for host {host}")
    for route in routes:
        ext = _ext_proc(route)
        cluster = _get(ext, "overrides", "grpc_service", "envoy_grpc", "cluster_name") if ext else None
        if cluster != epp_cluster:
            continue
        allow = _get(ext, "overrides", "failure_mode_allow")
        allow_value = allow.get("value") if isinstance(allow, Mapping) else allow
        if bool(allow_value) == fail_closed:
            mode = "FailOpen" if allow_value else "FailClose"
            return Verdict.failed(f"route for {host} calls {cluster} but with {mode}")
        return Verdict.passed(
            f"route for {host} calls ext_proc cluster {cluster} (failure_mode_allow={bool(allow_value)})"
        )
    seen = sorted(
        {str(_get(_ext_proc(r), "overrides", "grpc_service", "envoy_grpc", "cluster_name")) for r in routes}
    )
    return Verdict.failed(
        f"no route for {host} calls ext_proc cluster {epp_cluster} (ext_proc clusters: {seen})"
    )


def no_ext_proc(route_dump: Any, host: str) -> Verdict:
    """The gateway's routes for `host` exist and none calls an ext_proc server: no endpoint picker."""
    routes = _host_routes(route_dump, host)
    if not routes:
        return Verdict.failed(f"the gateway has no route for host {host}")
    with_ext = [r for r in routes if _ext_proc(r) is not None]
    if with_ext:
        return Verdict.failed(f"{len(with_ext)} route(s) for {host} call an ext_proc server")
    return Verdict.passed(f"{len(routes)} route(s) for {host}, none with ext_proc")


__all__ = [
    "avoided",
    "ext_proc_calls",
    "fails_closed",
    "no_ext_proc",
    "pool_accepted_by",
    "refused_somewhere",
    "route_refs_resolved",
    "route_refs_unresolved",
    "served_by",
    "serving_pods",
    "spread_over",
    "unknown_model_refused",
]
