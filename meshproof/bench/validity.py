"""Is a load run a valid measurement? A run that did not deliver its target rate, or that failed too many
requests, measured a saturated or broken system: it is kept with its reasons and never averaged in.

Limits follow perf-anchors §7.5: discard points where ActualQPS < 99% of the target, where fortio
prints "falling behind", or where the error ratio is above 0.1%.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, Field


class ValidityLimits(BaseModel):
    model_config = ConfigDict(frozen=True)

    min_qps_ratio: float = Field(default=0.99, gt=0, le=1)
    max_error_ratio: float = Field(default=0.001, ge=0, le=1)
    # fortio prints the falling-behind warning only when catch-up is allowed (no -nocatchup)
    max_falling_behind_pct: float = Field(default=1.0, ge=0)


@dataclass(frozen=True)
class RunValidity:
    valid: bool
    reasons: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def assess(
    *,
    requested_qps: float | None,
    actual_qps: float,
    requests: int,
    errors: int,
    limits: ValidityLimits,
    connections: int | None = None,
    socket_count: int | None = None,
    falling_behind_pct: float | None = None,
    loadgen_cpu_warning: bool = False,
) -> RunValidity:
    reasons: list[str] = []
    warnings: list[str] = []
    if requests <= 0:
        reasons.append("no requests completed")
    if requested_qps is not None and requested_qps > 0:
        ratio = actual_qps / requested_qps
        if ratio < limits.min_qps_ratio:
            reasons.append(
                f"actual QPS {actual_qps:.1f} is {100 * ratio:.1f}% of the requested {requested_qps:g} "
                f"(minimum {100 * limits.min_qps_ratio:g}%): "
                "the target or the load generator could not keep up"
            )
    if requests > 0:
        error_ratio = errors / requests
        if error_ratio > limits.max_error_ratio:
            reasons.append(
                f"{errors} of {requests} requests failed ({100 * error_ratio:.2f}%, "
                f"limit {100 * limits.max_error_ratio:g}%)"
            )
    if falling_behind_pct is not None and falling_behind_pct > limits.max_falling_behind_pct:
        reasons.append(f"fortio: {falling_behind_pct:.2f}% of sleeps were falling behind (saturated)")
    if loadgen_cpu_warning:
        reasons.append(
            "the load generator reported CPU above 90%: its own scheduling delay is in the latency"
        )
    if connections is not None and socket_count is not None and socket_count > connections:
        # perf-anchors §7.2: SocketCount should equal -c when keep-alive worked
        warnings.append(
            f"{socket_count} sockets opened for {connections} connections: connections were not reused"
        )
    return RunValidity(valid=not reasons, reasons=reasons, warnings=warnings)
