"""`meshproof plan` through its main function: exit codes, one-line refusals, deterministic text and files."""

from __future__ import annotations

import argparse
import os
import stat

import pytest
import yaml

from meshproof.commands import plan as plan_command


@pytest.fixture(autouse=True)
def _no_meshproof_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("MESHPROOF_"):
            monkeypatch.delenv(name)


def test_prints_the_plan_and_exits_zero(capsys: pytest.CaptureFixture[str]):
    code = plan_command.main(["--provider", "kind", "--installer", "helm", "--mode", "ambient"])
    out = capsys.readouterr().out
    assert code == 0
    assert out.startswith("# meshproof install plan\n")
    assert "kind create cluster --name meshproof" in out  # the first command a newcomer will see run


def test_same_options_give_byte_identical_output(capsys: pytest.CaptureFixture[str]):
    argv = [
        "--provider",
        "openshift",
        "--installer",
        "sail",
        "--mode",
        "sidecar",
        "--features",
        "gie,istio-csr",
    ]
    plan_command.main(argv)
    first = capsys.readouterr().out
    plan_command.main(argv)
    assert capsys.readouterr().out == first


def test_impossible_combination_exits_nonzero_with_one_line(capsys: pytest.CaptureFixture[str]):
    code = plan_command.main(["--mode", "ambient", "--features", "nftables"])
    captured = capsys.readouterr()
    assert code == 2
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("meshproof plan: nftables redirection is sidecar-only in Istio 1.27")
    assert "--mode sidecar" in lines[0]


def test_bad_option_value_exits_nonzero_with_one_line(capsys: pytest.CaptureFixture[str]):
    code = plan_command.main(["--installer", "apt-get"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "--installer" in err[0]


def test_output_dir_gets_numbered_files_that_match_the_plan(tmp_path, capsys: pytest.CaptureFixture[str]):
    out = tmp_path / "plan"
    argv = ["--provider", "kind", "--installer", "istioctl", "--mode", "ambient", "--output", str(out)]
    assert plan_command.main(argv) == 0
    assert "wrote" in capsys.readouterr().out
    names = sorted(p.name for p in out.iterdir())
    assert names[0].startswith("01-create-kind-cluster-meshproof")
    assert "plan.txt" in names
    # The kind config travels as its own file, and the script refers to it by name.
    script = (out / "01-create-kind-cluster-meshproof.sh").read_text()
    assert "--config 01-create-kind-cluster-meshproof.config.yaml" in script
    assert os.stat(out / "01-create-kind-cluster-meshproof.sh").st_mode & stat.S_IXUSR
    config = yaml.safe_load((out / "01-create-kind-cluster-meshproof.config.yaml").read_text())
    assert config["kind"] == "Cluster"
    # istioctl reads its IstioOperator from the file named in the script.
    (iop_script,) = [n for n in names if "install-istio" in n and n.endswith(".sh")]
    iop_file = iop_script.replace(".sh", ".istio-operator.yaml")
    assert iop_file in (out / iop_script).read_text()
    assert yaml.safe_load((out / iop_file).read_text())["spec"]["profile"] == "ambient"
    # Manifest steps are plain multi-document YAML for kubectl apply.
    (namespaces,) = [n for n in names if "create-the-mesh-namespaces" in n]
    docs = list(yaml.safe_load_all((out / namespaces).read_text()))
    assert [d["metadata"]["name"] for d in docs] == ["istio-system"]


def test_writing_twice_gives_identical_files_and_removes_stale_ones(tmp_path):
    out = tmp_path / "plan"
    plan_command.main(["--installer", "sail", "--mode", "ambient", "--features", "gie", "--output", str(out)])
    first = {p.name: p.read_bytes() for p in out.iterdir()}
    (out / "99-stale-step.sh").write_text("echo stale\n")
    plan_command.main(["--installer", "sail", "--mode", "ambient", "--features", "gie", "--output", str(out)])
    second = {p.name: p.read_bytes() for p in out.iterdir()}
    assert second == first


def test_register_adds_the_subcommand_with_the_shared_options():
    parser = argparse.ArgumentParser()
    plan_command.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["plan", "--provider", "existing", "--context", "a", "--output", "x"])
    assert args.func is plan_command.run
    assert (args.provider, args.context, str(args.output)) == ("existing", ["a"], "x")
