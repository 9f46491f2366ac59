"""The conformance report: a versioned YAML a vendor can submit, in the spirit of the Gateway API report.

It is built incrementally from test outcomes and written at session end whatever happened: complete,
interrupted (Ctrl-C, SIGTERM) or aborted before the first test (missing prerequisites). Nothing in here
reads a kubeconfig or a Secret; the config is reported through RunConfig.public_dict().
"""

from __future__ import annotations

import os
import platform
import shlex
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml

from meshproof import __version__
from meshproof.config import OPTIONS, RunConfig

REPORT_API_VERSION = "meshproof.io/v1alpha1"
REPORT_KIND = "ConformanceReport"
REPORT_FILENAME = "conformance-report.yaml"
# Facts about the clusters under test (Kubernetes/OCP versions), written by whichever process provisioned
# them (an xdist worker, maybe) and read by the controller when it writes the report.
PLATFORM_FACTS_FILENAME = "platform-facts.yaml"
# A skip whose reason starts with this is a combination the implementation or cluster does not support:
# reported as unsupported, never counted as skipped-for-later or as a pass.
UNSUPPORTED_PREFIX = "unsupported:"


class Outcome(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    SKIPPED = "skipped"
    UNSUPPORTED = "unsupported"
    XFAILED = "xfailed"
    ERROR = "error"
    # selected but never run: the session stopped first (provisioning failed, Ctrl-C, -x)
    NOT_RUN = "notRun"


class RunStatus(StrEnum):
    COMPLETE = "complete"
    INTERRUPTED = "interrupted"
    ABORTED = "aborted"


@dataclass
class CaseResult:
    nodeid: str
    outcome: Outcome
    duration_s: float = 0.0
    features: list[str] = field(default_factory=list)
    reason: str = ""
    properties: dict[str, str] = field(default_factory=dict)
    failure: str = ""  # for failed and error outcomes: the assertion or error message


@dataclass(frozen=True)
class Selection:
    """How the tests of a run were chosen, so the reproduce command reruns exactly them."""

    markexpr: str = ""
    keyword: str = ""
    paths: tuple[str, ...] = ()
    known_issues: str = ""
    profile_name: str = ""


def classify_skip(reason: str) -> Outcome:
    """Map a skip reason to skipped or unsupported."""
    text = reason.removeprefix("Skipped: ").strip()
    return Outcome.UNSUPPORTED if text.lower().startswith(UNSUPPORTED_PREFIX) else Outcome.SKIPPED


@dataclass
class ConformanceReport:
    config: RunConfig
    started: datetime = field(default_factory=lambda: datetime.now(UTC))
    results: dict[str, CaseResult] = field(default_factory=dict)
    status: RunStatus = RunStatus.COMPLETE
    abort_reason: str = ""
    # what failed when the run stopped part-way: phase, step, command, the tool's last stderr lines
    abort_details: dict[str, Any] = field(default_factory=dict)
    environment: dict[str, Any] = field(default_factory=dict)
    selection: Selection = field(default_factory=Selection)
    # the certification profile this run claims, with its required and optional test node ids
    profile: dict[str, Any] = field(default_factory=dict)

    def expect(self, nodeid: str, features: list[str]) -> None:
        """A selected test: present in the report as notRun until an outcome arrives."""
        if nodeid not in self.results:
            self.results[nodeid] = CaseResult(nodeid, Outcome.NOT_RUN, features=features)

    def classify(self, nodeid: str, role: str) -> None:
        """Mark a test as `required` or `optional` for the run's profile."""
        listed = self.profile.setdefault(role, [])
        if nodeid not in listed:
            listed.append(nodeid)

    def abort(self, message: str, details: dict[str, Any] | None = None) -> None:
        """The run stopped before it could verify everything; the first cause is the one reported."""
        if self.status is not RunStatus.ABORTED:
            self.status = RunStatus.ABORTED
            self.abort_reason = message
            self.abort_details = dict(details or {})

    def record(self, result: CaseResult) -> None:
        """Record one test; a later phase's failure (teardown error) overrides an earlier pass."""
        previous = self.results.get(result.nodeid)
        if previous is not None and previous.outcome is Outcome.NOT_RUN:
            if not result.features:
                result.features = previous.features
            previous = None
        if previous is None or _severity(result.outcome) >= _severity(previous.outcome):
            if previous is not None:
                result.duration_s += previous.duration_s
                result.properties = {**previous.properties, **result.properties}
                result.failure = result.failure or previous.failure
            self.results[result.nodeid] = result
        else:
            previous.duration_s += result.duration_s

    def summary(self) -> dict[str, int]:
        counts = Counter(r.outcome.value for r in self.results.values())
        return {o.value: counts.get(o.value, 0) for o in Outcome}

    def per_feature(self) -> dict[str, dict[str, Any]]:
        features: dict[str, dict[str, Any]] = {}
        for result in sorted(self.results.values(), key=lambda r: r.nodeid):
            for name in result.features or ["core"]:
                entry = features.setdefault(name, {o.value: 0 for o in Outcome} | {"tests": []})
                entry[result.outcome.value] += 1
                entry["tests"].append({"name": result.nodeid, "outcome": result.outcome.value})
        for entry in features.values():
            entry["result"] = _feature_result(entry)
        return dict(sorted(features.items()))

    def to_dict(self) -> dict[str, Any]:
        cfg = self.config
        not_run = [
            {"name": r.nodeid, "outcome": r.outcome.value, "reason": r.reason}
            for r in sorted(self.results.values(), key=lambda r: r.nodeid)
            if r.outcome in (Outcome.SKIPPED, Outcome.UNSUPPORTED, Outcome.NOT_RUN)
        ]
        data = {
            "apiVersion": REPORT_API_VERSION,
            "kind": REPORT_KIND,
            "suite": {"name": "meshproof", "version": __version__},
            "date": self.started.isoformat(timespec="seconds"),
            "runId": cfg.run_id,
            "status": self.status.value,
            **({"abortReason": self._abort_dict()} if self.abort_reason else {}),
            "implementation": {
                "project": "istio",
                "version": cfg.istio_version,
                "distribution": "openshift-service-mesh" if cfg.installer == "sail" else "upstream",
                **({"operatorVersion": cfg.ossm_version} if cfg.installer == "sail" else {}),
                "installer": cfg.installer,
            },
            "platform": {"provider": cfg.provider, **self.environment},
            "mode": cfg.mode,
            "features": sorted(f.value for f in cfg.features),
            "config": cfg.public_dict(),
            **({"profile": self._profile_dict()} if self.profile else {}),
            "summary": self.summary(),
            "results": self.per_feature(),
            "notRun": not_run,
            "tests": [
                {
                    "name": r.nodeid,
                    "outcome": r.outcome.value,
                    "durationSeconds": round(r.duration_s, 3),
                    **({"reason": r.reason} if r.reason else {}),
                    **({"failure": r.failure} if r.failure else {}),
                    **({"properties": r.properties} if r.properties else {}),
                }
                for r in sorted(self.results.values(), key=lambda r: r.nodeid)
            ],
            "reproduce": {"command": reproduce_command(cfg, self.selection)},
        }
        from meshproof.reporting.verdict import judge  # the verdict reads the report it belongs to

        verdict = judge(data)
        data["verdict"] = {
            "conformant": verdict.conformant,
            "exitCode": int(verdict.exit_code),
            "reason": verdict.reason,
        }
        return data

    def _abort_dict(self) -> dict[str, Any]:
        return {"message": self.abort_reason, **self.abort_details}

    def _profile_dict(self) -> dict[str, Any]:
        def listed(nodeids: list[str]) -> list[dict[str, str]]:
            return [
                {
                    "name": n,
                    "outcome": (self.results[n].outcome if n in self.results else Outcome.NOT_RUN).value,
                }
                for n in sorted(nodeids)
            ]

        profile = dict(self.profile)
        return {
            **{k: v for k, v in profile.items() if k not in ("required", "optional")},
            "required": listed(profile.get("required", [])),
            "optional": listed(profile.get("optional", [])),
        }

    def write(self, results_dir: Path) -> Path:
        """Write atomically: a reader (or a second SIGTERM) never sees half a report."""
        results_dir.mkdir(parents=True, exist_ok=True)
        target = results_dir / REPORT_FILENAME
        fd, tmp = tempfile.mkstemp(dir=results_dir, prefix=".report-", suffix=".yaml")
        try:
            with os.fdopen(fd, "w") as fh:
                yaml.safe_dump(self.to_dict(), fh, sort_keys=False, allow_unicode=True)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return target


def write_platform_facts(results_dir: Path, facts: dict[str, Any]) -> Path:
    results_dir.mkdir(parents=True, exist_ok=True)
    target = results_dir / PLATFORM_FACTS_FILENAME
    fd, tmp = tempfile.mkstemp(dir=results_dir, prefix=".facts-", suffix=".yaml")
    with os.fdopen(fd, "w") as fh:
        yaml.safe_dump(facts, fh, sort_keys=True)
    os.replace(tmp, target)
    return target


def read_platform_facts(results_dir: Path) -> dict[str, Any]:
    path = results_dir / PLATFORM_FACTS_FILENAME
    if not path.is_file():
        return {}
    data = yaml.safe_load(path.read_text())
    return data if isinstance(data, dict) else {}


def reproduce_command(cfg: RunConfig, selection: Selection | None = None) -> str:
    """The pytest command line that reruns this run's tests with its configuration (no secrets: paths only).

    Every option value is spelled out (a --profile file's values included), so the command works without
    the profile file; the results dir and run id are left out on purpose: a rerun gets its own.
    """
    selection = selection or Selection()
    data = cfg.public_dict()
    parts = ["pytest", *selection.paths]
    if selection.markexpr:
        parts += ["-m", selection.markexpr]
    if selection.keyword:
        parts += ["-k", selection.keyword]
    if selection.known_issues:
        parts += ["--known-issues", selection.known_issues]
    if selection.profile_name:
        parts += ["--profile-name", selection.profile_name]
    for opt in OPTIONS:
        if opt.dest in ("profile", "results_dir"):
            continue
        value = data.get("contexts" if opt.dest == "context" else opt.dest)
        if value in (None, False, [], ""):
            continue
        if opt.flag_kind == "bool":
            parts.append(opt.flag)
        elif opt.flag_kind == "append":
            for item in value:
                parts += [opt.flag, str(item)]
        elif opt.dest == "features":
            parts += [opt.flag, ",".join(value)]
        else:
            parts += [opt.flag, str(value)]
    return shlex.join(parts)


def host_facts() -> dict[str, str]:
    return {
        "python": sys.version.split()[0],
        "os": f"{platform.system()} {platform.release()}",
        "machine": platform.machine(),
    }


_SEVERITY = {
    Outcome.PASSED: 0,
    Outcome.XFAILED: 0,
    Outcome.SKIPPED: 1,
    Outcome.UNSUPPORTED: 1,
    Outcome.FAILED: 2,
    Outcome.ERROR: 3,
    Outcome.NOT_RUN: -1,
}


def _severity(outcome: Outcome) -> int:
    return _SEVERITY[outcome]


def _feature_result(entry: dict[str, Any]) -> str:
    if entry["failed"] or entry["error"]:
        return "failed"
    if entry["passed"] or entry["xfailed"]:
        return "partial" if entry["skipped"] or entry[Outcome.NOT_RUN.value] else "passed"
    if entry[Outcome.NOT_RUN.value]:
        return Outcome.NOT_RUN.value
    if entry["unsupported"]:
        return "unsupported"
    return "skipped"
