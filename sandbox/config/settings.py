"""benchmark.yml and experiment files -> a frozen RunSpec. Errors name the file and the key.

Here: the settings table (every tunable, its YAML key, check and default), the YAML readers, and
`build_spec` with the checks that span several settings. The value checks are in `checks`; the
RunSpec's shape is in `spec`.

Precedence, lowest first: built-in defaults, benchmark.yml, experiment file, command-line flags.
"""

from __future__ import annotations

import difflib
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import yaml

from sandbox.allocators.registry import BUILTIN, Allocator
from sandbox.config import values as checks
from sandbox.config.flag_names import flag_for
from sandbox.config.run_spec import (
    Inspection,
    Limits,
    Output,
    RunSpec,
    SamplerSpec,
    ServerSpec,
    Target,
)
from sandbox.config.server_settings import ServerSettings
from sandbox.errors import ConfigError
from sandbox.load.models import MODELS, LoadModel
from sandbox.load.spec import LoadSpec, Schedule

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

T = TypeVar("T", bound="DataclassInstance")

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CONFIG = "benchmark.yml"
PLAN_NAMES = ("tiny", "small", "medium", "large")
_TAGS = checks.tag_list(PLAN_NAMES)


@dataclass(frozen=True)
class Setting:
    """One tunable: where it lives in YAML, how it is checked, and its default."""

    key: str
    """Dotted YAML path (`server.sleep_ms`); top-level keys are the original drill keys."""
    check: checks.Check
    default: Any


SETTINGS: dict[str, Setting] = {
    s.key.rpartition(".")[2] if "." in s.key else s.key: s
    for s in (
        # The original stair-stepper's drill keys.
        Setting("concurrency", checks.whole(1), 16),
        Setting("iterations", checks.whole(1), 2500),
        Setting("rampup", checks.number(0), 1.0),
        # What `sandbox run` does.
        Setting("run.allocator", checks.allocator_name, "glibc"),
        Setting("run.tags", _TAGS, ("medium",)),
        Setting("run.batches", checks.whole(1), 3),
        Setting("run.pause_s", checks.number(0), 5.0),
        Setting("run.baseline_s", checks.number(0), 3.0),
        Setting("run.idle_s", checks.number(0), 15.0),
        Setting("run.batch_timeout_s", checks.number(0, strict=True), 900.0),
        Setting("run.ready_timeout_s", checks.number(0, strict=True), 30.0),
        Setting("run.hang_timeout_s", checks.number(0, strict=True), 30.0),
        Setting("run.max_rss", checks.optional_size, None),
        Setting("run.trim_s", checks.number(0), 3.0),
        Setting("run.objects", checks.boolean, False),
        Setting("run.collect_garbage", checks.boolean, False),
        Setting("run.load", checks.one_of(*MODELS), "iterations"),
        Setting("run.rate", checks.number(0), 0.0),
        Setting("run.to_rate", checks.number(0), 0.0),
        Setting("run.duration_s", checks.number(0), 60.0),
        Setting("run.spike_x", checks.number(1, strict=True), 5.0),
        Setting("run.spike_at_s", checks.number(0), 10.0),
        Setting("run.spike_s", checks.number(0), 5.0),
        Setting("run.load_workers", checks.whole(0), 0),
        Setting("run.locustfile", checks.optional_text, None),
        Setting("server.workers", checks.whole(1), 1),
        Setting("server.app", checks.asgi_app, None),
        Setting("server.cmd", checks.optional_text, None),
        Setting("server.ready_url", checks.ready_url, None),
        # Limits checked after each run (for CI): the run fails, naming the limit, when passed.
        Setting("thresholds.p95_ms", checks.optional_number(0), None),
        Setting("thresholds.p99_ms", checks.optional_number(0), None),
        Setting("thresholds.error_rate", checks.optional_number(0), None),
        Setting("thresholds.peak_rss", checks.optional_size, None),
        Setting("thresholds.growth", checks.optional_size, None),
        Setting("thresholds.min_rps", checks.optional_number(0), None),
        Setting("server.handler", checks.one_of("sync", "async"), "sync"),
        Setting("server.sleep_ms", checks.whole(0), 150),
        Setting("server.threads", checks.whole(1), 40),
        Setting("server.max_body_bytes", checks.whole(1), 8 * 1024 * 1024),
        Setting("server.pymalloc", checks.boolean, True),
        # The stair-stepper's known truths (sandbox/server/truths.py); 0 is off.
        Setting("server.leak_bytes", checks.size_or_zero, 0),
        Setting("server.leak_kind", checks.one_of("small", "large"), "small"),
        Setting("server.cache_docs", checks.whole(0), 0),
        Setting("server.pin_objects", checks.whole(0), 0),
        Setting("server.host", checks.loopback_host, "127.0.0.1"),
        # The allocator defaults of a host of N cores (sandbox/allocators/host_cores.py); None:
        # this one's.
        Setting("server.host_cores", checks.optional_whole(1), None),
        Setting("sampler.interval_s", checks.number(0.001), 0.1),
        Setting("sampler.probe_interval_s", checks.number(0.05), 1.0),
        Setting("results_dir", checks.text, "results"),
    )
}
# Keys that exist in benchmark.yml but are not run settings.
_OTHER_TOP_KEYS = ("base", "plan", "allocators", "run", "server", "sampler", "thresholds")
THRESHOLDS = ("p95_ms", "p99_ms", "error_rate", "peak_rss", "growth", "min_rps")


@dataclass(frozen=True)
class Plan:
    """One request plan, as in the original's plans/ (one body, one tag)."""

    name: str
    body: Path
    tags: tuple[str, ...]


@dataclass(frozen=True)
class Benchmark:
    """A loaded, validated benchmark.yml: settings by name, plus plans and custom allocators."""

    path: Path | None
    values: Mapping[str, Any]
    plans: tuple[Plan, ...]
    allocators: Mapping[str, Allocator]
    base: str


def _suggest(key: str, options: list[str]) -> str:
    close = difflib.get_close_matches(key, options, n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def read_settings(
    source: str, data: Mapping[str, Any], allowed_top: tuple[str, ...]
) -> dict[str, Any]:
    """Map a YAML document onto setting names, checking each value and rejecting unknown keys
    (`allowed_top`: top-level keys that are not settings)."""
    by_path = {s.key: name for name, s in SETTINGS.items()}
    sections = {k.partition(".")[0] for k in by_path if "." in k}
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key in sections:
            if value is None:
                continue
            if not isinstance(value, Mapping):
                raise ConfigError(f"{source}: {key} must be a mapping of settings")
            inner = [p.partition(".")[2] for p in by_path if p.startswith(key + ".")]
            for sub, subvalue in value.items():
                path = f"{key}.{sub}"
                if path not in by_path:
                    raise ConfigError(
                        f"{source}: unknown key '{path}'{_suggest(str(sub), inner)}; "
                        f"known keys under {key}: {', '.join(inner)}"
                    )
                out[by_path[path]] = validate(source, path, by_path[path], subvalue)
        elif key in by_path:
            out[by_path[key]] = validate(source, key, by_path[key], value)
        elif key not in allowed_top:
            options = list(allowed_top) + [k for k in by_path if "." not in k] + sorted(sections)
            raise ConfigError(f"{source}: unknown key '{key}'{_suggest(str(key), options)}")
    return out


def validate(source: str, key: str, name: str, value: Any) -> Any:
    """Check one value; raise ConfigError naming source and key."""
    try:
        return SETTINGS[name].check(value)
    except checks.Invalid as exc:
        raise ConfigError(
            f"{source}: {key} has value {checks.shown(value)}; expected {exc}"
        ) from None


# libyaml's parser when present: fast, and it refuses nesting past 1000 levels itself (the
# pure-Python scanner slows down quadratically on deep nesting).
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def read_yaml(path: Path, text: str | None = None) -> Mapping[str, Any]:
    """A YAML file's top-level mapping ({} when empty); errors name the file (and the line).
    `text`: the file's contents as read earlier (an experiment resumed from its manifest)."""
    try:
        data = yaml.load(path.read_text() if text is None else text, Loader=_YAML_LOADER)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read ({exc})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}: not valid YAML{where}; fix the syntax") from None
    except RecursionError:
        raise ConfigError(f"{path}: nested too deeply to be a settings file") from None
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path}: expected a mapping of keys at the top level")
    return data


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:  # e.g. a name too long
        return False


def _plans(source: str, raw: Any, root: Path) -> tuple[Plan, ...]:
    if raw is None:
        return tuple(Plan(n, root / "plans" / f"{n}.json", (n,)) for n in PLAN_NAMES)
    if not isinstance(raw, list) or not raw:
        raise ConfigError(f"{source}: plan must be a list of {{name, body, tags}}")
    plans = []
    for i, item in enumerate(raw):
        where = f"{source}: plan[{i}]"
        if not isinstance(item, Mapping) or not isinstance(item.get("name"), str):
            raise ConfigError(f"{where} needs a name, a body file and tags")
        unknown = set(item) - {"name", "body", "tags"}
        if unknown:
            raise ConfigError(
                f"{where}: unknown key '{sorted(unknown)[0]}'; known: name, body, tags"
            )
        body_name = item.get("body", f"plans/{item['name']}.json")
        if not isinstance(body_name, str) or not body_name or "\0" in body_name:
            raise ConfigError(f"{where}.body must be the path of a JSON body file")
        body = root / body_name
        if not _is_file(body):
            raise ConfigError(
                f"{where}.body: {body} not found; plan bodies are looked up beside {source} "
                "(copy the repository's plans/ folder there, or regenerate the four built-in "
                "ones with 'python -m sandbox.load.bodies DIR')"
            )
        try:
            tags = _TAGS(item.get("tags", [item["name"]]))
        except checks.Invalid as exc:
            raise ConfigError(f"{where}.tags: expected {exc}") from None
        plans.append(Plan(item["name"], body, tags))
    return tuple(plans)


_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*", re.ASCII)


def read_allocators(source: str, raw: Any) -> dict[str, Allocator]:
    """An `allocators:` mapping (name -> library, env, package) as Allocator definitions."""
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{source}: allocators must map a name to {{library, env}}")
    out = {}
    for name, spec in raw.items():
        where = f"{source}: allocators.{name}"
        try:
            checks.allocator_name(name)
        except checks.Invalid as exc:
            raise ConfigError(
                f"{source}: allocators has the name {checks.shown(name)}; expected {exc}"
            ) from None
        if not isinstance(spec, Mapping):
            raise ConfigError(f"{where} must be a mapping with library and/or env")
        unknown = set(spec) - {"library", "env", "package", "description"}
        if unknown:
            raise ConfigError(
                f"{where}: unknown key '{sorted(unknown)[0]}'; known: library, env, package"
            )
        library = spec.get("library")
        if library is not None and (not isinstance(library, str) or "\0" in library):
            raise ConfigError(f"{where}.library must be a soname or an absolute path")
        package = spec.get("package")
        if package is not None and not isinstance(package, str):
            raise ConfigError(f"{where}.package must be a Debian package name")
        env = spec.get("env") or {}
        if not isinstance(env, Mapping) or not all(
            isinstance(k, str) and _ENV_NAME.fullmatch(k) for k in env
        ):
            raise ConfigError(f"{where}.env must map variable names to values")
        if not all(isinstance(v, str | int | float) and "\0" not in str(v) for v in env.values()):
            raise ConfigError(f"{where}.env: each value must be a string or a number")
        # Redefining a built-in (say, its library path) keeps what is not redefined.
        base = BUILTIN.get(str(name))
        out[str(name)] = Allocator(
            str(name),
            library if "library" in spec or base is None else base.library,
            {k: str(v) for k, v in env.items()} if "env" in spec or base is None else base.env,
            spec.get("package", base.package if base else None),
            str(spec.get("description", base.description if base else "")),
        )
    return out


def load_benchmark(path: Path | None = None) -> Benchmark:
    """Read benchmark.yml (the given one, or ./benchmark.yml, or the repository's)."""
    if path is None:
        candidates = [Path.cwd() / DEFAULT_CONFIG, REPO_ROOT / DEFAULT_CONFIG]
        path = next((p for p in candidates if p.is_file()), None)
    if path is None:
        return Benchmark(None, {}, _plans("defaults", None, REPO_ROOT), {}, "")
    source = path.name if path.parent.resolve() == Path.cwd().resolve() else str(path)
    data = read_yaml(path)
    values = read_settings(source, data, _OTHER_TOP_KEYS)
    base = data.get("base", "http://127.0.0.1:3000")
    if not isinstance(base, str) or not checks.is_loopback_url(base):
        raise ConfigError(
            f"{source}: base has value {checks.shown(base)}; expected a loopback URL such as "
            "http://127.0.0.1:3000 (the sandbox only sends load to this machine)"
        )
    root = path.resolve().parent
    plans = _plans(source, data.get("plan"), root)
    if "tags" in values and values.get("locustfile") is None:
        available = {t for p in plans for t in p.tags}
        unknown = [t for t in values["tags"] if t not in available]
        if unknown:
            raise ConfigError(
                f"{source}: run.tags has value {list(values['tags'])!r}; expected tags of the "
                f"plans: {', '.join(sorted(available))}"
            )
    return Benchmark(
        path,
        values,
        plans,
        read_allocators(source, data.get("allocators")),
        base,
    )


def merge(*layers: Mapping[str, Any]) -> dict[str, Any]:
    """Defaults, then each layer's non-None values on top."""
    values = {name: s.default for name, s in SETTINGS.items()}
    for layer in layers:
        values.update({k: v for k, v in layer.items() if v is not None})
    return values


def build_spec(
    bench: Benchmark,
    overrides: Mapping[str, Any] | None = None,
    *,
    port: int | None = None,
    experiment: str | None = None,
    repeat: int = 0,
    parameters: Mapping[str, Any] | None = None,
    compress: bool = False,
) -> RunSpec:
    """Merge defaults, benchmark.yml and overrides (already validated) into a RunSpec."""
    v = merge(bench.values, overrides or {})
    root = bench.path.resolve().parent if bench.path else REPO_ROOT
    load = _load(v, bench, root, overrides or {})
    target = _target(v, port)
    settings = _server_settings(v, target)
    results_dir = Path(v["results_dir"])
    parameters = dict(parameters or {})
    if v["host_cores"] is not None:  # in the group's label: every table and plot title
        parameters["host_cores"] = v["host_cores"]
    return RunSpec(
        allocator=v["allocator"],
        target=target,
        server=ServerSpec(
            settings,
            pymalloc=v["pymalloc"],
            host=v["host"],
            port=port,
            host_cores=v["host_cores"],
        ),
        load=load,
        schedule=_section(Schedule, v),
        sampler=_section(SamplerSpec, v),
        limits=_section(Limits, v, max_rss_bytes="max_rss"),
        inspect=_inspection(v),
        output=Output(
            results_dir=results_dir if results_dir.is_absolute() else root / results_dir,
            compress=compress,
        ),
        thresholds={k: v[k] for k in THRESHOLDS if v[k] is not None},
        custom_allocators=bench.allocators,
        experiment=experiment,
        repeat=repeat,
        parameters=parameters,
    )


def _inspection(v: Mapping[str, Any]) -> Inspection:
    """The opt-in looks; ConfigError for a garbage collection without the trim phase it runs in."""
    if v["collect_garbage"] and not v["trim_s"]:
        raise ConfigError(
            f"{SETTINGS['collect_garbage'].key} ({flag_for('collect_garbage')}) runs in the trim "
            f"phase, before the trim: give {SETTINGS['trim_s'].key} ({flag_for('trim_s')}) a "
            "positive time"
        )
    return Inspection(
        trim_s=v["trim_s"],
        objects=v["objects"],
        profile=None,
        collect_garbage=v["collect_garbage"],
    )


def _server_settings(v: Mapping[str, Any], target: Target) -> ServerSettings:
    """The stair-stepper's settings; ConfigError if a known truth is asked of another server."""
    settings = _section(ServerSettings, v)
    if settings.truths and not target.ours:
        name = next(n for n in ("leak_bytes", "cache_docs", "pin_objects") if v[n])
        raise ConfigError(
            f"{SETTINGS[name].key} ({flag_for(name)}) makes the stair-stepper keep memory; "
            f"it does nothing to {target.describe()}: set it to 0 or serve the stair-stepper"
        )
    return settings


def _section(cls: type[T], v: Mapping[str, Any], **renamed: str) -> T:
    """`cls` with each field set from the setting of its name (or the one `renamed` names)."""
    return cls(**{f.name: v[renamed.get(f.name, f.name)] for f in fields(cls)})


def _load(
    v: Mapping[str, Any], bench: Benchmark, root: Path, overrides: Mapping[str, Any]
) -> LoadSpec:
    """The load of every batch, checked against the plans, the batch limit and the workers."""
    own_locustfile = _user_locustfile(v["locustfile"])
    tags: tuple[str, ...] = tuple(v["tags"])
    if own_locustfile is None:
        available = {t for p in bench.plans for t in p.tags}
        missing = [t for t in tags if t not in available]
        if missing:
            raise ConfigError(
                f"tag '{missing[0]}' matches no plan in benchmark.yml; "
                f"available: {', '.join(sorted(available))}"
            )
    else:  # a user's locustfile: only the tags asked for here, not benchmark.yml's plans
        tags = tuple(overrides.get("tags", ()))
    model = _model(v)
    if model.name != "iterations" and model.duration_s > v["batch_timeout_s"]:
        raise ConfigError(
            f"run.duration_s ({model.duration_s:g} s) is longer than run.batch_timeout_s "
            f"({v['batch_timeout_s']:g} s), which would cut every batch short; raise "
            "run.batch_timeout_s in benchmark.yml"
        )
    if v["load_workers"] > model.users:
        raise ConfigError(
            f"--load-workers {v['load_workers']} needs at least as many --users "
            f"({model.users}): a Locust worker without users never sends its share"
        )
    if own_locustfile is not None and model.name == "iterations":
        raise ConfigError(
            "--iterations is understood only by plans/locustfile.py; with --locustfile choose a "
            "load model with a duration, e.g. --load soak --duration 60 (or --load rate --rate 20)"
        )
    ours = (root / "plans" / "locustfile.py", REPO_ROOT / "plans" / "locustfile.py")
    return LoadSpec(
        locustfile=own_locustfile or next((p for p in ours if p.is_file()), ours[-1]),
        tags=tags,
        spawn_rate=v["concurrency"] / v["rampup"] if v["rampup"] > 0 else float(v["concurrency"]),
        iterations=v["iterations"],
        model=model,
        workers=v["load_workers"],
        drill=own_locustfile is None,
        timeout_s=v["batch_timeout_s"],
    )


def _user_locustfile(value: str | None) -> Path | None:
    if value is None:
        return None
    path = Path(value).expanduser().resolve()
    if not path.is_file():
        raise ConfigError(f"--locustfile: {value} not found")
    return path


def _model(v: Mapping[str, Any]) -> LoadModel:
    model = _section(LoadModel, v, name="load", users="concurrency")
    problems = model.problems()
    if problems:
        field_name, _, why = problems[0].partition(": ")
        name = "concurrency" if field_name == "users" else field_name  # the model's setting
        raise ConfigError(f"{SETTINGS[name].key} ({flag_for(name)}): {why}")
    return model


def _target(v: Mapping[str, Any], port: int | None) -> Target:
    app, cmd, ready_url = v["app"], v["cmd"], v["ready_url"]
    if app and cmd:
        raise ConfigError("--app and --cmd both given; choose one")
    if cmd:
        try:
            words = shlex.split(cmd)
        except ValueError as exc:
            raise ConfigError(f"--cmd {cmd!r} cannot be split into words: {exc}") from None
        if not words:
            raise ConfigError("--cmd is empty; give the command that starts your server")
        if ready_url is None:
            raise ConfigError(
                "--cmd needs --ready-url, a URL that answers once the server is up, e.g. "
                "--ready-url 'http://127.0.0.1:{port}/health'"
            )
        if "{port}" not in cmd and port is None:
            raise ConfigError(
                "--cmd must contain {port} (the sandbox fills in a free port) or come with "
                "--port, the port the command listens on"
            )
        if v["workers"] > 1:
            raise ConfigError(
                "--server-workers applies to the stair-stepper and --app; "
                "give a --cmd its own worker option"
            )
    return Target(workers=v["workers"], app=app, cmd=cmd, ready_url=ready_url, cwd=Path.cwd())


def validate_overrides(source: str, values: Mapping[str, Any]) -> dict[str, Any]:
    """Check command-line values (by setting name); `source` names the flag style in errors."""
    out = {}
    for name, value in values.items():
        if value is None:
            continue
        try:
            out[name] = SETTINGS[name].check(value)
        except checks.Invalid as exc:
            # a setting without a flag is named by its benchmark.yml key
            key = (flag_for(name) or SETTINGS[name].key) if source == "option" else name
            raise ConfigError(f"{key} has value {checks.shown(value)}; expected {exc}") from None
    return out
