"""The install plan as data: steps, what each waits for, and how the plan prints and writes itself.

A plan is computed from a MeshSpec alone, without a cluster, so `meshproof plan` shows a newcomer every
command and manifest before anything runs, and the executor (`meshproof.mesh.install`) runs exactly that.
Documents a command reads (Helm values, an IstioOperator, a kind config) travel with the step and are
written to a file when the step runs; the command names that file with a placeholder.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from meshproof.mesh.spec import MeshSpec

# Placeholders a command uses for the file its document is written to when the step runs.
VALUES_FILE = "<values-file>"
ISTIO_OPERATOR_FILE = "<istio-operator-file>"
CONFIG_FILE = "<config-file>"
_DOCUMENT_SUFFIXES = {VALUES_FILE: "values", ISTIO_OPERATOR_FILE: "istio-operator", CONFIG_FILE: "config"}

# cluster: creates or reuses the cluster itself (skipped for a reused cluster);
# platform: cluster add-ons the suites need whatever the mesh (idempotent);
# mesh: the mesh install, guarded by the fingerprint stored in the cluster.
Stage = Literal["cluster", "platform", "mesh"]
STAGES: tuple[Stage, ...] = ("cluster", "platform", "mesh")
Budget = Literal["install", "rollout", "crd_established", "cluster_create"]

_PLAN_FILE_RE = re.compile(r"^\d{2,3}-[a-z0-9-]+(\.[a-z-]+)?\.(sh|yaml)$")


class WaitSpec(BaseModel):
    """One readiness condition to wait for after a step: exactly one of `condition`, `rollout`, `field`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    api_version: str
    kind: str
    name: str
    namespace: str | None = None
    condition: str | None = None  # a status condition type that must be True
    rollout: bool = False  # Deployment/DaemonSet: every replica updated and available
    field: str | None = None  # dotted path into the object, e.g. status.phase
    equals: str | None = None  # the value `field` must have; None: any non-empty value
    budget: Budget = "install"

    @model_validator(mode="after")
    def _exactly_one_rule(self) -> WaitSpec:
        rules = [self.condition is not None, self.rollout, self.field is not None]
        if sum(rules) != 1:
            raise ValueError(
                f"wait on {self.kind}/{self.name}: give exactly one of condition, rollout, field"
            )
        if self.equals is not None and self.field is None:
            raise ValueError(f"wait on {self.kind}/{self.name}: equals needs field")
        return self

    @property
    def target(self) -> str:
        where = f"{self.namespace}/{self.name}" if self.namespace else self.name
        return f"{self.kind} {where}"

    def describe(self) -> str:
        if self.condition is not None:
            return f"{self.target} condition {self.condition}=True"
        if self.rollout:
            return f"{self.target} rolled out and available"
        wanted = repr(self.equals) if self.equals is not None else "set"
        return f"{self.target} {self.field} {wanted}"

    def kubectl_command(self, context: str | None, timeout: str = "10m") -> list[str]:
        """The kubectl command that waits for the same thing (for the written plan)."""
        ctx = ["--context", context] if context else []
        ns = ["--namespace", self.namespace] if self.namespace else []
        if self.rollout:
            return [
                "kubectl",
                *ctx,
                "rollout",
                "status",
                f"{self.kind.lower()}/{self.name}",
                *ns,
                f"--timeout={timeout}",
            ]
        if self.condition is not None:
            how = f"--for=condition={self.condition}"
        else:
            path = "{." + str(self.field) + "}"
            how = f"--for=jsonpath={path}" + (f"={self.equals}" if self.equals is not None else "")
        return ["kubectl", *ctx, "wait", how, self.resource_name, *ns, f"--timeout={timeout}"]

    @property
    def resource_name(self) -> str:
        group = self.api_version.split("/")[0] if "/" in self.api_version else ""
        kind = self.kind.lower() + (f".{group}" if group else "")
        return f"{kind}/{self.name}"


class CrdBundle(BaseModel):
    """CRDs that make a step unnecessary when each is installed with a bundle-version annotation at least
    `min_version` (e.g. the Gateway API's `gateway.networking.k8s.io/bundle-version: v1.3.0`). Checked on
    the live cluster before the step runs; a newer bundle is never downgraded."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    names: tuple[str, ...]
    version_annotation: str
    min_version: str

    def describe(self) -> str:
        names = ", ".join(self.names)
        return f"the CRDs {names} are installed with {self.version_annotation} >= {self.min_version}"


class Download(BaseModel):
    """Something a step fetches from the internet, and what to do instead when that is not allowed."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    url: str
    instead: str  # e.g. "pass --gateway-api-crds PATH, or install them first"


class PlanStep(BaseModel):
    """One thing the install does, against one cluster.

    Exactly one action: a `command` (optionally reading `helm_values`, `istio_operator` or `config_file`
    through a placeholder), or `manifests` to server-side apply; or no action and only `wait`s.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    title: str
    cluster: str
    stage: Stage = "mesh"
    command: list[str] | None = None
    manifests: list[dict[str, Any]] = Field(default_factory=list)
    helm_chart: str | None = None
    helm_values: dict[str, Any] | None = None
    istio_operator: dict[str, Any] | None = None
    config_file: dict[str, Any] | None = None
    # A probe: when it exits 0 the step's effect is already there and the step is skipped.
    skip_if: list[str] | None = None
    # Skipped, too, when these CRDs are installed at a sufficient version (read from the cluster).
    skip_if_crds: CrdBundle | None = None
    # What the step fetches from the internet; with --offline a step that is not skipped is refused.
    downloads: list[Download] = Field(default_factory=list)
    # What reverses the step (for manifests, deletion is implied).
    undo_command: list[str] | None = None
    wait: list[WaitSpec] = Field(default_factory=list)

    @model_validator(mode="after")
    def _one_action(self) -> PlanStep:
        if self.command and self.manifests:
            raise ValueError(f"step '{self.title}': a step either runs a command or applies manifests")
        for doc, placeholder in self.documents():
            if doc is not None and (not self.command or placeholder not in self.command):
                raise ValueError(f"step '{self.title}': its document needs {placeholder} in the command")
        if (self.helm_chart is None) != (self.helm_values is None):
            raise ValueError(f"step '{self.title}': helm_chart and helm_values go together")
        if not self.command and not self.manifests and not self.wait:
            raise ValueError(f"step '{self.title}' does nothing")
        return self

    def documents(self) -> list[tuple[dict[str, Any] | None, str]]:
        return [
            (self.helm_values, VALUES_FILE),
            (self.istio_operator, ISTIO_OPERATOR_FILE),
            (self.config_file, CONFIG_FILE),
        ]

    def write_documents(self, directory: Path, stem: str) -> dict[str, Path]:
        """Write each document the command reads to `<directory>/<stem>.<values|istio-operator|config>.yaml`;
        returns the files by the placeholder they stand for."""
        files: dict[str, Path] = {}
        for doc, placeholder in self.documents():
            if doc is None:
                continue
            path = directory / f"{stem}.{_DOCUMENT_SUFFIXES[placeholder]}.yaml"
            path.write_text(_dump_yaml(doc))
            files[placeholder] = path
        return files

    def command_reading(self, files: Mapping[str, str]) -> list[str]:
        """The command with each document placeholder replaced by where that document now is."""
        return [files.get(part, part) for part in self.command or []]

    @property
    def slug(self) -> str:
        return re.sub(r"[^a-z0-9]+", "-", self.title.lower()).strip("-")[:60].rstrip("-")


class InstallPlan(BaseModel):
    """The steps that take a run from nothing to an installed, verified mesh, in order."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    spec: MeshSpec
    steps: list[PlanStep]
    # What is checked on the live cluster before the first step (cannot be known when planning).
    prerequisites: list[str] = Field(default_factory=list)
    # What the requested features' suites create at test time (meshproof.mesh.suite_steps), for review.
    suite_steps: list[str] = Field(default_factory=list)

    def steps_in(self, *stages: Stage) -> list[tuple[int, PlanStep]]:
        """(index, step) pairs of the given stages, in plan order."""
        return [(i, s) for i, s in enumerate(self.steps) if s.stage in stages]

    def context_of(self, cluster: str) -> str | None:
        for c in self.spec.clusters:
            if c.name == cluster:
                return c.context
        raise KeyError(f"the plan has no cluster named {cluster}")

    # --- text -----------------------------------------------------------------------------------

    def render_text(self) -> str:
        out: list[str] = ["# meshproof install plan", f"# {self.spec.summary()}"]
        out.append(f"# fingerprint: {self.spec.fingerprint()}")
        for c in self.spec.clusters:
            extra = f", network {c.network}" if c.network else ""
            out.append(f"# cluster {c.name}: context {c.context or '(current context)'}{extra}")
        if self.prerequisites:
            out.append("# checked on the cluster before the first step:")
            out.extend(f"#   - {p}" for p in self.prerequisites)
        if self.suite_steps:
            out.append(
                "# the feature suites also do, at test time (removed or put back when each test ends):"
            )
            out.extend(f"#   - {s}" for s in self.suite_steps)
        out.append(
            f"# {VALUES_FILE}, {ISTIO_OPERATOR_FILE} and {CONFIG_FILE} name the document below a command."
        )
        width = _index_width(len(self.steps))
        for number, step in enumerate(self.steps, start=1):
            out.append("")
            out.append(
                f"== {number:0{width}d}. {step.title}  [cluster {step.cluster}, stage {step.stage}] =="
            )
            if step.skip_if:
                out.append(f"skip when this succeeds: {shlex.join(step.skip_if)}")
            if step.skip_if_crds:
                out.append(f"skip when {step.skip_if_crds.describe()} (read from the cluster)")
            for download in step.downloads:
                if self.spec.offline:
                    out.append(f"--offline: refused unless skipped, as it downloads {download.url}")
                else:
                    out.append(f"downloads: {download.url}")
            if step.command and _is_shell(step.command):
                out.append("$ sh -c SCRIPT, where SCRIPT is:")
                out.append(_indent(step.command[2].replace("; ", "\n")))
            elif step.command:
                out.append(f"$ {shlex.join(step.command)}")
                for doc, placeholder in step.documents():
                    if doc is not None:
                        label = f" (helm chart {step.helm_chart})" if placeholder == VALUES_FILE else ""
                        out.append(f"{placeholder}{label}:")
                        out.append(_indent(_dump_yaml(doc)))
            if step.manifests:
                out.append("apply (server-side):")
                out.append(_indent(_dump_all(step.manifests)))
            out.extend(f"wait: {w.describe()}" for w in step.wait)
            if step.undo_command:
                out.append(f"undo: {shlex.join(step.undo_command)}")
        return "\n".join(out) + "\n"

    # --- files ----------------------------------------------------------------------------------

    def write(self, directory: Path) -> list[Path]:
        """Write the plan as numbered files (`01-<slug>.sh`, `02-<slug>.yaml`, ...) plus `plan.txt`.

        Shell files are runnable in order from the directory; manifests files are for
        `kubectl apply --server-side -f`. Earlier plan files in the directory are removed first, so the
        directory always holds exactly one plan. Returns the paths written, sorted.
        """
        directory.mkdir(parents=True, exist_ok=True)
        for old in directory.iterdir():
            if old.is_file() and (_PLAN_FILE_RE.match(old.name) or old.name == "plan.txt"):
                old.unlink()
        written: list[Path] = []
        width = _index_width(len(self.steps))
        for number, step in enumerate(self.steps, start=1):
            stem = f"{number:0{width}d}-{step.slug}"
            written.extend(self._write_step(directory, stem, step))
        plan_txt = directory / "plan.txt"
        plan_txt.write_text(self.render_text())
        written.append(plan_txt)
        return sorted(written)

    def _write_step(self, directory: Path, stem: str, step: PlanStep) -> list[Path]:
        context = self.context_of(step.cluster)
        header = [
            f"# {stem}: {step.title}",
            f"# cluster {step.cluster} (context {context or 'current'}), stage {step.stage}",
        ]
        if step.manifests:
            path = directory / f"{stem}.yaml"
            lines = header + [f"# then wait: {w.describe()}" for w in step.wait]
            path.write_text("\n".join(lines) + "\n" + _dump_all(step.manifests))
            return [path]
        files = step.write_documents(directory, stem)
        written = list(files.values())
        command = step.command_reading({placeholder: path.name for placeholder, path in files.items()})
        script = ["#!/bin/sh", *header, "set -eu", 'cd "$(dirname "$0")"']
        if step.skip_if:
            script.append(
                f'if {shlex.join(step.skip_if)} >/dev/null 2>&1; then echo "already done: {stem}"; exit 0; fi'
            )
        if step.skip_if_crds:
            script.append(f"# meshproof skips this step when {step.skip_if_crds.describe()}")
        if command and _is_shell(command):
            script.append(command[2])  # already a shell line; unwrapped so it reads as written
        elif command:
            script.append(shlex.join(command))
        script.extend(shlex.join(w.kubectl_command(context)) for w in step.wait)
        path = directory / f"{stem}.sh"
        path.write_text("\n".join(script) + "\n")
        path.chmod(0o755)
        written.append(path)
        return written


def _is_shell(command: list[str]) -> bool:
    return len(command) == 3 and command[:2] == ["sh", "-c"]


def _index_width(count: int) -> int:
    return max(2, len(str(count)))


# libyaml when available (same output as the pure-Python dumper for these plain documents, much faster).
_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def _dump_yaml(doc: Any) -> str:
    return yaml.dump(doc, Dumper=_DUMPER, sort_keys=False, default_flow_style=False, width=120)


def _dump_all(docs: list[dict[str, Any]]) -> str:
    return yaml.dump_all(
        docs, Dumper=_DUMPER, sort_keys=False, default_flow_style=False, width=120, explicit_start=True
    )


def _indent(text: str, prefix: str = "    ") -> str:
    return "\n".join(prefix + line if line else line for line in text.rstrip("\n").split("\n"))
