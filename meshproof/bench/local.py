"""`meshproof bench local`: load one or more HTTP endpoints (arms) from this machine and write the common
result format.

With several arms (`--url a=URL --url b=URL`), every repetition runs every arm back to back in a random
order drawn from the seed, so the drift of a shared machine lands on all arms and each repetition is a
fair pair (meshproof.bench.stats pairs them). Warm-up is discarded and uses the same method and payload
as the measured run: fortio gets a separate throw-away run first; Locust's first seconds are cut from
its per-request log. The host's load average is recorded before and after: a shared machine is part of
the measurement.
"""

from __future__ import annotations

import ipaddress
import os
import platform
import socket
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from meshproof.bench import fortio as fortio_mod
from meshproof.bench import locust as locust_mod
from meshproof.bench.model import BenchmarkResults, Placement, RunRecord
from meshproof.bench.plan import arm_order
from meshproof.bench.stats import DEFAULT_REPETITIONS
from meshproof.bench.validity import ValidityLimits
from meshproof.config import RUN_ID_RE

LOCAL_ARM = "local"
# a loopback target runs on this machine too: leave it this many cores
LOCAL_TARGET_CORES = 1


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
class LocalArm:
    name: str
    url: str


def parse_arms(urls: list[str], single_name: str = LOCAL_ARM) -> tuple[LocalArm, ...]:
    """`--url` values: `URL` or `NAME=URL`. One unnamed URL is the arm `single_name`; several unnamed
    ones are arms a, b, c... in the order given (the first is the reference of the comparison). A name
    follows the run-id rule (it names files and report rows); a URL with credentials (user:password@) is
    refused without echoing it, so no credential reaches a report."""
    arms: list[LocalArm] = []
    for index, text in enumerate(urls):
        name, sep, url = text.partition("=")
        if not sep or "://" in name:
            name, url = (single_name if len(urls) == 1 else chr(ord("a") + index)), text
        if _has_userinfo(url):
            raise LocalBenchError(
                f"--url of arm {name!r}: credentials in the URL (user:password@) are refused, "
                "they would be written into the reports"
            )
        if not name or not url:
            raise LocalBenchError(f"--url {text!r}: expected URL or NAME=URL")
        if not RUN_ID_RE.fullmatch(name):
            raise LocalBenchError(
                f"--url {text!r}: arm name {name!r} must match [A-Za-z0-9][A-Za-z0-9._-]* "
                "(up to 63 characters)"
            )
        arms.append(LocalArm(name, url))
    names = [a.name for a in arms]
    if len(set(names)) != len(names):
        raise LocalBenchError(f"--url: arm names repeat ({', '.join(names)}); name each arm once")
    return tuple(arms)


def _has_userinfo(url: str) -> bool:
    try:
        parts = urlsplit(url)
    except ValueError:
        return "@" in url.partition("://")[2].partition("/")[0]
    return "@" in parts.netloc


def default_locust_processes(allow_remote: bool, cpus: int | None = None) -> int:
    """All cores, minus what a local target needs (a loopback server runs on this machine too)."""
    cores = cpus or os.cpu_count() or 1
    return max(1, cores - (0 if allow_remote else LOCAL_TARGET_CORES))


@dataclass(frozen=True)
class LocalBenchSpec:
    arms: tuple[LocalArm, ...]
    tool: Literal["fortio", "locust"]
    qps: float | None
    connections: int
    duration_s: float
    repetitions: int = DEFAULT_REPETITIONS
    warmup_s: float = 2.0
    payload_bytes: int = 0
    processes: int | None = None  # Locust worker processes; None = default_locust_processes
    limits: ValidityLimits = field(default_factory=ValidityLimits)
    allow_remote: bool = False
    seed: int = 0

    @property
    def locust_processes(self) -> int:
        return self.processes or default_locust_processes(self.allow_remote)


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
    if not spec.arms:
        raise LocalBenchError("no --url given")
    if not spec.allow_remote:
        for arm in spec.arms:
            require_loopback(arm.url)
    say = progress or (lambda _msg: None)
    output.mkdir(parents=True, exist_ok=True)
    environment = host_facts()
    runs: list[RunRecord] = []
    fortio_binary = fortio_mod.find_fortio() if spec.tool == "fortio" else None
    by_name = {a.name: a for a in spec.arms}
    order = 0
    for rep in range(1, spec.repetitions + 1):
        for name in arm_order(list(by_name), rep, spec.seed):
            arm = by_name[name]
            run_id = f"{spec.tool}-{arm.name}-r{rep}"
            say(
                f"repetition {rep}/{spec.repetitions} arm {arm.name}: {spec.tool} {arm.url} "
                f"qps={spec.qps or 'max'} c={spec.connections}"
            )
            if spec.tool == "fortio":
                assert fortio_binary is not None
                runs.append(_fortio_run(spec, arm, output, run_id, rep, order, fortio_binary))
                environment["fortio_version"] = runs[-1].tool_version
            else:
                runs.append(_locust_run(spec, arm, output, run_id, rep, order))
                environment["locust_version"] = runs[-1].tool_version
            order += 1
            if not runs[-1].valid:
                say(f"  invalid: {'; '.join(runs[-1].invalid_reasons)}")
    load1, _, _ = os.getloadavg()
    environment["load_average_1m_after"] = round(load1, 2)
    results = BenchmarkResults(
        kind="local",
        environment=environment,
        plan={
            "arms": {a.name: a.url for a in spec.arms},
            "reference_arm": spec.arms[0].name,
            "url": spec.arms[0].url,
            "tool": spec.tool,
            "qps": spec.qps,
            "connections": spec.connections,
            "duration_s": spec.duration_s,
            "warmup_s": spec.warmup_s,
            "repetitions": spec.repetitions,
            "arm_order": f"random per repetition (seed {spec.seed})",
            "payload_bytes": spec.payload_bytes,
            "method": "POST" if spec.payload_bytes else "GET",
            "locust_processes": spec.locust_processes if spec.tool == "locust" else None,
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


def fortio_loads(spec: LocalBenchSpec, arm: LocalArm, run_id: str) -> tuple[fortio_mod.FortioLoad, ...]:
    """(warm-up, measured) or (measured,): the warm-up is the measured load, shorter and unlabelled, so it
    warms the same method, payload and connections."""
    load = fortio_mod.FortioLoad(
        url=arm.url,
        qps=spec.qps,
        connections=spec.connections,
        duration_s=spec.duration_s,
        payload_size=spec.payload_bytes,
        labels=run_id,
    )
    if spec.warmup_s <= 0:
        return (load,)
    return (replace(load, duration_s=spec.warmup_s, labels="warmup"), load)


def _fortio_run(
    spec: LocalBenchSpec, arm: LocalArm, output: Path, run_id: str, rep: int, order: int, binary: Path
) -> RunRecord:
    *warm, load = fortio_loads(spec, arm, run_id)
    for warm_load in warm:
        fortio_mod.run_fortio_local(warm_load, binary=binary)  # discarded (perf-anchors §5 warm-up)
    out = fortio_mod.run_fortio_local(load, binary=binary)
    raw_dir = output / "raw"
    raw_dir.mkdir(exist_ok=True)
    (raw_dir / f"{run_id}.json").write_text(out.stdout, encoding="utf-8")
    (raw_dir / f"{run_id}.stderr.log").write_text(out.stderr, encoding="utf-8")
    return fortio_mod.to_run_record(
        out.result,
        load=load,
        run_id=run_id,
        arm=arm.name,
        repetition=rep,
        order=order,
        limits=spec.limits,
        scenarios=("local",),
        raw_files=(f"raw/{run_id}.json",),
        placement=Placement(policy="loopback" if not spec.allow_remote else "remote"),
        loadgen_cpu_s=out.cpu_s,
    )


def _locust_run(
    spec: LocalBenchSpec, arm: LocalArm, output: Path, run_id: str, rep: int, order: int
) -> RunRecord:
    parts = urlsplit(arm.url)
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
        processes=spec.locust_processes,
        payload_bytes=spec.payload_bytes,
    )
    out = locust_mod.run_locust_local(
        load,
        out_dir=output / "raw" / run_id,
        run_id=run_id,
        arm=arm.name,
        repetition=rep,
        order=order,
        limits=spec.limits,
        results_root=output,
    )
    return out.record.model_copy(update={"scenarios": ["local"], "loadgen_cores": spec.locust_processes})
