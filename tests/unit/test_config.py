"""RunConfig: precedence, validation messages, the shared option table."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from meshproof.config import (
    DEFAULT_ISTIO_VERSION,
    ConfigError,
    Feature,
    add_argparse_options,
    config_from_namespace,
    load_config,
)


def test_defaults_are_the_main_job():
    cfg = load_config({}, env={})
    assert (cfg.provider, cfg.mode, cfg.installer) == ("kind", "ambient", "istioctl")
    assert cfg.istio_version == DEFAULT_ISTIO_VERSION
    assert cfg.results_dir == Path("reports") / cfg.run_id
    assert cfg.features == frozenset()


def test_command_line_beats_environment_beats_profile(tmp_path):
    profile = tmp_path / "p.yaml"
    profile.write_text("mode: sidecar\ninstaller: helm\ntimeout-scale: 3\nfeatures: [gie]\n")
    env = {"MESHPROOF_INSTALLER": "sail", "MESHPROOF_TIMEOUT_SCALE": "2"}
    cfg = load_config({"profile": str(profile), "timeout_scale": "1.5"}, env=env)
    assert cfg.mode == "sidecar"  # profile only
    assert cfg.installer == "sail"  # env over profile
    assert cfg.timeout_scale == 1.5  # command line over env
    assert cfg.features == frozenset({Feature.GIE})


def test_profile_can_come_from_environment(tmp_path):
    profile = tmp_path / "p.yaml"
    profile.write_text("provider: existing\n")
    assert load_config({}, env={"MESHPROOF_PROFILE": str(profile)}).provider == "existing"


@pytest.mark.parametrize(
    ("cli", "message"),
    [
        ({"mode": "sidecars"}, "--mode: 'sidecars' is not one of sidecar, ambient"),
        ({"provider": "eks"}, "--provider: 'eks' is not one of kind, openshift, existing"),
        ({"installer": "olm"}, "--installer: 'olm' is not one of istioctl, helm, sail"),
        ({"features": "nftables,ebpf"}, "--features: unknown feature 'ebpf'; allowed: nftables, istio-csr"),
        ({"istio_version": "latest"}, "--istio-version: 'latest' is not a version like 1.27.9"),
        ({"timeout_scale": "fast"}, "--timeout-scale: 'fast' is not a number"),
        ({"timeout_scale": "0"}, "--timeout-scale: 0.0 is out of range"),
        ({"keep_cluster": "maybe"}, "--keep-cluster: 'maybe' is not a boolean"),
        ({"cluster_name": "Mesh_Proof"}, "--cluster-name: 'Mesh_Proof' must be lower-case"),
    ],
)
def test_bad_values_give_one_line_naming_option_and_allowed_values(cli, message):
    with pytest.raises(ConfigError) as err:
        load_config(cli, env={})
    text = str(err.value)
    assert text.startswith(message)
    assert "\n" not in text


def test_bad_environment_value_names_the_variable():
    with pytest.raises(ConfigError, match="MESHPROOF_REUSE_CLUSTER: 'perhaps'"):
        load_config({}, env={"MESHPROOF_REUSE_CLUSTER": "perhaps"})


def test_profile_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config({"profile": str(tmp_path / "nope.yaml")}, env={})
    bad = tmp_path / "bad.yaml"
    bad.write_text("mode: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config({"profile": str(bad)}, env={})
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("flavour: ambient\n")
    with pytest.raises(ConfigError, match="unknown key 'flavour'"):
        load_config({"profile": str(unknown)}, env={})


def test_argparse_and_environment_share_option_names():
    parser = argparse.ArgumentParser()
    add_argparse_options(parser)
    ns = parser.parse_args(
        ["--mode", "sidecar", "--context", "kind-a", "--context", "kind-b", "--features", "multicluster"]
    )
    cfg = config_from_namespace(ns, env={"MESHPROOF_RUN_ID": "r1"})
    assert cfg.contexts == ["kind-a", "kind-b"]
    assert cfg.run_id == "r1"
    assert cfg.has("multicluster")
    env_cfg = load_config({}, env={"MESHPROOF_CONTEXT": "a,b", "MESHPROOF_KEEP_CLUSTER": "true"})
    assert env_cfg.contexts == ["a", "b"]
    assert env_cfg.keep_cluster is True


def test_version_prefix_v_is_accepted_and_normalised():
    assert load_config({"istio_version": "v1.27.3"}, env={}).istio_version == "1.27.3"


def test_public_dict_names_kubeconfig_by_path_only(tmp_path):
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("users: [{name: u, user: {token: sekret}}]\n")
    data = load_config({"kubeconfig": str(kubeconfig)}, env={}).public_dict()
    assert data["kubeconfig"] == str(kubeconfig)
    assert "sekret" not in repr(data)


def test_gateway_api_crds_and_install_over_work_on_the_command_line_environment_and_profile(tmp_path):
    """Issue 14 items 4 and 6: both options come from the one option table, so every entry point has them."""
    crds = tmp_path / "gateway-api"
    crds.mkdir()
    parser = argparse.ArgumentParser()
    add_argparse_options(parser)
    ns = parser.parse_args(["--gateway-api-crds", str(crds), "--install-over-existing-mesh"])
    cli = config_from_namespace(ns, env={})
    assert (cli.gateway_api_crds, cli.install_over_existing_mesh) == (crds.resolve(), True)
    env = {"MESHPROOF_GATEWAY_API_CRDS": str(crds), "MESHPROOF_INSTALL_OVER_EXISTING_MESH": "yes"}
    assert load_config({}, env=env).gateway_api_crds == crds.resolve()
    profile = tmp_path / "p.yaml"
    profile.write_text(f"gateway-api-crds: {crds}\ninstall-over-existing-mesh: true\n")
    from_profile = load_config({"profile": str(profile)}, env={})
    assert from_profile.gateway_api_crds == crds.resolve() and from_profile.install_over_existing_mesh
    defaults = load_config({}, env={})
    assert defaults.gateway_api_crds is None and defaults.install_over_existing_mesh is False
    with pytest.raises(ConfigError, match=r"^--gateway-api-crds: .*nope does not exist$"):
        load_config({"gateway_api_crds": str(tmp_path / "nope")}, env={})
