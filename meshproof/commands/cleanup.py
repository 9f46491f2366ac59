"""`meshproof cleanup`: delete what meshproof created, found by its labels, in the configured clusters.

`--run-id ID` removes one run's objects, `--all` every run's. Namespaces go first (their contents go with
them), then labelled objects in other namespaces, then cluster-scoped objects. `--dry-run` only lists.
Clusters: every `--context`; without one, for `--provider kind` the kind contexts of `--cluster-name`
(kind-meshproof, kind-meshproof-2, ...), otherwise the kubeconfig's current context.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any

from meshproof.config import RunConfig, add_argparse_options, config_from_namespace, parse_run_id
from meshproof.kube import Cluster, ClusterError
from meshproof.kube_connect import kubeconfig_path
from meshproof.kube_objects import ANY_RUN_SELECTOR, selector_for_run

ClusterFactory = Callable[[str | None, RunConfig], Cluster]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "cleanup",
        help="delete objects meshproof created (by run id, or all runs)",
        description="Delete every object carrying meshproof's run label in the configured clusters.",
    )
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--run-id", dest="cleanup_run_id", metavar="ID", help="delete the objects of this run")
    which.add_argument(
        "--all", dest="cleanup_all", action="store_true", help="delete the objects of every run"
    )
    parser.add_argument("--dry-run", action="store_true", help="list what would be deleted, delete nothing")
    add_argparse_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace, make_cluster: ClusterFactory | None = None) -> int:
    cfg = config_from_namespace(args)
    selector = (
        ANY_RUN_SELECTOR
        if args.cleanup_all
        else selector_for_run(parse_run_id(args.cleanup_run_id, "--run-id"))
    )
    make = make_cluster or _cluster_for
    verb = "would delete" if args.dry_run else "deleted"
    failures = 0
    total = 0
    contexts = target_contexts(cfg)
    for context in contexts:
        label = context or "current context"
        try:
            cluster = make(context, cfg)
            refs = cluster.delete_labelled(selector, dry_run=args.dry_run)
        except ClusterError as exc:
            print(f"meshproof cleanup: {label}: {exc}", file=sys.stderr)
            failures += 1
            continue
        for ref in refs:
            print(f"{verb} {ref} (cluster {cluster.name})")
        total += len(refs)
        if not refs:
            print(f"nothing labelled {selector} in cluster {cluster.name}")
    if failures < len(contexts):  # every cluster failed: its own line already said all there is
        print(f"{verb} {total} object(s)" + (f"; {failures} cluster(s) failed" if failures else ""))
    return 1 if failures else 0


def target_contexts(cfg: RunConfig) -> Sequence[str | None]:
    if cfg.contexts:
        return list(cfg.contexts)
    if cfg.provider == "kind":
        kind_contexts = _kind_contexts(cfg)
        if kind_contexts:
            return kind_contexts
    return [None]


def _kind_contexts(cfg: RunConfig) -> list[str]:
    from kubernetes import config as k8s_config

    try:
        path = kubeconfig_path(cfg.kubeconfig)
        contexts, _ = k8s_config.list_kube_config_contexts(config_file=path) if path else ([], None)
    except Exception:
        return []  # the Cluster constructor reports kubeconfig problems in one line
    prefix = f"kind-{cfg.cluster_name}"
    names = [str(c.get("name")) for c in contexts or []]
    return [n for n in names if n == prefix or n.startswith(prefix + "-")]


def _cluster_for(context: str | None, cfg: RunConfig) -> Cluster:
    return Cluster(context, cfg.kubeconfig, cfg.run_id)
