package main

// kind cluster configs are decoded the way `kind create cluster --config` decodes them
// (sigs.k8s.io/kind pkg/internal/apis/config/encoding: sigs.k8s.io/yaml UnmarshalStrict into v1alpha4).

import (
	"encoding/json"

	kindv1alpha4 "sigs.k8s.io/kind/pkg/apis/config/v1alpha4"
)

const byKind = "sigs.k8s.io/kind pkg/apis/config/v1alpha4 Cluster (strict)"

func checkKindConfig(raw json.RawMessage) (string, []finding) {
	var head struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
	}
	_ = json.Unmarshal(raw, &head)
	if head.APIVersion != "kind.x-k8s.io/v1alpha4" || head.Kind != "Cluster" {
		return byKind, []finding{{Path: "apiVersion", Message: "expected kind.x-k8s.io/v1alpha4 Cluster, got " +
			head.APIVersion + " " + head.Kind}}
	}
	var tree interface{}
	_ = json.Unmarshal(raw, &tree)
	return byKind, strictDecodeInto(tree, &kindv1alpha4.Cluster{}, "")
}
