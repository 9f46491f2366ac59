"""meshproof: conformance and benchmark suite for Istio sidecar and ambient modes."""

__version__ = "0.1.0"
