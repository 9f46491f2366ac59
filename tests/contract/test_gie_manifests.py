"""The gie suite's set-up (meshproof.gie) against the exact upstream CRDs it is applied to.

Each rendered InferencePool, HTTPRoute and Gateway is validated (JSON Schema, via jsonschema) against the
`openAPIV3Schema` of the CRD version it names, read from ../shared/upstream: GIE v0.5.0 (what upstream
Istio 1.27 is built against) and v0.5.1 (the CRDs meshproof installs there), GIE v1.0.0 (what the OSSM 3.2
build is built against) and v1.0.1 (installed there), Gateway API v1.3.0 standard channel.

What this cannot prove: CEL rules (`x-kubernetes-validations`) and defaulting, which only an apiserver
evaluates; whether istiod accepts the objects (route status, shadow Service), which needs a cluster.
Each validator is shown to reject: a pool of one API version fails the other version's schema, and a pool
missing its picker reference fails its own.
"""

from __future__ import annotations

import copy
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from fixtures_data.shared_data import upstream

from meshproof import gie
from meshproof.mesh import pins

pytestmark = pytest.mark.contract

GATEWAY_API = ("gateway-api-v1.3.0", "config", "crd", "standard")
GIE_CRD_DIRS = {
    # the API a build watches -> the GIE releases whose CRDs must accept the rendered pool
    pins.GIE_UPSTREAM.api_version: ("gie-v0.5.0", "gie-v0.5.1"),
    pins.GIE_OSSM.api_version: ("gie-v1.0.0", "gie-v1.0.1"),
}
# The other group's pool (the unresolved control) is applied with the CRDs of the run's GIE release: v1.0
# ships the x-k8s v1alpha2 CRD beside the v1 one; upstream runs add the v1 CRD of v1.0.1 (addons.py).
CONTROL_CRD_DIRS = {
    pins.GIE_UPSTREAM.api_version: ("gie-v1.0.1",),  # the v1 pool next to an upstream (v1alpha2) install
    pins.GIE_OSSM.api_version: ("gie-v1.0.0", "gie-v1.0.1"),  # the v1alpha2 pool next to OSSM (v1)
}


def _crd_file(folder: tuple[str, ...], group: str, plural: str) -> Path:
    return upstream(*folder, f"{group}_{plural}.yaml")


@cache
def _schema(path: Path, version: str) -> dict[str, Any]:
    crd = yaml.safe_load(path.read_text())
    for entry in crd["spec"]["versions"]:
        if entry["name"] == version:
            return dict(entry["schema"]["openAPIV3Schema"])
    raise AssertionError(f"{path} serves no version {version}")


def validate(doc: dict[str, Any], crd: Path) -> list[str]:
    version = doc["apiVersion"].split("/")[-1]
    validator = jsonschema.Draft7Validator(_schema(crd, version))
    errors = validator.iter_errors(doc)
    return [f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}" for e in errors]


def pool_crd(folder: str, api_version: str) -> Path:
    group = api_version.split("/")[0]
    return _crd_file((folder, "config", "crd", "bases"), group, "inferencepools")


SETUPS = [
    pytest.param(gie.GieSetup(build=pins.GIE_UPSTREAM, other=pins.GIE_OSSM), id="upstream-istio-1.27"),
    pytest.param(gie.GieSetup(build=pins.GIE_OSSM, other=pins.GIE_UPSTREAM), id="ossm-3.2"),
]


def docs_of(setup: gie.GieSetup, kind: str) -> list[dict[str, Any]]:
    return [d for d in setup.objects() if d["kind"] == kind]


@pytest.mark.parametrize("setup", SETUPS)
def test_the_pool_is_valid_for_the_gie_release_the_build_watches(setup: gie.GieSetup) -> None:
    pool = next(d for d in docs_of(setup, "InferencePool") if d["metadata"]["name"] == gie.POOL)
    assert pool["apiVersion"] == setup.build.api_version
    for folder in GIE_CRD_DIRS[setup.build.api_version]:
        assert validate(pool, pool_crd(folder, pool["apiVersion"])) == [], folder


@pytest.mark.parametrize("setup", SETUPS)
def test_the_other_api_pool_is_valid_for_its_own_crd(setup: gie.GieSetup) -> None:
    pool = next(d for d in docs_of(setup, "InferencePool") if d["metadata"]["name"] == gie.OTHER_API_POOL)
    assert pool["apiVersion"] == setup.other.api_version
    for folder in CONTROL_CRD_DIRS[setup.build.api_version]:
        assert validate(pool, pool_crd(folder, pool["apiVersion"])) == [], folder


@pytest.mark.parametrize("setup", SETUPS)
def test_routes_and_gateway_are_valid_gateway_api_v1_3(setup: gie.GieSetup) -> None:
    routes = docs_of(setup, "HTTPRoute")
    assert {r["metadata"]["name"] for r in routes} == {gie.POOL_ROUTE, gie.OTHER_API_ROUTE, gie.PLAIN_ROUTE}
    for route in routes:
        assert validate(route, _crd_file(GATEWAY_API, "gateway.networking.k8s.io", "httproutes")) == []
    (gateway,) = docs_of(setup, "Gateway")
    assert validate(gateway, _crd_file(GATEWAY_API, "gateway.networking.k8s.io", "gateways")) == []


@pytest.mark.parametrize("setup", SETUPS)
def test_the_pool_route_names_the_pool_in_the_watched_group(setup: gie.GieSetup) -> None:
    route = next(d for d in docs_of(setup, "HTTPRoute") if d["metadata"]["name"] == gie.POOL_ROUTE)
    (backend,) = route["spec"]["rules"][0]["backendRefs"]
    assert backend == {"group": setup.build.group, "kind": "InferencePool", "name": gie.POOL}


def test_a_pool_fails_the_other_versions_schema() -> None:
    """Negative control for the validator: the v1 pool is not a v1alpha2 pool, nor the reverse."""
    v1 = gie.GieSetup(build=pins.GIE_OSSM, other=pins.GIE_UPSTREAM).pool(pins.GIE_OSSM, "p")
    v1alpha2 = gie.GieSetup(build=pins.GIE_UPSTREAM, other=pins.GIE_OSSM).pool(pins.GIE_UPSTREAM, "p")
    as_v1alpha2 = dict(v1, apiVersion=pins.GIE_UPSTREAM.api_version)
    as_v1 = dict(v1alpha2, apiVersion=pins.GIE_OSSM.api_version)
    assert validate(as_v1alpha2, pool_crd("gie-v0.5.0", pins.GIE_UPSTREAM.api_version))
    assert validate(as_v1, pool_crd("gie-v1.0.0", pins.GIE_OSSM.api_version))


def test_a_pool_without_its_picker_reference_fails_its_schema() -> None:
    pool = gie.GieSetup(build=pins.GIE_OSSM, other=pins.GIE_UPSTREAM).pool(pins.GIE_OSSM, "p")
    broken = copy.deepcopy(pool)
    del broken["spec"]["endpointPickerRef"]
    errors = validate(broken, pool_crd("gie-v1.0.0", pins.GIE_OSSM.api_version))
    assert any("endpointPickerRef" in e for e in errors), errors
