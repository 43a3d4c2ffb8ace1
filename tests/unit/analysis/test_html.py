"""html: the shareable page: its order, its escaping, and that it needs nothing but itself."""

from __future__ import annotations

import fnmatch
import json
from dataclasses import replace
from datetime import datetime, timezone
from html.parser import HTMLParser
from pathlib import Path

import pytest
from jinja2 import PackageLoader, UndefinedError

import sandbox
from sandbox.analysis import html, reproduce
from sandbox.analysis.compare import compare
from sandbox.errors import SandboxError
from sandbox.load.models import LoadModel
from sandbox.results.files import dump
from sandbox.results.model import RunResult
from tests.fakes import make_group, make_result, with_load

WHEN = datetime(2026, 1, 2, 3, 4, tzinfo=timezone.utc)
SECTIONS = [
    "answer",
    "comparison",
    "plots",
    "warnings",
    "settings",
    "allocators",
    "host",
    "versions",
    "runs",
    "reproduce",
]


class Tags(HTMLParser):
    """Every start tag with its attributes, as a browser's tokenizer sees them."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def tags_of(page: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = Tags()
    parser.feed(page)
    return parser.tags


@pytest.fixture(scope="module")
def runs() -> list[RunResult]:
    """The size the brief names: 2 allocators × 4 repeats."""
    return make_group("glibc", 4) + make_group("jemalloc", 4)


@pytest.fixture(scope="module")
def page(runs: list[RunResult]) -> str:
    return html.build_page(runs, folder=Path("results/fake"), generated_at=WHEN)


def test_sections_come_in_the_reading_order(page: str) -> None:
    ids = [a["id"] for tag, a in tags_of(page) if tag == "section"]
    assert ids == SECTIONS


def test_the_answer_comes_first_and_says_it_in_words(page: str) -> None:
    main = page[page.index("<main>") :]
    first = main[: main.index('<section id="comparison"')]
    assert "jemalloc keeps " in first and " % less memory after the load than glibc: 0." in first
    assert "What held the memory" in first and "glibc: RSS grew " in first
    assert "jemalloc  after-idle" in first  # the headline figures


def test_a_ranking_goes_between_the_answer_and_the_table(runs: list[RunResult]) -> None:
    ranking = html.Ranking(
        "Remedies, best first", ("remedy", "after-idle"), (("jemalloc <b>", "0.55 ×"),)
    )
    page = html.build_page(runs, ranking=ranking, generated_at=WHEN)
    ids = [a["id"] for tag, a in tags_of(page) if tag == "section"]
    assert ids[:3] == ["answer", "ranking", "comparison"]
    assert "<td>jemalloc &lt;b&gt;</td><td>0.55 ×</td>" in page


def test_the_page_links_and_runs_nothing(page: str) -> None:
    tags = tags_of(page)
    names = {tag for tag, _ in tags}
    assert names.isdisjoint({"script", "img", "link", "iframe", "object", "embed", "a", "base"})
    assert names >= {"svg", "path", "text", "table"}
    for tag, attrs in tags:
        assert "src" not in attrs, tag
        for name, value in attrs.items():
            assert not name.startswith("on"), (tag, name)
            if name in ("href", "xlink:href"):
                assert value is not None and value.startswith("#"), (tag, value)
            if value and "url(" in value:
                assert "url(#" in value and value.count("url(") == value.count("url(#")
    assert "@import" not in page and "@font-face" not in page
    [csp] = [a for tag, a in tags if tag == "meta" and a.get("http-equiv")]
    assert csp["content"] == "default-src 'none'; style-src 'unsafe-inline'; img-src data:"


def test_a_two_by_four_experiment_stays_small(page: str) -> None:
    assert page.count("<svg ") == 2
    assert len(page.encode()) < 300 * 1024  # the budget for a page sent by mail


def test_text_from_result_files_is_escaped() -> None:
    evil = "<script>alert(1)</script>"
    image = "<img src=x onerror=alert(2)>"
    runs = [
        make_result(evil, repeat=i, parameters={"note": image}, tags=(evil,), experiment=image)
        for i in range(2)
    ]
    runs += [make_result("glibc", repeat=i, parameters={"note": image}) for i in range(2)]
    dead = make_result("glibc", repeat=2, status="server-died", parameters={"note": image})
    runs.append(replace(dead, status_detail=image, host=replace(dead.host, hostname=evil)))

    page = html.build_page(runs, generated_at=WHEN)

    names = {tag for tag, _ in tags_of(page)}
    assert "script" not in names and "img" not in names
    assert all(not k.startswith("on") for _, attrs in tags_of(page) for k in attrs)
    assert page.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 10  # names, tags, hostname
    assert page.count("&lt;img src=x onerror=alert(2)&gt;") >= 5  # parameter, note, title
    svg_text = page[page.index("<svg ") : page.rindex("</svg>")]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in svg_text  # matplotlib escapes its text


def test_reproduce_with_the_experiment_file(runs: list[RunResult], tmp_path: Path) -> None:
    manifest = {"format": "sandbox-experiment", "file": "experiments/quick.yml", "repeats": 4}
    (tmp_path / "experiment.json").write_text(json.dumps(manifest))
    commit = "0123456789abcdef"
    pinned = [replace(r, host=replace(r.host, git_commit=commit)) for r in runs]

    assert reproduce.reproduce_commands(pinned, tmp_path) == [
        f"git checkout {commit}",
        "sandbox experiment experiments/quick.yml --repeats 4",
        f"sandbox compare {tmp_path}",
        f"sandbox report {tmp_path}",
    ]


def test_reproduce_an_experiment_run_until_a_verdict(runs: list[RunResult], tmp_path: Path) -> None:
    rule = {"min_repeats": 3, "max_repeats": 6, "min_effect": 0.1, "alpha": 0.05}
    manifest = {
        "format": "sandbox-experiment",
        "file": "experiments/quick.yml",
        "repeats": 6,
        "sequential": rule,
    }
    (tmp_path / "experiment.json").write_text(json.dumps(manifest))

    assert reproduce.reproduce_commands(runs, tmp_path)[0] == (
        "sandbox experiment experiments/quick.yml --until-verdict --max-repeats 6 --min-effect 0.1"
    )


def test_reproduce_single_runs_one_command_per_setting(runs: list[RunResult]) -> None:
    assert reproduce.reproduce_commands(runs[:1] + runs[4:5], None) == [
        "sandbox run --allocator glibc --tags large --users 16 --iterations 10 --batches 3 "
        "--pause 3 --baseline 3 --idle 8 --sleep-ms 5 --handler sync --threads 40",
        "sandbox run --allocator jemalloc --tags large --users 16 --iterations 10 --batches 3 "
        "--pause 3 --baseline 3 --idle 8 --sleep-ms 5 --handler sync --threads 40",
    ]


def test_run_command_quotes_and_adds_what_differs_from_the_defaults() -> None:
    run = make_result("glibc", tags=("tiny", "a b"))
    run = replace(
        run,
        server=replace(run.server, pymalloc=False, workers=2, app="examples.app:app"),
    )
    run = with_load(run, model=LoadModel(name="rate", rate=40.0, duration_s=30), workers=2)
    assert reproduce.run_command(run) == (
        "sandbox run --allocator glibc --tags 'tiny,a b' --users 16 --iterations 10 --batches 3 "
        "--pause 3 --baseline 3 --idle 8 --load rate --rate 40 --duration 30 --load-workers 2 "
        "--sleep-ms 5 --handler sync --threads 40 --pymalloc off --server-workers 2 "
        "--app examples.app:app"
    )


def test_write_report_goes_into_the_folder_or_beside_the_file(
    runs: list[RunResult], tmp_path: Path
) -> None:
    for r in runs[:2]:
        dump(r, tmp_path / f"{r.run_id}.json")
    assert html.write_report([tmp_path]) == tmp_path / "report.html"
    one = tmp_path / f"{runs[0].run_id}.json"
    out = tmp_path / "elsewhere" / "page.html"
    assert html.write_report([one], out) == out
    assert out.read_text().startswith("<!DOCTYPE html>")
    with pytest.raises(SandboxError) as info:
        html.write_report([tmp_path / "elsewhere"])
    assert str(info.value) == f"no result files under {tmp_path / 'elsewhere'}"


# --- The templates ----------------------------------------------------------------------------

TEMPLATES = Path(html.__file__).parent / "templates"
ROOT = Path(sandbox.__file__).parent.parent


def test_the_templates_are_found_through_the_package() -> None:
    env = html.environment()
    assert isinstance(env.loader, PackageLoader)
    files = sorted(p.relative_to(TEMPLATES).as_posix() for p in TEMPLATES.rglob("*.j2"))
    assert env.list_templates() == files
    assert {"report.html.j2", "style.css.j2", "macros.html.j2"} <= set(files)
    page = env.get_template(html.PAGE_TEMPLATE)
    assert page.filename is not None and Path(page.filename) == TEMPLATES / "report.html.j2"


def test_every_template_goes_into_the_wheel() -> None:
    """pyproject's package-data names each template (a new folder of them would be missed)."""
    tomllib = pytest.importorskip("tomllib")
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["sandbox"]
    for path in TEMPLATES.rglob("*.j2"):
        name = path.relative_to(ROOT / "sandbox").as_posix()
        assert any(fnmatch.fnmatchcase(name, p) for p in patterns), name


def test_a_crafted_label_is_escaped_as_html_escape_does_it() -> None:
    label = """<script>alert("x")</script>'q'"""
    runs = make_group("glibc", 2) + make_group(label, 2)
    figure = html.Plot('<svg class="figure x"><text>a &amp; b</text></svg>', caption=label)
    ranking = html.Ranking("Best <first>", ("remedy",), ((label,),), note=label)

    page = html.render_page(
        compare(runs), runs, plots=[figure], ranking=ranking, commands=[label], generated_at=WHEN
    )

    escaped = "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&#x27;q&#x27;"
    assert "<script" not in page and "</script" not in page
    assert "script" not in {tag for tag, _ in tags_of(page)}
    # title twice, table, allocators, runs, ranking row and note, caption, command
    assert page.count(escaped) >= 10
    assert "&#39;" not in page and "&#34;" not in page  # markupsafe's spelling: never
    assert "<h2>Best &lt;first&gt;</h2>" in page
    # the macros' markup (lists, tables, notes) is escaped once, not twice
    assert f"<tr><td>{escaped}</td></tr>" in page and f'<p class="note">{escaped}</p>' in page
    # the figure is markup already: inserted as it is, not escaped a second time
    assert '<figure>\n<svg class="figure x"><text>a &amp; b</text></svg>\n<figcaption>' in page


def test_a_missing_variable_is_an_error_not_an_empty_string(runs: list[RunResult]) -> None:
    context = html.page_context(compare(runs), runs, generated_at=WHEN)
    template = html.environment().get_template(html.PAGE_TEMPLATE)
    assert "<title>" in template.render(context)
    del context["subtitle"]
    with pytest.raises(UndefinedError, match="subtitle"):
        template.render(context)


def test_a_missing_attribute_is_an_error_too(runs: list[RunResult]) -> None:
    context = html.page_context(compare(runs), runs, generated_at=WHEN)
    context["ranking"] = {"title": "Remedies", "header": ("remedy",), "rows": ()}  # no note
    with pytest.raises(UndefinedError, match="note"):
        html.environment().get_template(html.PAGE_TEMPLATE).render(context)
