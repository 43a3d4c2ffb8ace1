"""`sandbox plot`: RSS curves of results, per run or per group."""

from __future__ import annotations

from pathlib import Path

import click

from sandbox.cli.lifecycle import settle
from sandbox.errors import SandboxError


@click.command("plot")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--x",
    "x_axis",
    type=click.Choice(["time", "requests"]),
    default="time",
    show_default=True,
    help="Seconds, or requests completed.",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Output file stem (default: beside the first result, rss[-requests]).",
)
@click.option(
    "--format",
    "formats",
    type=click.Choice(["png", "svg"]),
    multiple=True,
    help="png and/or svg (default both).",
)
@click.option(
    "--view",
    type=click.Choice(["rss", "allocator"]),
    default="rss",
    show_default=True,
    help="rss: RSS curves and their medians; allocator: RSS, held and in-use memory.",
)
def plot_cmd(
    paths: tuple[Path, ...], x_axis: str, out: Path | None, formats: tuple[str, ...], view: str
) -> None:
    """Plot RSS over time, one panel per allocator plus an overlay of medians (--view rss), or
    where the memory is: RSS, what the allocator holds and what is in use (--view allocator)."""
    from sandbox.analysis import plot
    from sandbox.results import files as result_files

    settle(paths)
    files = result_files.find_result_files(paths)
    loaded = result_files.load_all(paths)
    if not loaded:
        raise SandboxError(f"no result files under {', '.join(map(str, paths))}")
    if out is None:
        out = plot.output_stem(files, view=view, x=x_axis)
    if view == "allocator":
        fig = plot.plot_decomposition(loaded)
    else:
        fig = plot.plot_rss(loaded, x="requests" if x_axis == "requests" else "time")
    for p in plot.save(fig, out, formats=formats or ("png", "svg")):
        click.echo(str(p))
