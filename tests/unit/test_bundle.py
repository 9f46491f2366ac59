"""The certification bundle: manifest integrity, environment facts, redaction on the way in."""

from __future__ import annotations

import subprocess
import tarfile

import pytest

from meshproof.config import load_config
from meshproof.reporting.bundle import MANIFEST_NAME, BundleError, build_bundle, verify_manifest
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
