"""Manifest parsing and meshproof's labels: what `Cluster.apply` sends, before any cluster is involved."""

from __future__ import annotations

import re

import pytest

from meshproof.kube_objects import (
    RUN_ID_LABEL,
    TEST_ID_LABEL,
    ManifestError,
    ObjectRef,
    label_value,
    meshproof_labels,
    parse_documents,
    ref_of,
    selector_for_run,
    selector_for_test,
    with_labels,
)

LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")

MULTI_DOC = """\
# a leading comment document separator follows
---
apiVersion: v1
kind: Namespace
metadata:
  name: mp-authz
  labels:
    istio.io/dataplane-mode: ambient
---
---
apiVersion: v1
kind: List
items:
  - apiVersion: v1
    kind: ServiceAccount
    metadata: {name: httpbin, namespace: mp-authz}
  - apiVersion: v1
    kind: List
    items:
      - apiVersion: v1
        kind: Service
        metadata: {name: httpbin, namespace: mp-authz}
        spec: {ports: [{port: 8000, name: http}]}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-all, namespace: mp-authz}
spec: {}
...
"""


def test_multi_document_yaml_skips_empty_documents_and_expands_nested_lists():
    objects = parse_documents(MULTI_DOC)
    assert [ref_of(o) for o in objects] == [
        ObjectRef("v1", "Namespace", "mp-authz"),
        ObjectRef("v1", "ServiceAccount", "httpbin", "mp-authz"),
        ObjectRef("v1", "Service", "httpbin", "mp-authz"),
        ObjectRef("security.istio.io/v1", "AuthorizationPolicy", "deny-all", "mp-authz"),
    ]


def test_typed_lists_expand_like_v1_list():
    listed = {
        "apiVersion": "v1",
        "kind": "ConfigMapList",
        "metadata": {"resourceVersion": "1"},
        "items": [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "namespace": "x"}}],
    }
    assert [o["metadata"]["name"] for o in parse_documents([listed])] == ["a"]


@pytest.mark.parametrize(
    ("manifest", "message"),
    [
        (
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {namespace: x}\n",
            "document 1 (ConfigMap): missing metadata.name",
        ),
        ("kind: ConfigMap\nmetadata: {name: a}\n", "missing apiVersion"),
        ("- just\n- a list\n", "expected a mapping"),
        ("apiVersion: v1\nkind: [unclosed\n", "manifest is not valid YAML"),
        ("apiVersion: v1\nkind: List\nitems:\n  - {apiVersion: v1, kind: Pod}\n", "document 1 item 1 (Pod)"),
    ],
)
def test_bad_manifests_name_the_document_and_the_problem(manifest: str, message: str):
    with pytest.raises(ManifestError, match=re.escape(message)):
        parse_documents(manifest)


def test_labels_are_added_without_touching_the_input_and_keep_manifest_labels():
    original = parse_documents(MULTI_DOC)[0]
    labelled = with_labels(original, meshproof_labels("20261126-064501-a3f9", "test-authz-deny-1a2b3c"))
    assert labelled["metadata"]["labels"] == {
        "istio.io/dataplane-mode": "ambient",
        RUN_ID_LABEL: "20261126-064501-a3f9",
        TEST_ID_LABEL: "test-authz-deny-1a2b3c",
    }
    assert RUN_ID_LABEL not in original["metadata"]["labels"]


def test_no_test_id_means_only_the_run_label():
    assert meshproof_labels("r1") == {RUN_ID_LABEL: "r1"}


def test_short_valid_ids_are_used_as_they_are():
    assert label_value("test-mtls-strict-0a1b2c") == "test-mtls-strict-0a1b2c"


@pytest.mark.parametrize(
    "raw",
    [
        "suites/conformance/test_authz.py::test_deny_all[ambient->waypoint/http]",
        "x" * 64,
        "-leading-and-trailing-",
        "ünïcode",
        "a" * 63 + "/",
    ],
)
def test_long_or_invalid_ids_become_valid_label_values(raw: str):
    value = label_value(raw)
    assert len(value) <= 63
    assert LABEL_VALUE.match(value), value
    assert label_value(raw) == value  # stable: cleanup and artifacts recompute the same selector


def test_ids_that_differ_only_after_truncation_do_not_collide():
    base = "test_traffic_matrix[" + "sidecar-to-ambient-" * 4
    assert label_value(base + "a]") != label_value(base + "b]")


def test_selectors_use_the_same_label_values_as_apply():
    long_id = "t" * 80
    assert selector_for_test(long_id) == f"{TEST_ID_LABEL}={meshproof_labels('r', long_id)[TEST_ID_LABEL]}"
    assert selector_for_run("20261126-064501-a3f9") == f"{RUN_ID_LABEL}=20261126-064501-a3f9"


def test_object_refs_print_the_way_people_write_them():
    assert (
        str(ObjectRef("apps/v1", "Deployment", "istiod", "istio-system")) == "Deployment istio-system/istiod"
    )
    assert str(ObjectRef("v1", "Namespace", "mp-authz")) == "Namespace mp-authz"
