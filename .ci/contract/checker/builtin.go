package main

// Built-in kinds (Namespace, Deployment, ConfigMap, ...) are decoded with the apimachinery JSON serializer
// in strict mode into the k8s.io/api Go types: unknown and duplicate fields and wrong types are errors,
// exactly as `kubectl apply --validate=strict` reports them. Field-level semantic validation of built-ins
// (k8s.io/kubernetes/pkg/apis/*/validation) is not importable as a module and is not run.

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	kjson "k8s.io/apimachinery/pkg/runtime/serializer/json"
	sigsjson "sigs.k8s.io/json"
)

var builtinScheme = func() *runtime.Scheme {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{
		corev1.AddToScheme, appsv1.AddToScheme, rbacv1.AddToScheme, policyv1.AddToScheme,
		networkingv1.AddToScheme, admissionregistrationv1.AddToScheme, batchv1.AddToScheme,
		apiextv1.AddToScheme,
	} {
		if err := add(s); err != nil {
			panic(err)
		}
	}
	return s
}()

var strictSerializer = kjson.NewSerializerWithOptions(kjson.DefaultMetaFactory, builtinScheme, builtinScheme,
	kjson.SerializerOptions{Yaml: false, Pretty: false, Strict: true})

func checkBuiltin(apiVersion, kind string, raw json.RawMessage) (string, []finding, bool) {
	gv, err := schema.ParseGroupVersion(apiVersion)
	if err != nil {
		return "", nil, false
	}
	gvk := gv.WithKind(kind)
	if !builtinScheme.Recognizes(gvk) {
		return "", nil, false
	}
	_, _, err = strictSerializer.Decode(raw, &gvk, nil)
	by := "k8s.io/api strict decode " + gvk.String()
	if err == nil {
		return by, nil, true
	}
	return by, splitStrictErrors(err.Error()), true
}

var unknownFieldRe = regexp.MustCompile(`unknown field "([^"]+)"`)

// splitStrictErrors turns `strict decoding error: unknown field "a.b", unknown field "c"` into findings.
func splitStrictErrors(msg string) []finding {
	matches := unknownFieldRe.FindAllStringSubmatch(msg, -1)
	if len(matches) == 0 {
		return []finding{{Message: msg}}
	}
	out := make([]finding, 0, len(matches))
	for _, m := range matches {
		out = append(out, finding{Path: m[1], Message: "unknown field"})
	}
	rest := unknownFieldRe.ReplaceAllString(msg, "")
	rest = strings.Trim(strings.TrimPrefix(strings.TrimSpace(rest), "strict decoding error:"), " ,")
	if rest != "" {
		out = append(out, finding{Message: rest})
	}
	return out
}

// strictDecodeInto decodes an already-parsed JSON value into a typed struct, unknown fields being errors.
func strictDecodeInto(v interface{}, into interface{}, path string) []finding {
	b, err := json.Marshal(v)
	if err != nil {
		return []finding{{Path: path, Message: err.Error()}}
	}
	strictErrs, err := sigsjson.UnmarshalStrict(b, into)
	if err != nil {
		return []finding{{Path: path, Message: err.Error()}}
	}
	out := make([]finding, 0, len(strictErrs))
	for _, e := range strictErrs {
		out = append(out, prefixed(path, splitStrictErrors(e.Error()))...)
	}
	return out
}

func prefixed(prefix string, fs []finding) []finding {
	for i := range fs {
		switch {
		case prefix == "":
		case fs[i].Path == "":
			fs[i].Path = prefix
		default:
			fs[i].Path = prefix + "." + fs[i].Path
		}
	}
	return fs
}

var _ = fmt.Sprintf
