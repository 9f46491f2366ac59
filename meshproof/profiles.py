"""Certification profiles: named, versioned, fixed selections of required and optional tests.

As in the Gateway API conformance suite, a profile is what an implementation claims: `ambient-core` means
every required test of that profile passed on this run. Selections are pytest marker expressions over the
suites' markers, not node ids, so a profile picks up a feature suite's tests by its marker (nftables,
istio_csr, gie, multicluster) as the suite grows. A profile's version changes whenever its selection does.
Tests of the other mesh mode are never required (the run gates them as unsupported).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from meshproof.config import ConfigError, Feature, RunConfig


@dataclass(frozen=True)
class Profile:
    name: str
    version: str
    description: str
    required: str  # marker expression: tests that must pass
    optional: str = ""  # marker expression: tests that run and are reported, but do not decide
    mode: str | None = None  # the mesh mode the profile is certified in; None: the run's --mode
    features: tuple[Feature, ...] = ()  # features the run must enable

    def check_run(self, cfg: RunConfig) -> None:
        """Raise ConfigError (one line) when the run's options cannot earn this profile."""
        needs: list[str] = []
        if self.mode and cfg.mode != self.mode:
            needs.append(f"--mode {self.mode}")
        missing = [f.value for f in self.features if f not in cfg.features]
        if missing:
            needs.append(f"--features {','.join(missing)}")
        if needs:
            raise ConfigError(f"profile {self.name} is certified with {' '.join(needs)}; add it to the run")


CORE_AREAS = "install or mtls or authz"
FEATURE_MARKERS = "nftables or istio_csr or gie or multicluster"


def _feature_profile(feature: Feature, marker: str, mode: str | None, what: str) -> Profile:
    return Profile(
        name=feature.value,
        version="1.0",
        description=what,
        required=marker,
        # the mesh under the feature: its install health is reported beside it, the claim is the feature
        optional=f"install and not ({FEATURE_MARKERS})",
        mode=mode,
        features=(feature,),
    )


PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile(
            name="ambient-core",
            version="1.0",
            description="mesh install, mTLS and L4 authorization through ztunnel; waypoint (L7) optional",
            required=f"({CORE_AREAS}) and not waypoint and not ({FEATURE_MARKERS})",
            optional=f"waypoint and not ({FEATURE_MARKERS})",
            mode="ambient",
        ),
        Profile(
            name="sidecar-core",
            version="1.0",
            description="mesh install, mTLS and L4/L7 authorization through sidecars",
            required=f"({CORE_AREAS}) and not ({FEATURE_MARKERS})",
            mode="sidecar",
        ),
        _feature_profile(Feature.NFTABLES, "nftables", "sidecar", "native nftables traffic redirection"),
        _feature_profile(Feature.ISTIO_CSR, "istio_csr", None, "cert-manager istio-csr as the mesh CA"),
        _feature_profile(Feature.GIE, "gie", None, "Gateway API Inference Extension routing"),
        _feature_profile(Feature.MULTICLUSTER, "multicluster", None, "one mesh across two clusters"),
    )
}


def get_profile(name: str) -> Profile:
    try:
        return PROFILES[name]
    except KeyError:
        raise ConfigError(
            f"--profile-name {name}: unknown profile; choose one of {', '.join(PROFILES)}"
        ) from None


def matches(expression: str, markers: Iterable[str]) -> bool:
    """Whether a test with these marker names matches a marker expression (pytest's own -m grammar)."""
    from _pytest.mark.expression import Expression  # pytest's parser: the same grammar as -m

    names = set(markers)

    def has_marker(name: str, /, **kwargs: str | int | bool | None) -> bool:
        return name in names

    return Expression.compile(expression).evaluate(has_marker)
