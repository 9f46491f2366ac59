"""Turn `istioctl manifest generate` output into what a local pilot-discovery needs (used by up.sh).

istiod normally runs in a pod with its mesh config and injector templates mounted from ConfigMaps and
its webhooks reached through the `istiod` Service. On loopback there is no pod and no Service, so this
writes, under OUT:
  etc/istio/config/mesh, etc/istio/config/meshNetworks    the `istio` ConfigMap (istiod's --meshConfig)
  var/lib/istio/inject/config, var/lib/istio/inject/values the `istio-sidecar-injector` ConfigMap
  cluster.yaml   the istio-system objects the apiserver needs: the two ConfigMaps and both webhook
                 configurations, each webhook's `service` reference replaced by https://localhost:PORT/path
  env            istiod's environment from the generated Deployment (literal values only; up.sh sets the
                 downward-API ones), one NAME=VALUE a line
Nothing here is upstream code: it reads the manifest istioctl printed and rewrites four fields.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

WEBHOOK_KINDS = ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration")
CONFIGMAPS = ("istio", "istio-sidecar-injector")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manifest", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--webhook-port", type=int, required=True)
    args = parser.parse_args(argv)

    docs = [d for d in yaml.safe_load_all(args.manifest.read_text()) if isinstance(d, dict)]
    configmaps = {d["metadata"]["name"]: d for d in docs if d.get("kind") == "ConfigMap"}
    missing = [name for name in CONFIGMAPS if name not in configmaps]
    webhooks = [d for d in docs if d.get("kind") in WEBHOOK_KINDS]
    deployments = [d for d in docs if d.get("kind") == "Deployment" and d["metadata"]["name"] == "istiod"]
    if missing or len(webhooks) < 2 or not deployments:
        print(
            f"istiod_local: manifest lacks ConfigMaps {missing}, webhooks ({len(webhooks)}) or the istiod "
            "Deployment",
            file=sys.stderr,
        )
        return 1

    write(args.out / "etc/istio/config/mesh", configmaps["istio"]["data"]["mesh"])
    write(args.out / "etc/istio/config/meshNetworks", configmaps["istio"]["data"].get("meshNetworks", ""))
    injector = configmaps["istio-sidecar-injector"]["data"]
    write(args.out / "var/lib/istio/inject/config", injector["config"])
    write(args.out / "var/lib/istio/inject/values", injector["values"])

    for config in webhooks:
        for hook in config.get("webhooks") or []:
            hook["clientConfig"] = loopback_client_config(hook["clientConfig"], args.webhook_port)
    objects = [configmaps[name] for name in CONFIGMAPS] + webhooks
    write(args.out / "cluster.yaml", yaml.safe_dump_all(objects, sort_keys=False))

    container = next(
        c for c in deployments[0]["spec"]["template"]["spec"]["containers"] if c["name"] == "discovery"
    )
    env_lines = [f"{e['name']}={e['value']}" for e in container.get("env") or [] if "value" in e]
    write(args.out / "env", "\n".join(env_lines) + "\n")
    return 0


def loopback_client_config(client_config: dict[str, Any], port: int) -> dict[str, Any]:
    """The Service reference istiod's chart writes, as a URL on loopback (the apiserver cannot reach a
    Service without a network); caBundle stays empty: istiod patches it with its own CA."""
    service = client_config.get("service") or {}
    path = service.get("path") or "/"
    return {"url": f"https://localhost:{port}{path}"}


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
