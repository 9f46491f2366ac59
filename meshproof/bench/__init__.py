"""The benchmark engine: arms, load tools, statistics (reports live in meshproof.reporting.bench*).

- model: the versioned result format (`benchmark.json`), runs, histograms, resource usage
- fortio, locust: build, run (locally or in the cluster) and parse the load tools
- validity: when a run is not a measurement (rate not sustained, errors, saturated generator)
- histogram, stats: latency histograms, bootstrap intervals, Mann-Whitney
- plan, runner: load profiles (load/profiles/) and the order of a benchmark
- cluster, resources, pathcheck, session: the arms on a cluster, proxy CPU/memory, path checks
- local, localserver: `meshproof bench local` and a loopback echo server
- analysis, compare: per-cell summaries, cost vs no-mesh, regression verdicts
"""
