"""`meshproof bench local`: load one HTTP endpoint from this machine and write the common result format.

Warm-up is discarded: fortio gets a separate throw-away run first; Locust's first seconds are cut from
its per-request log. Repetitions run back to back; the host's load average is recorded before and after,
because a shared machine is part of the measurement.
"""

from __future__ import annotations

import ipaddress
import os
import platform
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from meshproof.bench import fortio as fortio_mod
from meshproof.bench import locust as locust_mod
from meshproof.bench.model import BenchmarkResults, Placement, RunRecord
from meshproof.bench.validity import ValidityLimits

LOCAL_ARM = "local"


class LocalBenchError(Exception):
    """A local benchmark that cannot start; the message is one line with the fix."""


def require_loopback(url: str) -> None:
    """Refuse non-loopback targets: `bench local` is for local servers unless the user opts in."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise LocalBenchError(f"--url {url!r} is not an http(s) URL with a host")
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or 80, proto=socket.IPPROTO_TCP)
    except socket.gaierror as exc:
        raise LocalBenchError(f"--url host {parts.hostname!r} does not resolve: {exc.strerror}") from None
    addresses = {str(info[4][0]) for info in infos}
    if not all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addresses):
        raise LocalBenchError(
            f"--url host {parts.hostname!r} is not loopback ({', '.join(sorted(addresses))}); "
            "pass --allow-remote to load a non-local endpoint you are responsible for"
        )


@dataclass(frozen=True)
class LocalBenchSpec:
    url: str
    tool: Literal["fortio", "locust"]
    qps: float | None
    connections: int
    duration_s: float
    repetitions: int = 1
    warmup_s: float = 2.0
    payload_bytes: int = 0
    processes: int = 1
    arm: str = LOCAL_ARM
    limits: ValidityLimits = field(default_factory=ValidityLimits)
    allow_remote: bool = False


def host_facts() -> dict[str, object]:
    load1, load5, _ = os.getloadavg()
    return {
        "host": "this machine",
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "load_average_1m_before": round(load1, 2),
        "load_average_5m_before": round(load5, 2),
    }


def run_local(
    spec: LocalBenchSpec, output: Path, *, progress: Callable[[str], None] | None = None
) -> BenchmarkResults:
    if not spec.allow_remote:
        require_loopback(spec.url)
    say = progress or (lambda _msg: None)
    output.mkdir(parents=True, exist_ok=True)
    environment = host_facts()
    runs: list[RunRecord] = []
    fortio_binary = fortio_mod.find_fortio() if spec.tool == "fortio" else None
    for rep in range(1, spec.repetitions + 1):
        run_id = f"{spec.tool}-{spec.arm}-r{rep}"
        say(
            f"run {rep}/{spec.repetitions}: {spec.tool} {spec.url} "
            f"qps={spec.qps or 'max'} c={spec.connections}"
        )
        if spec.tool == "fortio":
            assert fortio_binary is not None
            runs.append(_fortio_run(spec, output, run_id, rep, fortio_binary))
            environment["fortio_version"] = runs[-1].tool_version
        else:
            runs.append(_locust_run(spec, output, run_id, rep))
            environment["locust_version"] = runs[-1].tool_version
        if not runs[-1].valid:
            say(f"  invalid: {'; '.join(runs[-1].invalid_reasons)}")
    load1, _, _ = os.getloadavg()
    environment["load_average_1m_after"] = round(load1, 2)
    results = BenchmarkResults(
        kind="local",
        environment=environment,
        plan={
            "url": spec.url,
            "tool": spec.tool,
            "qps": spec.qps,
            "connections": spec.connections,
            "duration_s": spec.duration_s,
            "warmup_s": spec.warmup_s,
            "repetitions": spec.repetitions,
            "payload_bytes": spec.payload_bytes,
            "processes": spec.processes,
            "validity": spec.limits.model_dump(),
        },
        runs=runs,
        notes=_notes(spec),
    )
    results.save(output)
    return results


def _notes(spec: LocalBenchSpec) -> list[str]:
    notes = ["Load generator and server share this machine's CPUs: numbers include that contention."]
    if spec.tool == "locust":
        notes.append(
            "Locust latencies come from per-request logs (µs precision), not Locust's rounded stats; "
            "Locust is closed-loop, so a slow server also lowers the offered rate (the QPS guard catches it)."
        )
    else:
        notes.append("fortio runs with -uniform -nocatchup; latency is measured from the actual send time.")
    return notes


def _fortio_run(spec: LocalBenchSpec, output: Path, run_id: str, rep: int, binary: Path) -> RunRecord:
    load = fortio_mod.FortioLoad(
        url=spec.url,
        qps=spec.qps,
        connections=spec.connections,
        duration_s=spec.duration_s,
        payload_size=spec.payload_bytes,
        labels=run_id,
    )
    if spec.warmup_s > 0:
        warm = fortio_mod.FortioLoad(
            url=spec.url,
            qps=spec.qps,
            connections=spec.connections,
            duration_s=spec.warmup_s,
            labels="warmup",
        )
        fortio_mod.run_fortio_local(warm, binary=binary)  # discarded (perf-anchors §5 warm-up)
    out = fortio_mod.run_fortio_local(load, binary=binary)
    raw_dir = output / "raw"
    raw_dir.mkdir(exist_ok=True)
    (raw_dir / f"{run_id}.json").write_text(out.stdout, encoding="utf-8")
    (raw_dir / f"{run_id}.stderr.log").write_text(out.stderr, encoding="utf-8")
    return fortio_mod.to_run_record(
        out.result,
        load=load,
        run_id=run_id,
        arm=spec.arm,
        repetition=rep,
        order=rep - 1,
        limits=spec.limits,
        scenarios=("local",),
        raw_files=(f"raw/{run_id}.json",),
        placement=Placement(policy="loopback" if not spec.allow_remote else "remote"),
        loadgen_cpu_s=out.cpu_s,
    )


def _locust_run(spec: LocalBenchSpec, output: Path, run_id: str, rep: int) -> RunRecord:
    parts = urlsplit(spec.url)
    path = parts.path or "/"
    if parts.query:
        path += f"?{parts.query}"
    load = locust_mod.LocustLoad(
        host=f"{parts.scheme}://{parts.netloc}",
        path=path,
        qps=spec.qps,
        users=spec.connections,
        duration_s=spec.duration_s,
        warmup_s=spec.warmup_s,
        processes=spec.processes,
        payload_bytes=spec.payload_bytes,
    )
    out = locust_mod.run_locust_local(
        load,
        out_dir=output / "raw" / run_id,
        run_id=run_id,
        arm=spec.arm,
        repetition=rep,
        order=rep - 1,
        limits=spec.limits,
        results_root=output,
    )
    return out.record.model_copy(update={"scenarios": ["local"]})
