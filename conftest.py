"""Wiring only: the plugins that make up meshproof's pytest integration live in fixtures/."""

pytest_plugins = [
    "fixtures.run",
    "fixtures.artifacts",
    "fixtures.clusters",
    "fixtures.mesh",
    "fixtures.workloads",
    "fixtures.traffic",
    "fixtures.gie",
    "fixtures.multicluster",
]
