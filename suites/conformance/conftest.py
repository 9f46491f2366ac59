"""The conformance suites' directory conftest: thin on purpose.

Fixtures come from the plugins in fixtures/ that the root conftest loads (run, artifacts, clusters, mesh,
workloads, traffic); mode and feature gating is the run plugin's. Add here only what is specific to
this directory and cannot live in a plugin.
"""
