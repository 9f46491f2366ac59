"""The istio-csr Helm values meshproof installs are valid for the pinned chart, by its own schema.

`../shared/upstream/istio-csr-v0.15.0/deploy/charts/istio-csr/values.schema.json` is the chart's JSON schema
at the tag meshproof pins (meshproof.mesh.pins.ISTIO_CSR_CHART_VERSION); Helm validates values against it at
install time, so an unknown key (`additionalProperties: false`) or a wrong type would stop the install. The
values come from the install plan itself (the helm step of istio-csr), for every mode it allows.
The negative control: a misspelt key and a wrong type are refused by the same validator.
"""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest
from fixtures_data.shared_data import upstream

from meshproof.config import load_config
from meshproof.mesh import pins
from meshproof.mesh.plan import build_plan

pytestmark = pytest.mark.contract

CHART = ("istio-csr-v0.15.0", "deploy", "charts", "istio-csr")


def schema() -> dict[str, Any]:
    assert pins.ISTIO_CSR_CHART_VERSION == "v0.15.0", "pin moved: fetch the matching chart schema"
    return json.loads(upstream(*CHART, "values.schema.json").read_text())


def planned_values(mode: str) -> dict[str, Any]:
    """The values the plan hands to `helm install ... cert-manager-istio-csr` (its --values document)."""
    cli: dict[str, object] = {"provider": "kind", "installer": "helm", "mode": mode, "features": "istio-csr"}
    plan = build_plan(load_config(cli, env={}))
    steps = [s for s in plan.steps if s.helm_chart == "cert-manager-istio-csr"]
    assert len(steps) == 1, [s.title for s in plan.steps]
    assert steps[0].helm_values is not None
    return json.loads(json.dumps(steps[0].helm_values))  # a deep copy the mutations may change


@pytest.mark.parametrize("mode", ["sidecar", "ambient"])
def test_planned_istio_csr_values_match_the_chart_schema(mode: str) -> None:
    values = planned_values(mode)
    jsonschema.validate(values, schema())
    app = values["app"]
    assert app["certmanager"]["preserveCertificateRequests"] is True  # the suite reads the requests
    if mode == "ambient":
        assert app["server"]["caTrustedNodeAccounts"].endswith("/ztunnel")


@pytest.mark.parametrize(
    ("mutation", "path"),
    [
        (
            lambda v: v["app"]["certmanager"].update(preserveCertificateRequest=True),
            "preserveCertificateRequest",
        ),
        (lambda v: v["app"]["tls"].update(trustDomain=5), "trustDomain"),
    ],
    ids=["misspelt-key", "wrong-type"],
)
def test_the_schema_refuses_what_helm_would(mutation: Any, path: str) -> None:
    values = planned_values("sidecar")
    mutation(values)
    with pytest.raises(jsonschema.ValidationError) as refused:
        jsonschema.validate(values, schema())
    assert path in str(refused.value)
