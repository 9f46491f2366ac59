"""meshproof: conformance and benchmark suite for Istio sidecar and ambient modes.

PYTEST_DONT_REWRITE: the `pytest11` entry point marks this package for pytest's assertion rewriting; in
nested pytest runs (the engine's pytester tests) it is already imported, and this marker keeps pytest from
warning about that. Only this __init__ is exempt; the package's other modules are rewritten as usual.
"""

__version__ = "0.1.0"
