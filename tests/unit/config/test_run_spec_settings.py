"""Issue 6's settings: load models, --app/--cmd/--locustfile, thresholds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sandbox.config import settings as config
from sandbox.config.run_spec import RunSpec
from sandbox.errors import ConfigError
from sandbox.load.models import LoadModel
from sandbox.units import MIB


def spec_with(**options: Any) -> RunSpec:
    return config.build_spec(
        config.load_benchmark(None), config.validate_overrides("option", options)
    )


def error_of(**options: Any) -> str:
    with pytest.raises(ConfigError) as info:
        spec_with(**options)
    assert info.value.exit_code == 2
    return str(info.value)


@pytest.fixture
def locustfile(tmp_path: Path) -> Path:
    path = tmp_path / "mine.py"
    path.write_text("from locust import HttpUser, task\n")
    return path


def test_defaults_are_the_iterations_drill_on_the_stair_stepper() -> None:
    spec = spec_with()
    assert spec.load.model == LoadModel(
        "iterations", users=16, rate=0.0, duration_s=60.0, spike_at_s=10.0, spike_s=5.0
    )
    assert spec.target.ours
    assert spec.load.drill
    assert spec.thresholds == {}
    assert spec.load.workers == 0


def test_app_and_cmd_together() -> None:
    msg = error_of(app="x:y", cmd="serve --port {port}", ready_url="http://127.0.0.1:{port}/")
    assert msg == "--app and --cmd both given; choose one"


def test_cmd_needs_a_ready_url() -> None:
    msg = error_of(cmd="serve --port {port}")
    assert msg == (
        "--cmd needs --ready-url, a URL that answers once the server is up, e.g. "
        "--ready-url 'http://127.0.0.1:{port}/health'"
    )


def test_cmd_without_port_placeholder_needs_port() -> None:
    msg = error_of(cmd="serve --port 9000", ready_url="http://127.0.0.1:9000/health")
    assert msg == (
        "--cmd must contain {port} (the sandbox fills in a free port) or come with "
        "--port, the port the command listens on"
    )
    bench = config.load_benchmark(None)
    overrides = config.validate_overrides(
        "option", {"cmd": "serve --port 9000", "ready_url": "http://127.0.0.1:9000/health"}
    )
    spec = config.build_spec(bench, overrides, port=9000)
    assert (spec.server.port, spec.target.cmd) == (9000, "serve --port 9000")


def test_cmd_with_server_workers() -> None:
    msg = error_of(cmd="serve --port {port}", ready_url="http://127.0.0.1:{port}/", workers=2)
    assert msg == (
        "--server-workers applies to the stair-stepper and --app; "
        "give a --cmd its own worker option"
    )


def test_cmd_target() -> None:
    spec = spec_with(cmd="serve --port {port}", ready_url="http://localhost:{port}/ready")
    assert spec.target.cmd == "serve --port {port}"
    assert spec.target.ready_url == "http://localhost:{port}/ready"
    assert spec.target.app is None
    assert not spec.target.ours


def test_app_with_workers() -> None:
    spec = spec_with(app="examples.cache_service.app:app", workers=2)
    assert (spec.target.app, spec.target.workers) == ("examples.cache_service.app:app", 2)


def test_ready_url_must_be_on_this_machine() -> None:
    with pytest.raises(ConfigError) as info:
        config.validate_overrides("option", {"ready_url": "http://10.0.0.5:8000/health"})
    assert str(info.value) == (
        "--ready-url has value 'http://10.0.0.5:8000/health'; expected an http:// URL on this "
        "machine, e.g. http://127.0.0.1:{port}/health"
    )
    with pytest.raises(ConfigError, match="expected an http:// URL"):
        config.validate_overrides("option", {"ready_url": "https://127.0.0.1/health"})


def test_users_locustfile_with_the_iterations_model(locustfile: Path) -> None:
    msg = error_of(locustfile=str(locustfile))
    assert msg == (
        "--iterations is understood only by plans/locustfile.py; with --locustfile choose a "
        "load model with a duration, e.g. --load soak --duration 60 (or --load rate --rate 20)"
    )


def test_users_locustfile_not_found(tmp_path: Path) -> None:
    missing = tmp_path / "nope.py"
    assert error_of(locustfile=str(missing), load="soak") == f"--locustfile: {missing} not found"


def test_users_locustfile_with_soak(locustfile: Path) -> None:
    spec = spec_with(locustfile=str(locustfile), load="soak", duration_s=30)
    assert spec.load.locustfile == locustfile.resolve()
    assert not spec.load.drill
    assert spec.load.model.name == "soak"
    assert spec.load.model.duration_s == 30.0


def test_users_locustfile_has_no_tags_unless_given(locustfile: Path) -> None:
    assert spec_with(locustfile=str(locustfile), load="soak").load.tags == ()


def test_users_locustfile_takes_any_tags_given(locustfile: Path) -> None:
    spec = spec_with(locustfile=str(locustfile), load="soak", tags="checkout,browse")
    assert spec.load.tags == ("checkout", "browse")


def test_own_locustfile_rejects_tags_of_no_plan() -> None:
    assert error_of(tags="checkout").startswith("tag 'checkout' matches no plan in benchmark.yml")


def test_rate_without_rate() -> None:
    msg = error_of(load="rate")
    assert msg.startswith("run.rate (--rate): ")
    assert msg == "run.rate (--rate): the rate model needs a rate > 0 (requests/s)"


def test_ramp_without_to_rate() -> None:
    msg = error_of(load="ramp", rate=5.0)
    assert msg == "run.to_rate (--to-rate): the ramp model needs the rate to end at (> 0)"


def test_spike_past_the_duration() -> None:
    msg = error_of(load="spike", rate=5.0, duration_s=10, spike_at_s=8, spike_s=5)
    assert msg == "run.spike_at_s (--spike-at): the burst must end within duration_s"


def test_spike_x_must_be_above_one() -> None:
    with pytest.raises(ConfigError) as info:
        config.validate_overrides("option", {"spike_x": 1})
    assert str(info.value) == "--spike-x has value 1; expected a number > 1"


def test_rate_model_is_built_from_the_options() -> None:
    spec = spec_with(load="rate", rate=20, duration_s=30, concurrency=8)
    assert spec.load.model == LoadModel(
        "rate", users=8, rate=20.0, duration_s=30.0, spike_at_s=10.0, spike_s=5.0
    )
    assert spec.load.model.pace() == 2.5


def test_load_workers() -> None:
    assert spec_with(load="soak", load_workers=3).load.workers == 3


def test_thresholds_end_up_in_the_spec_in_bytes() -> None:
    spec = spec_with(p95_ms=800, error_rate=0.01, peak_rss="500MiB", growth="1.5G")
    assert spec.thresholds == {
        "p95_ms": 800.0,
        "error_rate": 0.01,
        "peak_rss": 500 * MIB,
        "growth": 1_500_000_000,
    }


def test_a_model_longer_than_the_batch_limit_is_refused() -> None:
    message = error_of(load="soak", duration_s=1800, batch_timeout_s=900)
    assert message.startswith("run.duration_s (1800 s) is longer than run.batch_timeout_s (900 s)")


def test_more_locust_workers_than_users_is_refused() -> None:
    assert error_of(load_workers=4, concurrency=2).startswith(
        "--load-workers 4 needs at least as many --users (2)"
    )


@pytest.mark.parametrize(
    ("cmd", "start"),
    [("python 'x {port}", '--cmd "python \'x {port}" cannot be split'), ("  ", "--cmd is empty")],
)
def test_a_cmd_that_cannot_run_is_refused_in_one_line(cmd: str, start: str) -> None:
    assert error_of(cmd=cmd, ready_url="http://127.0.0.1:{port}/").startswith(start)


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_thresholds_must_be_finite(value: float) -> None:
    assert "expected a number >= 0" in error_of(p95_ms=value)
