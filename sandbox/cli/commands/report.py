"""`sandbox report`: one HTML page to share, from result folders."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("report")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--baseline", help="Group to compare against (default: glibc, else the first).")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the page (default: report.html in the folder, or beside the file).",
)
def report_cmd(paths: tuple[Path, ...], baseline: str | None, out: Path | None) -> None:
    """Write report.html: the answer, the comparison, the plots, the warnings and how to
    reproduce them, in one file that opens offline (inline SVG, no script)."""
    from sandbox.analysis import html

    written = html.write_report(list(paths), out, baseline=baseline)
    click.echo(str(written))
