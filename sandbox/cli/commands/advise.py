"""`sandbox advise`: which allocator or tunable fixes the memory, raced arm against arm."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from sandbox.cli import flags
from sandbox.cli.lifecycle import sigterm_as_interrupt
from sandbox.cli.progress import note, run_numbered


@click.command("advise")
@flags.options(flags.ADVISE)
def advise_cmd(
    list_arms: bool,
    arms: str | None,
    budget: float,
    tolerance: float,
    min_rounds: int,
    max_rounds: int,
    experiment_file: Path | None,
    side_by_side: int | None,
    resume: Path | None,
    config_path: Path | None,
    **settings: Any,
) -> None:
    """Race the remedies (allocators, their settings, trims, worker recycling) on this
    workload: interleaved rounds of fresh servers, the clearly worse dropped after each, until
    the best is separated or the budget is spent; then how to deploy the winner."""
    from sandbox.advise import plan, race, render
    from sandbox.config import settings as config

    if list_arms:
        click.echo(plan.listing())
        return
    bench = config.load_benchmark(config_path)
    given = {k: v for k, v in settings.items() if v is not None}
    if resume is not None:
        if given or arms or experiment_file or side_by_side:
            raise click.UsageError("--resume runs DIR as it was planned: drop the other options")
        sigterm_as_interrupt()
        outcome = race.resume_race(resume.resolve(), bench, run_numbered, on_note=note)
    else:
        if given.get("results_dir"):
            given["results_dir"] = str(Path(given["results_dir"]).resolve())
        overrides = config.validate_overrides("option", given)
        names = [n.strip() for n in arms.split(",") if n.strip()] if arms else None
        race_settings = plan.race_settings(
            bench,
            names=names,
            experiment_file=experiment_file,
            flags=overrides,
            budget_s=budget,
            tolerance=tolerance,
            min_rounds=min_rounds,
            max_rounds=max_rounds,
            side_by_side=side_by_side,
        )
        for line in race_settings.skipped:
            note(f"note: {line}")
        sigterm_as_interrupt()
        outcome = race.start_race(race_settings, bench, run_numbered, on_note=note)
    text = render.note(outcome)
    (outcome.folder / "advice.md").write_text(text + "\n")
    click.echo("\n" + text)
    click.echo(f"\nrace:   {outcome.folder}/ (race.json, experiment.json, advice.md)")
    for failure in outcome.failures:
        click.echo(f"warning: run failed: {failure}", err=True)
    if outcome.interrupted:
        click.echo(
            f"Interrupted; continue with: sandbox advise --resume {outcome.folder}", err=True
        )
        sys.exit(130)
