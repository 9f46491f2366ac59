// Writes the Prometheus text exposition that github.com/prometheus/client_golang v1.22.0 (the version
// llm-d-inference-sim v0.4.0 builds with) produces for the simulator's four metric families, with the names,
// help texts and label names the simulator registers (llm-d-sim@v0.4.0 pkg/llm-d-inference-sim/metrics.go),
// set the way its --fake-metrics start-up path sets them. Engine tests parse this real library output.
//
// usage: vllm_metrics OUT MODEL MAX_LORAS RUNNING WAITING KV_CACHE [RUNNING_LORAS|WAITING_LORAS|TIMESTAMP ...]
package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

func gauge(reg *prometheus.Registry, name, help string, labels ...string) *prometheus.GaugeVec {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, labels)
	reg.MustRegister(g)
	return g
}

func number(text string) float64 {
	v, err := strconv.ParseFloat(text, 64)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	return v
}

func main() {
	if len(os.Args) < 7 {
		fmt.Fprintln(os.Stderr, "usage: vllm_metrics OUT MODEL MAX_LORAS RUNNING WAITING KV_CACHE [RUN|WAIT|TS ...]")
		os.Exit(2)
	}
	out, model, maxLoras := os.Args[1], os.Args[2], os.Args[3]
	reg := prometheus.NewRegistry()
	lora := gauge(reg, "vllm:lora_requests_info", "Running stats on lora requests.",
		"max_lora", "running_lora_adapters", "waiting_lora_adapters")
	running := gauge(reg, "vllm:num_requests_running", "Number of requests currently running on GPU.", "model_name")
	waiting := gauge(reg, "vllm:num_requests_waiting", "Prometheus metric for the number of queued requests.", "model_name")
	kv := gauge(reg, "vllm:gpu_cache_usage_perc",
		"Prometheus metric for the fraction of KV-cache blocks currently in use (from 0 to 1).", "model_name")
	running.WithLabelValues(model).Set(number(os.Args[4]))
	waiting.WithLabelValues(model).Set(number(os.Args[5]))
	kv.WithLabelValues(model).Set(number(os.Args[6]))
	for _, entry := range os.Args[7:] {
		parts := strings.Split(entry, "|")
		lora.WithLabelValues(maxLoras, parts[0], parts[1]).Set(number(parts[2]))
	}
	if err := prometheus.WriteToTextfile(out, reg); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
