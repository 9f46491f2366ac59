"""Write the transcribed Sail operator CRDs (sail-ossm-*.yaml) that the contract checker loads.

The sail-operator / OSSM Go module is not served by the Go module proxy this project can reach, so its CRDs
cannot be fetched like the others. These are transcribed by hand from the upstream API (istio-facts §0 and
§1.4) and carry only the top-level spec: fields, enums, defaults and the x-kubernetes-validations rules.
spec.values is checked separately against the upstream Istio Values types. Run: python3 generate.py
"""

from pathlib import Path
from typing import Any

import yaml

# istio-facts §0: the spec.version enum of ossm-sail@release-3.2 (OSSM 3.2.9).
LATEST_VERSIONS = [
    "v1.27-latest", "v1.27.9", "v1.27.8", "v1.27.5", "v1.27.3",
    "v1.26-latest", "v1.26.8", "v1.26.6", "v1.26.4", "v1.26.3", "v1.26.2",
    "v1.24-latest", "v1.24.6", "v1.24.5", "v1.24.4", "v1.24.3",
]  # fmt: skip
# istio-facts §0: OSSM 3.2.0 ships Istio 1.27 only as v1.27.3. Its 1.26/1.24 entries are not transcribed
# (meshproof renders 1.27 only), so they would be rejected here.
V320_VERSIONS = ["v1.27-latest", "v1.27.3"]
PROFILES = ["ambient", "default", "demo", "empty", "external", "openshift", "openshift-ambient",
            "preview", "remote", "stable"]  # fmt: skip
STR: dict[str, Any] = {"type": "string"}
BOOL: dict[str, Any] = {"type": "boolean"}
NAME_IS_DEFAULT = [{"rule": "self.metadata.name == 'default'", "message": "metadata.name must be 'default'"}]


def closed(props: dict[str, Any], required: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": props}
    if required:
        schema["required"] = required
    schema.update(extra)
    return schema


def open_object(props: dict[str, Any] | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    if props:
        schema["properties"] = props
    return schema


# The `global` keys Sail's ZTunnelGlobalConfig accepts (sailoperator.io_ztunnels.yaml); CNIGlobalConfig adds
# nativeNftables (istio-facts §5).
COMPONENT_GLOBAL: dict[str, Any] = {
    "defaultResources": open_object(),
    "hub": STR,
    "imagePullPolicy": {"type": "string", "enum": ["Always", "Never", "IfNotPresent"]},
    "imagePullSecrets": {"type": "array", "items": STR},
    "logAsJson": BOOL,
    "logging": closed({"level": STR}),
    "platform": STR,
    "tag": STR,
    "variant": STR,
}
CNI_GLOBAL = dict(COMPONENT_GLOBAL, nativeNftables=BOOL)


def crd(plural: str, kind: str, versions: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.sailoperator.io"},
        "spec": {
            "group": "sailoperator.io",
            "scope": "Cluster",
            "names": {"kind": kind, "plural": plural, "singular": kind.lower(), "listKind": kind + "List"},
            "versions": versions,
        },
    }


def version(name: str, spec: dict[str, Any], *, storage: bool = True, deprecated: bool = False,
            root_rules: list[dict[str, str]] | None = None) -> dict[str, Any]:  # fmt: skip
    root = closed({"apiVersion": STR, "kind": STR, "metadata": {"type": "object"}, "spec": spec,
                   "status": open_object()})  # fmt: skip
    if root_rules:
        root["x-kubernetes-validations"] = root_rules
    entry: dict[str, Any] = {
        "name": name,
        "served": True,
        "storage": storage,
        "schema": {"openAPIV3Schema": root},
    }
    if deprecated:
        entry["deprecated"] = True
    return entry


def version_field(versions: list[str]) -> dict[str, Any]:
    if not versions:  # upstream Sail release whose version list is not transcribed
        return {"type": "string"}
    return {"type": "string", "enum": versions, "default": versions[1]}


def istio(versions: list[str]) -> dict[str, Any]:
    namespace_rule = (
        "!has(self.values) || !has(self.values.global) || !has(self.values.global.istioNamespace)"
        " || self.values.global.istioNamespace == self.__namespace__"
    )
    spec = closed(
        {
            "version": version_field(versions),
            "updateStrategy": closed(
                {
                    "type": {"type": "string", "enum": ["InPlace", "RevisionBased"], "default": "InPlace"},
                    "inactiveRevisionDeletionGracePeriodSeconds": {
                        "type": "integer",
                        "format": "int64",
                        "minimum": 0,
                    },
                    "updateWorkloads": BOOL,
                },
                default={"type": "InPlace"},
            ),
            "profile": {"type": "string", "enum": PROFILES},
            "namespace": {
                "type": "string",
                "default": "istio-system",
                "x-kubernetes-validations": [{"rule": "self == oldSelf", "message": "Value is immutable"}],
            },
            "values": open_object({"global": open_object({"istioNamespace": STR})}),
        },
        required=["namespace", "version"],
        **{
            "x-kubernetes-validations": [
                {
                    "rule": namespace_rule,
                    "message": "spec.values.global.istioNamespace must match spec.namespace",
                }
            ]
        },
    )
    return crd("istios", "Istio", [version("v1", spec)])


def istio_cni(versions: list[str]) -> dict[str, Any]:
    spec = closed(
        {
            "version": version_field(versions),
            "profile": {"type": "string", "enum": PROFILES},
            "namespace": {"type": "string", "default": "istio-cni"},
            "values": closed({"cni": open_object(), "global": closed(CNI_GLOBAL)}),
        },
        required=["namespace", "version"],
    )
    return crd("istiocnis", "IstioCNI", [version("v1", spec, root_rules=NAME_IS_DEFAULT)])


def ztunnel(versions: list[str], *, has_v1: bool) -> dict[str, Any]:
    def spec(with_profile: bool) -> dict[str, Any]:
        props: dict[str, Any] = {
            "version": version_field(versions),
            "namespace": {"type": "string", "default": "ztunnel"},
            "values": closed({"ztunnel": open_object(), "global": closed(COMPONENT_GLOBAL)}),
        }
        if with_profile:  # istio-facts §0 trap 1: only v1alpha1 has spec.profile
            props["profile"] = {"type": "string", "enum": PROFILES, "default": "ambient"}
        return closed(props, required=["namespace", "version"])

    versions_out = [
        version("v1alpha1", spec(True), storage=not has_v1, deprecated=has_v1, root_rules=NAME_IS_DEFAULT)
    ]
    if has_v1:
        versions_out.append(version("v1", spec(False), root_rules=NAME_IS_DEFAULT))
    return crd("ztunnels", "ZTunnel", versions_out)


def revision_tag() -> dict[str, Any]:
    target = closed({"kind": {"type": "string", "enum": ["Istio", "IstioRevision"]}, "name": STR},
                    required=["kind", "name"])  # fmt: skip
    return crd(
        "istiorevisiontags", "IstioRevisionTag", [version("v1", closed({"targetRef": target}, ["targetRef"]))]
    )


HEADER = """\
# TRANSCRIBED, NOT FETCHED: written by generate.py (read its docstring). Source: {source}
"""
VARIANTS = [
    ("sail-ossm-3.2.0.yaml", V320_VERSIONS, False,
     "openshift-service-mesh/sail-operator@release-3.2.0 (OSSM 3.2.0: ZTunnel v1alpha1 only)"),
    ("sail-ossm-3.2-latest.yaml", LATEST_VERSIONS, True,
     "openshift-service-mesh/sail-operator@release-3.2 (OSSM 3.2.1..3.2.9: ZTunnel v1, v1alpha1 deprecated)"),
    # Upstream Sail (installed by its Helm chart on kind/existing): same v1 API shape as OSSM 3.2.1+; its
    # spec.version enum is not transcribed, so any version string passes here.
    ("sail-upstream.yaml", [], True,
     "istio-ecosystem/sail-operator v1 API (same shape as OSSM 3.2.1+; spec.version enum NOT transcribed)"),
]  # fmt: skip


def main() -> None:
    here = Path(__file__).resolve().parent
    for filename, versions, has_v1, source in VARIANTS:
        docs = [istio(versions), istio_cni(versions), ztunnel(versions, has_v1=has_v1), revision_tag()]
        text = HEADER.format(source=source) + yaml.safe_dump_all(docs, sort_keys=False, width=200)
        (here / filename).write_text(text)


if __name__ == "__main__":
    main()
