"""Known issues: a reviewed YAML skip list with reason, link, scope and expiry.

An entry skips matching tests only while it is in scope and not expired. An expired entry stops
skipping (the test runs again and tells whether the issue is fixed) and the run warns about it, so a
skip list cannot silently grow stale — the complaint users have about hard-coded skips in other suites
(suite-anchors §7).
"""

from __future__ import annotations

import fnmatch
from datetime import date
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from meshproof.config import ConfigError, RunConfig


class Scope(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: Literal["sidecar", "ambient"] | None = None
    installer: Literal["istioctl", "helm", "sail"] | None = None
    provider: Literal["kind", "openshift", "existing"] | None = None
    istio_version: str | None = Field(default=None, description="fnmatch pattern, e.g. 1.27.*")

    def matches(self, cfg: RunConfig) -> bool:
        return (
            (self.mode is None or self.mode == cfg.mode)
            and (self.installer is None or self.installer == cfg.installer)
            and (self.provider is None or self.provider == cfg.provider)
            and (self.istio_version is None or fnmatch.fnmatchcase(cfg.istio_version, self.istio_version))
        )


class KnownIssue(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    test: str = Field(description="fnmatch pattern over the pytest node id")
    reason: str = Field(min_length=1)
    link: str = Field(pattern=r"^https?://")
    expires: date
    scope: Scope = Scope()

    def applies_to(self, nodeid: str, cfg: RunConfig, today: date) -> bool:
        return today <= self.expires and self.scope.matches(cfg) and fnmatch.fnmatchcase(nodeid, self.test)

    def skip_reason(self) -> str:
        return f"known issue: {self.reason} ({self.link}, until {self.expires.isoformat()})"


def load_known_issues(path: Path) -> list[KnownIssue]:
    """Read the list; a missing file is an empty list, a malformed one is a one-line ConfigError."""
    if not path.exists():
        return []
    try:
        raw = yaml.safe_load(path.read_text()) or []
    except yaml.YAMLError as exc:
        raise ConfigError(f"known issues {path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(raw, list):
        raise ConfigError(f"known issues {path}: expected a list of entries")
    issues = []
    for index, entry in enumerate(raw):
        try:
            issues.append(KnownIssue.model_validate(entry))
        except ValidationError as exc:
            err = exc.errors()[0]
            loc = ".".join(str(p) for p in err["loc"])
            raise ConfigError(f"known issues {path}: entry {index + 1}: {loc}: {err['msg']}") from None
    return issues


def expired(issues: list[KnownIssue], today: date) -> list[KnownIssue]:
    return [i for i in issues if i.expires < today]
