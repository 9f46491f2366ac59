package main

// Custom resources are validated the way kube-apiserver's custom resource handler does it, with the
// apiextensions-apiserver packages themselves: structural pruning (reported as errors instead of being
// silently dropped), defaulting, metadata coercion, OpenAPI schema validation and x-kubernetes-validations
// CEL rules.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/cel"
	structuraldefaulting "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/defaulting"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/objectmeta"
	structuralpruning "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/pruning"
	apiservervalidation "k8s.io/apiextensions-apiserver/pkg/apiserver/validation"
	apimachineryvalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"k8s.io/apimachinery/pkg/util/validation/field"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	celconfig "k8s.io/apiserver/pkg/apis/cel"
)

type crdVersion struct {
	crdName    string
	source     string
	namespaced bool
	served     bool
	deprecated bool
	structural *structuralschema.Structural
	internal   *apiextensions.JSONSchemaProps
}

type crdIndex struct {
	byGVK map[string]*crdVersion // "group/version/Kind"
}

func gvkKey(apiVersion, kind string) string {
	if !strings.Contains(apiVersion, "/") {
		apiVersion = "/" + apiVersion
	}
	return apiVersion + "/" + kind
}

func loadCRDs(files []string) (*crdIndex, error) {
	idx := &crdIndex{byGVK: map[string]*crdVersion{}}
	for _, f := range files {
		if err := idx.loadFile(f); err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
	}
	return idx, nil
}

func (idx *crdIndex) loadFile(path string) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	reader := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(raw)))
	for {
		chunk, err := reader.Read()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		js, err := utilyaml.ToJSON(chunk)
		if err != nil {
			return err
		}
		if len(bytes.TrimSpace(js)) == 0 || string(bytes.TrimSpace(js)) == "null" {
			continue
		}
		crd := &apiextv1.CustomResourceDefinition{}
		if err := json.Unmarshal(js, crd); err != nil {
			return err
		}
		if crd.Kind != "CustomResourceDefinition" {
			continue
		}
		if err := idx.add(crd, path); err != nil {
			return fmt.Errorf("CRD %s: %w", crd.Name, err)
		}
	}
}

func (idx *crdIndex) add(crd *apiextv1.CustomResourceDefinition, source string) error {
	for _, v := range crd.Spec.Versions {
		schema := v.Schema
		if schema == nil || schema.OpenAPIV3Schema == nil {
			return fmt.Errorf("version %s has no openAPIV3Schema", v.Name)
		}
		internal := &apiextensions.JSONSchemaProps{}
		if err := apiextv1.Convert_v1_JSONSchemaProps_To_apiextensions_JSONSchemaProps(schema.OpenAPIV3Schema, internal, nil); err != nil {
			return err
		}
		ss, err := structuralschema.NewStructural(internal)
		if err != nil {
			return fmt.Errorf("version %s is not a structural schema: %w", v.Name, err)
		}
		key := gvkKey(crd.Spec.Group+"/"+v.Name, crd.Spec.Names.Kind)
		idx.byGVK[key] = &crdVersion{
			crdName:    crd.Name,
			source:     source,
			namespaced: crd.Spec.Scope == apiextv1.NamespaceScoped,
			served:     v.Served,
			deprecated: v.Deprecated,
			structural: ss,
			internal:   internal,
		}
	}
	return nil
}

func (idx *crdIndex) served() []string {
	out := make([]string, 0, len(idx.byGVK))
	for k, v := range idx.byGVK {
		if v.served {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// checkResource validates one Kubernetes object: a custom resource against its CRD, a built-in kind by
// strict decoding into the k8s.io/api type. An object of an unknown kind is an error, never a pass.
func checkResource(idx *crdIndex, raw json.RawMessage) (string, []finding) {
	var head struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
	}
	if err := json.Unmarshal(raw, &head); err != nil {
		return "none", []finding{{Message: "not a JSON object: " + err.Error()}}
	}
	if head.APIVersion == "" || head.Kind == "" {
		return "none", []finding{{Message: "apiVersion and kind are required"}}
	}
	if v, ok := idx.byGVK[gvkKey(head.APIVersion, head.Kind)]; ok {
		return "crd " + v.crdName + " (" + v.source + ")", validateCustomResource(v, raw)
	}
	if by, errs, ok := checkBuiltin(head.APIVersion, head.Kind, raw); ok {
		return by, errs
	}
	return "none", []finding{{Path: "apiVersion", Message: fmt.Sprintf(
		"no upstream definition loaded for %s %s (not a built-in kind and no fetched CRD serves it)",
		head.APIVersion, head.Kind)}}
}

func validateCustomResource(v *crdVersion, raw json.RawMessage) []finding {
	// utiljson is the apiserver's decoder: whole numbers become int64, as CEL and the schema expect.
	var obj map[string]interface{}
	if err := utiljson.Unmarshal(raw, &obj); err != nil {
		return []finding{{Message: err.Error()}}
	}
	var out []finding
	if !v.served {
		out = append(out, finding{Path: "apiVersion", Message: "this version is not served by the CRD"})
	}
	// Unknown fields: the apiserver prunes them silently; a renderer that writes them has a bug.
	for _, p := range structuralpruning.PruneWithOptions(deepCopyJSON(obj), v.structural, true,
		structuralschema.UnknownFieldPathOptions{TrackUnknownFieldPaths: true}) {
		out = append(out, finding{Path: p, Message: "unknown field (the API server would prune it)"})
	}
	structuraldefaulting.Default(obj, v.structural)
	if err := objectmeta.Coerce(nil, obj, v.structural, true, false); err != nil {
		out = append(out, fieldErr(err))
	}
	out = append(out, validateMetadata(v, obj)...)
	for _, e := range objectmeta.Validate(nil, obj, v.structural, true) {
		out = append(out, fieldErr(e))
	}
	validator, _, err := apiservervalidation.NewSchemaValidator(v.internal)
	if err != nil {
		return append(out, finding{Message: "building schema validator: " + err.Error()})
	}
	for _, e := range apiservervalidation.ValidateCustomResource(nil, obj, validator) {
		out = append(out, fieldErr(e))
	}
	celValidator := cel.NewValidator(v.structural, true, celconfig.PerCallLimit)
	if celValidator != nil {
		errs, _ := celValidator.Validate(context.Background(), nil, v.structural, obj, nil, celconfig.RuntimeCELCostBudget)
		for _, e := range errs {
			out = append(out, fieldErr(e))
		}
	}
	return out
}

func validateMetadata(v *crdVersion, obj map[string]interface{}) []finding {
	metaRaw, ok := obj["metadata"]
	if !ok {
		return []finding{{Path: "metadata", Message: "metadata is required"}}
	}
	meta := &metav1.ObjectMeta{}
	if errs := strictDecodeInto(metaRaw, meta, "metadata"); len(errs) > 0 {
		return errs
	}
	var out []finding
	if meta.Name == "" {
		out = append(out, finding{Path: "metadata.name", Message: "name is required"})
	}
	if v.namespaced && meta.Namespace == "" {
		out = append(out, finding{Path: "metadata.namespace", Message: "namespaced kind rendered without a namespace"})
	}
	if !v.namespaced && meta.Namespace != "" {
		out = append(out, finding{Path: "metadata.namespace", Message: "cluster-scoped kind must not set a namespace"})
	}
	for _, e := range apimachineryvalidation.ValidateObjectMeta(meta, v.namespaced,
		apimachineryvalidation.NameIsDNSSubdomain, field.NewPath("metadata")) {
		if v.namespaced || e.Field != "metadata.namespace" {
			out = append(out, fieldErr(e))
		}
	}
	return out
}

func fieldErr(e *field.Error) finding {
	// A nil root path prints as "<nil>"; the root of the document is reported as "".
	path := strings.TrimPrefix(strings.TrimPrefix(e.Field, "<nil>"), ".")
	return finding{Path: path, Message: e.ErrorBody()}
}

func deepCopyJSON(in map[string]interface{}) map[string]interface{} {
	b, _ := json.Marshal(in)
	var out map[string]interface{}
	_ = utiljson.Unmarshal(b, &out)
	return out
}
