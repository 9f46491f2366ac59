// Command contract-checker validates rendered meshproof documents against upstream API definitions.
//
// It reads one JSON request on stdin and writes one JSON response on stdout, so the Python contract
// tests can check every document of every plan with a single process start:
//
//	{"crdFiles": ["/path/crd.yaml", ...],
//	 "items": [{"id": "...", "check": "resource|istio-operator|istio-values|mesh-config|kind-config", "doc": {...},
//	            "strictEnv": false}]}
//
// Each check uses the decoder or validator the upstream project itself runs (see the per-file comments),
// so "accepted here" means "accepted by that upstream code at the pinned module version".
package main

import (
	"encoding/json"
	"fmt"
	"os"
)

type request struct {
	CRDFiles []string `json:"crdFiles"`
	Items    []item   `json:"items"`
}

type item struct {
	ID        string          `json:"id"`
	Check     string          `json:"check"`
	Doc       json.RawMessage `json:"doc"`
	StrictEnv bool            `json:"strictEnv"`
}

// finding is one problem: the field path inside the document and what upstream said about it.
type finding struct {
	Path    string `json:"path"`
	Message string `json:"message"`
}

type result struct {
	ID        string    `json:"id"`
	CheckedBy string    `json:"checkedBy"`
	Errors    []finding `json:"errors"`
}

type response struct {
	Served  []string `json:"served"`
	Results []result `json:"results"`
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "contract-checker:", err)
		os.Exit(2)
	}
}

func run() error {
	var req request
	if err := json.NewDecoder(os.Stdin).Decode(&req); err != nil {
		return fmt.Errorf("reading request: %w", err)
	}
	crds, err := loadCRDs(req.CRDFiles)
	if err != nil {
		return err
	}
	resp := response{Served: crds.served(), Results: make([]result, 0, len(req.Items))}
	for _, it := range req.Items {
		resp.Results = append(resp.Results, checkItem(crds, it))
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", " ")
	return enc.Encode(resp)
}

func checkItem(crds *crdIndex, it item) result {
	res := result{ID: it.ID, Errors: []finding{}}
	switch it.Check {
	case "resource":
		res.CheckedBy, res.Errors = checkResource(crds, it.Doc)
	case "istio-operator":
		res.CheckedBy, res.Errors = checkIstioOperator(it.Doc)
	case "istio-values":
		res.CheckedBy, res.Errors = checkValues(it.Doc, "", it.StrictEnv)
	case "kind-config":
		res.CheckedBy, res.Errors = checkKindConfig(it.Doc)
	case "mesh-config":
		res.CheckedBy, res.Errors = checkMeshConfig(it.Doc, "")
	default:
		res.CheckedBy = "none"
		res.Errors = []finding{{Path: "", Message: fmt.Sprintf("unknown check %q", it.Check)}}
	}
	if res.Errors == nil {
		res.Errors = []finding{}
	}
	return res
}
