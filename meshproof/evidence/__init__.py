"""Observations from a cluster: parsers of tool output and thin collectors. Nothing here decides.

Parsers (ztunnel_config, proxy_config, prometheus, ztunnel_logs, policy_status) turn the exact output of
istioctl, ztunnel and Envoy into typed records; collectors (collect) fetch that output through istioctl
or a Cluster. Verdicts over these records live in meshproof.checks.
"""
