#!/usr/bin/env bash
# Bring up the control-plane tier on loopback: etcd, kube-apiserver (client certificates, a service-account
# key, RBAC), kube-controller-manager, kube-scheduler, KWOK with one fake node, the Istio 1.27.9 / Gateway
# API v1.3.0 / GIE / OSSM 3.2 Sail CRDs from ../shared/upstream, and istiod with ambient on and both
# webhooks registered.
#
#   bash scripts/control-plane/up.sh        build or restore the binaries, start everything, wait until ready
#   . "$MESHPROOF_CONTROL_PLANE_DIR/env"     (default .cache/control-plane/env): KUBECONFIG, ports, bin dir
#   bash scripts/control-plane/down.sh      stop every recorded process, remove the state
#
# Every port is free-picked unless set: MESHPROOF_CP_ETCD_PORT, MESHPROOF_CP_ETCD_PEER_PORT,
# MESHPROOF_CP_APISERVER_PORT, MESHPROOF_CP_CONTROLLER_MANAGER_PORT, MESHPROOF_CP_SCHEDULER_PORT,
# MESHPROOF_CP_KWOK_PORT, MESHPROOF_CP_KWOK_FORWARD_PORT (where port-forwards to any fake pod land),
# MESHPROOF_CP_ISTIOD_HTTP_PORT, MESHPROOF_CP_ISTIOD_GRPC_PORT, MESHPROOF_CP_ISTIOD_XDS_PORT (secure gRPC),
# MESHPROOF_CP_ISTIOD_WEBHOOK_PORT, MESHPROOF_CP_ISTIOD_MONITORING_PORT. Everything listens on 127.0.0.1.
# Upstream data: $MESHPROOF_SHARED_DIR or ../shared beside the repository. On failure it stops what it
# started and prints the failing component's log tail.
set -Eeuo pipefail
. "$(dirname "$0")/common.sh"

SHARED="${MESHPROOF_SHARED_DIR:-$(cd "$CP_REPO/.." && pwd)/shared}"
UPSTREAM="$SHARED/upstream"
[ -f "$UPSTREAM/istio-1.27.9/manifests/charts/base/files/crd-all.gen.yaml" ] ||
  cp_die "upstream CRDs not found under $UPSTREAM (set MESHPROOF_SHARED_DIR to the folder holding upstream/)"
PYTHON="$CP_REPO/.venv/bin/python"
[ -x "$PYTHON" ] || PYTHON=python3
"$PYTHON" -c 'import yaml' 2>/dev/null || cp_die "$PYTHON lacks PyYAML; run bash scripts/setup.sh --dev"
command -v openssl >/dev/null || cp_die "openssl is required to make the tier's certificates"

if [ -s "$CP_PIDS" ]; then
  cp_tier_running && cp_die "a tier is already running from $CP_STATE; run scripts/control-plane/down.sh first"
  cp_say "no recorded process of $CP_PIDS still runs (a stale record); replacing it"
fi

BIN="$(bash "$CP_HERE/build.sh" | tail -n 1)"
[ -x "$BIN/kube-apiserver" ] || cp_die "build did not produce $BIN/kube-apiserver"
t0=$SECONDS

rm -rf "$CP_STATE"
mkdir -p "$CP_STATE"/{pki,logs,kwok,istiod}
mkdir -m 700 "$CP_STATE/etcd"
S="$CP_STATE"
PKI="$S/pki"
LOGS="$S/logs"

on_error() {
  local rc=$?
  cp_say "start failed (exit $rc); stopping what was started"
  for f in "$LOGS"/*.log; do [ -f "$f" ] && { echo "--- tail of $f" >&2; tail -n 15 "$f" >&2; }; done
  bash "$CP_HERE/down.sh" --keep-state || true
  exit "$rc"
}
trap on_error ERR

free_port() { "$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
port() { local v="${!1:-}"; [ -n "$v" ] && echo "$v" || free_port; }
ETCD_PORT="$(port MESHPROOF_CP_ETCD_PORT)"
ETCD_PEER_PORT="$(port MESHPROOF_CP_ETCD_PEER_PORT)"
APISERVER_PORT="$(port MESHPROOF_CP_APISERVER_PORT)"
KCM_PORT="$(port MESHPROOF_CP_CONTROLLER_MANAGER_PORT)"
SCHED_PORT="$(port MESHPROOF_CP_SCHEDULER_PORT)"
KWOK_PORT="$(port MESHPROOF_CP_KWOK_PORT)"
KWOK_FORWARD_PORT="$(port MESHPROOF_CP_KWOK_FORWARD_PORT)"
ISTIOD_HTTP_PORT="$(port MESHPROOF_CP_ISTIOD_HTTP_PORT)"
ISTIOD_GRPC_PORT="$(port MESHPROOF_CP_ISTIOD_GRPC_PORT)"
ISTIOD_XDS_PORT="$(port MESHPROOF_CP_ISTIOD_XDS_PORT)"
ISTIOD_WEBHOOK_PORT="$(port MESHPROOF_CP_ISTIOD_WEBHOOK_PORT)"
ISTIOD_MONITORING_PORT="$(port MESHPROOF_CP_ISTIOD_MONITORING_PORT)"

# --- start/record --------------------------------------------------------------------------------------
start() { # start NAME CMD...: run in its own process group, log to logs/NAME.log, record the pid
  local name="$1"; shift
  setsid "$@" >"$LOGS/$name.log" 2>&1 </dev/null &
  echo "$name $!" >>"$CP_PIDS"
  echo "$name $! $1" >>"$CP_CMDS"
}
all_running() { # every recorded component still runs (a crash, e.g. a port taken, fails the start at once)
  local name pid
  while read -r name pid _; do
    cp_alive "$pid" || { cp_say "$name (pid $pid) exited; see $LOGS/$name.log"; return 1; }
  done <"$CP_PIDS"
}
wait_until() { # wait_until SECONDS WHAT CMD...: poll CMD until it succeeds
  local limit="$1" what="$2"; shift 2
  local deadline=$((SECONDS + limit))
  until "$@" >/dev/null 2>&1; do
    all_running || return 1
    [ "$SECONDS" -lt "$deadline" ] || { cp_say "timed out after ${limit}s waiting for $what"; return 1; }
    sleep 0.5
  done
}

# --- certificates --------------------------------------------------------------------------------------
cert() { # cert NAME SUBJECT [SAN]: a key and a certificate signed by the tier's CA
  local name="$1" subject="$2" san="${3:-}"
  openssl req -new -newkey rsa:2048 -nodes -keyout "$PKI/$name.key" -subj "$subject" -out "$PKI/$name.csr" 2>/dev/null
  local ext="$PKI/$name.ext"
  { echo "basicConstraints=CA:FALSE"; echo "keyUsage=digitalSignature,keyEncipherment"
    if [ -n "$san" ]; then echo "extendedKeyUsage=serverAuth,clientAuth"; echo "subjectAltName=$san"
    else echo "extendedKeyUsage=clientAuth"; fi; } >"$ext"
  openssl x509 -req -in "$PKI/$name.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -CAcreateserial \
    -days 2 -extfile "$ext" -out "$PKI/$name.crt" 2>/dev/null
}
openssl req -x509 -new -newkey rsa:2048 -nodes -keyout "$PKI/ca.key" -subj "/CN=meshproof-control-plane-ca" \
  -days 2 -out "$PKI/ca.crt" 2>/dev/null
cert apiserver "/CN=kube-apiserver" "IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default.svc"
cert admin "/O=system:masters/CN=meshproof-admin"
cert kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client"
cert controller-manager "/CN=system:kube-controller-manager"
cert scheduler "/CN=system:kube-scheduler"
cert kwok "/O=system:masters/CN=kwok"  # KWOK acts for every fake node: leases, node and pod status
cert kwok-serving "/CN=kwok-kubelet" "IP:127.0.0.1,DNS:localhost"
cert istiod "/O=system:masters/CN=istiod"  # istiod's ClusterRole is not installed; it runs as an admin
openssl genrsa -out "$PKI/sa.key" 2048 2>/dev/null
openssl rsa -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>/dev/null

APISERVER="https://127.0.0.1:$APISERVER_PORT"
kubeconfig() { # kubeconfig NAME: a kubeconfig for the client certificate NAME
  cat >"$S/$1.kubeconfig" <<KC
apiVersion: v1
kind: Config
clusters:
- name: meshproof-control-plane
  cluster: {server: "$APISERVER", certificate-authority: "$PKI/ca.crt"}
users:
- name: $1
  user: {client-certificate: "$PKI/$1.crt", client-key: "$PKI/$1.key"}
contexts:
- name: meshproof-control-plane
  context: {cluster: meshproof-control-plane, user: $1, namespace: default}
current-context: meshproof-control-plane
KC
}
for who in admin controller-manager scheduler kwok istiod; do kubeconfig "$who"; done
KUBECONFIG_OUT="$S/admin.kubeconfig"
kubectl() { "$BIN/kubectl" --kubeconfig "$KUBECONFIG_OUT" --request-timeout=30s "$@"; }

# --- etcd, apiserver -----------------------------------------------------------------------------------
cp_say "starting etcd on 127.0.0.1:$ETCD_PORT"
start etcd "$BIN/etcd" --name meshproof --data-dir "$S/etcd" \
  --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
  --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
  --initial-cluster "meshproof=http://127.0.0.1:$ETCD_PEER_PORT" --unsafe-no-fsync --log-level warn
wait_until 60 "etcd health" curl -fsS -m 5 "http://127.0.0.1:$ETCD_PORT/health"

cp_say "starting kube-apiserver on $APISERVER"
start kube-apiserver "$BIN/kube-apiserver" \
  --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
  --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$APISERVER_PORT" \
  --tls-cert-file "$PKI/apiserver.crt" --tls-private-key-file "$PKI/apiserver.key" \
  --client-ca-file "$PKI/ca.crt" \
  --service-account-key-file "$PKI/sa.pub" --service-account-signing-key-file "$PKI/sa.key" \
  --service-account-issuer https://kubernetes.default.svc.cluster.local \
  --authorization-mode Node,RBAC \
  --service-cluster-ip-range 10.96.0.0/16 \
  --endpoint-reconciler-type none \
  --allow-privileged=true \
  --kubelet-client-certificate "$PKI/kubelet-client.crt" --kubelet-client-key "$PKI/kubelet-client.key" \
  --kubelet-preferred-address-types InternalIP \
  --profiling=false
curl_api() { curl -fsS -m 5 --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" "$APISERVER$1"; }
wait_until 120 "kube-apiserver /readyz" curl_api /readyz

cp_say "starting kube-controller-manager and kube-scheduler"
start kube-controller-manager "$BIN/kube-controller-manager" \
  --kubeconfig "$S/controller-manager.kubeconfig" \
  --authentication-kubeconfig "$S/controller-manager.kubeconfig" \
  --authorization-kubeconfig "$S/controller-manager.kubeconfig" \
  --bind-address 127.0.0.1 --secure-port "$KCM_PORT" \
  --use-service-account-credentials=true \
  --service-account-private-key-file "$PKI/sa.key" --root-ca-file "$PKI/ca.crt" \
  --cluster-signing-cert-file "$PKI/ca.crt" --cluster-signing-key-file "$PKI/ca.key" \
  --leader-elect=false --profiling=false
start kube-scheduler "$BIN/kube-scheduler" \
  --kubeconfig "$S/scheduler.kubeconfig" \
  --authentication-kubeconfig "$S/scheduler.kubeconfig" \
  --authorization-kubeconfig "$S/scheduler.kubeconfig" \
  --bind-address 127.0.0.1 --secure-port "$SCHED_PORT" \
  --leader-elect=false --profiling=false
healthz() { curl -fsSk -m 5 "https://127.0.0.1:$1/healthz"; }
wait_until 60 "kube-controller-manager /healthz" healthz "$KCM_PORT"
wait_until 60 "kube-scheduler /healthz" healthz "$SCHED_PORT"

# --- KWOK and its node ---------------------------------------------------------------------------------
KWOK_STAGES="$(dirname "$BIN")/kwok-stages"
mkdir -p "$S/kwok/exec"
# What kwok serves as every fake pod's logs, in the CRI log-file format a kubelet reads (time stream tag
# message): not output of any tool, markers the tests compare with what the logs API returns.
printf '%s stdout F control-plane tier: current log of a KWOK pod\n%s stderr F second line\n' \
  2026-01-01T00:00:00.000000001Z 2026-01-01T00:00:00.000000002Z >"$S/kwok/pod.log"
printf '%s stdout F control-plane tier: previous log of a KWOK pod\n' 2026-01-01T00:00:00.000000000Z \
  >"$S/kwok/previous.log"
{
  cat <<KWOK
# KWOK v0.8.0 exits on a KwokConfiguration that leaves options out, so every option is spelled out.
apiVersion: config.kwok.x-k8s.io/v1alpha1
kind: KwokConfiguration
metadata:
  name: meshproof-control-plane
options:
  enableCRDs: []
  cidr: 10.244.0.0/16
  nodeIP: 127.0.0.1
  nodeName: ""
  nodePort: $KWOK_PORT
  tlsCertFile: $PKI/kwok-serving.crt
  tlsPrivateKeyFile: $PKI/kwok-serving.key
  manageSingleNode: ""
  manageAllNodes: false
  manageNodesWithAnnotationSelector: kwok.x-k8s.io/node=fake
  manageNodesWithLabelSelector: ""
  disregardStatusWithAnnotationSelector: ""
  disregardStatusWithLabelSelector: ""
  serverAddress: 127.0.0.1:$KWOK_PORT
  enableDebuggingHandlers: true
  enableContentionProfiling: false
  enableProfilingHandler: false
  podPlayStageParallelism: 4
  nodePlayStageParallelism: 4
  nodeLeaseDurationSeconds: 40
  nodeLeaseParallelism: 4
  podsOnNodeSyncParallelism: 1
  enablePodsOnNodeSyncListPager: true
  enablePodsOnNodeSyncStreamWatch: false
tracing:
  endpoint: ""
  samplingRatePerMillion: 0
---
# Every fake pod: exec runs the command on this machine (in $S/kwok/exec), logs (and previous logs) from
# $S/kwok/pod.log, a port-forward to any pod port reaches 127.0.0.1:$KWOK_FORWARD_PORT.
apiVersion: kwok.x-k8s.io/v1alpha1
kind: ClusterExec
metadata:
  name: meshproof-local-exec
spec:
  execs:
  - local:
      workDir: $S/kwok/exec
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: ClusterLogs
metadata:
  name: meshproof-pod-log
spec:
  logs:
  - logsFile: $S/kwok/pod.log
    previousLogsFile: $S/kwok/previous.log
    follow: false
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: ClusterPortForward
metadata:
  name: meshproof-forward
spec:
  forwards:
  - target:
      address: 127.0.0.1
      port: $KWOK_FORWARD_PORT
KWOK
  # KWOK's own stages (from the kwok module the build fetched): nodes become Ready and keep a lease,
  # pods are scheduled to Ready, completed and deleted like a kubelet would.
  for f in "$KWOK_STAGES"/*.yaml; do echo "---"; cat "$f"; done
} >"$S/kwok/kwok.yaml"
cp_say "starting kwok (fake kubelet on 127.0.0.1:$KWOK_PORT)"
start kwok "$BIN/kwok" --kubeconfig "$S/kwok.kubeconfig" --config "$S/kwok/kwok.yaml"
kubectl apply --server-side --field-manager meshproof-control-plane -f - >/dev/null <<NODE
apiVersion: v1
kind: Node
metadata:
  name: kwok-node-0
  annotations:
    node.alpha.kubernetes.io/ttl: "0"
    kwok.x-k8s.io/node: fake
  labels:
    kubernetes.io/hostname: kwok-node-0
    kubernetes.io/os: linux
    kubernetes.io/arch: amd64
    type: kwok
spec: {}
NODE
wait_until 90 "fake node kwok-node-0 Ready" kubectl wait --for condition=Ready node/kwok-node-0 --timeout 5s

# --- CRDs ----------------------------------------------------------------------------------------------
cp_say "installing the Istio 1.27.9, Gateway API v1.3.0 (standard), GIE and OSSM 3.2 Sail CRDs from $UPSTREAM"
crds=(
  "$UPSTREAM/istio-1.27.9/manifests/charts/base/files/crd-all.gen.yaml"
  "$UPSTREAM"/gateway-api-v1.3.0/config/crd/standard/*.yaml
  "$UPSTREAM"/gie-v0.5.1/config/crd/bases/inference.networking.x-k8s.io_*.yaml
  "$UPSTREAM/gie-v1.0.1/config/crd/bases/inference.networking.k8s.io_inferencepools.yaml"
  # OSSM 3.2's Sail operator API (Istio, IstioCNI, ZTunnel v1 + v1alpha1, ...): what `--installer sail`
  # renders is dry-run against these; the contract tier checks each Sail variant separately.
  "$UPSTREAM"/ossm-sail-operator-release-3.2/chart/crds/sailoperator.io_*.yaml
)
for f in "${crds[@]}"; do kubectl apply --server-side --field-manager meshproof-control-plane -f "$f" >/dev/null; done
wait_until 60 "CRDs Established" kubectl wait --for condition=Established crd --all --timeout 5s

# --- istiod --------------------------------------------------------------------------------------------
cp_say "starting istiod (ambient) on 127.0.0.1: http $ISTIOD_HTTP_PORT, webhooks $ISTIOD_WEBHOOK_PORT"
# defaultRevision=default adds istiod-default-validator (webhook validation.istio.io), which validates
# objects without an istio.io/rev label, as `istioctl install` sets up for the default revision.
"$BIN/istioctl" manifest generate --set profile=ambient --set values.defaultRevision=default \
  >"$S/istiod/manifest.yaml" 2>"$LOGS/istioctl-manifest.log"
"$PYTHON" "$CP_HERE/istiod_local.py" --manifest "$S/istiod/manifest.yaml" --out "$S/istiod" \
  --webhook-port "$ISTIOD_WEBHOOK_PORT"
kubectl create namespace istio-system --dry-run=client -o yaml | kubectl apply --server-side -f - >/dev/null
kubectl apply --server-side --field-manager meshproof-control-plane -f "$S/istiod/cluster.yaml" >/dev/null
(
  cd "$S/istiod"
  set -a
  # shellcheck disable=SC1091
  . ./env
  POD_NAME=istiod-local POD_NAMESPACE=istio-system SERVICE_ACCOUNT=istiod REVISION=default
  ISTIOD_CUSTOM_HOST=localhost PILOT_ENABLE_AMBIENT=true KUBECONFIG="$S/istiod.kubeconfig"
  INJECTION_WEBHOOK_CONFIG_NAME=istio-sidecar-injector
  set +a
  start istiod "$BIN/pilot-discovery" discovery \
    --kubeconfig "$S/istiod.kubeconfig" \
    --httpAddr "127.0.0.1:$ISTIOD_HTTP_PORT" --grpcAddr "127.0.0.1:$ISTIOD_GRPC_PORT" \
    --secureGRPCAddr "127.0.0.1:$ISTIOD_XDS_PORT" --httpsAddr "127.0.0.1:$ISTIOD_WEBHOOK_PORT" \
    --monitoringAddr "127.0.0.1:$ISTIOD_MONITORING_PORT" \
    --meshConfig ./etc/istio/config/mesh --networksConfig ./etc/istio/config/meshNetworks \
    --domain cluster.local --keepaliveMaxServerConnectionAge 30m --log_output_level default:info
)
wait_until 120 "istiod /ready" curl -fsS -m 5 "http://127.0.0.1:$ISTIOD_HTTP_PORT/ready"
# istiod patches its CA into both webhooks and turns the validator's failurePolicy to Fail once it has
# seen its own webhook reject a bad object: then admission is really going through istiod.
validator_ready() {
  local out
  out="$(kubectl get validatingwebhookconfiguration -l app=istiod \
    -o jsonpath='{range .items[*].webhooks[*]}{.failurePolicy}{" "}{.clientConfig.caBundle}{"\n"}{end}')"
  [ -n "$out" ] && ! grep -qv '^Fail [A-Za-z0-9+/=]\{20,\}' <<<"$out"
}
injector_ready() {
  local out
  out="$(kubectl get mutatingwebhookconfiguration istio-sidecar-injector \
    -o jsonpath='{range .webhooks[*]}{.clientConfig.caBundle}{"\n"}{end}')"
  [ -n "$out" ] && ! grep -qv '^[A-Za-z0-9+/=]\{20,\}' <<<"$out"
}
wait_until 120 "istiod's validating webhook (caBundle patched, failurePolicy Fail)" validator_ready
wait_until 60 "istiod's injection webhook (caBundle patched)" injector_ready

cat >"$S/env" <<ENV
# The control-plane tier started by scripts/control-plane/up.sh; source this file.
export KUBECONFIG="$KUBECONFIG_OUT"
export MESHPROOF_CONTROL_PLANE_DIR="$S"
export MESHPROOF_CP_BIN="$BIN"
export MESHPROOF_CP_APISERVER="$APISERVER"
export MESHPROOF_CP_ETCD_PORT=$ETCD_PORT
export MESHPROOF_CP_ETCD_PEER_PORT=$ETCD_PEER_PORT
export MESHPROOF_CP_APISERVER_PORT=$APISERVER_PORT
export MESHPROOF_CP_CONTROLLER_MANAGER_PORT=$KCM_PORT
export MESHPROOF_CP_SCHEDULER_PORT=$SCHED_PORT
export MESHPROOF_CP_KWOK_PORT=$KWOK_PORT
export MESHPROOF_CP_KWOK_FORWARD_PORT=$KWOK_FORWARD_PORT
export MESHPROOF_CP_ISTIOD_HTTP_PORT=$ISTIOD_HTTP_PORT
export MESHPROOF_CP_ISTIOD_GRPC_PORT=$ISTIOD_GRPC_PORT
export MESHPROOF_CP_ISTIOD_XDS_PORT=$ISTIOD_XDS_PORT
export MESHPROOF_CP_ISTIOD_WEBHOOK_PORT=$ISTIOD_WEBHOOK_PORT
export MESHPROOF_CP_ISTIOD_MONITORING_PORT=$ISTIOD_MONITORING_PORT
ENV
trap - ERR
cp_say "up in $((SECONDS - t0)) s; KUBECONFIG=$KUBECONFIG_OUT (all settings: . $S/env)"
