"""Run the corpus of public cases (benchmarks/real_cases/cases/) and print the confusion table.

Each case's buggy version (and its fixed one, when a release fixed it) is installed from PyPI
into its own virtualenv (results/real_cases/venvs/<case>-<version>/, with the wrapper's pinned
server), served by uvicorn from that virtualenv through `sandbox run --cmd` (the sandbox's agent
gets into it through PYTHONPATH; it needs nothing installed there), driven by the case's own
Locust file, under each allocator (default glibc and jemalloc). Each run's verdict is judged
against the case's truth (`table.score`); for a case whose truth is memory the allocator holds,
`sandbox advise` then races the remedies with a modest budget and its pick is printed.

Every run is recorded in results/real_cases/outcomes.jsonl (the latest record of a case, version
and allocator counts), so that cases run one at a time (one per hold of the machine lock) add up
to one table, written to results/real_cases/table.md.

    .venv/bin/python -m benchmarks.real_cases.run --list
    .venv/bin/python -m benchmarks.real_cases.run --case lz4-frame-decompress-error
    .venv/bin/python -m benchmarks.real_cases.run --build-only          # the virtualenvs only
    .venv/bin/python -m benchmarks.real_cases.run --table               # tally what was run
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path

from benchmarks.real_cases import manifest, table
from benchmarks.real_cases.manifest import Case
from sandbox.analysis import verdict
from sandbox.results import files as result_files

ROOT = Path(__file__).resolve().parents[2]
CASES = Path(__file__).resolve().parent / "cases"
OUT = ROOT / "results" / "real_cases"
ALLOCATORS = ("glibc", "jemalloc")
PIP = ("-m", "pip", "install", "--disable-pip-version-check", "--quiet")


def venv_of(case: Case, version: str, out: Path) -> Path:
    return out / "venvs" / f"{case.name}-{version}"


def requirements(case: Case, version: str) -> list[str]:
    return [f"{case.package}=={version}", *case.server, *case.extra]


def build(case: Case, version: str, out: Path) -> Path:
    """The case's virtualenv for `version` (built once; again when its requirements change)."""
    venv = venv_of(case, version, out)
    wanted = "\n".join(requirements(case, version)) + "\n"
    stamp = venv / "requirements.txt"
    if stamp.exists() and stamp.read_text() == wanted:
        return venv
    shutil.rmtree(venv, ignore_errors=True)
    python = shutil.which("python3.11") or "python3"
    subprocess.run([python, "-m", "venv", str(venv)], check=True)
    started = time.monotonic()
    subprocess.run([str(venv / "bin" / "python"), *PIP, *requirements(case, version)], check=True)
    stamp.write_text(wanted)
    print(f"built {venv.name} in {time.monotonic() - started:.0f} s", flush=True)
    return venv


def server_cmd(case: Case, venv: Path) -> str:
    """The `sandbox run --cmd` of a case: uvicorn from its virtualenv, the wrapper from its
    folder."""
    return (
        f"{venv / 'bin' / 'python'} -m uvicorn --app-dir {case.folder} {case.app} "
        "--host {host} --port {port} --no-access-log"
    )


def target_options(case: Case, venv: Path) -> list[str]:
    """The options `sandbox run` and `sandbox advise` share for a case."""
    return [
        "--cmd",
        server_cmd(case, venv),
        "--ready-url",
        "http://127.0.0.1:{port}/health",
        "--locustfile",
        str(case.folder / "locustfile.py"),
        *case.load.options(),
    ]


def run_one(case: Case, version: str, truth: str, allocator: str, out: Path) -> table.Outcome:
    """One `sandbox run` of a case's version under an allocator, and its verdict."""
    venv = build(case, version, out)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    folder = out / "runs" / f"{stamp}-{case.name}-{version}-{allocator}"
    command = [sys.executable, "-m", "sandbox", "run", *target_options(case, venv)]
    command += ["--allocator", allocator, "--results-dir", str(folder)]
    print(f"\n== {case.name} {version} ({truth}) under {allocator}", flush=True)
    started = time.monotonic()
    done = subprocess.run(command, cwd=ROOT, env=dict(os.environ), check=False)
    seconds = time.monotonic() - started
    found = sorted(folder.rglob("*.json*")) if folder.exists() else []
    note = "" if done.returncode == 0 else f"sandbox run exited {done.returncode}"
    record = {
        "case": case.name,
        "version": version,
        "truth": truth,
        "allocator": allocator,
        "result": str(found[-1]) if found else None,
        "folder": str(folder),
        "seconds": round(seconds, 1),
        "note": note,
    }
    with (out / "outcomes.jsonl").open("a") as f:
        f.write(json.dumps(record) + "\n")
    return outcome_of(record)


def outcome_of(record: Mapping[str, object]) -> table.Outcome:
    """An outcome from its record in outcomes.jsonl, the verdict read again from the result."""
    path, v = record.get("result"), None
    note = str(record.get("note") or "")
    if isinstance(path, str) and Path(path).exists():
        run = result_files.load(Path(path))
        if run.status == "ok":
            v = verdict.verdict_of(str(record["allocator"]), [run])
        else:
            note = note or f"run status {run.status}"
    return table.Outcome(
        case=str(record["case"]),
        version=str(record["version"]),
        truth=str(record["truth"]),
        allocator=str(record["allocator"]),
        verdict=v,
        seconds=float(str(record["seconds"])),
        note=note,
    )


def recorded(out: Path, names: Sequence[str]) -> list[table.Outcome]:
    """The latest outcome of each case, version and allocator in outcomes.jsonl, in the order of
    `names` (the corpus's)."""
    path = out / "outcomes.jsonl"
    latest: dict[tuple[str, str, str], dict[str, object]] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            if line.strip():
                r = json.loads(line)
                latest[r["case"], r["version"], r["allocator"]] = r
    order = {n: i for i, n in enumerate(names)}
    keys = sorted(latest, key=lambda k: (order.get(k[0], len(order)), k[0]))
    return [outcome_of(latest[k]) for k in keys if k[0] in order]


def advise(case: Case, out: Path) -> None:
    """`sandbox advise` on an allocator-held case's buggy version; its output saved and its last
    lines (the pick) printed."""
    assert case.advise_budget is not None
    venv = build(case, case.buggy, out)
    folder = out / "advise" / case.name
    command = [sys.executable, "-m", "sandbox", "advise", *target_options(case, venv)]
    command += ["--budget", case.advise_budget, "--results-dir", str(folder)]
    if case.advise_arms:
        command += ["--arms", ",".join(case.advise_arms)]
    arms = ", ".join(case.advise_arms) or "the whole catalogue"
    print(f"\n== sandbox advise on {case.name} {case.buggy} (budget {case.advise_budget}; {arms})")
    started = time.monotonic()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "advise.txt").write_text(done.stdout + done.stderr)
    print(done.stdout[-3000:] + done.stderr[-1500:])
    print(f"advise took {time.monotonic() - started:.0f} s; exit {done.returncode}")


def report(outcomes: Sequence[table.Outcome], out: Path) -> str:
    """The per-case table, a confusion table per allocator and each verdict's line."""
    parts = ["## Each case and version\n", table.per_case(outcomes)]
    for allocator in sorted({o.allocator for o in outcomes}):
        parts += [f"\n## {allocator}\n", table.confusion(outcomes, allocator)]
    parts.append("\n## The verdicts\n")
    for o in outcomes:
        said = o.verdict.line if o.verdict is not None else f"(no result: {o.note})"
        parts.append(
            f"- {o.case} {o.version} [{o.truth}] {table.score(o.truth, o.verdict)}: {said}"
        )
    text = "\n".join(parts) + "\n"
    (out / "table.md").write_text(text)
    return text


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--list", action="store_true", help="list the cases and exit")
    parser.add_argument("--case", action="append", default=[], help="run only this case")
    parser.add_argument("--allocators", default=",".join(ALLOCATORS))
    parser.add_argument("--version", choices=("both", "buggy", "fixed"), default="both")
    parser.add_argument("--build-only", action="store_true", help="build the virtualenvs only")
    parser.add_argument("--table", action="store_true", help="tally the recorded runs only")
    parser.add_argument("--no-advise", action="store_true", help="skip sandbox advise")
    parser.add_argument("--out", type=Path, default=OUT, help="where venvs and runs go")
    args = parser.parse_args(argv)
    try:
        cases = manifest.load_cases(CASES)
    except manifest.ManifestError as e:
        print(f"Error: {e}", file=sys.stderr)
        return 1
    if args.list:
        for c in cases:
            fixed = f", fixed in {c.fixed}" if c.fixed else ""
            print(f"{c.name}: {c.package} {c.buggy}{fixed}; truth {c.truth}; {c.summary}")
            for s in c.sources:
                print(f"    {s}")
        return 0
    unknown = [n for n in args.case if n not in {c.name for c in cases}]
    if unknown:
        print(f"Error: no case named '{unknown[0]}' (see --list)", file=sys.stderr)
        return 2
    chosen = [c for c in cases if not args.case or c.name in args.case]
    args.out.mkdir(parents=True, exist_ok=True)
    if not args.table:
        for case in chosen:
            versions = case.versions()
            if args.version != "both":
                versions = versions[:1] if args.version == "buggy" else versions[1:]
            for version, truth in versions:
                if args.build_only:
                    build(case, version, args.out)
                    continue
                for allocator in args.allocators.split(","):
                    run_one(case, version, truth, allocator, args.out)
            if case.advise_budget and not (args.build_only or args.no_advise):
                advise(case, args.out)
        if args.build_only:
            return 0
    print(report(recorded(args.out, [c.name for c in cases]), args.out))
    print(f"written to {args.out / 'table.md'}; load average {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
