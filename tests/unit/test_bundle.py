"""The certification bundle: manifest integrity, environment facts, redaction on the way in."""

from __future__ import annotations

import subprocess
import tarfile

import pytest
import yaml

from meshproof.config import load_config
from meshproof.reporting.bundle import (
    MANIFEST_NAME,
    BundleError,
    build_bundle,
    source_facts,
    verify_manifest,
)
from meshproof.reporting.conformance import CaseResult, ConformanceReport, Outcome

TOKEN = "eyJhbGciOiJSUzI1NiIsImtpZCI6IkFCQyJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQifQ.c2lnbmF0dXJl"


@pytest.fixture
def results(tmp_path):
    cfg = load_config({"run_id": "run-7", "results_dir": str(tmp_path / "run-7")}, env={})
    report = ConformanceReport(config=cfg)
    report.record(CaseResult("suites/t.py::test_a", Outcome.PASSED, features=["mtls"]))
    report.write(cfg.results_dir)
    (cfg.results_dir / "junit.xml").write_text("<testsuites/>")
    dump = cfg.results_dir / "artifacts" / "test-a" / "pod.log"
    dump.parent.mkdir(parents=True)
    dump.write_text(f"curl -H 'Authorization: Bearer {TOKEN}' https://api\n")
    return cfg.results_dir


def test_bundle_has_manifest_that_verifies_and_detects_edits(results, tmp_path):
    archive = build_bundle(results)
    assert archive.name == "run-7.certification.tar.gz"
    unpack = tmp_path / "unpacked"
    with tarfile.open(archive) as tar:
        tar.extractall(unpack, filter="data")
    (root,) = unpack.iterdir()
    assert root.name == "meshproof-certification-run-7"
    names = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}
    assert {"conformance-report.yaml", "junit.xml", "environment.yaml", MANIFEST_NAME} <= names
    assert verify_manifest(root) == []
    # the manifest is in sha256sum format, so reviewers can check it without meshproof
    assert subprocess.run(["sha256sum", "-c", MANIFEST_NAME], cwd=root, capture_output=True).returncode == 0
    (root / "junit.xml").write_text("<testsuites><edited/></testsuites>")
    assert verify_manifest(root) == ["junit.xml"]


def test_bundle_redacts_tokens_in_text_files(results, tmp_path):
    archive = build_bundle(results)
    with tarfile.open(archive) as tar:
        contents = b"".join(tar.extractfile(m).read() for m in tar.getmembers() if m.isfile())
    assert TOKEN.encode() not in contents
    assert b"Authorization" in contents  # the line stays, only the secret goes


def test_bundle_needs_a_report(tmp_path):
    with pytest.raises(BundleError, match=r"no conformance-report\.yaml"):
        build_bundle(tmp_path)


# --- redaction by content, not by file name ----------------------------------------------------------

KUBECONFIG_PASSWORD = "hunter2-s3cret-pass"
KUBECONFIG_TOKEN = "sha256~Zm9vYmFyYmF6cXV4cXV1eGNvcmdl"


def _private_key_pem() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def _bundle_contents(archive) -> dict[str, bytes]:
    with tarfile.open(archive) as tar:
        return {m.name.split("/", 1)[1]: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}


def test_planted_keys_and_tokens_are_redacted_whatever_the_file_is_called(results):
    pem = _private_key_pem()
    key_body = pem.splitlines()[1]
    key_b64 = __import__("base64").b64encode(pem.encode()).decode()
    planted = results / "artifacts" / "test-b"
    planted.mkdir(parents=True)
    (planted / "tls.pem").write_text(pem)
    (planted / "kubeconfig").write_text(  # extensionless, as `kind get kubeconfig > kubeconfig` writes it
        "apiVersion: v1\nkind: Config\nusers:\n- name: admin\n  user:\n"
        f"    client-key-data: {key_b64}\n    token: {KUBECONFIG_TOKEN}\n"
        f"    password: {KUBECONFIG_PASSWORD}\n"
    )
    (planted / "curl.trace").write_text(f"> GET / HTTP/1.1\n> Authorization: Bearer {TOKEN}\n")
    (planted / "notes").write_text(f"istiod log: token={KUBECONFIG_TOKEN}\n{pem}")

    contents = _bundle_contents(build_bundle(results))
    everything = b"".join(contents.values())
    for secret in (key_body, key_b64[:40], KUBECONFIG_TOKEN, KUBECONFIG_PASSWORD, TOKEN):
        assert secret.encode() not in everything, secret
    # the files are still there, only the secrets are gone
    assert b"<redacted: private key>" in contents["artifacts/test-b/tls.pem"]
    assert b"token: <redacted>" in contents["artifacts/test-b/kubeconfig"]
    assert b"Authorization: <redacted>" in contents["artifacts/test-b/curl.trace"]


def test_binaries_that_cannot_be_checked_are_withheld_and_listed(results):
    import gzip

    art = results / "artifacts" / "test-c"
    art.mkdir(parents=True)
    (art / "dump.tgz").write_bytes(gzip.compress(b"client-key-data: c2VjcmV0"))
    (art / "blob.bin").write_bytes(b"\x00\x01-----BEGIN RSA PRIVATE KEY-----\nMIIB\x00")
    png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(16)
    (art / "plot.png").write_bytes(png)

    contents = _bundle_contents(build_bundle(results))
    assert contents["artifacts/test-c/plot.png"] == png  # binary without a credential marker is kept
    assert "artifacts/test-c/dump.tgz" not in contents and "artifacts/test-c/blob.bin" not in contents
    withheld = yaml.safe_load(contents["environment.yaml"])["bundle"]["withheld"]
    assert {w["path"]: w["reason"].split(":")[0] for w in withheld} == {
        "artifacts/test-c/blob.bin": "binary content that looks like it holds a private key or token",
        "artifacts/test-c/dump.tgz": "gzip-compressed",
    }


def test_an_uncompressed_tar_is_withheld_whatever_its_members_hold(results, tmp_path):
    """A plain tar of a kubeconfig (`token: eyJ...`): its members never met the redactor."""
    import io

    kubeconfig = b"users:\n- name: admin\n  user:\n    token: eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln\n"
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo("kubeconfig")
        info.size = len(kubeconfig)
        tar.addfile(info, io.BytesIO(kubeconfig))
    art = results / "artifacts" / "test-d"
    art.mkdir(parents=True)
    (art / "state.tar").write_bytes(buffer.getvalue())

    contents = _bundle_contents(build_bundle(results))
    assert "artifacts/test-d/state.tar" not in contents
    withheld = yaml.safe_load(contents["environment.yaml"])["bundle"]["withheld"]
    assert [w["reason"].split(":")[0] for w in withheld if w["path"] == "artifacts/test-d/state.tar"] == [
        "tar archive"
    ]


# --- the source the run came from --------------------------------------------------------------------


def _git(repo, *args):
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)


def _checkout(tmp_path):
    repo = tmp_path / "clone"
    (repo / "meshproof").mkdir(parents=True)
    (repo / "meshproof" / "__init__.py").write_text("")
    (repo / "suites").mkdir()
    (repo / "suites" / "test_mtls.py").write_text("def test_x():\n    assert True\n")
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@e", "commit", "-qm", "c")
    return repo


def test_source_facts_say_clean_commit_then_dirty_with_a_diffstat(tmp_path):
    repo = _checkout(tmp_path)
    clean = source_facts(repo / "meshproof")
    assert len(clean["commit"]) == 40 and clean["dirty"] is False and clean["diffstat"] == []
    (repo / "suites" / "test_mtls.py").write_text("def test_x():\n    pass\n")
    (repo / "suites" / "test_new.py").write_text("")
    dirty = source_facts(repo / "meshproof")
    assert dirty["commit"] == clean["commit"] and dirty["dirty"] is True
    assert any(line.startswith("suites/test_mtls.py | 2 +-") for line in dirty["diffstat"])
    assert dirty["untracked"] == ["suites/test_new.py"]


def test_an_installed_copy_inside_another_repository_does_not_claim_its_commit(tmp_path):
    repo = _checkout(tmp_path)
    installed = repo / "venv" / "site-packages" / "meshproof"
    installed.mkdir(parents=True)
    assert source_facts(installed) == {"commit": "unknown", "dirty": "unknown"}


def test_the_bundle_environment_names_the_source(results):
    env = yaml.safe_load(_bundle_contents(build_bundle(results))["environment.yaml"])
    assert {"commit", "dirty"} <= set(env["meshproof"])
