"""The `sandbox` command's group: its commands (one module each in `commands/`; each parses its
flags, calls the packages that do the work, and prints) and the one place errors become exits.

Core code raises SandboxError subclasses; this module alone turns them into `Error: ...` and an
exit code (2 for usage, 1 otherwise). Bugs keep their traceback.
"""

from __future__ import annotations

from typing import Any

import click

from sandbox import __version__
from sandbox.cli.commands import (
    advise,
    compare,
    doctor,
    experiment,
    inspect_process,
    plot,
    report,
    run,
    serve,
)
from sandbox.errors import ConfigError, SandboxError


class SandboxGroup(click.Group):
    """The `sandbox` group: the one place a SandboxError becomes `Error: <message>` and its exit
    code. A usage error (ConfigError) comes with the command's usage line, as click shows its
    own; a bad result file (ResultFormatError) also exits 2, without it. Any other exception is
    a bug and keeps its traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ConfigError as exc:
            raise click.UsageError(str(exc), self._command_context(ctx)) from exc
        except SandboxError as exc:
            error = _BadInput if exc.exit_code == _BadInput.exit_code else click.ClickException
            raise error(str(exc)) from exc

    def _command_context(self, ctx: click.Context) -> click.Context:
        """A context of the command that failed (its own is closed by now), for its usage line."""
        name = ctx.invoked_subcommand
        command = self.get_command(ctx, name) if name else None
        return click.Context(command, info_name=name, parent=ctx) if command else ctx


class _BadInput(click.ClickException):
    """`Error: ...` with exit code 2, without a usage line (a bad result file)."""

    exit_code = 2


@click.group(cls=SandboxGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="sandbox")
def cli() -> None:
    """Measure a deliberately fragmenting Python web service under different allocators."""


for command in (
    run.run_cmd,
    doctor.doctor_cmd,
    serve.serve_cmd,
    experiment.experiment_cmd,
    advise.advise_cmd,
    compare.compare_cmd,
    plot.plot_cmd,
    inspect_process.inspect_cmd,
    report.report_cmd,
):
    cli.add_command(command)


def main() -> None:
    cli(prog_name="sandbox")
