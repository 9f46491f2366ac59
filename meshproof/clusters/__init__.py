"""Cluster providers: kind (creates clusters), openshift and existing (use a kubeconfig)."""

from __future__ import annotations

from meshproof.clusters.base import Provider, ProvisionError
from meshproof.clusters.existing import ExistingProvider
from meshproof.clusters.kind import KindProvider
from meshproof.clusters.openshift import OpenShiftProvider

__all__ = ["Provider", "ProvisionError", "provider_for"]


def provider_for(name: str) -> Provider:
    providers: dict[str, Provider] = {
        "kind": KindProvider(),
        "openshift": OpenShiftProvider(),
        "existing": ExistingProvider(),
    }
    return providers[name]
