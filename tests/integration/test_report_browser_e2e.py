"""report.html in a real browser: Debian's chromium, headless, with networking off.

The page must render (the table's text in the DOM, plots drawn, a screenshot that is not
blank), log no console error and ask for nothing but itself, also when it is copied away from
its results. Set SANDBOX_SCREENSHOTS=DIR to keep the screenshots for a look.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox.analysis import html
from sandbox.analysis.compare import compare
from sandbox.analysis.report import ratio_text
from sandbox.results.files import dump, load
from sandbox.results.model import RunResult
from tests.fakes import make_group
from tests.integration.browser import (
    LOOK,
    Browser,
    Visit,
    assert_self_contained,
    colours,
    find_chromium,
    headless_chromium,
)

pytestmark = pytest.mark.e2e

DATA = Path(__file__).resolve().parents[1] / "data"


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    if find_chromium() is None:
        pytest.skip("chromium is missing: scripts/setup.sh installs it (apt-get install chromium)")
    with headless_chromium(tmp_path_factory.mktemp("chromium") / "profile") as b:
        yield b


def experiment_folder(folder: Path, runs: list[RunResult]) -> Path:
    for r in runs:
        dump(r, folder / f"{r.run_id}.json")
    return folder


def keep(visit: Visit, name: str) -> None:
    where = os.environ.get("SANDBOX_SCREENSHOTS")
    if where:
        Path(where).mkdir(parents=True, exist_ok=True)
        (Path(where) / f"{name}.png").write_bytes(visit.screenshot_png)


def test_the_report_renders_offline(browser: Browser, tmp_path: Path) -> None:
    runs = make_group("glibc", 4) + make_group("jemalloc", 4)
    folder = experiment_folder(tmp_path / "fake-experiment", runs)
    page = html.write_report([folder])

    visit = browser.visit(page, LOOK)
    keep(visit, "report")

    assert_self_contained(visit)
    assert "The answer" in visit.text and "jemalloc keeps " in visit.text
    assert "after-idle RSS (MiB)" in visit.text
    comparison = compare(runs)
    jemalloc = comparison.group("jemalloc")
    idle = jemalloc.stat("after_idle_rss_mib")
    assert idle is not None and idle.sd is not None
    assert f"jemalloc\t4\t{idle.median:.1f}\t{idle.mean:.1f} ± {idle.sd:.1f}" in visit.text
    assert ratio_text(jemalloc.ratio("after_idle_rss_mib"), "glibc") in visit.text
    assert visit.values["table_rows"] >= 20  # 11 metrics × 2 groups, less the empty ones
    assert visit.values["figures"] == 2
    assert all(h > 200 for h in visit.values["figure_heights"]), visit.values
    assert visit.values["drawn_paths"] > 50
    distinct, not_white = colours(visit.screenshot_png)
    assert distinct > 100, distinct  # text, tables, phase shading and curves
    assert not_white > 0.05, not_white


def test_a_copied_report_still_shows_its_plots(browser: Browser, tmp_path: Path) -> None:
    folder = experiment_folder(
        tmp_path / "results", make_group("glibc", 2) + make_group("mimalloc", 2)
    )
    page = html.write_report([folder])
    elsewhere = tmp_path / "mail" / "attachment"
    elsewhere.mkdir(parents=True)
    copy = Path(shutil.copy(page, elsewhere / "report.html"))
    shutil.rmtree(folder)  # nothing of the results is left to link to

    visit = browser.visit(copy, LOOK)
    keep(visit, "copied")

    assert_self_contained(visit)
    assert visit.values["figures"] == 2
    assert all(h > 200 for h in visit.values["figure_heights"]), visit.values
    assert colours(visit.screenshot_png)[0] > 100


@pytest.mark.parametrize("golden", sorted(DATA.glob("result_v*.json.gz")), ids=lambda p: p.name)
def test_a_report_of_every_format_version_renders(
    browser: Browser, tmp_path: Path, golden: Path
) -> None:
    run = load(golden)
    folder = experiment_folder(tmp_path / "one", [run])
    page = html.write_report([folder])

    visit = browser.visit(page, LOOK)

    assert_self_contained(visit)
    assert run.run_id in page.read_text() and "after-idle RSS (MiB)" in visit.text
    assert f"only one group ({run.allocator.name})" in visit.text
    assert visit.values["figures"] >= 1


def test_the_checks_see_a_request_and_a_console_error(browser: Browser, tmp_path: Path) -> None:
    """The same checks on a page that breaks the rules: they must see it."""
    bad = tmp_path / "bad.html"
    bad.write_text(
        "<!DOCTYPE html><title>bad</title><img src='http://example.com/logo.png'>"
        "<script>console.error('boom')</script>"
    )

    visit = browser.visit(bad, LOOK)

    assert visit.requests == [visit.url, "http://example.com/logo.png"]
    assert visit.failed_requests  # the request did not get out: no network
    assert "console.error: boom" in visit.errors
    assert visit.values["outside"] == 2
