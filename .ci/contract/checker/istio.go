package main

// IstioOperator documents, Helm values and MeshConfig are decoded with the decoders istioctl itself uses
// (istio.io/istio operator/pkg/apis/validation.ParseAndValidateIstioOperator): encoding/json with
// DisallowUnknownFields for the IstioOperator envelope, the strict golang/protobuf jsonpb unmarshaler
// behind apis.Values.UnmarshalJSON for `values`, and the strict jsonpb unmarshaler
// (pkg/util/protomarshal.Unmarshal) for MeshConfig. The upstream decoders do not report field paths, so a
// descriptor walk (protowalk.go) adds them; an upstream rejection the walk did not explain is still reported.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"

	"github.com/golang/protobuf/jsonpb" //nolint:staticcheck // the decoder istioctl uses
	"google.golang.org/protobuf/reflect/protoreflect"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
	"istio.io/istio/operator/pkg/apis"
	sigsjson "sigs.k8s.io/json"
)

const (
	byIstioOperator = "istio.io/istio operator/pkg/apis IstioOperator (encoding/json DisallowUnknownFields)"
	byValues        = "istio.io/istio operator/pkg/apis Values (strict jsonpb)"
	byMeshConfig    = "istio.io/api mesh/v1alpha1 MeshConfig (strict jsonpb)"
)

func checkIstioOperator(raw json.RawMessage) (string, []finding) {
	var out []finding
	iop := &apis.IstioOperator{}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	upstreamErr := dec.Decode(iop)
	// sigs.k8s.io/json names the path of an unknown field; encoding/json does not.
	strictErrs, err := sigsjson.UnmarshalStrict(raw, &apis.IstioOperator{})
	if err != nil {
		return byIstioOperator, []finding{{Message: err.Error()}}
	}
	for _, e := range strictErrs {
		out = append(out, splitStrictErrors(e.Error())...)
	}
	if upstreamErr != nil && len(out) == 0 {
		out = append(out, finding{Message: "istioctl would reject it: " + upstreamErr.Error()})
	}
	if upstreamErr != nil {
		return byIstioOperator, out
	}
	if iop.APIVersion != "install.istio.io/v1alpha1" || iop.Kind != "IstioOperator" {
		out = append(out, finding{Path: "apiVersion", Message: fmt.Sprintf(
			"expected install.istio.io/v1alpha1 IstioOperator, got %s %s", iop.APIVersion, iop.Kind)})
	}
	if len(iop.Spec.Values) > 0 {
		_, errs := checkValues(iop.Spec.Values, "spec.values", false)
		out = append(out, errs...)
	}
	if len(iop.Spec.MeshConfig) > 0 {
		_, errs := checkMeshConfig(iop.Spec.MeshConfig, "spec.meshConfig")
		out = append(out, errs...)
	}
	return byIstioOperator + "; " + byValues + "; " + byMeshConfig, out
}

func checkValues(raw json.RawMessage, prefix string, strictEnv bool) (string, []finding) {
	by := byValues
	upstreamErr := (&apis.Values{}).UnmarshalJSON(raw)
	var tree interface{}
	if err := json.Unmarshal(raw, &tree); err != nil {
		return by, []finding{{Path: prefix, Message: err.Error()}}
	}
	out := walkMessage(tree, (&apis.Values{}).ProtoReflect().Descriptor(), prefix)
	if upstreamErr != nil && len(out) == 0 {
		out = append(out, finding{Path: prefix, Message: "upstream decoder rejects it: " + upstreamErr.Error()})
	}
	if m, ok := tree.(map[string]interface{}); ok {
		if mc, ok := m["meshConfig"]; ok && mc != nil {
			b, _ := json.Marshal(mc)
			_, errs := checkMeshConfig(b, join(prefix, "meshConfig"))
			out = append(out, errs...)
			by += "; " + byMeshConfig
		}
	}
	if strictEnv {
		out = append(out, envMustBeStrings(tree, prefix)...)
	}
	return by, out
}

func checkMeshConfig(raw json.RawMessage, prefix string) (string, []finding) {
	upstreamErr := (&jsonpb.Unmarshaler{}).Unmarshal(bytes.NewReader(raw), &meshv1alpha1.MeshConfig{})
	var tree interface{}
	if err := json.Unmarshal(raw, &tree); err != nil {
		return byMeshConfig, []finding{{Path: prefix, Message: err.Error()}}
	}
	out := walkMessage(tree, (&meshv1alpha1.MeshConfig{}).ProtoReflect().Descriptor(), prefix)
	if upstreamErr != nil && len(out) == 0 {
		out = append(out, finding{Path: prefix, Message: "upstream decoder rejects it: " + upstreamErr.Error()})
	}
	return byMeshConfig, out
}

// envMustBeStrings enforces the sailoperator.io CRD typing of every `env` map as map[string]string
// (istio-facts §1.4): the Sail API server rejects `true`, it needs "true".
func envMustBeStrings(tree interface{}, prefix string) []finding {
	var out []finding
	var visit func(v interface{}, path string)
	visit = func(v interface{}, path string) {
		m, ok := v.(map[string]interface{})
		if !ok {
			return
		}
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			child := join(path, k)
			if env, isMap := m[k].(map[string]interface{}); k == "env" && isMap {
				for _, name := range sortedKeys(env) {
					if _, isString := env[name].(string); !isString {
						out = append(out, finding{Path: join(child, name), Message: fmt.Sprintf(
							"env values must be strings (sailoperator.io CRD: map[string]string); got %T", env[name])})
					}
				}
				continue
			}
			visit(m[k], child)
		}
	}
	visit(tree, prefix)
	return out
}

func sortedKeys(m map[string]interface{}) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func join(prefix, key string) string {
	if prefix == "" {
		return key
	}
	return prefix + "." + key
}

var _ protoreflect.MessageDescriptor
