"""`sandbox experiment`: many runs from an experiment file, compared; resumable."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from sandbox.cli import flags
from sandbox.cli.lifecycle import sigterm_as_interrupt
from sandbox.cli.progress import note, run_numbered


@click.command("experiment")
@click.argument("experiment_file", required=False, type=click.Path(dir_okay=False, path_type=Path))
@flags.options(flags.EXPERIMENT)
def experiment_cmd(
    experiment_file: Path | None,
    repeats: int | None,
    until_verdict: bool,
    max_repeats: int,
    min_effect: float,
    side_by_side: int | None,
    results_dir: Path | None,
    resume: Path | None,
    config_path: Path | None,
) -> None:
    """Run an experiment (allocators × settings × repeats), then compare and plot it; or, with
    --resume DIR, run what an interrupted or killed one left undone."""
    from sandbox.analysis.sequential import Design
    from sandbox.config import settings as config
    from sandbox.experiment import definition as experiment
    from sandbox.experiment import execution
    from sandbox.measure.thresholds import failed

    ctx = click.get_current_context()
    given = [
        f"--{name.replace('_', '-')}"
        for name in (
            "repeats",
            "until_verdict",
            "max_repeats",
            "min_effect",
            "side_by_side",
            "results_dir",
        )
        if ctx.get_parameter_source(name) is click.core.ParameterSource.COMMANDLINE
    ]
    rule_flags = [f for f in given if f in ("--max-repeats", "--min-effect")]
    if (experiment_file is None) == (resume is None):
        raise click.UsageError("give an experiment file, or --resume DIR (one of them)")
    if resume is not None and given:
        raise click.UsageError(
            "--resume runs DIR as it was planned (its manifest keeps the repeats and any "
            f"stopping rule): drop {' and '.join(given)}"
        )
    if until_verdict and repeats is not None:
        raise click.UsageError(
            "--until-verdict decides the repeats: drop --repeats (--max-repeats sets the cap)"
        )
    if rule_flags and not until_verdict:
        verb = "applies" if len(rule_flags) == 1 else "apply"
        raise click.UsageError(f"{' and '.join(rule_flags)} {verb} only with --until-verdict")
    design = Design(max_repeats=max_repeats, min_effect=min_effect) if until_verdict else None
    bench = config.load_benchmark(config_path)
    if resume is not None:
        sigterm_as_interrupt()
        outcome = execution.resume_experiment(resume.resolve(), bench, run_numbered, on_note=note)
    else:
        assert experiment_file is not None
        exp = experiment.load_experiment(experiment_file)
        sigterm_as_interrupt()
        outcome = execution.run_experiment(
            exp,
            bench,
            run_numbered,
            repeats=repeats,
            results_dir=results_dir.resolve() if results_dir else None,
            on_note=note,
            design=design,
            side_by_side=side_by_side,
        )
    ok = [r for r in outcome.results if r.status == "ok"]
    if not ok:
        click.echo(
            f"Error: no run of {outcome.name} completed; see {outcome.folder}"
            + (
                f"; continue with: sandbox experiment --resume {outcome.folder}"
                if outcome.interrupted
                else ""
            ),
            err=True,
        )
        sys.exit(130 if outcome.interrupted else 1)
    table, plots = execution.report(outcome, baseline=outcome.baseline)
    click.echo("\n" + table)
    click.echo(f"\nresults:    {outcome.folder}/")
    click.echo(f"comparison: {outcome.folder / 'comparison.md'}")
    click.echo(f"report:     {outcome.folder / 'report.html'}")
    for p in plots:
        click.echo(f"plot:       {p}")
    if outcome.stop:
        click.echo(f"stopping rule: {outcome.stop} (looks in {outcome.folder / 'experiment.json'})")
        if outcome.stop_reason == "cap":
            click.echo(
                "  undecided means no verdict: the table's 95 % intervals do not allow for the "
                "looks, so one excluding 1.00 there is not a difference shown at 5 %; to decide, "
                "run it again with a higher --max-repeats"
            )
    for failure in outcome.failures:
        click.echo(f"warning: run failed: {failure}", err=True)
    if outcome.interrupted:
        click.echo(
            "Interrupted; the comparison covers the runs that finished. Continue with: "
            f"sandbox experiment --resume {outcome.folder}",
            err=True,
        )
        sys.exit(130)
    broken = [(r, failed(r.thresholds)) for r in ok]
    broken = [(r, lines) for r, lines in broken if lines]
    if broken:
        for r, lines in broken:
            click.echo(f"Error: threshold failed in {r.run_id}: {'; '.join(lines)}", err=True)
        sys.exit(1)
