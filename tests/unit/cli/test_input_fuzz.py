"""1,000 mutated configs and 1,000 mutated result files through the real readers and the CLI:
every one either works or ends in one line (a SandboxError, or click's usage error), never a
traceback. Seeded, so a failure names a mutation that can be replayed.

Configs: benchmark.yml and every experiment file, with keys deleted, types changed, huge numbers,
NaN, unicode and deep nesting; each goes through config.load_benchmark + build_spec (and, for an
experiment, load_experiment + a spec per planned run), a sample also through `sandbox run
--config` and `sandbox experiment` with the runner patched (nothing is launched). Results: the
golden files of tests/data, mutated the same ways plus truncated or corrupted gzip and deep
nesting, through result_files.load and compare, a sample also through `sandbox compare`.
"""

from __future__ import annotations

import copy
import functools
import gzip
import json
import math
import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click
import pytest
import yaml
from click.testing import CliRunner

from sandbox.analysis import compare, report
from sandbox.cli import main as cli
from sandbox.config import settings as config
from sandbox.errors import SandboxError
from sandbox.experiment import definition as experiment
from sandbox.results import files as result_files

REPO = Path(__file__).resolve().parents[3]
DATA = REPO / "tests" / "data"
CASES = 1000
CLI_SAMPLE = 60  # of the cases, this many also go through the CLI (click is slower)

Doc = Any
Path_ = list[str | int]
"""Where a node lies in a document: keys and list indexes."""


def _weird_values(rng: random.Random) -> list[Any]:
    return [
        None,
        "",
        "lots",
        "5iB",
        "0.1B",
        "1" * 400,
        0,
        -1,
        10**30,
        -(10**400),
        1e308,
        -1e-308,
        math.nan,
        math.inf,
        True,
        False,
        0.5,
        [],
        {},
        [1, 2],
        {"a": {"b": [None]}},
        "ünïcödé ☃ \u202e",
        "../../etc/passwd",
        "a" * 10_000,
        rng.random() * 10 ** rng.randint(-5, 12),
        rng.randint(-(2**70), 2**70),
    ]


def _nodes(doc: Doc, path: Path_ | None = None) -> Iterator[Path_]:
    path = path or []
    yield path
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from _nodes(v, [*path, k])
    elif isinstance(doc, list):
        for i, v in enumerate(doc[:20]):  # long sample columns: their first items suffice
            yield from _nodes(v, [*path, i])


def _parent(doc: Doc, path: Path_) -> Any:
    for step in path[:-1]:
        doc = doc[step]
    return doc


def _deep(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


def _extreme(value: Any, rng: random.Random) -> Any:
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return rng.choice([0, -1, 1, 2**62, -(2**62), 2**63 - 1])
    if isinstance(value, float):
        return rng.choice([0.0, -1.0, 1e300, -1e300, 5e-324, 0.1])
    if isinstance(value, str):
        return rng.choice(["", "ünï ☃", "x" * 1000, "glibc", "ok", "interrupted"])
    if isinstance(value, list):
        return rng.choice([[], value[: len(value) // 2], value[::-1], value * 2])
    if isinstance(value, dict):
        return rng.choice([{}, dict(list(value.items())[: len(value) // 2])])
    return value


ACTIONS = ["delete", "retype", "retype", "extreme", "extreme", "extreme", "nest", "grow", "rename"]


def mutate(doc: Doc, rng: random.Random) -> tuple[Doc, str]:
    """A copy of `doc` with one to three random changes, and what they were."""
    doc = copy.deepcopy(doc)
    done = []
    for _ in range(rng.randint(1, 3)):
        paths = [p for p in _nodes(doc) if p]
        if not paths:
            break
        path = rng.choice(paths)
        parent, key = _parent(doc, path), path[-1]
        action = rng.choice(
            [
                "delete",
                "retype",
                "retype",
                "extreme",
                "extreme",
                "extreme",
                "nest",
                "grow",
                "rename",
            ]
        )
        if action == "delete":
            del parent[key]
        elif action == "retype":
            parent[key] = rng.choice(_weird_values(rng))
        elif action == "extreme":  # the same type, an extreme value
            parent[key] = _extreme(parent[key], rng)
        elif action == "nest":
            parent[key] = _deep(rng.choice([3, 40, 200]))
        elif action == "grow":  # a list or mapping where one value was
            parent[key] = {"x": parent[key]} if rng.random() < 0.5 else [parent[key]] * 3
        elif isinstance(parent, dict):  # rename
            parent[rng.choice(["zzz", "", "ünï", str(key).upper()])] = parent.pop(key)
        done.append(f"{action} {'.'.join(map(str, path))}")
    return doc, "; ".join(done)


def _json_text(doc: Doc) -> str:
    return json.dumps(doc, allow_nan=True)


def _expect_clean(run: Callable[[], object], what: str) -> None:
    """`run` may fail, but only with a SandboxError (one line, no traceback)."""
    try:
        run()
    except SandboxError as exc:
        assert "\n" not in str(exc) or "Traceback" not in str(exc), what
    except Exception as exc:
        pytest.fail(f"{what}: {type(exc).__name__}: {exc}"[:800])


def _expect_clean_cli(args: list[str], what: str) -> None:
    outcome = CliRunner().invoke(cli.cli, args)
    if outcome.exception is not None and not isinstance(outcome.exception, SystemExit):
        pytest.fail(f"{what}: {type(outcome.exception).__name__}: {outcome.exception}"[:800])
    assert "Traceback" not in outcome.output, f"{what}: {outcome.output[-800:]}"
    if outcome.exit_code != 0:
        assert outcome.exit_code in (1, 2), f"{what}: exit {outcome.exit_code}"
        last = outcome.output.strip().splitlines()[-1]
        assert last.startswith("Error: "), f"{what}: {outcome.output[-800:]}"


# --- result files ---------------------------------------------------------------------------


def _golden() -> list[Doc]:
    return [json.loads(gzip.decompress(p.read_bytes())) for p in sorted(DATA.glob("result_v*"))]


def _write_result(doc: Doc, path: Path, rng: random.Random) -> str:
    """Write `doc` as .json or .json.gz, sometimes broken on the way; what was done."""
    data = _json_text(doc).encode()
    how = rng.choice(["json", "gzip"] * 4 + ["truncated-gzip", "corrupt-gzip", "deep", "cut"])
    if how == "json":
        path.write_bytes(data)
    elif how == "gzip":
        path.write_bytes(gzip.compress(data))
    elif how == "truncated-gzip":
        packed = gzip.compress(data)
        path.write_bytes(packed[: rng.randint(0, len(packed) - 1)])
    elif how == "corrupt-gzip":
        flipped = bytearray(gzip.compress(data))
        flipped[rng.randrange(10, len(flipped))] ^= 1 << rng.randrange(8)
        path.write_bytes(bytes(flipped))
    elif how == "deep":  # deeper than json.loads can recurse
        depth = rng.choice([50, 5_000, 200_000])
        text = _json_text(doc)
        cut = text.rindex("}")
        path.write_text(f'{text[:cut]}, "deep": {"[" * depth}{"]" * depth}}}')
    else:  # a file cut short
        path.write_bytes(data[: rng.randint(0, len(data))])
    return how


def test_mutated_result_files_load_or_fail_in_one_line(tmp_path: Path) -> None:
    rng = random.Random(16)
    golden = _golden()
    intact = [result_files.load(p) for p in sorted(DATA.glob("result_v*"))]
    loaded = 0
    cli_cases = set(rng.sample(range(CASES), CLI_SAMPLE))
    for i in range(CASES):
        doc, what = mutate(rng.choice(golden), rng)
        path = tmp_path / f"r{i}.json.gz"
        what = f"case {i}: {what}; written {_write_result(doc, path, rng)}"

        def read_and_compare(path: Path = path) -> None:
            result = result_files.load(path)
            comparison = compare.compare([*intact, result], baseline=None)
            for fmt in ("table", "json"):
                report.render(comparison, fmt)

        _expect_clean(read_and_compare, what)
        if i in cli_cases:
            _expect_clean_cli(["compare", str(path), str(DATA)], what)
        try:
            result_files.load(path)
            loaded += 1
        except SandboxError:
            pass
    assert 0 < loaded < CASES  # some mutations are harmless, most are not


# --- configs --------------------------------------------------------------------------------


def _plans_beside(folder: Path) -> None:
    (folder / "plans").symlink_to(REPO / "plans", target_is_directory=True)


def _dump_yaml(doc: Doc, rng: random.Random) -> str:
    if rng.random() < 0.05:  # YAML nested deeper than the parser can recurse
        depth = rng.choice([200, 20_000])
        return f"concurrency: {'[' * depth}{']' * depth}\n"
    try:
        return yaml.safe_dump(doc, allow_unicode=True)
    except RecursionError:
        return "concurrency: 1\n"


def _build_benchmark(path: Path) -> None:
    config.build_spec(config.load_benchmark(path))


def _build_experiment(exp_path: Path, bench_path: Path) -> None:
    bench = config.load_benchmark(bench_path)
    exp = experiment.load_experiment(exp_path)
    for item in experiment.plan_runs(exp)[:4]:
        config.build_spec(
            bench,
            {**exp.overrides, **item.parameters, "allocator": item.allocator},
            experiment=exp.name,
            repeat=item.repeat,
            parameters=item.parameters,
        )


class _Launched(Exception):
    """The patched runner was reached: the config was good enough to start a run."""


def _no_launch(*args: object, **kwargs: object) -> Any:
    raise _Launched


def test_mutated_configs_load_or_fail_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sandbox.cli.progress as progress

    monkeypatch.setattr(progress, "run_showing_progress", _no_launch)
    monkeypatch.setattr("sandbox.cli.commands.experiment.run_numbered", _no_launch)
    monkeypatch.chdir(tmp_path)
    rng = random.Random(61)
    bench_doc = yaml.safe_load((REPO / "benchmark.yml").read_text())
    bench_doc["allocators"] = {"jemalloc-narenas2": {"library": "libjemalloc.so.2"}}
    exp_docs = {p.name: yaml.safe_load(p.read_text()) for p in (REPO / "experiments").glob("*")}
    _plans_beside(tmp_path)
    good_bench = tmp_path / "good.yml"
    good_bench.write_text(yaml.safe_dump(bench_doc))
    cli_cases = set(rng.sample(range(CASES), CLI_SAMPLE))
    for i in range(CASES):
        if rng.random() < 0.5:
            doc, what = mutate(bench_doc, rng)
            path = tmp_path / f"b{i}.yml"
            path.write_text(_dump_yaml(doc, rng))
            what = f"case {i} benchmark.yml: {what}"
            _expect_clean(functools.partial(_build_benchmark, path), what)
            args = ["run", "--config", str(path)]
        else:
            name = rng.choice(sorted(exp_docs))
            doc, what = mutate(exp_docs[name], rng)
            path = tmp_path / f"e{i}-{name}"
            path.write_text(_dump_yaml(doc, rng))
            what = f"case {i} {name}: {what}"
            _expect_clean(functools.partial(_build_experiment, path, good_bench), what)
            args = ["experiment", str(path), "--config", str(good_bench)]
        if i in cli_cases:
            outcome = CliRunner().invoke(cli.cli, args)
            if isinstance(outcome.exception, _Launched):
                continue
            _expect_clean_cli(args, what)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--max-rss", "5iB"], "'5iB' is not a size such as 2GiB, 800MiB or 1500000000"),
        (
            ["--max-rss", "0.1B"],
            "'0.1B' is not a size of at least 1 byte, such as 2GiB, 800MiB or 1500000000 "
            "(leave it out for no limit)",
        ),
        (
            ["--max-rss", "1" * 400],
            f"'{'1' * 400}' is not a size of at most 1 EiB, such as 2GiB, 800MiB or 1500000000",
        ),
    ],
)
def test_a_bad_size_flag_is_a_usage_error(args: list[str], message: str) -> None:
    outcome = CliRunner().invoke(cli.cli, ["run", *args])
    assert outcome.exit_code == click.UsageError.exit_code
    assert outcome.output.strip().splitlines()[-1] == (
        f"Error: Invalid value for '--max-rss': {message}"
    )
