"""The model-server load parser on the exposition the simulator's own Prometheus library writes.

tests/fixtures_data/go/vllm_metrics registers llm-d-inference-sim v0.4.0's four metric families (names,
help texts, label names from its metrics.go) with github.com/prometheus/client_golang v1.22.0, the version
the simulator builds with, sets them as its --fake-metrics start-up does, and writes them with the library's
text encoder. Built with the Go toolchain from the Go module proxy (cached after the first run), run on this
machine, no network beyond the proxy. The simulator itself could not be built here (its module is not served
by the Go module proxy), so this is its library's real output for its metrics, not a capture of the pod.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from fixtures_data.real_tools import real_tool
from fixtures_data.shared_data import capture

from meshproof import gie
from meshproof.evidence.errors import EvidenceParseError
from meshproof.evidence.gie import model_server_load
from meshproof.evidence.prometheus import parse_exposition

pytestmark = pytest.mark.local_real

PROGRAM = Path(__file__).resolve().parents[1] / "fixtures_data" / "go" / "vllm_metrics"


@pytest.fixture(scope="module")
def exporter(tmp_path_factory: pytest.TempPathFactory) -> Path:
    binary = tmp_path_factory.mktemp("vllm-metrics") / "vllm_metrics"
    subprocess.run(
        [str(real_tool("go")), "build", "-o", str(binary), "."],
        cwd=PROGRAM,
        check=True,
        capture_output=True,
        timeout=600,
    )
    return binary


def exposition(exporter: Path, tmp_path: Path, *args: str) -> str:
    out = tmp_path / "metrics.txt"
    subprocess.run([str(exporter), str(out), *args], check=True, capture_output=True, timeout=30)
    return out.read_text()


def test_the_busy_pods_fake_metrics_read_as_saturated(exporter: Path, tmp_path: Path) -> None:
    busy = gie.BUSY_METRICS
    text = exposition(
        exporter,
        tmp_path,
        gie.BASE_MODEL,
        "2",
        str(busy["running-requests"]),
        str(busy["waiting-requests"]),
        str(busy["kv-cache-usage"]),
        "||1700000000",
    )
    load = model_server_load(parse_exposition(text))
    assert (load.running, load.waiting, load.kv_cache) == (64, 1000, 0.99)
    assert load.running_adapters == () and load.waiting_adapters == ()


def test_the_lora_pods_running_adapter_is_read_from_the_newest_series(exporter: Path, tmp_path: Path) -> None:
    text = exposition(
        exporter,
        tmp_path,
        gie.BASE_MODEL,
        "2",
        "0",
        "0",
        "0",
        "old-adapter|queued-adapter|1600000000",
        f"{gie.ADAPTER}||1700000000",
    )
    load = model_server_load(parse_exposition(text))
    assert load.running_adapters == (gie.ADAPTER,)
    assert load.waiting == 0 and load.kv_cache == 0


def test_metrics_of_something_else_are_refused(tmp_path: Path) -> None:
    ztunnel = capture("ztunnel-1.27.9", "json", "metrics-node1.txt").read_text()  # real, but not vLLM
    with pytest.raises(EvidenceParseError, match="vllm:num_requests"):
        model_server_load(parse_exposition(ztunnel))
