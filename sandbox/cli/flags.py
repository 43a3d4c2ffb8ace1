"""The command-line flags of `run`, `serve` and `experiment`, and the setting each one sets.

Defined once: cli builds its click options from these tables, a setting flag's value reaches
config under the setting's name (the command function's parameter is that name), and error
messages name a setting's flag through `sandbox.config.flag_names.flag_for`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

import click

from sandbox.advise.budget import BudgetType
from sandbox.config.flag_names import FLAG_NAMES
from sandbox.config.server_settings import EXPOSED_LIMITS
from sandbox.experiment.definition import MAX_SIDE_BY_SIDE
from sandbox.load.models import MODELS

F = TypeVar("F", bound=Callable[..., Any])


class SizeType(click.ParamType):  # type: ignore[type-arg]
    """A size such as 2GiB or 800MiB, as bytes; with `zero`, also 0 (off)."""

    name = "size"

    def __init__(self, zero: bool = False) -> None:
        self.zero = zero

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        from sandbox.config.values import Invalid, parse_size, size_or_zero

        try:
            return size_or_zero(value) if self.zero else parse_size(value)
        except (Invalid, ValueError) as exc:
            if self.zero:
                self.fail(f"{value!r} is not a size such as 30KiB, or 0 (off)", param, ctx)
            self.fail(f"{value!r} is not {exc}", param, ctx)


@dataclass(frozen=True)
class Flag:
    """One command-line option."""

    name: str
    """The long flag, e.g. `--pause`."""
    setting: str | None
    """The setting it overrides (a name in config.SETTINGS); None for an option of the command
    itself, such as --port or --gzip."""
    help: str | None = None
    type: click.ParamType | None = None  # type: ignore[type-arg]
    short: str | None = None
    """A one-letter alias, e.g. `-a`."""
    dest: str | None = None
    """The parameter name of a flag that is not a setting (default: from the flag's name)."""
    metavar: str | None = None
    is_flag: bool = False
    multiple: bool = False
    default: Any = None
    show_default: bool = False

    @property
    def param(self) -> str:
        """The command function's parameter: the setting's name, for a setting's flag."""
        return self.setting or self.dest or self.name.lstrip("-").replace("-", "_")

    def but(self, **changes: Any) -> Flag:
        """The same flag with another help text or default, for one command."""
        return replace(self, **changes)

    def option(self, f: F) -> F:
        """Add this flag to a click command function."""
        names = [n for n in (self.name, self.short) if n]
        kwargs: dict[str, Any] = {"help": self.help, "type": self.type, "metavar": self.metavar}
        kwargs = {k: v for k, v in kwargs.items() if v is not None}
        if self.is_flag:
            kwargs.update(is_flag=True, default=self.default)
        elif self.default is not None:
            kwargs["default"] = self.default
        if self.multiple:
            kwargs["multiple"] = True
        if self.show_default:
            kwargs["show_default"] = True
        return click.option(*names, self.param, **kwargs)(f)


def setting_flag(setting: str, *args: Any, **kwargs: Any) -> Flag:
    """The flag of a setting, spelt as `sandbox.config.flag_names` says."""
    return Flag(FLAG_NAMES[setting], setting, *args, **kwargs)


def options(flags: Sequence[Flag]) -> Callable[[F], F]:
    """A decorator adding these flags to a click command, listed in this order by --help."""

    def decorate(f: F) -> F:
        for flag in reversed(flags):
            f = flag.option(f)
        return f

    return decorate


_float0 = click.FloatRange(min=0)

CONFIG = Flag(
    "--config",
    None,
    "benchmark.yml to read (default: ./benchmark.yml, else the repository's).",
    click.Path(dir_okay=False, path_type=Path),
    dest="config_path",
)
THRESHOLD = Flag(
    "--threshold",
    None,
    "Fail the run past a limit: p95_ms, p99_ms, error_rate, min_rps, peak_rss, growth "
    "(e.g. p95_ms=800, peak_rss=500MiB). Repeatable.",
    dest="thresholds",
    metavar="NAME=VALUE",
    multiple=True,
)

LIMIT = Flag(
    "--limit",
    None,
    "Say when RSS, still climbing at the measured rate, would reach this size, e.g. 2GiB "
    "(default: a peak_rss or growth threshold).",
    SizeType(),
    dest="limit_bytes",
)

RUN: tuple[Flag, ...] = (
    setting_flag(
        "allocator",
        "glibc, glibc-arena2, jemalloc, jemalloc-bg, mimalloc, tcmalloc, …",
        short="-a",
    ),
    setting_flag("tags", "Plans to send, comma-separated: tiny,small,medium,large."),
    setting_flag("concurrency", "Concurrent users.", click.IntRange(min=1)),
    setting_flag("rampup", "Seconds to start all users.", _float0),
    setting_flag("iterations", "Per batch, per selected plan.", click.IntRange(min=1)),
    setting_flag("batches", "Load batches.", click.IntRange(min=1)),
    setting_flag("pause_s", "Seconds between batches.", _float0),
    setting_flag("baseline_s", "Idle s before load.", _float0),
    setting_flag("idle_s", "Idle seconds after load.", _float0),
    setting_flag("sleep_ms", "Simulated DB latency per request.", click.IntRange(min=0)),
    setting_flag("handler", "Threadpool or event loop.", click.Choice(["sync", "async"])),
    setting_flag("threads", "Threadpool size (sync handler).", click.IntRange(min=1)),
    setting_flag("pymalloc", "off: PYTHONMALLOC=malloc.", click.Choice(["on", "off"])),
    setting_flag(
        "host_cores",
        "Allocator defaults of an N-core host (glibc arenas 8N, jemalloc narenas 4N).",
        click.IntRange(min=1),
        metavar="N",
    ),
    setting_flag(
        "leak_bytes",
        "Stair-stepper: leak this much per request, e.g. 30KiB (0: off).",
        SizeType(zero=True),
    ),
    setting_flag(
        "leak_kind",
        "small: 256-byte objects; large: 16 KiB buffers (malloc's).",
        click.Choice(["small", "large"]),
    ),
    setting_flag(
        "cache_docs",
        "Stair-stepper: keep the last N parsed bodies (0: off).",
        click.IntRange(min=0),
    ),
    setting_flag(
        "pin_objects",
        "Stair-stepper: keep up to N small objects from among the garbage, 4 a request (0: off).",
        click.IntRange(min=0),
    ),
    setting_flag("interval_s", "Sampler s.", click.FloatRange(min=0.001)),
    setting_flag("max_rss", "Stop the server past this RSS, e.g. 2GiB.", SizeType()),
    setting_flag(
        "hang_timeout_s",
        "Stop a server that answers nothing for this many seconds (default 30).",
        click.FloatRange(min=0, min_open=True),
    ),
    setting_flag("trim_s", "Seconds after asking for memory back.", _float0),
    setting_flag("objects", "Record top Python object types (pympler).", is_flag=True),
    setting_flag(
        "collect_garbage",
        "In the trim phase, first run a full gc.collect() in each process and record what it "
        "freed (garbage in reference cycles).",
        is_flag=True,
    ),
    Flag("--profile", None, "Run the server under memray.", click.Choice(["memray"])),
    Flag("--port", None, "Server port (default: a free one).", click.IntRange(1, 65535)),
    setting_flag("results_dir", "Where results go.", click.Path(file_okay=False)),
    Flag(
        "--gzip",
        None,
        "Write the result as .json.gz.",
        dest="compress",
        is_flag=True,
        default=False,
    ),
    setting_flag(
        "load",
        "Load model of each batch (default iterations: drill's fixed count).",
        click.Choice(MODELS),
    ),
    setting_flag("rate", "rate/spike: req/s; ramp: start.", _float0),
    setting_flag("to_rate", "ramp: req/s at the end.", _float0),
    setting_flag("duration_s", "Batch seconds.", _float0),
    setting_flag("spike_x", "Burst / base.", click.FloatRange(min=1, min_open=True)),
    setting_flag("spike_at_s", "Burst start, s.", _float0),
    setting_flag("spike_s", "Burst length, s.", _float0),
    setting_flag(
        "load_workers",
        "Locust worker processes (distributed mode); 0: one process.",
        click.IntRange(min=0),
    ),
    Flag(
        "--expect-remote-workers",
        None,
        "Each batch's Locust master also waits for N workers started on other machines "
        "(the command to start there is printed); needs --master-bind and --server-host.",
        click.IntRange(min=0),
        metavar="N",
        default=0,
    ),
    Flag(
        "--master-bind",
        None,
        "Where the Locust master listens for workers (default 127.0.0.1, a free port; "
        "PORT default 5557). Beyond loopback needs --expose: make the port reachable only "
        "from the workers.",
        metavar="HOST[:PORT]",
    ),
    Flag(
        "--server-host",
        None,
        "Address the server binds and the load goes to (default 127.0.0.1); beyond loopback "
        "needs --expose: make the server's port reachable only from the workers.",
        metavar="ADDRESS",
    ),
    Flag(
        "--expose",
        None,
        "Allow --server-host and --master-bind beyond loopback (a network you trust); then at "
        f"most {EXPOSED_LIMITS.max_connections} connections to the server at once.",
        is_flag=True,
        default=False,
    ),
    setting_flag("workers", "uvicorn worker processes.", click.IntRange(min=1)),
    setting_flag("app", "Serve your ASGI app (module:attr) instead of the stair-stepper."),
    setting_flag("cmd", "Run any server command; {port} and {host} are filled in."),
    setting_flag("ready_url", "URL that answers once the server is up ({port} filled in)."),
    setting_flag("locustfile", "Your own Locust file.", click.Path(dir_okay=False)),
    THRESHOLD,
    LIMIT,
    CONFIG,
)
"""`sandbox run`: every setting flag, and the run's own options."""

_RUN = {f.param: f for f in RUN}

SERVE: tuple[Flag, ...] = (
    _RUN["allocator"].but(help=None, default="glibc", show_default=True),
    Flag(
        "--host",
        None,
        "Bind address (loopback by default; another needs --expose).",
        default="127.0.0.1",
        show_default=True,
    ),
    _RUN["port"].but(help=None, default=3000, show_default=True),
    _RUN["sleep_ms"].but(help="Simulated DB latency (SLEEP_MS)."),
    _RUN["handler"].but(help=None),
    _RUN["pymalloc"].but(help=None, default="on", show_default=True),
    Flag(
        "--expose",
        None,
        "Allow a --host beyond loopback (a network you trust); then at most "
        f"{EXPOSED_LIMITS.max_connections} connections at once.",
        is_flag=True,
        default=False,
    ),
    CONFIG,
)
"""`sandbox serve`: the server's settings, with the defaults of a foreground server."""

EXPERIMENT: tuple[Flag, ...] = (
    Flag("--repeats", None, "Override the file's repeats.", click.IntRange(min=1)),
    Flag(
        "--until-verdict",
        None,
        "Add repeats only until after-idle RSS is decided: from 3 repeats on, stop once every "
        "interval excludes 1.0 or lies within --min-effect (A/A false alarms kept <= 5 %).",
        is_flag=True,
        default=False,
    ),
    Flag(
        "--max-repeats",
        None,
        "With --until-verdict: the cap on repeats.",
        click.IntRange(min=3),
        default=8,
        show_default=True,
    ),
    Flag(
        "--min-effect",
        None,
        "With --until-verdict: a ratio within 1/(1+m)..1+m is too small to matter.",
        click.FloatRange(min=0, min_open=True, max=1),
        default=0.05,
        show_default=True,
    ),
    Flag(
        "--side-by-side",
        None,
        "Runs at once, each a server of its own (overrides the file's side_by_side).",
        click.IntRange(min=1, max=MAX_SIDE_BY_SIDE),
        metavar="N",
    ),
    _RUN["results_dir"].but(help=None, type=click.Path(file_okay=False, path_type=Path)),
    Flag(
        "--resume",
        None,
        "Continue the experiment in DIR: run only its missing and incomplete runs, as planned.",
        click.Path(exists=True, file_okay=False, path_type=Path),
        metavar="DIR",
    ),
    CONFIG,
)
"""`sandbox experiment`: the file holds the settings; these only say where and how often, or
which experiment to continue."""

ADVISE: tuple[Flag, ...] = (
    Flag("--list", None, "List the remedy catalogue and exit.", dest="list_arms", is_flag=True),
    Flag("--arms", None, "Arms to race, comma-separated (default: the whole catalogue)."),
    Flag(
        "--budget",
        None,
        "Time for the race, e.g. 20m, 90s, 1h; it stops before a round would overrun it.",
        BudgetType(),
        default="20m",
        show_default=True,
    ),
    Flag(
        "--tolerance",
        None,
        "Throughput or p95 cost (fraction) past which an arm is not recommended.",
        click.FloatRange(0, 1),
        default=0.05,
        show_default=True,
    ),
    Flag(
        "--min-rounds",
        None,
        "Rounds before any arm is dropped.",
        click.IntRange(min=2),
        default=2,
        show_default=True,
    ),
    Flag(
        "--max-rounds",
        None,
        "Stop after this many rounds.",
        click.IntRange(min=2),
        default=12,
        show_default=True,
    ),
    Flag(
        "--experiment",
        None,
        "Workload settings from this experiment file (default for the stair-stepper: "
        "experiments/quick.yml).",
        click.Path(exists=True, dir_okay=False, path_type=Path),
        dest="experiment_file",
    ),
    Flag(
        "--side-by-side",
        None,
        "Runs at once, each a server of its own (default: the workload file's side_by_side; "
        "1 for your own service).",
        click.IntRange(min=1, max=MAX_SIDE_BY_SIDE),
        metavar="N",
    ),
    Flag(
        "--resume",
        None,
        "Continue the race in DIR where it stopped.",
        click.Path(exists=True, file_okay=False, path_type=Path),
        metavar="DIR",
    ),
    *(f for f in RUN if f.setting and f.setting not in ("allocator",)),
    CONFIG,
)
"""`sandbox advise`: the race's own options, then every setting flag of `run` but
--allocator (the arms are the allocators)."""
