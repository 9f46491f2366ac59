"""`meshproof doctor` and the preflight checks the pytest plugin reuses.

Real subprocesses, real kubeconfig files and a real HTTP server on 127.0.0.1 playing the API server's
/version endpoint; the kubernetes client does the actual request. Tools are small shell scripts on a
PATH the test controls. What this cannot prove: behaviour against a real kube-apiserver over TLS with
real authentication, or a real docker daemon (this machine has none).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import socket
import stat
import subprocess
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from fixtures_data.kube_apiserver import FakeApiServer
from fixtures_data.servers import serving_in_background
from fixtures_data.shared_data import capture, upstream

from meshproof import tools
from meshproof.commands import doctor, doctor_ambient
from meshproof.config import load_config
from meshproof.mesh.record import record_step
from meshproof.mesh.spec import MeshSpec

TOKEN = "sekret-token-4f1c9e"
VERSION_JSON = {
    "major": "1",
    "minor": "34",
    "gitVersion": "v1.34.0",
    "gitCommit": "f28b4c9efbca5c5c0af716d9f2d5702667ee8a45",
    "gitTreeState": "clean",
    "buildDate": "2025-08-27T10:15:59Z",
    "goVersion": "go1.24.6",
    "compiler": "gc",
    "platform": "linux/amd64",
}


def write_exe(directory: Path, name: str, body: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def kubeconfig(
    path: Path, server: str, contexts: tuple[str, ...] = ("ctx-a",), current: str | None = "ctx-a"
) -> Path:
    lines = [
        "apiVersion: v1",
        "kind: Config",
        "clusters:",
        "- name: c1",
        f"  cluster: {{server: '{server}'}}",
        "users:",
        "- name: u1",
        f"  user: {{token: '{TOKEN}'}}",
        "contexts:",
    ]
    for ctx in contexts:
        lines += [f"- name: {ctx}", "  context: {cluster: c1, user: u1}"]
    if current:
        lines.append(f"current-context: {current}")
    path.write_text("\n".join(lines) + "\n")
    return path


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """A PATH with only what the test writes (plus `sleep`) and an empty cache.

    The scripts' `#!/bin/sh` is absolute, so no system directory goes on PATH: a real kubectl or
    docker on this machine cannot leak into the checks.
    """
    path_dir = tmp_path / "path"
    path_dir.mkdir()
    sysbin = tmp_path / "sysbin"
    sysbin.mkdir()
    sleep = shutil.which("sleep")
    assert sleep is not None
    (sysbin / "sleep").symlink_to(sleep)
    monkeypatch.setenv("PATH", f"{path_dir}:{sysbin}")
    monkeypatch.setenv(tools.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setattr(tools, "checkout_bin_dir", lambda: tmp_path / "checkout-bin")
    monkeypatch.delenv("MESHPROOF_FORTIO", raising=False)
    monkeypatch.delenv("KUBECONFIG", raising=False)
    return {"path": path_dir, "tmp": tmp_path}


@pytest.fixture
def api_server() -> Iterator[dict[str, object]]:
    """Answers GET /version like kube-apiserver; records the Authorization header it was sent."""
    seen: dict[str, object] = {"auth": None}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen["auth"] = self.headers.get("Authorization")
            if self.path.split("?")[0].rstrip("/") != "/version":
                self.send_error(404)
                return
            body = json.dumps(VERSION_JSON).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    with serving_in_background(ThreadingHTTPServer(("127.0.0.1", 0), Handler)) as httpd:
        seen["url"] = f"http://127.0.0.1:{httpd.server_address[1]}"
        yield seen


def run_doctor(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="meshproof")
    doctor.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["doctor", *argv])
    return int(args.func(args))


def by_name(results: list[doctor.CheckResult]) -> dict[str, doctor.CheckResult]:
    return {r.name: r for r in results}


# --- provider kind -----------------------------------------------------------------------------------------


def test_kind_without_tools_fails_fast_naming_each_missing_tool(
    env: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    started = time.monotonic()
    rc = run_doctor(["--provider", "kind"])
    elapsed = time.monotonic() - started
    out = capsys.readouterr().out
    assert rc == 1
    assert elapsed < 5
    # helm too: the kind plan installs metrics-server with it
    helm = "tool helm (step 'Install metrics-server"
    for name in ("tool docker", "tool kind", "tool kubectl", "tool istioctl (installer)", helm):
        assert name in out
    assert "meshproof tools install kind" in out
    assert "Traceback" not in out
    assert out.strip().splitlines()[-1].startswith("not ready: 5 required check(s) failed")


@pytest.mark.skipif(shutil.which("docker") is None, reason="needs the docker CLI")
def test_real_docker_cli_without_a_daemon_is_reported_in_seconds() -> None:
    if subprocess.run(["docker", "info"], capture_output=True, timeout=20).returncode == 0:
        pytest.skip("a docker daemon is running here; this test is about its absence")
    started = time.monotonic()
    result = doctor.check_docker_daemon()
    assert time.monotonic() - started < doctor.DOCKER_INFO_TIMEOUT + 1
    assert not result.ok and result.required
    assert "docker" in result.detail.lower()
    assert "start the docker daemon" in result.fix


def test_docker_daemon_check_both_ways(env: dict[str, Path]) -> None:
    write_exe(
        env["path"],
        "docker",
        'echo "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. '
        'Is the docker daemon running?" >&2; exit 1',
    )
    down = doctor.check_docker_daemon()
    assert not down.ok and "Cannot connect to the Docker daemon" in down.detail

    write_exe(env["path"], "docker", 'echo "27.3.1"')
    up = doctor.check_docker_daemon()
    assert up.ok and up.detail == "docker server 27.3.1"


def test_docker_daemon_that_hangs_is_cut_off(env: dict[str, Path]) -> None:
    write_exe(env["path"], "docker", "sleep 30")
    started = time.monotonic()
    result = doctor.check_docker_daemon(timeout=0.5)
    assert time.monotonic() - started < 5
    assert not result.ok and "did not answer within 0.5s" in result.detail


def test_kind_ready_when_everything_is_there(
    env: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """Positive control: the same checks pass when the tools and the daemon are present."""
    write_exe(
        env["path"],
        "docker",
        'case "$1" in --version) echo "Docker version 27.3.1, build ce12230";; *) echo 27.3.1;; esac',
    )
    write_exe(env["path"], "kind", 'echo "kind v0.30.0 go1.24.6 linux/amd64"')
    write_exe(env["path"], "kubectl", 'echo "Client Version: v1.33.7"; echo "Kustomize Version: v5.6.0"')
    write_exe(env["path"], "istioctl", 'echo "1.27.9"')
    write_exe(env["path"], "helm", 'echo "v3.19.2+g8766e71"')
    assert run_doctor(["--provider", "kind"]) == 0
    out = capsys.readouterr().out
    assert out.strip().splitlines()[-1] == "ready"
    assert "warn" in out  # fortio is optional and absent: shown, but not failing


def test_istioctl_as_installer_must_match_the_istio_version_exactly(env: dict[str, Path]) -> None:
    write_exe(env["path"], "istioctl", 'echo "1.27.8"')
    cfg = load_config({"provider": "kind", "installer": "istioctl"}, env={})
    result = by_name(doctor.preflight(cfg, env={}))["tool istioctl (installer)"]
    assert not result.ok and result.required
    assert "1.27.8" in result.detail and "1.27.9" in result.detail
    # with another installer istioctl only reads evidence: the same minor will do...
    cfg = load_config({"provider": "kind", "installer": "helm"}, env={})
    results = by_name(doctor.preflight(cfg, env={}))
    assert results["tool istioctl (evidence)"].ok
    assert (
        results["tool helm (step 'Install metrics-server 3.12.2 (pod CPU/memory for benchmarks)')"].status
        == "FAIL"
    )
    # ...and another minor is a warning naming what reads evidence with it: no step of the run calls it
    write_exe(env["path"], "istioctl", 'echo "1.26.5"')
    evidence = by_name(doctor.preflight(cfg, env={}))["tool istioctl (evidence)"]
    assert evidence.status == "warn" and "found 1.26.5, this run targets 1.27.x" in evidence.detail
    assert "no step of this run calls it" in evidence.detail
    assert "ztunnel-config" in evidence.fix and "proxy-config secret" in evidence.fix


# --- providers with an existing cluster --------------------------------------------------------------------


def test_missing_kubeconfig_is_one_clear_line(
    env: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    missing = env["tmp"] / "nope.yaml"
    assert run_doctor(["--provider", "existing", "--kubeconfig", str(missing)]) == 1
    out = capsys.readouterr().out
    line = next(ln for ln in out.splitlines() if ln.startswith("kubeconfig"))
    assert "FAIL" in line and f"{missing} does not exist" in line


def test_bogus_kubeconfig_is_reported_without_its_contents(
    env: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    bogus = env["tmp"] / "bogus.yaml"
    bogus.write_text(f"users: [{{name: u, user: {{token: {TOKEN}}}\n  - ][\n")
    assert run_doctor(["--provider", "existing", "--kubeconfig", str(bogus)]) == 1
    out = capsys.readouterr().out
    line = next(ln for ln in out.splitlines() if ln.startswith("kubeconfig"))
    assert "FAIL" in line and "is not a usable kubeconfig" in line
    assert TOKEN not in out and "Traceback" not in out


def test_unreachable_api_server_fails_within_seconds(
    env: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    cfg_file = kubeconfig(env["tmp"] / "kc.yaml", f"http://127.0.0.1:{closed_port()}")
    started = time.monotonic()
    rc = run_doctor(["--provider", "existing", "--kubeconfig", str(cfg_file), "--installer", "sail"])
    elapsed = time.monotonic() - started
    out = capsys.readouterr().out
    assert rc == 1 and elapsed < 6
    line = next(ln for ln in out.splitlines() if ln.startswith("cluster ctx-a"))
    assert "FAIL" in line and "did not answer /version" in line and "refused" in line.lower()
    assert TOKEN not in out


def test_reachable_api_server_passes_and_credentials_stay_secret(
    env: dict[str, Path], api_server: dict[str, object], capsys: pytest.CaptureFixture[str]
) -> None:
    """Positive control for the unreachable case: same kubeconfig shape, a server that answers."""
    cfg_file = kubeconfig(env["tmp"] / "kc.yaml", str(api_server["url"]))
    write_exe(env["path"], "kubectl", 'echo "Client Version: v1.33.1"')
    write_exe(env["path"], "istioctl", 'echo "client version: 1.27.3"')  # e.g. the OSSM 3.2 istioctl
    write_exe(env["path"], "helm", 'echo "v3.19.2+g8766e71"')  # upstream Sail installs with helm
    rc = run_doctor(["--provider", "existing", "--kubeconfig", str(cfg_file), "--installer", "sail"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert api_server["auth"] == f"Bearer {TOKEN}"  # the kubeconfig's credentials were used...
    assert TOKEN not in out  # ...and never shown
    assert "answered /version: v1.34.0" in out


def test_kubectl_outside_the_skew_of_the_cluster_fails(
    env: dict[str, Path], api_server: dict[str, object]
) -> None:
    cfg_file = kubeconfig(env["tmp"] / "kc.yaml", str(api_server["url"]))
    write_exe(env["path"], "kubectl", 'echo "Client Version: v1.32.4"')
    cfg = load_config({"provider": "existing", "kubeconfig": str(cfg_file), "installer": "sail"}, env={})
    results = doctor.preflight(cfg, env={})
    skew = by_name(results)["tool kubectl (cluster is v1.34.0)"]
    assert not skew.ok and skew.required and "1.32.4" in skew.detail


def test_unknown_context_names_the_known_ones(env: dict[str, Path]) -> None:
    cfg_file = kubeconfig(env["tmp"] / "kc.yaml", "http://127.0.0.1:1", contexts=("ctx-a", "ctx-b"))
    cfg = load_config({"provider": "openshift", "kubeconfig": str(cfg_file), "context": ["nope"]}, env={})
    result = by_name(doctor.preflight(cfg, env={}))["kubeconfig contexts"]
    assert not result.ok
    assert result.detail == "context(s) nope not in the kubeconfig (known: ctx-a, ctx-b)"


def test_no_current_context_asks_for_one(env: dict[str, Path]) -> None:
    cfg_file = kubeconfig(env["tmp"] / "kc.yaml", "http://127.0.0.1:1", current=None)
    cfg = load_config({"provider": "existing", "kubeconfig": str(cfg_file)}, env={})
    result = by_name(doctor.preflight(cfg, env={}))["kubeconfig contexts"]
    assert not result.ok and "no current-context" in result.detail and "--context" in result.fix


def test_multicluster_needs_two_contexts(env: dict[str, Path], api_server: dict[str, object]) -> None:
    cfg_file = kubeconfig(env["tmp"] / "kc.yaml", str(api_server["url"]), contexts=("a", "b"), current="a")
    one = load_config(
        {"provider": "existing", "kubeconfig": str(cfg_file), "features": "multicluster"}, env={}
    )
    assert not by_name(doctor.preflight(one, env={}))["kubeconfig contexts"].ok
    two = load_config(
        {
            "provider": "existing",
            "kubeconfig": str(cfg_file),
            "features": "multicluster",
            "context": ["a", "b"],
            "installer": "sail",
        },
        env={},
    )
    results = by_name(doctor.preflight(two, env={}))
    assert "kubeconfig contexts" not in results
    assert results["cluster a"].ok and results["cluster b"].ok
    # istioctl creates the remote secrets, whatever the installer
    remote = [r for name, r in results.items() if name.startswith("tool istioctl (step 'Give")]
    assert len(remote) == 1 and remote[0].required


def test_kubeconfig_env_may_list_several_files(env: dict[str, Path], api_server: dict[str, object]) -> None:
    real = kubeconfig(env["tmp"] / "kc.yaml", str(api_server["url"]))
    cfg = load_config({"provider": "existing"}, env={})
    result, loaded = doctor.check_kubeconfig(cfg, env={"KUBECONFIG": f"{env['tmp'] / 'absent.yaml'}:{real}"})
    assert result.ok and loaded is not None and loaded.contexts == ("ctx-a",)


def test_openshift_accepts_oc_instead_of_kubectl(env: dict[str, Path]) -> None:
    write_exe(env["path"], "oc", 'echo "Client Version: 4.19.0"')
    result = doctor.check_any_tool(("oc", "kubectl"), purpose="cluster CLI")
    assert result.ok and "4.19.0" in result.detail
    (env["path"] / "oc").unlink()
    missing = doctor.check_any_tool(("oc", "kubectl"), purpose="cluster CLI")
    assert not missing.ok and "oc:" in missing.fix and "kubectl:" in missing.fix


def test_summarize_is_one_line_naming_fixes() -> None:
    results = [
        doctor.CheckResult("tool kind", False, "not found", "run `meshproof tools install kind`"),
        doctor.CheckResult("tool fortio", False, "not found", "go install", required=False),
        doctor.CheckResult("tool kubectl", True, "/usr/bin/kubectl 1.34.3"),
    ]
    line = doctor.summarize(results)
    assert "\n" not in line
    assert "tool kind: not found (fix: run `meshproof tools install kind`)" in line
    assert "fortio" not in line and "kubectl" not in line
    assert doctor.summarize(results[1:]) == ""


# --- tools for the steps the plan will run (issue 14 item 5) ----------------------------------------------


def test_a_reused_mesh_needs_no_installer_istioctl_and_the_table_says_why(env: dict[str, Path]) -> None:
    """The run of issue 14: `--provider existing --mode ambient` against a mesh already in place, with an
    istioctl built from master. A fake apiserver (tests/fixtures_data/kube_apiserver.py) serves the install
    record and the real v1.3.0 Gateway API CRDs to the real kubernetes client; it cannot prove RBAC on a
    real cluster lets the user read them (then every step counts, as the last part shows)."""
    write_exe(env["path"], "kubectl", 'echo "Client Version: v1.33.7"')
    write_exe(env["path"], "istioctl", 'echo "client version: 1.30-dev-b01690e6db7d"')
    with FakeApiServer() as api:
        cfg_file = api.write_kubeconfig(env["tmp"] / "kc.yaml", context="ctx-a")
        cfg = load_config({"provider": "existing", "kubeconfig": str(cfg_file), "mode": "ambient"}, env={})
        # negative control: nothing recorded, so istioctl installs the mesh and must be 1.27.9 exactly
        before = by_name(doctor.preflight(cfg, env={}))
        installer = before["tool istioctl (installer)"]
        assert installer.status == "FAIL" and "found 1.30-dev, this run targets 1.27.9" in installer.detail
        assert "the install steps run" in before["plan"].detail
        assert before["tool kubectl (step 'Install the Gateway API CRDs v1.3.0')"].ok

        spec = MeshSpec.from_config(cfg)
        for doc in record_step(spec, spec.primary).manifests:  # what the install's last step writes
            api.put(doc)
        for path in sorted(upstream("gateway-api-v1.3.0", "config", "crd", "standard").glob("*.yaml")):
            api.put(yaml.safe_load(path.read_text()))
        after = doctor.preflight(cfg, env={})
        assert doctor.failures(after) == [], doctor.render(after)
        results = by_name(after)
        evidence = results["tool istioctl (evidence)"]
        assert evidence.status == "warn" and "found 1.30-dev, this run targets 1.27.x" in evidence.detail
        assert "ztunnel-config workloads/certificates" in evidence.fix
        assert "mesh reused (recorded with these options): no install step runs" in results["plan"].detail
        assert "5 CRDs installed at v1.3.0" in results["plan"].detail
        assert not [name for name in results if name.startswith(("tool kubectl (step", "tool helm"))]

        api.state.forbidden_plurals.add("configmaps")  # cannot read the record: nothing is assumed
        unreadable = by_name(doctor.preflight(cfg, env={}))
        assert "so every step counts" in unreadable["plan"].detail
        assert unreadable["tool istioctl (installer)"].status == "FAIL"


# --- an ambient mesh already on the cluster (issue 14, the doc/doctor notes) -------------------------------


def ambient_cluster(api: FakeApiServer, *, captured: bool, trusted: str, ztunnel_log: str) -> None:
    """An existing ambient mesh as the istiod and ztunnel charts lay it out: istiod (container `discovery`)
    with CA_TRUSTED_NODE_ACCOUNTS, ztunnel pods labelled app=ztunnel running as istio-system/ztunnel, and a
    namespace labelled istio.io/dataplane-mode=ambient with an app pod and pods that are not captured by
    design (host network, opted out, not running)."""
    api.put(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "istiod", "namespace": "istio-system", "labels": {"app": "istiod"}},
            "spec": {
                "template": {
                    "spec": {
                        "containers": [
                            {
                                "name": "discovery",
                                "env": [{"name": "CA_TRUSTED_NODE_ACCOUNTS", "value": trusted}],
                            }
                        ]
                    }
                }
            },
        }
    )
    api.put(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "ztunnel-x7k2p", "namespace": "istio-system", "labels": {"app": "ztunnel"}},
            "spec": {"serviceAccountName": "ztunnel", "containers": [{"name": "istio-proxy"}]},
            "status": {"phase": "Running"},
        }
    )
    api.set_log("istio-system", "ztunnel-x7k2p", "", ztunnel_log)
    api.put(
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": "zt-e2e", "labels": {"istio.io/dataplane-mode": "ambient"}},
        }
    )
    api.put({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "plain"}})
    annotations = {"ambient.istio.io/redirection": "enabled"} if captured else {}

    def pod(name: str, namespace: str = "zt-e2e", phase: str = "Running", **extra: Any) -> None:
        meta = {"name": name, "namespace": namespace, "annotations": extra.pop("annotations", annotations)}
        meta["labels"] = extra.pop("labels", {})
        api.put(
            {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": extra, "status": {"phase": phase}}
        )

    pod("server-969b98544-9jgkw")
    pod("node-agent", hostNetwork=True, annotations={})
    pod("opted-out", labels={"istio.io/dataplane-mode": "none"}, annotations={})
    pod("starting", phase="Pending", annotations={})
    pod("elsewhere", namespace="plain", annotations={})


def ztunnel_lines() -> str:
    """Real ztunnel 1.27.9 log lines (fed by a real istiod) with no certificate trouble."""
    text = capture("ztunnel-1.27.9-istiod", "authz-deny.txt").read_text()
    lines = [line for line in text.splitlines() if re.match(r"^\d{4}-\d\d-\d\dT", line)]
    assert lines
    return "\n".join(lines) + "\n"


def test_doctor_reads_an_existing_ambient_mesh_both_ways(env: dict[str, Path]) -> None:
    """What a fake apiserver cannot prove: the full line a real ztunnel prints around istiod's refusal. None
    was captured here, so the refusing log holds only the status message istiod returns (istio/istio
    security/pkg/server/ca/server.go), which ztunnel 1.27.9 prints verbatim inside `signing gRPC error
    ({code}): {message}` (src/identity.rs); the check matches nothing more than that message."""
    write_exe(env["path"], "kubectl", 'echo "Client Version: v1.33.7"')
    with FakeApiServer() as api:
        cfg_file = api.write_kubeconfig(env["tmp"] / "kc.yaml", context="ctx-a")
        cfg = load_config({"provider": "existing", "kubeconfig": str(cfg_file), "mode": "ambient"}, env={})
        ambient_cluster(api, captured=True, trusted="istio-system/ztunnel", ztunnel_log=ztunnel_lines())
        healthy = by_name(doctor_ambient.existing_mesh_checks(cfg))
        capture_ok = healthy["ambient capture (cluster1)"]
        assert capture_ok.ok and "1 running pod(s) in 1 ambient namespace(s) carry" in capture_ok.detail
        certs_ok = healthy["ztunnel certificates (cluster1)"]
        assert certs_ok.ok, certs_ok.detail
        assert "every istiod trusts ztunnel's istio-system/ztunnel" in certs_ok.detail

    with FakeApiServer() as api:
        cfg_file = api.write_kubeconfig(env["tmp"] / "kc2.yaml", context="ctx-a")
        cfg = load_config({"provider": "existing", "kubeconfig": str(cfg_file), "mode": "ambient"}, env={})
        refused = ztunnel_lines() + "request impersonation authentication failure\n"
        ambient_cluster(api, captured=False, trusted="ztunnel/ztunnel", ztunnel_log=refused)
        sick = by_name(doctor_ambient.existing_mesh_checks(cfg))
        not_captured = sick["ambient capture (cluster1)"]
        assert not_captured.status == "warn"
        assert "1 of 1 running pod(s) in ambient namespaces lack ambient.istio.io/redirection=enabled" in (
            not_captured.detail
        )
        assert "zt-e2e/server-969b98544-9jgkw" in not_captured.detail and "istio-cni" in not_captured.fix
        certs = sick["ztunnel certificates (cluster1)"]
        assert certs.status == "warn"
        assert "istio-system/ztunnel-x7k2p (1x)" in certs.detail
        mismatch = "ztunnel runs as istio-system/ztunnel but istio-system/istiod has "
        assert mismatch + "CA_TRUSTED_NODE_ACCOUNTS=ztunnel/ztunnel" in certs.detail
        assert "trustedZtunnelNamespace" in certs.fix
        # warnings only: the run itself may still install or test
        assert not doctor.failures(list(sick.values()))
        # every read was a GET (read-only)
        assert {r.method for r in api.requests} == {"GET"}


def test_the_trust_setting_alone_is_checked_when_the_log_is_quiet() -> None:
    from meshproof.mesh import health

    assert health.ztunnel_trusted(
        {"istio-system/istiod": "istio-system/ztunnel,ztunnel/ztunnel"}, "ztunnel/ztunnel"
    )
    unset = health.ztunnel_trusted({"istio-system/istiod": None}, "ztunnel/ztunnel")
    assert not unset and "CA_TRUSTED_NODE_ACCOUNTS=(unset)" in unset.reason
    assert health.impersonation_failures(ztunnel_lines()) == []
