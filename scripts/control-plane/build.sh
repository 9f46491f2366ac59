#!/usr/bin/env bash
# Build (or restore) the control-plane tier's binaries from the Go module proxy:
#   etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, kwok, pilot-discovery, istioctl.
# They land in ${MESHPROOF_CACHE_DIR:-$HOME/.cache/meshproof}/control-plane/<key>/bin, OUTSIDE the repository,
# so a later clone on the same machine reuses them; <key> hashes versions.env and this script. Prints the bin
# directory on stdout (the last line); progress goes to stderr.
# Cold: ~10 min on 2 idle cores, ~9 GB of Go module and build cache while building; warm: nothing to do.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=versions.env
. "$HERE/versions.env"

if ! command -v go >/dev/null 2>&1; then
  echo "control-plane build: the Go toolchain is required (Go >= 1.25)" >&2
  exit 1
fi

key="$(cat "$HERE/versions.env" "$HERE/build.sh" | sha256sum | cut -c1-16)"
root="${MESHPROOF_CACHE_DIR:-$HOME/.cache/meshproof}/control-plane/$key"
bin="$root/bin"
if [ -f "$bin/.complete" ]; then
  echo "control-plane build: restored from $bin" >&2
  echo "$bin"
  exit 0
fi

work="$root/work"
rm -rf "$work" "$bin.partial" "$root/kwok-stages.partial"
mkdir -p "$work" "$bin.partial"
export GOPROXY="${GOPROXY:-https://proxy.golang.org,direct}"
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS="-mod=mod -buildvcs=false -trimpath"
say() { echo "control-plane build: $(date -u +%H:%M:%S) $*" >&2; }

# Where `go mod download` put a module; prints its directory.
module_dir() {
  (cd "$work" && GOFLAGS= go mod download -json "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')
}

# A builder module of our own per upstream (their dependency graphs differ): it requires the published
# module and builds its main packages. Usage: new_builder NAME; then write go.mod lines to "$work/NAME/go.mod".
new_builder() {
  mkdir -p "$work/$1"
  printf 'module meshproof.local/controlplane/%s\n\ngo 1.24\n' "$1" >"$work/$1/go.mod"
}

build_etcd() {
  # etcd's own go.mod replaces its sibling modules with ../ paths, so `go install pkg@version` refuses it.
  new_builder etcd
  printf 'require go.etcd.io/etcd/server/v3 %s\n' "$ETCD_VERSION" >>"$work/etcd/go.mod"
  (cd "$work/etcd" && go build -ldflags "-s -w" -o "$bin.partial/etcd" go.etcd.io/etcd/server/v3)
}

build_kubernetes() {
  # k8s.io/kubernetes requires its staging modules at v0.0.0 and replaces them with ./staging paths;
  # the builder replaces each with the published v0.<minor>.<patch> of the same tag.
  local dir gomod stagever
  dir="$(module_dir "k8s.io/kubernetes@$KUBERNETES_VERSION")"
  stagever="v0.${KUBERNETES_VERSION#v1.}"
  new_builder kubernetes
  gomod="$work/kubernetes/go.mod"
  printf 'require k8s.io/kubernetes %s\n' "$KUBERNETES_VERSION" >>"$gomod"
  awk '$1 ~ /^k8s\.io\// && $2 == "=>" && $3 ~ /^\.\/staging\// {print "replace " $1 " => " $1 " '"$stagever"'"}' \
    "$dir/go.mod" >>"$gomod"
  say "kubernetes: $(grep -c '^replace' "$gomod") staging modules replaced with $stagever"
  local minor="${KUBERNETES_VERSION#v1.}"; minor="${minor%%.*}"
  local ld="-s -w" p
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld="$ld -X $p.gitVersion=$KUBERNETES_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor"
    ld="$ld -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
  done
  (cd "$work/kubernetes" && go build -ldflags "$ld" -o "$bin.partial/" \
    k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl)
}

build_kwok() {
  new_builder kwok
  printf 'require sigs.k8s.io/kwok %s\n' "$KWOK_VERSION" >>"$work/kwok/go.mod"
  (cd "$work/kwok" && go build -ldflags "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=$KWOK_VERSION" \
    -o "$bin.partial/kwok" sigs.k8s.io/kwok/cmd/kwok)
  # KWOK only moves nodes and pods through the Stages it is configured with; keep its own "fast" set
  # (kustomize/stage/fast: node-initialize, node-heartbeat-with-lease, pod-ready/complete/delete) from
  # the same module version beside the binaries, for up.sh.
  local dir f
  dir="$(module_dir "sigs.k8s.io/kwok@$KWOK_VERSION")"
  mkdir -p "$root/kwok-stages.partial"
  for f in node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
    pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do
    cp "$dir/kustomize/stage/$f" "$root/kwok-stages.partial/"
  done
}

build_istio() {
  # The istio module's go.sum goes into the builder: one of its dependencies is unknown to the checksum
  # database, and go.sum lines are how a module vouches for what it was built with.
  local dir
  dir="$(module_dir "istio.io/istio@$ISTIO_MODULE_VERSION")"
  new_builder istio
  printf 'require istio.io/istio %s\n' "$ISTIO_MODULE_VERSION" >>"$work/istio/go.mod"
  # Replace directives of a dependency are ignored by Go; carry istio's own over so we build what it builds.
  awk '/^replace \(/{inb=1; next} inb && /^\)/{inb=0; next} inb && NF {print "replace " $0; next}
       /^replace / {print}' "$dir/go.mod" >>"$work/istio/go.mod"
  cp "$dir/go.sum" "$work/istio/go.sum"
  chmod u+w "$work/istio/go.sum"
  local v="istio.io/istio/pkg/version"
  (cd "$work/istio" && go build \
    -ldflags "-s -w -X $v.buildVersion=$ISTIO_MODULE_VERSION -X $v.buildStatus=Clean -X $v.buildTag=$ISTIO_MODULE_VERSION" \
    -o "$bin.partial/" istio.io/istio/pilot/cmd/pilot-discovery istio.io/istio/istioctl/cmd/istioctl)
}

start=$SECONDS
for part in etcd kwok kubernetes istio; do
  say "building $part"
  t=$SECONDS
  "build_$part"
  say "$part built in $((SECONDS - t)) s"
done
{ cat "$HERE/versions.env"; go version; } >"$bin.partial/VERSIONS"
rm -rf "$root/kwok-stages" && mv "$root/kwok-stages.partial" "$root/kwok-stages"
chmod -R u+w "$root/kwok-stages"
rm -rf "$bin" && mv "$bin.partial" "$bin" && touch "$bin/.complete"
rm -rf "$work"
say "all built in $((SECONDS - start)) s into $bin"
echo "$bin"
