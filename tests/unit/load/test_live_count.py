"""Locust's running request count, read from its `--csv` stats file (no Locust here)."""

from __future__ import annotations

from pathlib import Path

from sandbox.load.live_count import LocustCount, read_request_count

HEADER = (
    "Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,"
    "Min Response Time,Max Response Time,Average Content Size,Requests/s,Failures/s,50%,95%\n"
)


def stats_csv(path: Path, *counts: tuple[str, int]) -> Path:
    """A `_stats.csv` as Locust writes it: a row per request name, then Aggregated."""
    rows = [
        f'POST,"/items/[key] [put]",{n},0,4,4.5,1,20,30,100.0,0.0,4,9\n'
        if name != "Aggregated"
        else f",Aggregated,{n},0,4,4.5,1,20,30,180.0,0.0,4,9\n"
        for name, n in counts
    ]
    path.write_text(HEADER + "".join(rows))
    return path


def test_the_aggregated_row_gives_the_count(tmp_path: Path) -> None:
    path = stats_csv(tmp_path / "locust_stats.csv", ("put", 70), ("Aggregated", 123))
    assert read_request_count(path) == 123


def test_a_missing_or_half_written_file_gives_nothing(tmp_path: Path) -> None:
    assert read_request_count(tmp_path / "none_stats.csv") is None
    half = tmp_path / "half_stats.csv"
    half.write_text(HEADER + 'POST,"/items/[key] [put]",70,0,4')
    assert read_request_count(half) is None
    cut = tmp_path / "cut_stats.csv"
    cut.write_text(HEADER + ",Aggregated,")
    assert read_request_count(cut) is None


def test_the_count_adds_finished_batches_and_never_goes_back(tmp_path: Path) -> None:
    count = LocustCount()
    assert count.total() == 0  # before the first batch
    first = stats_csv(tmp_path / "b1_stats.csv", ("Aggregated", 40))
    count.follow(first)
    assert count.total() == 40
    first.write_text(HEADER)  # caught mid-rewrite: the last figure stays
    assert count.total() == 40
    count.finish(55)  # Locust's final total, from its JSON
    assert count.total() == 55
    second = stats_csv(tmp_path / "b2_stats.csv", ("Aggregated", 10))
    count.follow(second)
    assert count.total() == 65


def test_a_batch_that_failed_before_its_total_counts_its_last_figure(tmp_path: Path) -> None:
    count = LocustCount()
    count.follow(stats_csv(tmp_path / "b1_stats.csv", ("Aggregated", 30)))
    assert count.total() == 30
    count.follow(stats_csv(tmp_path / "b2_stats.csv", ("Aggregated", 5)))  # no finish()
    assert count.total() == 35
    count.finish()
    assert count.total() == 35
