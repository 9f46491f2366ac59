"""Benchmark settings are validated before anything is provisioned, one line per bad setting.

The suite run goes through pytester on the real suites/benchmark with preflight stubbed (no cluster here):
what matters is that the run stops at collection, before a fixture could create a cluster.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from meshproof.bench.settings import DEFAULT_THRESHOLD_PCT, BenchSettingsError, bench_settings

REPO = Path(__file__).resolve().parents[2]
PROFILE, BASELINE, THRESHOLD = (
    "MESHPROOF_BENCH_PROFILE",
    "MESHPROOF_BENCH_BASELINE",
    "MESHPROOF_BENCH_THRESHOLD_PCT",
)


def test_defaults_are_valid():
    settings = bench_settings({})
    assert settings.plan.name == "quick"
    assert (settings.baseline, settings.threshold_pct) == (None, DEFAULT_THRESHOLD_PCT)


def test_every_bad_setting_is_named_on_its_own_line(tmp_path: Path):
    env = {PROFILE: "quik", BASELINE: str(tmp_path / "last-night"), THRESHOLD: "ten"}
    with pytest.raises(BenchSettingsError) as err:
        bench_settings(env)
    problems = err.value.problems
    assert [p.split(":")[0] for p in problems] == [PROFILE, BASELINE, THRESHOLD]
    assert "no load profile 'quik' (known: " in problems[0] and "quick" in problems[0]
    assert f"no benchmark.json at {tmp_path / 'last-night'}: pass a results dir" in problems[1]
    assert problems[2] == f"{THRESHOLD}: 'ten' is not a percentage (a number >= 0, e.g. 10)"
    assert all("\n" not in p for p in problems)


@pytest.mark.parametrize("raw", ["-5", "nan", "inf", ""])
def test_threshold_must_be_a_finite_non_negative_number(raw: str):
    if raw == "":
        assert bench_settings({THRESHOLD: raw}).threshold_pct == DEFAULT_THRESHOLD_PCT
        return
    with pytest.raises(BenchSettingsError, match=THRESHOLD):
        bench_settings({THRESHOLD: raw})


def test_a_broken_profile_file_is_one_line(tmp_path: Path):
    broken = tmp_path / "mine.yaml"
    broken.write_text("name: mine\nfortio: [unclosed\n")
    with pytest.raises(BenchSettingsError) as err:
        bench_settings({PROFILE: str(broken)})
    assert len(err.value.problems) == 1 and "not valid YAML" in err.value.problems[0]


def test_the_benchmark_run_stops_at_collection_with_one_line_each(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    import meshproof.commands.doctor as doctor

    monkeypatch.setattr(doctor, "preflight", lambda cfg: [])
    monkeypatch.setenv(PROFILE, "quik")
    monkeypatch.setenv(BASELINE, str(tmp_path / "missing"))
    monkeypatch.chdir(REPO)
    result = pytester.runpytest(
        str(REPO / "suites" / "benchmark"),
        "-m",
        "benchmark",
        "--provider",
        "existing",
        "--results-dir",
        str(tmp_path / "results"),
        "-p",
        "no:cacheprovider",
        f"--rootdir={REPO}",
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in result.stderr.lines if line.startswith("ERROR:")]
    assert [e.split(":")[2].strip() for e in errors] == [PROFILE, BASELINE]
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
    result.stdout.no_fnmatch_line("*passed*")
