"""`meshproof cleanup` end to end against the fake API server: parse options, connect through a kubeconfig,
delete by label, print what was deleted.

What it cannot prove (fake API server): real namespace finalization and garbage collection, RBAC on the
delete calls, or how long a real cluster takes to remove a namespace.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from fixtures_data.kube_apiserver import FakeApiServer

from meshproof.commands import cleanup
from meshproof.config import load_config
from meshproof.kube import Cluster

THIS_RUN, OTHER_RUN = "20261126-064501-a3f9", "20261125-101010-beef"
APP = """\
apiVersion: v1
kind: Namespace
metadata: {name: mp-authz}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: app, namespace: mp-authz}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: strict, namespace: istio-system}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: mp-reader}
"""


@pytest.fixture
def api() -> Iterator[FakeApiServer]:
    with FakeApiServer() as server:
        yield server


@pytest.fixture
def kubeconfig(api: FakeApiServer, tmp_path: Path) -> Path:
    path = api.write_kubeconfig(tmp_path / "kubeconfig", context="kind-fake")
    Cluster("kind-fake", path, THIS_RUN).apply(APP)
    Cluster("kind-fake", path, OTHER_RUN).apply("apiVersion: v1\nkind: Namespace\nmetadata: {name: mp-old}\n")
    # something meshproof did not create, next to what it did
    api.put(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "istio", "namespace": "istio-system"}}
    )
    return path


def run_cleanup(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="meshproof")
    cleanup.register(parser.add_subparsers())
    args = parser.parse_args(["cleanup", *argv])
    return int(args.func(args))


def names(api: FakeApiServer) -> set[str]:
    return {key[3] for key in api.state.objects}


def test_cleanup_of_one_run_deletes_its_objects_namespaces_first(
    api: FakeApiServer, kubeconfig: Path, capsys: pytest.CaptureFixture[str]
):
    rc = run_cleanup("--run-id", THIS_RUN, "--provider", "existing", "--kubeconfig", str(kubeconfig))
    assert rc == 0
    assert capsys.readouterr().out.splitlines() == [
        "deleted Namespace mp-authz (cluster kind-fake)",
        "deleted PeerAuthentication istio-system/strict (cluster kind-fake)",
        "deleted ClusterRole mp-reader (cluster kind-fake)",
        "deleted 3 object(s)",
    ]
    assert names(api) == {"mp-old", "istio"}  # the other run and unlabelled objects stay


def test_dry_run_lists_and_deletes_nothing(
    api: FakeApiServer, kubeconfig: Path, capsys: pytest.CaptureFixture[str]
):
    before = names(api)
    rc = run_cleanup("--all", "--dry-run", "--context", "kind-fake", "--kubeconfig", str(kubeconfig))
    assert rc == 0
    out = capsys.readouterr().out.splitlines()
    assert "would delete Namespace mp-old (cluster kind-fake)" in out
    assert out[-1] == "would delete 4 object(s)"
    assert names(api) == before
    assert not [r for r in api.requests if r.method == "DELETE"]


def test_all_runs(api: FakeApiServer, kubeconfig: Path, capsys: pytest.CaptureFixture[str]):
    assert run_cleanup("--all", "--context", "kind-fake", "--kubeconfig", str(kubeconfig)) == 0
    assert names(api) == {"istio"}


def test_nothing_to_delete_is_said_plainly(
    api: FakeApiServer, kubeconfig: Path, capsys: pytest.CaptureFixture[str]
):
    assert (
        run_cleanup("--run-id", "no-such-run", "--context", "kind-fake", "--kubeconfig", str(kubeconfig)) == 0
    )
    assert capsys.readouterr().out.splitlines() == [
        "nothing labelled meshproof.io/run-id=no-such-run in cluster kind-fake",
        "deleted 0 object(s)",
    ]


def test_an_unusable_context_is_one_line_on_stderr_and_a_failing_exit(
    kubeconfig: Path, capsys: pytest.CaptureFixture[str]
):
    rc = run_cleanup("--all", "--context", "kind-gone", "--kubeconfig", str(kubeconfig))
    assert rc == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"meshproof cleanup: kind-gone: kubeconfig {kubeconfig} has no context 'kind-gone'; "
        "available: kind-fake"
    ]


def test_run_id_or_all_is_required(capsys: pytest.CaptureFixture[str]):
    with pytest.raises(SystemExit) as exit_info:
        run_cleanup("--dry-run")
    assert exit_info.value.code == 2
    assert "one of the arguments --run-id --all is required" in capsys.readouterr().err


def test_kind_provider_without_contexts_targets_the_kind_clusters_of_the_cluster_name(tmp_path: Path):
    path = tmp_path / "kubeconfig"
    contexts = ["kind-meshproof", "kind-meshproof-2", "kind-other", "prod"]
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "prod",
                "clusters": [{"name": c, "cluster": {"server": "https://127.0.0.1:1"}} for c in contexts],
                "users": [{"name": "u", "user": {}}],
                "contexts": [{"name": c, "context": {"cluster": c, "user": "u"}} for c in contexts],
            }
        )
    )
    kind = load_config({"provider": "kind", "kubeconfig": str(path)}, env={})
    assert cleanup.target_contexts(kind) == ["kind-meshproof", "kind-meshproof-2"]
    existing = load_config({"provider": "existing", "kubeconfig": str(path)}, env={})
    assert cleanup.target_contexts(existing) == [None]  # the current context
    chosen = load_config({"provider": "kind", "context": ["prod"], "kubeconfig": str(path)}, env={})
    assert cleanup.target_contexts(chosen) == ["prod"]
