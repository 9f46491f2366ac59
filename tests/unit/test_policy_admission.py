"""A validation webhook's refusal of a policy, as the authz suite's CUSTOM case meets it: through the real
Kubernetes client and `AppliedPolicies`, against the fake API server answering the apply the way the API
server answers when istiod's validating webhook denies (400, `admission webhook "validation.istio.io" denied
the request: ...`). The reason text is istiod's (istio/istio@1.27.9 pkg/config/validation/validation.go).

What it cannot prove: that a real istiod refuses exactly these policies (the control-plane tier can), or its
wording in other Istio versions.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fixtures_data.kube_apiserver import FakeApiServer

from meshproof.evidence.policy_status import admission_denial
from meshproof.kube import Cluster
from meshproof.kube_connect import KubeApiError
from meshproof.policies import AppliedPolicies, Rule, authorization_policy
from meshproof.workloads import Workload, WorkloadClass

SERVER = Workload(WorkloadClass.AMBIENT, "mp-ambient", "server")
DENIAL = (
    'admission webhook "validation.istio.io" denied the request: configuration is invalid: '
    "CUSTOM action without `rules` is meaningless as it will never be triggered, add an empty rule `{}` if "
    "you want it be triggered for every request"
)


POLICY_PATH = "/apis/security.istio.io/v1/namespaces/mp-ambient/authorizationpolicies/meshproof-custom"


def custom_policy() -> dict[str, object]:
    return authorization_policy("meshproof-custom", SERVER, "CUSTOM", [Rule(ports=(8080,))], provider="x")


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[FakeApiServer, Cluster]]:
    with FakeApiServer() as api:
        yield api, Cluster("kind-fake", api.write_kubeconfig(tmp_path / "kubeconfig"), "run-1")


def test_a_webhook_denial_reaches_the_test_as_its_own_outcome(
    cluster: tuple[FakeApiServer, Cluster], tmp_path: Path
) -> None:
    api, kube = cluster
    policy = custom_policy()
    api.state.failures[POLICY_PATH] = (400, "BadRequest", DENIAL)
    applied = AppliedPolicies(kube, "test-1", tmp_path)

    with pytest.raises(KubeApiError) as raised:
        applied.apply(policy)
    denial = admission_denial(str(raised.value))
    assert denial is not None and denial.webhook == "validation.istio.io"
    assert denial.reason.startswith("configuration is invalid: CUSTOM action without `rules`")
    applied.close()

    # Once the webhook lets it through the same policy is stored: the outcome above was the webhook's.
    again = AppliedPolicies(kube, "test-2", tmp_path)
    again.apply(policy)
    stored = api.stored("security.istio.io/v1", "AuthorizationPolicy", "meshproof-custom", "mp-ambient")
    assert stored is not None and stored["spec"]["action"] == "CUSTOM"
    again.close()


def test_other_api_errors_are_not_mistaken_for_a_webhook_denial(
    cluster: tuple[FakeApiServer, Cluster], tmp_path: Path
) -> None:
    api, kube = cluster
    policy = custom_policy()
    api.state.failures[POLICY_PATH] = (
        409,
        "Conflict",
        'Apply failed with 1 conflict: conflict with "kubectl"',
    )

    applied = AppliedPolicies(kube, "test-1", tmp_path)
    with pytest.raises(KubeApiError) as raised:
        applied.apply(policy)
    applied.close()
    assert admission_denial(str(raised.value)) is None
