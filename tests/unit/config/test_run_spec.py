"""RunSpec: the sections build_spec fills from the settings, and with_ on nested fields."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sandbox.config import settings as config
from sandbox.config.run_spec import RunSpec
from sandbox.errors import ConfigError


def spec_with(**options: Any) -> RunSpec:
    return config.build_spec(
        config.load_benchmark(None), config.validate_overrides("option", options)
    )


def test_sections_take_the_settings_of_their_names() -> None:
    spec = spec_with(
        batches=2, pause_s=0.5, baseline_s=1, idle_s=4, interval_s=0.2, probe_interval_s=0.5,
        ready_timeout_s=9, hang_timeout_s=7, max_rss="1GiB", trim_s=0, objects=True,
        batch_timeout_s=120, load_workers=0,
    )  # fmt: skip
    assert (spec.schedule.batches, spec.schedule.pause_s) == (2, 0.5)
    assert (spec.schedule.baseline_s, spec.schedule.idle_s) == (1.0, 4.0)
    assert (spec.sampler.interval_s, spec.sampler.probe_interval_s) == (0.2, 0.5)
    assert (spec.limits.ready_timeout_s, spec.limits.hang_timeout_s) == (9.0, 7.0)
    assert spec.limits.max_rss_bytes == 2**30
    assert (spec.inspect.trim_s, spec.inspect.objects, spec.inspect.profile) == (0.0, True, None)
    assert spec.load.timeout_s == 120.0


def test_a_garbage_collection_is_off_by_default_and_needs_the_trim_phase() -> None:
    assert spec_with().inspect.collect_garbage is False
    assert spec_with(collect_garbage=True, trim_s=2).inspect.collect_garbage is True
    with pytest.raises(ConfigError) as raised:
        spec_with(collect_garbage=True, trim_s=0)
    assert str(raised.value) == (
        "run.collect_garbage (--collect-garbage) runs in the trim phase, before the trim: give "
        "run.trim_s (--trim) a positive time"
    )


def test_with_replaces_a_top_level_field_a_path_or_a_unique_name(tmp_path: Path) -> None:
    spec = spec_with()
    assert spec.with_(repeat=2).repeat == 2
    moved = spec.with_(**{"output.results_dir": tmp_path})
    assert moved.output.results_dir == tmp_path
    assert moved.output.compress == spec.output.compress
    assert spec.with_(results_dir=tmp_path) == moved
    assert spec.with_(profile="memray").inspect.profile == "memray"
    slow = spec.with_(sleep_ms=900)  # two levels down: server.settings.sleep_ms
    assert slow.server.settings.sleep_ms == 900
    assert slow.server.settings.handler == spec.server.settings.handler
    assert spec.server.settings.sleep_ms == 150  # the original is left as it was


def test_with_refuses_an_ambiguous_or_unknown_name() -> None:
    spec = spec_with()
    with pytest.raises(TypeError) as info:
        spec.with_(workers=2)
    assert str(info.value) == (
        "RunSpec.with_: workers is ambiguous (target.workers, load.workers); give its path"
    )
    assert spec.with_(**{"load.workers": 2}).load.workers == 2
    with pytest.raises(TypeError, match=r"^RunSpec.with_: pace names no field of RunSpec$"):
        spec.with_(pace=1.0)
    with pytest.raises(TypeError, match=r"^RunSpec.with_: Output has no field dir$"):
        spec.with_(**{"output.dir": "x"})
